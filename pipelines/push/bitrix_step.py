"""Push orders, leads and activity logs to Bitrix24 in batched phases, never creating twice.

For a chunk of claimed rows the work runs in phases; every phase is one or more `batch`
requests of ≤ 50 independent commands (no `halt`: one row's failure does not stop the others),
and its results are stored before the next phase starts:

1. look-ups (reads): the contact of each distinct phone (`crm.duplicate.findbycomm`), leads and
   deals by `ORIGINATOR_ID` + `ORIGIN_ID` (`@ORIGIN_ID` lists, many rows per command), tasks and
   timeline comments whose create was sent before with an unknown outcome (marker search);
2. contacts that do not exist yet (`crm.contact.add`, one per phone);
3. deals for orders (with the 1C number when 1C already has the order) and leads for leads;
4. dependants: product rows (`crm.deal.productrows.set`, idempotent), the 1C number written back
   (`crm.deal.update`, idempotent), a task for the manager (`tasks.task.add`, marker `[id]` in the
   title) and a timeline comment (`crm.timeline.comment.add`, marker in the text). Tasks and
   comments have no external-id field, so an intent is stored before they are sent and a later
   attempt searches for the marker before sending again.

A create whose request failed ambiguously (timeout, dropped connection, 5xx) is looked up again
at once; when it is not found it is not re-sent in this run (a slow create may still commit) —
the row is retried after its backoff, with a fresh look-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from resources.bitrix24.client import Bitrix24Client, as_int, contact_ids, phone_variants
from resources.bitrix24.encoding import BATCH_LIMIT
from resources.bitrix24.errors import AuthError, Bitrix24Error, NotFound, ValidationError
from resources.settings import ConfigError
from resources.store import outbox

from .mapping import Bitrix24Mapping, check_against_portal, portal_check_commands
from .work import BITRIX, Recorder, RowWork

logger = logging.getLogger("integrations.push")

ORIGIN_CHUNK = 25  # ORIGIN_IDs per list command: room for duplicates within the 50-row page

INTENT_TASK = "b24_task"
INTENT_COMMENT = "b24_comment"


@dataclass
class Command:
    method: str
    params: dict[str, Any]
    on_ok: Callable[[Any], None]
    on_error: Callable[[Bitrix24Error], None]
    on_unknown: Callable[[Bitrix24Error], None] | None = None  # a write whose outcome is unknown
    work: RowWork | None = None


def marker(row_id: str) -> str:
    return f"[{row_id}]"


def _permanent(exc: Bitrix24Error) -> bool:
    """Errors that no retry fixes for this row (bad data, a deleted owner)."""
    return isinstance(exc, ValidationError | NotFound) and not isinstance(exc, AuthError)


def _split_name(name: str) -> tuple[str, str]:
    parts = (name or "").strip().split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1] if len(parts) > 1 else ""


def _fmt(template: str, values: dict[str, Any]) -> str:
    class _Safe(dict):
        def __missing__(self, key: str) -> str:
            return "{" + key + "}"

    return template.format_map(_Safe(values))


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(float(value), 2)


class BitrixPusher:
    """Bitrix24 delivery of claimed rows; see the module docstring."""

    def __init__(self, client: Bitrix24Client, mapping: Bitrix24Mapping, recorder: Recorder, *,
                 onec_enabled: bool = True, check_portal: bool = True, retry_delay_seconds: float = 30.0) -> None:
        self.client = client
        self.mapping = mapping
        self.recorder = recorder
        self.onec_enabled = onec_enabled
        self.check_portal = check_portal
        self.retry_delay_seconds = retry_delay_seconds
        self._checked = not check_portal
        self._tz = ZoneInfo(mapping.timezone)

    # ---- the request machinery ----------------------------------------------------------
    def _run(self, commands: list[Command]) -> None:
        """Send commands in batches of ≤ 50 (one HTTP request each) and dispatch the outcomes."""
        for start in range(0, len(commands), BATCH_LIMIT):
            chunk = commands[start:start + BATCH_LIMIT]
            keys = [f"c{start + i}" for i in range(len(chunk))]
            try:
                result = self.client.batch({k: (c.method, c.params) for k, c in zip(keys, chunk, strict=True)},
                                           halt=False)
            except Bitrix24Error as exc:
                for cmd in chunk:
                    if exc.ambiguous and cmd.on_unknown is not None:
                        cmd.on_unknown(exc)
                    else:
                        cmd.on_error(exc)
                continue
            for key, cmd in zip(keys, chunk, strict=True):
                if key in result.result:
                    cmd.on_ok(result.result[key])
                elif key in result.errors:
                    cmd.on_error(result.errors[key])
                else:  # not run: cannot happen without halt, but never lose a command silently
                    cmd.on_error(Bitrix24Error(f"Bitrix24 {cmd.method}: the batch did not run the command",
                                               method=cmd.method))

    def ensure_portal_checked(self) -> None:
        """Check once that the mapping's pipeline, stage, sources and managers exist."""
        if self._checked:
            return
        result = self.client.batch(portal_check_commands(self.mapping), halt=False)
        problems = check_against_portal(self.mapping, result.result)
        if problems:
            raise ConfigError("; ".join(problems))
        self._checked = True

    # ---- entry point ----------------------------------------------------------------------
    def push(self, works: list[RowWork], *, before_entities: Callable[[], None] | None = None) -> None:
        """Deliver the Bitrix24 side of `works`; outcomes land in each RowWork.

        `before_entities` runs before deals are created (the worker joins its 1C step there so
        that a new deal already carries the 1C order number).
        """
        active = [w for w in works if not w.blocked(BITRIX)]
        if not active:
            if before_entities:
                before_entities()
            return
        try:
            self.ensure_portal_checked()
        except (ConfigError, Bitrix24Error) as exc:
            for w in active:
                w.fail(BITRIX, f"Bitrix24 mapping check failed: {exc}")
            if before_entities:
                before_entities()
            return
        activities = [w for w in active if w.kind == outbox.ACTIVITY]
        self._resolve_activity_targets(activities, works)
        self._lookups(self._live(active))
        self.recorder.renew(active)  # long phases (rate limit, retries) must not let leases lapse
        self._contacts(self._live(active))
        if before_entities:
            before_entities()
        self.recorder.renew(active)
        self._entities(self._live(active))
        self._resolve_activity_targets(activities, works, second_pass=True)
        self.recorder.renew(active)
        self._dependants(self._live(active))

    @staticmethod
    def _live(works: Iterable[RowWork]) -> list[RowWork]:
        return [w for w in works if not w.blocked(BITRIX)]

    # ---- what each row needs --------------------------------------------------------------
    def _needs_contact(self, w: RowWork) -> bool:
        if w.row.b24_contact_id or not w.row.phone:
            return False
        if w.kind == outbox.ACTIVITY:
            return w.contact_fallback
        return True

    def _entity(self, w: RowWork) -> tuple[str, int] | None:
        """(ENTITY_TYPE, id) the row's task and comment belong to, once known."""
        if w.kind == outbox.ORDER and w.row.b24_deal_id:
            return "deal", w.row.b24_deal_id
        if w.kind == outbox.LEAD and w.row.b24_lead_id:
            return "lead", w.row.b24_lead_id
        if w.kind == outbox.ACTIVITY:
            for etype, eid in (("deal", w.row.b24_deal_id), ("lead", w.row.b24_lead_id),
                               ("contact", w.row.b24_contact_id)):
                if eid:
                    return etype, eid
        return None

    def complete(self, w: RowWork) -> bool:
        """Everything Bitrix24 should have for this row is there."""
        r = self.mapping
        if w.kind == outbox.ACTIVITY:
            return bool(w.row.b24_comment_id)
        entity = w.row.b24_deal_id if w.kind == outbox.ORDER else w.row.b24_lead_id
        if not (w.row.b24_contact_id and entity):
            return False
        if r.task.enabled and not w.row.b24_task_id:
            return False
        if r.comment.enabled and not w.row.b24_comment_id:
            return False
        if w.kind == outbox.ORDER:
            if not w.row.b24_rows_set:
                return False
            if self.onec_enabled and r.deal.onec_number_field and not w.row.b24_number_written:
                return False
        return True

    # ---- activity targets ----------------------------------------------------------------
    def _resolve_activity_targets(self, activities: list[RowWork], chunk: list[RowWork], *,
                                  second_pass: bool = False) -> None:
        """Where an activity's comment goes: the deal/lead of its order or lead (named by id, or
        the newest of its conversation), else the customer's contact. The choice is stored on
        the activity row (b24_deal_id / b24_lead_id / b24_contact_id) so a retry logs on the
        same record. Waits (defers) while that order or lead has not reached Bitrix24 yet."""
        by_id = {w.id: w for w in chunk}
        for w in activities:
            if w.blocked(BITRIX) or w.row.b24_deal_id or w.row.b24_lead_id or w.row.b24_contact_id:
                continue
            if second_pass and not w.waiting_for:
                continue
            p = w.payload
            target: outbox.OutboxRow | None = None
            target_id = w.waiting_for or p.get("order_id") or p.get("lead_id")
            if target_id:
                target = by_id[target_id].row if target_id in by_id else outbox.get(self.recorder.db, target_id)
            elif p.get("conversation_id"):
                candidates = [x for x in outbox.find(self.recorder.db, conversation_id=p["conversation_id"])
                              if x.kind in (outbox.ORDER, outbox.LEAD)]
                if candidates:
                    target = by_id[candidates[0].id].row if candidates[0].id in by_id else candidates[0]
            if target is not None:
                if target.kind == outbox.ORDER and target.b24_deal_id:
                    self.recorder.save(w, b24_deal_id=target.b24_deal_id)
                    continue
                if target.kind == outbox.LEAD and target.b24_lead_id:
                    self.recorder.save(w, b24_lead_id=target.b24_lead_id)
                    continue
                if not second_pass and target.id in by_id and not by_id[target.id].blocked(BITRIX):
                    w.waiting_for = target.id  # created later in this run: resolved again after phase 3
                    continue
                if target.status != outbox.DEAD or second_pass:
                    w.deferred = f"waiting for {target.id} to reach Bitrix24"
                    continue
            if w.row.phone:
                w.contact_fallback = True
            else:
                w.fail(BITRIX, "no lead or deal for this conversation in Bitrix24 and no phone to find the "
                               "contact by", permanent=True)

    # ---- phase 1: look-ups ---------------------------------------------------------------
    def _lookups(self, works: list[RowWork]) -> None:
        commands: list[Command] = []
        commands += self._contact_lookup_commands([w for w in works if self._needs_contact(w)])
        commands += self._origin_lookup_commands("deal", [w for w in works if w.kind == outbox.ORDER
                                                          and not w.row.b24_deal_id])
        commands += self._origin_lookup_commands("lead", [w for w in works if w.kind == outbox.LEAD
                                                          and not w.row.b24_lead_id])
        commands += self._task_lookup_commands([w for w in works if INTENT_TASK in w.row.intents
                                                and not w.row.b24_task_id])
        commands += self._comment_lookup_commands([w for w in works if INTENT_COMMENT in w.row.intents
                                                   and not w.row.b24_comment_id and self._entity(w)])
        self._run(commands)

    def _lookup_failed(self, works: list[RowWork], what: str) -> Callable[[Bitrix24Error], None]:
        def on_error(exc: Bitrix24Error) -> None:
            for w in works:
                w.fail(BITRIX, f"look-up of the {what} failed: {exc}")
        return on_error

    def _contact_lookup_commands(self, works: list[RowWork]) -> list[Command]:
        by_phone: dict[str, list[RowWork]] = {}
        for w in works:
            by_phone.setdefault(w.row.phone or "", []).append(w)
        commands = []
        for phone, group in by_phone.items():
            def on_ok(result: Any, group: list[RowWork] = group) -> None:
                found = contact_ids(result)
                if found:
                    self.recorder.save_many({w: {"b24_contact_id": found[0]} for w in group})
            commands.append(Command("crm.duplicate.findbycomm",
                                    {"type": "PHONE", "values": phone_variants(phone)[:20], "entity_type": "CONTACT"},
                                    on_ok, self._lookup_failed(group, "contact by phone")))
        return commands

    def _origin_lookup_commands(self, entity: str, works: list[RowWork]) -> list[Command]:
        commands = []
        column = f"b24_{entity}_id"
        for start in range(0, len(works), ORIGIN_CHUNK):
            group = works[start:start + ORIGIN_CHUNK]
            by_id = {w.id: w for w in group}

            def on_ok(result: Any, by_id: dict[str, RowWork] = by_id) -> None:
                rows = result if isinstance(result, list) else []
                found: dict[str, int] = {}
                for row in rows:
                    if not isinstance(row, dict) or str(row.get("ORIGINATOR_ID")) != self.mapping.originator_id:
                        continue
                    origin, rid = str(row.get("ORIGIN_ID")), as_int(row.get("ID"))
                    if origin in by_id and rid is not None:
                        if origin in found and found[origin] != rid:
                            logger.warning("Bitrix24 has several %ss for %s (%d, %d); using the oldest",
                                           entity, origin, found[origin], rid)
                        found[origin] = min(rid, found.get(origin, rid))
                if found:
                    self.recorder.save_many({by_id[o]: {column: i} for o, i in found.items()})

            commands.append(Command(f"crm.{entity}.list", {
                "filter": {"ORIGINATOR_ID": self.mapping.originator_id, "@ORIGIN_ID": list(by_id)},
                "select": ["ID", "ORIGINATOR_ID", "ORIGIN_ID"], "order": {"ID": "ASC"}, "start": -1,
            }, on_ok, self._lookup_failed(group, f"{entity} by ORIGIN_ID")))
        return commands

    def _task_lookup_commands(self, works: list[RowWork]) -> list[Command]:
        commands = []
        for w in works:
            def on_ok(result: Any, w: RowWork = w) -> None:
                tasks = result.get("tasks", []) if isinstance(result, dict) else result if isinstance(result, list) else []
                ids = sorted(i for t in tasks if isinstance(t, dict) and marker(w.id) in str(t.get("title", ""))
                             and (i := as_int(t.get("id"))) is not None)
                if ids:
                    self.recorder.save(w, b24_task_id=ids[0], drop_intents=(INTENT_TASK,))
            commands.append(Command("tasks.task.list", {
                "filter": {"%TITLE": marker(w.id)}, "select": ["ID", "TITLE"], "order": {"ID": "ASC"},
            }, on_ok, self._lookup_failed([w], "task by marker")))
        return commands

    def _comment_lookup_commands(self, works: list[RowWork]) -> list[Command]:
        commands = []
        for w in works:
            entity = self._entity(w)
            assert entity is not None

            def on_ok(result: Any, w: RowWork = w) -> None:
                rows = result if isinstance(result, list) else []
                ids = sorted(i for c in rows if isinstance(c, dict) and marker(w.id) in str(c.get("COMMENT", ""))
                             and (i := as_int(c.get("ID"))) is not None)
                if ids:
                    self.recorder.save(w, b24_comment_id=ids[0], drop_intents=(INTENT_COMMENT,))
            commands.append(Command("crm.timeline.comment.list", {
                "filter": {"ENTITY_ID": entity[1], "ENTITY_TYPE": entity[0]},
                "select": ["ID", "COMMENT"], "order": {"ID": "DESC"},
            }, on_ok, self._lookup_failed([w], "timeline comment by marker")))
        return commands

    # ---- unknown outcomes -------------------------------------------------------------------
    def _recheck(self, unknown: list[RowWork], lookups: Callable[[list[RowWork]], list[Command]],
                 done: Callable[[RowWork], bool], what: str, errors: dict[RowWork, Bitrix24Error]) -> None:
        """After creates with an unknown outcome: look up at once; not found → retry later."""
        if not unknown:
            return
        self._run(lookups(unknown))
        for w in unknown:
            if not done(w) and not w.blocked(BITRIX):
                w.fail(BITRIX, f"{what} create had an unknown outcome ({errors[w]}) and the look-up did not find "
                               "it yet; will look up again before retrying")

    # ---- phase 2: contacts ----------------------------------------------------------------
    def _contacts(self, works: list[RowWork]) -> None:
        by_phone: dict[str, list[RowWork]] = {}
        for w in works:
            if self._needs_contact(w):
                by_phone.setdefault(w.row.phone or "", []).append(w)
        unknown: dict[RowWork, Bitrix24Error] = {}
        commands = []
        for phone, group in by_phone.items():
            first = group[0]
            name, last = _split_name((first.payload.get("customer") or {}).get("name") or "")
            fields: dict[str, Any] = {
                "NAME": name or phone, "LAST_NAME": last, "OPENED": "Y",
                "PHONE": [{"VALUE": phone, "VALUE_TYPE": self.mapping.contact.phone_value_type}],
                "SOURCE_ID": self.mapping.source_id(first.row.source),
                "ASSIGNED_BY_ID": self.mapping.managers.pick(first.row.seq),
                "ORIGINATOR_ID": self.mapping.originator_id, "ORIGIN_ID": phone,
            }
            if self.mapping.contact.type_id:
                fields["TYPE_ID"] = self.mapping.contact.type_id

            def on_ok(result: Any, group: list[RowWork] = group) -> None:
                cid = as_int(result)
                if cid is None:
                    for w in group:
                        w.fail(BITRIX, f"crm.contact.add answered {result!r} instead of an id")
                    return
                self.recorder.save_many({w: {"b24_contact_id": cid} for w in group})

            def on_error(exc: Bitrix24Error, group: list[RowWork] = group) -> None:
                for w in group:
                    w.fail(BITRIX, f"contact create failed: {exc}", permanent=_permanent(exc))

            def on_unknown(exc: Bitrix24Error, group: list[RowWork] = group) -> None:
                for w in group:
                    unknown[w] = exc

            commands.append(Command("crm.contact.add", {"fields": fields, "params": {"REGISTER_SONET_EVENT": "N"}},
                                    on_ok, on_error, on_unknown))
        self._run(commands)
        self._recheck(list(unknown), self._contact_lookup_commands, lambda w: bool(w.row.b24_contact_id),
                      "contact", unknown)

    # ---- phase 3: deals and leads ------------------------------------------------------------
    def _order_text(self, w: RowWork) -> str:
        p = w.payload
        lines = [f"{li.get('name') or li['sku']} ({li['sku']}): {_number(li['quantity'])} × {_number(li['price'])}"
                 f" = {_number(li.get('amount', li['quantity'] * li['price']))}" for li in p.get("lines", [])]
        text = [f"Заказ чат-бота {marker(w.id)}", *lines,
                f"Итого: {_number(p.get('total', 0))} {p.get('currency') or self.mapping.currency}"]
        if (p.get("delivery") or {}).get("address"):
            text.append(f"Доставка: {p['delivery']['address']}")
        if p.get("comment"):
            text.append(f"Комментарий: {p['comment']}")
        if p.get("summary"):
            text.append(f"Разговор: {p['summary']}")
        return "\n".join(text)

    def _lead_text(self, w: RowWork) -> str:
        p = w.payload
        text = [f"Лид чат-бота {marker(w.id)} (источник: {p.get('source') or w.row.source})"]
        for label, key in (("Сообщение", "comment"), ("Итог разговора", "summary"), ("Переписка", "transcript")):
            if p.get(key):
                text.append(f"{label}: {p[key]}")
        return "\n".join(text)

    def _template_values(self, w: RowWork) -> dict[str, Any]:
        customer = w.payload.get("customer") or {}
        return {"id": w.id, "name": customer.get("name") or w.row.phone or "", "phone": w.row.phone or "",
                "total": _number(w.payload.get("total", 0) or 0), "source": w.payload.get("source") or w.row.source}

    def _entities(self, works: list[RowWork]) -> None:
        unknown: dict[RowWork, Bitrix24Error] = {}
        commands: list[Command] = []
        m = self.mapping
        for w in works:
            if w.kind not in (outbox.ORDER, outbox.LEAD):
                continue
            if not w.row.b24_contact_id:
                if not w.blocked(BITRIX):
                    w.fail(BITRIX, "the customer's contact is not in Bitrix24 yet")
                continue
            values = self._template_values(w)
            common = {
                "ORIGINATOR_ID": m.originator_id, "ORIGIN_ID": w.id, "OPENED": "Y",
                "SOURCE_ID": m.source_id(w.payload.get("source") or w.row.source),
                "SOURCE_DESCRIPTION": f"ZETA bot {w.id}" + (
                    f", разговор {w.row.conversation_id}" if w.row.conversation_id else ""),
                "ASSIGNED_BY_ID": m.managers.pick(w.row.seq), "CURRENCY_ID": w.payload.get("currency") or m.currency,
            }
            if w.kind == outbox.ORDER:
                if w.row.b24_deal_id:
                    continue
                fields = {**common, "TITLE": _fmt(m.deal.title, values), "CATEGORY_ID": m.deal.category_id,
                          "OPPORTUNITY": _number(w.payload.get("total", 0)), "CONTACT_IDS": [w.row.b24_contact_id],
                          "COMMENTS": self._order_text(w)}
                if m.deal.stage_id:
                    fields["STAGE_ID"] = m.deal.stage_id
                if m.deal.type_id:
                    fields["TYPE_ID"] = m.deal.type_id
                with_number = bool(m.deal.onec_number_field and w.row.onec_number)
                if with_number:
                    fields[m.deal.onec_number_field] = w.row.onec_number
                method, column = "crm.deal.add", "b24_deal_id"
            else:
                if w.row.b24_lead_id:
                    continue
                name, last = _split_name((w.payload.get("customer") or {}).get("name") or "")
                fields = {**common, "TITLE": w.payload.get("title") or _fmt(m.lead.title, values),
                          "NAME": name, "LAST_NAME": last, "STATUS_ID": m.lead.status_id,
                          "CONTACT_ID": w.row.b24_contact_id, "COMMENTS": self._lead_text(w),
                          "PHONE": [{"VALUE": w.row.phone, "VALUE_TYPE": m.contact.phone_value_type}]}
                with_number = False
                method, column = "crm.lead.add", "b24_lead_id"

            def on_ok(result: Any, w: RowWork = w, column: str = column, with_number: bool = with_number) -> None:
                eid = as_int(result)
                if eid is None:
                    w.fail(BITRIX, f"create answered {result!r} instead of an id")
                    return
                state: dict[str, Any] = {column: eid}
                if with_number:
                    state["b24_number_written"] = True
                self.recorder.save(w, **state)

            def on_error(exc: Bitrix24Error, w: RowWork = w) -> None:
                w.fail(BITRIX, f"{exc}", permanent=_permanent(exc))

            def on_unknown(exc: Bitrix24Error, w: RowWork = w) -> None:
                unknown[w] = exc

            commands.append(Command(method, {"fields": fields, "params": {"REGISTER_SONET_EVENT": "Y"}},
                                    on_ok, on_error, on_unknown))
        self._run(commands)
        deals = [w for w in unknown if w.kind == outbox.ORDER]
        leads = [w for w in unknown if w.kind == outbox.LEAD]
        self._recheck(deals, lambda ws: self._origin_lookup_commands("deal", ws), lambda w: bool(w.row.b24_deal_id),
                      "deal", unknown)
        self._recheck(leads, lambda ws: self._origin_lookup_commands("lead", ws), lambda w: bool(w.row.b24_lead_id),
                      "lead", unknown)

    # ---- phase 4: product rows, 1C number, tasks, comments ----------------------------------
    def _deadline(self) -> str:
        moment = datetime.now(self._tz) + timedelta(hours=self.mapping.task.deadline_hours)
        return moment.replace(microsecond=0).isoformat()

    def _dependants(self, works: list[RowWork]) -> None:
        m = self.mapping
        commands: list[Command] = []
        intents: dict[RowWork, set[str]] = {}
        unknown: dict[RowWork, Bitrix24Error] = {}
        unknown_tasks: list[RowWork] = []
        unknown_comments: list[RowWork] = []

        def failed(w: RowWork, what: str) -> Callable[[Bitrix24Error], None]:
            def on_error(exc: Bitrix24Error) -> None:
                w.fail(BITRIX, f"{what} failed: {exc}", permanent=_permanent(exc))
            return on_error

        for w in works:
            entity = self._entity(w)
            if entity is None:
                if not w.blocked(BITRIX) and w.kind != outbox.ACTIVITY:
                    w.fail(BITRIX, f"the {'deal' if w.kind == outbox.ORDER else 'lead'} is not in Bitrix24 yet")
                elif not w.blocked(BITRIX):
                    w.fail(BITRIX, "the lead, deal or contact to log on is not in Bitrix24 yet")
                continue
            etype, eid = entity
            if w.kind == outbox.ORDER and not w.row.b24_rows_set:
                rows = [{"PRODUCT_NAME": f"{li.get('name') or li['sku']} ({li['sku']})", "PRODUCT_ID": 0,
                         "PRICE": li["price"], "QUANTITY": li["quantity"]} for li in w.payload.get("lines", [])]
                commands.append(Command(
                    "crm.deal.productrows.set", {"id": eid, "rows": rows},
                    lambda _r, w=w: self.recorder.save(w, b24_rows_set=True), failed(w, "product rows"),
                    lambda exc, w=w: w.fail(BITRIX, f"product rows: outcome unknown ({exc}); will set them again"),
                    work=w))
            if (w.kind == outbox.ORDER and self.onec_enabled and m.deal.onec_number_field and w.row.onec_number
                    and not w.row.b24_number_written):
                commands.append(Command(
                    "crm.deal.update", {"id": eid, "fields": {m.deal.onec_number_field: w.row.onec_number}},
                    lambda _r, w=w: self.recorder.save(w, b24_number_written=True), failed(w, "1C number write-back"),
                    lambda exc, w=w: w.fail(BITRIX, f"1C number write-back: outcome unknown ({exc}); will write again"),
                    work=w))
            if w.kind != outbox.ACTIVITY and m.task.enabled and not w.row.b24_task_id:
                values = self._template_values(w)
                title = _fmt(m.task.title, values)
                if marker(w.id) not in title:
                    title = f"{title} {marker(w.id)}"
                bindings = [f"{'D' if etype == 'deal' else 'L'}_{eid}"]
                if w.row.b24_contact_id:
                    bindings.append(f"C_{w.row.b24_contact_id}")
                fields = {"TITLE": title, "RESPONSIBLE_ID": m.managers.pick(w.row.seq), "DEADLINE": self._deadline(),
                          "DESCRIPTION": self._order_text(w) if w.kind == outbox.ORDER else self._lead_text(w),
                          "UF_CRM_TASK": bindings}
                if m.task.created_by:
                    fields["CREATED_BY"] = m.task.created_by
                intents.setdefault(w, set()).add(INTENT_TASK)

                def task_ok(result: Any, w: RowWork = w) -> None:
                    task = result.get("task", {}) if isinstance(result, dict) else {}
                    tid = as_int(task.get("id")) if isinstance(task, dict) else None
                    if tid is None:
                        w.fail(BITRIX, f"tasks.task.add answered {result!r} without a task id")
                        return
                    self.recorder.save(w, b24_task_id=tid, drop_intents=(INTENT_TASK,))

                def task_unknown(exc: Bitrix24Error, w: RowWork = w) -> None:
                    unknown[w] = exc
                    unknown_tasks.append(w)

                commands.append(Command("tasks.task.add", {"fields": fields}, task_ok, failed(w, "task"), task_unknown,
                                        work=w))
            if (m.comment.enabled or w.kind == outbox.ACTIVITY) and not w.row.b24_comment_id:
                text = self._comment_text(w)
                intents.setdefault(w, set()).add(INTENT_COMMENT)

                def comment_ok(result: Any, w: RowWork = w) -> None:
                    cid = as_int(result)
                    if cid is None:
                        w.fail(BITRIX, f"crm.timeline.comment.add answered {result!r} instead of an id")
                        return
                    self.recorder.save(w, b24_comment_id=cid, drop_intents=(INTENT_COMMENT,))

                def comment_unknown(exc: Bitrix24Error, w: RowWork = w) -> None:
                    unknown[w] = exc
                    unknown_comments.append(w)

                commands.append(Command("crm.timeline.comment.add",
                                        {"fields": {"ENTITY_ID": eid, "ENTITY_TYPE": etype, "COMMENT": text}},
                                        comment_ok, failed(w, "timeline comment"), comment_unknown, work=w))
        if intents:
            # write-ahead: a later attempt searches for these before sending them again
            self.recorder.save_many({}, add_intents=intents)
            commands = [c for c in commands if c.work is None or not c.work.lost]
        self._run(commands)
        self._recheck(unknown_tasks, self._task_lookup_commands, lambda w: bool(w.row.b24_task_id), "task", unknown)
        self._recheck([w for w in unknown_comments if not w.blocked(BITRIX)], self._comment_lookup_commands,
                      lambda w: bool(w.row.b24_comment_id), "timeline comment", unknown)

    def _comment_text(self, w: RowWork) -> str:
        p = w.payload
        if w.kind == outbox.ORDER:
            return self._order_text(w)
        if w.kind == outbox.LEAD:
            return self._lead_text(w)
        text = [f"Разговор с чат-ботом {marker(w.id)}"
                + (f" (разговор {p['conversation_id']})" if p.get("conversation_id") else "")]
        if p.get("summary"):
            text.append(f"Итог: {p['summary']}")
        if p.get("transcript"):
            text.append(f"Переписка:\n{p['transcript']}")
        return "\n".join(text)

    # ---- dry run ----------------------------------------------------------------------------
    def describe(self, w: RowWork) -> list[dict[str, Any]]:
        """The calls this row would make now (look-ups and creates), for dry runs; ids not
        known yet appear as `<contact of …>` placeholders. Sends nothing."""
        m = self.mapping
        calls: list[dict[str, Any]] = []
        phone = w.row.phone or ""
        contact = w.row.b24_contact_id or f"<contact of {phone}>"
        if w.kind != outbox.ACTIVITY and not w.row.b24_contact_id:
            calls.append({"method": "crm.duplicate.findbycomm", "params": {"type": "PHONE",
                          "values": phone_variants(phone), "entity_type": "CONTACT"}})
            calls.append({"method": "crm.contact.add (if not found)", "params": {"fields": {
                "NAME": _split_name((w.payload.get("customer") or {}).get("name") or "")[0], "PHONE": [{"VALUE": phone}],
                "ORIGINATOR_ID": m.originator_id, "ORIGIN_ID": phone}}})
        values = self._template_values(w)
        if w.kind == outbox.ORDER:
            calls.append({"method": "crm.deal.list", "params": {"filter": {"ORIGINATOR_ID": m.originator_id,
                                                                          "ORIGIN_ID": w.id}}})
            calls.append({"method": "crm.deal.add (if not found)", "params": {"fields": {
                "TITLE": _fmt(m.deal.title, values), "CATEGORY_ID": m.deal.category_id, "STAGE_ID": m.deal.stage_id,
                "OPPORTUNITY": w.payload.get("total"), "CONTACT_IDS": [contact],
                "ASSIGNED_BY_ID": m.managers.pick(w.row.seq), "ORIGINATOR_ID": m.originator_id, "ORIGIN_ID": w.id}}})
            calls.append({"method": "crm.deal.productrows.set", "params": {"rows": [
                {"PRODUCT_NAME": li.get("name") or li["sku"], "PRICE": li["price"], "QUANTITY": li["quantity"]}
                for li in w.payload.get("lines", [])]}})
        elif w.kind == outbox.LEAD:
            calls.append({"method": "crm.lead.list", "params": {"filter": {"ORIGINATOR_ID": m.originator_id,
                                                                          "ORIGIN_ID": w.id}}})
            calls.append({"method": "crm.lead.add (if not found)", "params": {"fields": {
                "TITLE": w.payload.get("title") or _fmt(m.lead.title, values), "CONTACT_ID": contact,
                "ASSIGNED_BY_ID": m.managers.pick(w.row.seq), "ORIGINATOR_ID": m.originator_id, "ORIGIN_ID": w.id}}})
        if w.kind != outbox.ACTIVITY and m.task.enabled:
            calls.append({"method": "tasks.task.add", "params": {"fields": {
                "TITLE": _fmt(m.task.title, values), "RESPONSIBLE_ID": m.managers.pick(w.row.seq)}}})
        calls.append({"method": "crm.timeline.comment.add", "params": {"fields": {"COMMENT": self._comment_text(w)}}})
        return calls
