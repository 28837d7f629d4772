"""Customer orders into 1C (`Document_ЗаказКлиента` in УТ 11), exactly once.

1C has no idempotency key, and a POST whose response was lost may still have created the
document (reference/onec.md §1.7, §7 items 13–15). So:

* the bot's outbox id (`BOT-000123`, ≤ 20 characters) goes into the external-number field
  (`НомерПоДаннымКлиента` by default; `orders.external_number_field` of the mapping profile),
* `ensure_order` looks the number up before every create — including right after a create that
  timed out or lost its connection — and POSTs only when the lookup is empty,
* the new `Ref_Key` is handed to `on_created` (which stores it durably) before anything else,
* posting (`…(guid'…')/Post`) is a separate step; a posting failure (500, code `-1`) keeps the
  unposted document, surfaces 1C's message and never leads to a second document.

The payload is minimal: header defaults from config (organization, warehouse, agreement, retail
partner, … as 1C field names or the aliases below), the external number, the customer's name,
phone and address in `Комментарий`, and rows with `LineNumber` 1..n, the product's `Ref_Key`,
quantity, price and amount.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from resources.onec.client import ZERO_GUID, OneCClient, guid_literal
from resources.onec.errors import OneCError, OneCODataError, OneCTransientError
from resources.onec.profile import OrdersSection

logger = logging.getLogger("integrations.onec")

# Friendly names accepted in `integrations.onec.order_defaults` (УТ 11 field names); any other
# key is used as the 1C field name itself. `rows` holds defaults for every tabular row.
HEADER_ALIASES = {
    "organization": "Организация_Key",
    "warehouse": "Склад_Key",
    "agreement": "Соглашение_Key",
    "partner": "Партнер_Key",
    "retail_partner": "Партнер_Key",
    "counterparty": "Контрагент_Key",
    "contract": "Договор_Key",
    "currency": "Валюта_Key",
    "manager": "Менеджер_Key",
    "status": "Статус",
    "operation": "ХозяйственнаяОперация",
    "prices_include_vat": "ЦенаВключаетНДС",
}
ROW_ALIASES = {
    "price_type": "ВидЦены_Key",
    "warehouse": "Склад_Key",
    "vat_rate": "СтавкаНДС_Key",
    "package": "Упаковка_Key",
    "characteristic": "Характеристика_Key",
}
_PATH_SAFE = "/()=',"


# 1C reports infrastructure trouble inside the configuration code as the same 500 / code -1 as a
# business refusal; these messages mean "try again later", not "this order is wrong".
_TRANSIENT_MESSAGES = ("блокировк", "deadlock", "lock request", "lock timeout", "ошибка субд", "тайм-аут",
                       "timeout", "превышено время ожидания", "соединение с сервером", "сеанс работы завершен",
                       "сервер 1с:предприятия не обнаружен")


def is_transient_refusal(exc: OneCError) -> bool:
    """True for a `-1` error whose text is a lock/DBMS/connection problem, not a business refusal."""
    text = str(exc).lower()
    return any(marker in text for marker in _TRANSIENT_MESSAGES)


class OrderCreateUnknown(OneCTransientError):
    """A create failed in a way that may have committed, and the lookup right after found
    nothing yet: retry later (after a backoff) with a fresh lookup, never at once."""


class OrderPostingError(OneCODataError):
    """1C refused to post the order (configuration code, internal code `-1`); the document is
    kept unposted and no other one is created."""


@dataclass
class OrderDocument:
    ref_key: str
    number: str | None
    posted: bool


@dataclass
class OrderLine:
    product_ref: str
    quantity: float
    price: float
    amount: float


@dataclass
class OrderRequest:
    """What one order needs in 1C, independent of the configuration's field names."""

    external_number: str
    lines: Sequence[OrderLine]
    customer_name: str = ""
    phone: str = ""
    address: str | None = None
    comment: str | None = None


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass
class OneCOrders:
    """Order writes of one 1C base: look up, create, post."""

    client: OneCClient
    section: OrdersSection
    defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def number_field(self) -> str:
        return self.section.external_number_field

    # ---- reads --------------------------------------------------------------------------
    def find(self, external_number: str) -> OrderDocument | None:
        """The document carrying this external number, or None (retried GET)."""
        found = self.find_many([external_number])
        return found.get(external_number)

    def find_many(self, external_numbers: Sequence[str], chunk: int = 8) -> dict[str, OrderDocument]:
        """Documents by external number, a few numbers per request (`… eq 'A' or … eq 'B'`);
        the URL stays well under 1C's 2 KB limit with Cyrillic field names percent-encoded."""
        out: dict[str, OrderDocument] = {}
        numbers = list(dict.fromkeys(n for n in external_numbers if n))
        for start in range(0, len(numbers), chunk):
            part = numbers[start:start + chunk]
            filter_ = " or ".join(f"{self.number_field} eq {_quote_literal(n)}" for n in part)
            rows = self.client.list_page(
                self.section.entity_set, select=["Ref_Key", "Number", "Posted", "DeletionMark", self.number_field],
                filter_=filter_, orderby=None,
            )
            for row in rows:
                number = str(row.get(self.number_field) or "")
                if number not in part:
                    continue
                doc = OrderDocument(ref_key=str(row["Ref_Key"]), number=row.get("Number"),
                                    posted=bool(row.get("Posted")))
                previous = out.get(number)
                if previous is not None:
                    logger.warning("1C has several %s with %s = %s (%s, %s); using the first",
                                   self.section.entity_set, self.number_field, number, previous.ref_key, doc.ref_key)
                    continue
                out[number] = doc
        return out

    # ---- payload ------------------------------------------------------------------------
    def build_body(self, order: OrderRequest) -> dict[str, Any]:
        """The minimal POST body: defaults, date, external number, comment and rows."""
        header: dict[str, Any] = {}
        row_defaults: dict[str, Any] = {}
        for key, value in self.defaults.items():
            if key == "rows" and isinstance(value, Mapping):
                row_defaults = {ROW_ALIASES.get(k, k): v for k, v in value.items()}
            else:
                header[HEADER_ALIASES.get(key, key)] = value
        fields = self.section.fields
        rows = []
        for n, line in enumerate(order.lines, start=1):
            rows.append({
                "LineNumber": str(n),
                **row_defaults,
                fields.product: line.product_ref,
                "Характеристика_Key": row_defaults.get("Характеристика_Key", ZERO_GUID),
                "Упаковка_Key": row_defaults.get("Упаковка_Key", ZERO_GUID),
                "КоличествоУпаковок": line.quantity,
                fields.quantity: line.quantity,
                fields.price: line.price,
                fields.amount: round(line.amount, 2),
            })
        now = self.client.server_time()
        return {
            "Date": now,
            **header,
            self.number_field: order.external_number,
            "ДатаПоДаннымКлиента": now,
            "Комментарий": order_comment(order),
            self.section.rows: rows,
        }

    # ---- writes -------------------------------------------------------------------------
    def create(self, body: Mapping[str, Any]) -> OrderDocument:
        """One POST (never retried here). Raises OneCTransientError when the outcome is unknown."""
        number = str(body.get(self.number_field, ""))
        created = self.client.send("POST", quote(self.section.entity_set, safe=_PATH_SAFE),
                                   f"create of {self.section.entity_set} {number}", body)
        if not isinstance(created, dict) or not created.get("Ref_Key"):
            raise OneCTransientError(f"1C: create of {self.section.entity_set} {number} answered without a Ref_Key; "
                                     "looking it up before any retry")
        return OrderDocument(ref_key=str(created["Ref_Key"]), number=created.get("Number"),
                             posted=bool(created.get("Posted")))

    def post(self, ref_key: str, external_number: str = "") -> None:
        """Post the document (`PostingModeOperational=false`). Posting twice is harmless, so a
        transient failure may simply be retried later. Code `-1` → OrderPostingError."""
        path = quote(f"{self.section.entity_set}({guid_literal(ref_key)})/Post", safe=_PATH_SAFE)
        what = f"posting of {self.section.entity_set} {external_number or ref_key}"
        try:
            self.client.send("POST", path, what, None, {"PostingModeOperational": "false"})
        except OneCODataError as exc:
            if exc.code == "-1":
                raise OrderPostingError(str(exc), url=exc.url, status=exc.status, code=exc.code) from None
            raise

    def ensure_order(self, order: OrderRequest, *, known: OrderDocument | None = None,
                     on_created: Callable[[OrderDocument], None] | None = None,
                     post: bool = True, on_posted: Callable[[], None] | None = None) -> OrderDocument:
        """Make sure the order exists (and is posted): look up, create only when absent, store
        the Ref_Key through `on_created` at once, then post.

        `known` is the document already stored for this order (skips lookup and create).
        """
        doc = known
        if doc is None:
            doc = self.find(order.external_number)
            if doc is not None:
                logger.info("1C already has order %s (%s, № %s); not creating it again",
                            order.external_number, doc.ref_key, doc.number)
            else:
                try:
                    doc = self.create(self.build_body(order))
                except OneCTransientError as exc:
                    doc = self._after_unknown_create(order.external_number, exc)
                logger.info("1C order %s created: %s № %s", order.external_number, doc.ref_key, doc.number)
            if on_created is not None:
                on_created(doc)
        if post and not doc.posted:
            self.post(doc.ref_key, order.external_number)
            doc.posted = True
            if on_posted is not None:
                on_posted()
        return doc

    def _after_unknown_create(self, number: str, exc: OneCError) -> OrderDocument:
        """A create failed ambiguously: the document may exist. Look it up now; if it is not
        there, do not POST again in this attempt (a slow create may still commit)."""
        try:
            doc = self.find(number)
        except OneCError as lookup_exc:
            raise OrderCreateUnknown(f"{exc}; the lookup of {number} afterwards failed too: {lookup_exc}",
                                     url=exc.url, status=exc.status, code=exc.code) from None
        if doc is None:
            raise OrderCreateUnknown(f"{exc}; {number} not found afterwards: will look it up again before retrying",
                                     url=exc.url, status=exc.status, code=exc.code)
        logger.warning("1C create of %s failed (%s) but the document exists (%s): using it", number, exc, doc.ref_key)
        return doc


def order_comment(order: OrderRequest) -> str:
    """`Комментарий`: who ordered and where to deliver (1C has no customer of its own for a bot order)."""
    parts = [f"Заказ чат-бота {order.external_number}"]
    if order.customer_name or order.phone:
        parts.append("Клиент: " + ", ".join(p for p in (order.customer_name, order.phone) if p))
    if order.address:
        parts.append(f"Доставка: {order.address}")
    if order.comment:
        parts.append(f"Комментарий: {order.comment}")
    return ". ".join(parts)


__all__ = ["HEADER_ALIASES", "ROW_ALIASES", "OneCOrders", "is_transient_refusal", "OrderCreateUnknown", "OrderDocument", "OrderLine",
           "OrderPostingError", "OrderRequest", "order_comment"]
