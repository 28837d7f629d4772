"""Bot side of the outbox: validate what the bot hands over and enqueue it, answering at once.

    submit_order(db, order_data)   -> {"success": True, "order_id": "BOT-000123", "status": "queued"}
    submit_lead(db, lead_data)     -> {"success": True, "lead_id": "LEAD-000124", "status": "queued"}
    log_activity(db, activity)     -> {"success": True, "activity_id": "ACT-000125", "status": "queued"}
    get_outbox_status(db, id)      -> {"success": True, "id": ..., "status": "delivered", ...}

Every failure is `{"success": False, "error": "<field>: <what is wrong>"}` naming the bad field
the way the bot sent it (`products[1].sku: unknown SKU 'X'`); nothing invalid is enqueued.
Nothing here talks to 1C or Bitrix24: the push job (`pipelines/push`) delivers the rows.

Idempotency: an order with the bot's `order_id` (or `idempotency_key`) is enqueued once; the same
key again answers with the first order's id (`"duplicate": True`), and the same key with a
different order is refused. Without an explicit key, an identical order in the same
`conversation_id` counts as the same order. A lead is one per `conversation_id`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import select

from resources.store import crm_events, outbox
from resources.store.database import Database
from resources.store.schema import products

from .results import failure, iso_utc

logger = logging.getLogger("integrations.intake")

MAX_LINES = 200
MAX_TEXT = 20_000
TOLERANCE = 0.01

# What the bot sees for each outbox status.
BOT_STATUS = {
    outbox.PENDING: "queued",
    outbox.IN_PROGRESS: "sending",
    outbox.FAILED: "retrying",
    outbox.DONE: "delivered",
    outbox.DEAD: "failed",
}

_PHONE_CHARS = re.compile(r"[\s\-().\u00a0]")


def normalize_phone(value: Any) -> str:
    """A Kazakhstan (or any E.164) phone to `+<digits>`; raise ValueError on anything else.

    `8 777 123 45 67`, `+7 (777) 123-45-67`, `87771234567`, `77771234567`, `7771234567` all give
    `+77771234567`; `00…` is read as `+…`. Letters, extensions and wrong lengths are refused.
    """
    if not isinstance(value, str):
        raise ValueError("must be a string like +7 777 123 45 67")
    raw = value.strip()
    compact = _PHONE_CHARS.sub("", raw)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not re.fullmatch(r"\+?\d+", compact or "x"):
        raise ValueError(f"{raw!r} is not a phone number (expected +7 7XX XXX XX XX or an E.164 number)")
    digits = compact.lstrip("+")
    if not compact.startswith("+"):
        if len(digits) == 11 and digits[0] in "78":
            digits = "7" + digits[1:]
        elif len(digits) == 10 and digits[0] == "7":
            digits = "7" + digits
        else:
            raise ValueError(f"{raw!r} is not a Kazakhstan number: use +7 and 10 digits, e.g. +7 777 123 45 67")
    if digits.startswith("7"):
        if len(digits) != 11 or digits[1] not in "3456789":
            raise ValueError(f"{raw!r} is not a valid +7 number: +7 must be followed by 10 digits, e.g. +7 777 123 45 67")
    elif not 8 <= len(digits) <= 15 or digits[0] == "0":
        raise ValueError(f"{raw!r} is not an E.164 number (country code and 8–15 digits)")
    return "+" + digits


# ---- request models -------------------------------------------------------------------------

class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


class CustomerIn(_In):
    name: str = Field(min_length=1, max_length=200)
    phone: str

    @field_validator("name")
    @classmethod
    def _has_letter(cls, value: str) -> str:
        if not any(ch.isalpha() for ch in value):
            raise ValueError(f"{value!r} is not a name")
        return value

    @field_validator("phone", mode="before")
    @classmethod
    def _phone(cls, value: Any) -> str:
        return normalize_phone(value)


class ContactIn(_In):
    """A customer where only the phone is needed (activity logs)."""

    name: str | None = Field(None, max_length=200)
    phone: str | None = None

    @field_validator("phone", mode="before")
    @classmethod
    def _phone(cls, value: Any) -> str | None:
        return None if value in (None, "") else normalize_phone(value)


class OrderLineIn(_In):
    sku: str = Field(min_length=1, max_length=64)
    quantity: float = Field(gt=0, le=1_000_000)
    price: float = Field(gt=0, le=1_000_000_000)

    @field_validator("quantity", "price", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        return _no_bool(value)

    @field_validator("quantity", "price")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class DeliveryIn(_In):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)
    address: str | None = Field(None, max_length=500)


class OrderIn(_In):
    customer: CustomerIn
    products: list[OrderLineIn] = Field(min_length=1, max_length=MAX_LINES)
    delivery: DeliveryIn | None = None
    total: float | None = Field(None, ge=0)
    comment: str | None = Field(None, max_length=MAX_TEXT)
    summary: str | None = Field(None, max_length=MAX_TEXT)
    conversation_id: str | None = Field(None, max_length=128)
    order_id: str | None = Field(None, max_length=128)
    idempotency_key: str | None = Field(None, max_length=128)

    @field_validator("total", mode="before")
    @classmethod
    def _total_number(cls, value: Any) -> Any:
        return _no_bool(value)

    @field_validator("conversation_id", "order_id", "idempotency_key", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        return _id_text(value)


def _id_text(value: Any) -> Any:
    """Bot-side ids may arrive as ints; the outbox keys are strings (a bool is not an id)."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _transcript_text(value: Any) -> str | None:
    """A transcript as text: a string as is, a list of messages as `role: text` lines."""
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, list):
        lines = []
        for n, item in enumerate(value):
            if isinstance(item, str):
                lines.append(item)
            elif isinstance(item, dict):
                who = item.get("role") or item.get("from") or item.get("author") or "?"
                text = item.get("text") or item.get("content") or item.get("message") or ""
                lines.append(f"{who}: {text}")
            else:
                raise ValueError(f"message {n} must be a string or an object with role and text")
        return "\n".join(lines) or None
    raise ValueError("must be a string or a list of messages")


class LeadIn(_In):
    customer: CustomerIn
    source: str = Field("bot", min_length=1, max_length=32)
    title: str | None = Field(None, max_length=255)
    comment: str | None = Field(None, max_length=MAX_TEXT)
    message: str | None = Field(None, max_length=MAX_TEXT)
    summary: str | None = Field(None, max_length=MAX_TEXT)
    transcript: str | None = None
    conversation_id: str | None = Field(None, max_length=128)
    lead_id: str | None = Field(None, max_length=128)
    idempotency_key: str | None = Field(None, max_length=128)

    @field_validator("transcript", mode="before")
    @classmethod
    def _transcript(cls, value: Any) -> Any:
        return _transcript_text(value)

    @field_validator("conversation_id", "lead_id", "idempotency_key", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        return _id_text(value)


class ActivityIn(_In):
    conversation_id: str | None = Field(None, max_length=128)
    customer: ContactIn | None = None
    summary: str | None = Field(None, max_length=MAX_TEXT)
    transcript: str | None = None
    lead_id: str | None = Field(None, max_length=20)
    order_id: str | None = Field(None, max_length=20)
    activity_id: str | None = Field(None, max_length=128)
    source: str = Field("bot", max_length=32)

    @field_validator("transcript", mode="before")
    @classmethod
    def _transcript(cls, value: Any) -> Any:
        return _transcript_text(value)

    @field_validator("conversation_id", "activity_id", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        return _id_text(value)

    @model_validator(mode="after")
    def _something_to_log(self) -> ActivityIn:
        if not (self.summary or self.transcript):
            raise ValueError("summary or transcript: one of them is required")
        if not (self.conversation_id or self.lead_id or self.order_id or (self.customer and self.customer.phone)):
            raise ValueError("conversation_id: required (or customer.phone, lead_id or order_id) to find the "
                             "lead or deal to log on")
        return self


# ---- helpers --------------------------------------------------------------------------------

def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = _path(tuple(p for p in err["loc"] if p not in ("function-after", "function-before")))
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "required"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def _fingerprint(data: Any) -> str:
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def _not_a_mapping(what: str, value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return failure(f"{what} must be an object (a dict), got {type(value).__name__}")
    return None


def _enqueue_answer(kind: str, id_field: str, row: outbox.OutboxRow, created: bool) -> dict[str, Any]:
    answer: dict[str, Any] = {"success": True, id_field: row.id,
                              "status": "queued" if created else BOT_STATUS.get(row.status, row.status)}
    if not created:
        answer["duplicate"] = True
    return answer


# ---- public API -----------------------------------------------------------------------------

def submit_order(db: Database, order_data: Any, *, source: str = "bot", check_prices: bool = True) -> dict[str, Any]:
    """Validate an order (the seed's shape) against the catalogue and enqueue it.

    Checks: customer name; phone (normalised to E.164); at least one line; each SKU exists and is
    active in `products`; quantity > 0; price > 0 and equal to the catalogue price (within 0.01)
    when `check_prices`; `total` (optional) equal to Σ quantity × price within 0.01.
    """
    bad = _not_a_mapping("order_data", order_data)
    if bad:
        return bad
    try:
        order = OrderIn.model_validate(order_data)
    except ValidationError as exc:
        return failure(_describe(exc))

    skus = sorted({line.sku for line in order.products})
    with db.read() as conn:
        found = {r["sku"]: r for r in conn.execute(
            select(products.c.sku, products.c.name, products.c.price, products.c.currency, products.c.is_active,
                   products.c.onec_ref).where(products.c.sku.in_(skus))).mappings()}
    errors: list[str] = []
    lines: list[dict[str, Any]] = []
    currencies: set[str] = set()
    for n, line in enumerate(order.products):
        product = found.get(line.sku)
        where = f"products[{n}]"
        if product is None:
            errors.append(f"{where}.sku: unknown SKU {line.sku!r}")
            continue
        if not product["is_active"]:
            errors.append(f"{where}.sku: SKU {line.sku!r} is not on sale (inactive in the catalogue)")
            continue
        if check_prices:
            if product["price"] is None:
                errors.append(f"{where}.sku: SKU {line.sku!r} has no price in the catalogue")
                continue
            if abs(float(product["price"]) - line.price) > TOLERANCE:
                errors.append(f"{where}.price: {line.price:g} does not match the catalogue price "
                              f"{float(product['price']):g} of {line.sku!r}")
                continue
        if product["currency"]:
            currencies.add(product["currency"])
        lines.append({"sku": line.sku, "name": product["name"], "onec_ref": product["onec_ref"],
                      "quantity": line.quantity, "price": line.price,
                      "amount": round(line.quantity * line.price, 2)})
    if errors:
        return failure("; ".join(errors))
    computed = round(sum(li["amount"] for li in lines), 2)
    if order.total is not None and abs(order.total - computed) > TOLERANCE:
        return failure(f"total: {order.total:g} does not equal the sum of quantity × price over products "
                        f"({computed:g})")

    request = order.model_dump(mode="json", exclude_none=True)
    key = order.idempotency_key or order.order_id
    dedup_key = f"order:{key}" if key else (
        f"order:conv:{order.conversation_id}:{_fingerprint(request)}" if order.conversation_id else None)
    payload = {
        "customer": {"name": order.customer.name, "phone": order.customer.phone},
        "lines": lines,
        "total": computed,
        "currency": currencies.pop() if len(currencies) == 1 else None,
        "delivery": order.delivery.model_dump(exclude_none=True) if order.delivery else None,
        "comment": order.comment,
        "summary": order.summary,
        "conversation_id": order.conversation_id,
        "client_order_id": key,
        "source": source,
    }
    try:
        row, created = outbox.enqueue(db, outbox.ORDER, payload, source=source, dedup_key=dedup_key,
                                      fingerprint=_fingerprint(request), conversation_id=order.conversation_id,
                                      phone=order.customer.phone)
    except outbox.DuplicateKeyConflict as exc:
        return failure(f"order_id: {key!r} was already used for order {exc.existing.id} with different data")
    if created:
        logger.info("order %s queued: %d line(s), total %s, source %s", row.id, len(lines), computed, source)
    else:
        logger.info("order %s submitted again (key %s): not queued twice", row.id, dedup_key)
    return _enqueue_answer(outbox.ORDER, "order_id", row, created)


def submit_lead(db: Database, lead_data: Any) -> dict[str, Any]:
    """Validate a lead from a bot conversation and enqueue it (one lead per `conversation_id`)."""
    bad = _not_a_mapping("lead_data", lead_data)
    if bad:
        return bad
    try:
        lead = LeadIn.model_validate(lead_data)
    except ValidationError as exc:
        return failure(_describe(exc))
    key = lead.idempotency_key or lead.lead_id
    dedup_key = f"lead:{key}" if key else (f"lead:conv:{lead.conversation_id}" if lead.conversation_id else None)
    payload = {
        "customer": {"name": lead.customer.name, "phone": lead.customer.phone},
        "source": lead.source,
        "title": lead.title,
        "comment": lead.comment or lead.message,
        "summary": lead.summary,
        "transcript": lead.transcript,
        "conversation_id": lead.conversation_id,
        "client_lead_id": key,
    }
    row, created = outbox.enqueue(db, outbox.LEAD, payload, source=lead.source, dedup_key=dedup_key,
                                  conversation_id=lead.conversation_id, phone=lead.customer.phone)
    logger.info("lead %s %s (source %s)", row.id, "queued" if created else "submitted again, not queued twice",
                lead.source)
    return _enqueue_answer(outbox.LEAD, "lead_id", row, created)


def log_activity(db: Database, activity_data: Any) -> dict[str, Any]:
    """Enqueue a conversation summary or transcript as a timeline comment on the conversation's
    lead or deal in Bitrix24 (found through `lead_id`/`order_id`, the `conversation_id`, or the
    customer's phone)."""
    bad = _not_a_mapping("activity_data", activity_data)
    if bad:
        return bad
    try:
        activity = ActivityIn.model_validate(activity_data)
    except ValidationError as exc:
        return failure(_describe(exc))
    for field_name in ("lead_id", "order_id"):
        ref = getattr(activity, field_name)
        if ref and outbox.get(db, ref) is None:
            return failure(f"{field_name}: no lead or order {ref!r} in the outbox")
    phone = activity.customer.phone if activity.customer else None
    text = {"summary": activity.summary, "transcript": activity.transcript}
    key = activity.activity_id
    dedup_key = f"activity:{key}" if key else (
        f"activity:{activity.conversation_id or phone}:{_fingerprint(text)}")
    payload = {
        "conversation_id": activity.conversation_id,
        "customer": {"name": activity.customer.name if activity.customer else None, "phone": phone},
        "summary": activity.summary,
        "transcript": activity.transcript,
        "lead_id": activity.lead_id,
        "order_id": activity.order_id,
        "client_activity_id": key,
    }
    row, created = outbox.enqueue(db, outbox.ACTIVITY, payload, source=activity.source, dedup_key=dedup_key,
                                  conversation_id=activity.conversation_id, phone=phone)
    logger.info("activity %s %s", row.id, "queued" if created else "submitted again, not queued twice")
    return _enqueue_answer(outbox.ACTIVITY, "activity_id", row, created)


def get_outbox_status(db: Database, row_id: str) -> dict[str, Any]:
    """Where an order, lead or activity is: the bot status, attempts, the last error and the
    external ids delivered so far (1C number, Bitrix24 deal/lead ids)."""
    row = outbox.get(db, row_id)
    if row is None:
        return failure(f"id: nothing with id {row_id!r} in the outbox")
    answer = {"success": True, "id": row.id, "kind": row.kind, "status": BOT_STATUS.get(row.status, row.status),
              "outbox_status": row.status, "attempts": row.attempts, "last_error": row.last_error,
              **{k: v for k, v in row.external_ids().items() if v not in (None, False)}}
    crm = _crm_state(db, row)
    if crm is not None:
        answer["crm"] = crm
    return answer


def _crm_state(db: Database, row: outbox.OutboxRow) -> dict[str, Any] | None:
    """The last stage Bitrix24 reported for the row's deal (an order) or lead, when one is known:
    `{"entity", "id", "stage", "semantic": in_progress | won | lost | deleted, "modified", "checked_at"}`."""
    target = ("deal", row.b24_deal_id) if row.b24_deal_id else ("lead", row.b24_lead_id) if row.b24_lead_id else None
    if target is None:
        return None
    known = crm_events.state_of(db, target[0], int(target[1]))
    if known is None:
        return None
    state, fetched_at = known
    return {**state.as_bot_dict(), "checked_at": iso_utc(fetched_at)}


__all__ = ["BOT_STATUS", "get_outbox_status", "log_activity", "normalize_phone", "submit_lead", "submit_order"]
