"""In-memory CRM of one simulated portal: leads, contacts, deals, product rows, timeline
comments, to-do activities, tasks, users, statuses and deal pipelines.

The store holds canonical Python values (ints, floats, "Y"/"N", ISO datetimes) and owns the
domain rules a client can trip over: unknown and read-only fields are dropped, multifields append
unless an `ID` is given, deal stages carry the `C<n>:` prefix outside pipeline 0 and fall back to
the pipeline's first stage, `CATEGORY_ID` is immutable on update, ids only grow. Every public
method takes the lock, so the ASGI loop, admin endpoints and the event thread can share it.
"""

from __future__ import annotations

import copy
import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from simulators.bitrix24.params import as_list, php_int, php_str
from simulators.bitrix24.schema import FIELDS, FieldDef, is_user_field

ENTITY_KINDS = ("lead", "contact", "deal")

SEED_USERS: list[dict[str, Any]] = [
    {"ID": 1, "ACTIVE": True, "NAME": "Ержан", "LAST_NAME": "Сапаров", "EMAIL": "erzhan@zeta.example",
     "WORK_POSITION": "Руководитель отдела продаж", "UF_DEPARTMENT": [1], "IS_ADMIN": True},
    {"ID": 3, "ACTIVE": True, "NAME": "Айгерим", "LAST_NAME": "Касымова", "EMAIL": "aigerim@zeta.example",
     "WORK_POSITION": "Менеджер по продажам", "UF_DEPARTMENT": [3]},
    {"ID": 5, "ACTIVE": True, "NAME": "Дмитрий", "LAST_NAME": "Ким", "EMAIL": "dmitry@zeta.example",
     "WORK_POSITION": "Менеджер по продажам", "UF_DEPARTMENT": [3]},
    {"ID": 7, "ACTIVE": True, "NAME": "Әлия", "LAST_NAME": "Жұмабаева", "EMAIL": "aliya@zeta.example",
     "WORK_POSITION": "Менеджер по продажам", "UF_DEPARTMENT": [3]},
    {"ID": 9, "ACTIVE": False, "NAME": "Олег", "LAST_NAME": "Петренко", "EMAIL": "oleg@zeta.example",
     "WORK_POSITION": "Менеджер (уволен)", "UF_DEPARTMENT": [3]},
]

SEED_CATEGORIES: list[dict[str, Any]] = [
    {"id": 0, "name": "Общая", "sort": 100, "entityTypeId": 2, "isDefault": "Y"},
    {"id": 1, "name": "Чат-бот", "sort": 200, "entityTypeId": 2, "isDefault": "N"},
]

# (ENTITY_ID, STATUS_ID, NAME, SEMANTICS: None=process, "S"=success, "F"=failure)
SEED_STATUSES: list[tuple[str, str, str, str | None]] = [
    ("STATUS", "NEW", "Не обработан", None),
    ("STATUS", "IN_PROCESS", "В работе", None),
    ("STATUS", "PROCESSED", "Обработан", None),
    ("STATUS", "JUNK", "Некачественный лид", "F"),
    ("STATUS", "CONVERTED", "Качественный лид", "S"),
    ("SOURCE", "CALL", "Звонок", None),
    ("SOURCE", "EMAIL", "Электронная почта", None),
    ("SOURCE", "WEB", "Веб-сайт", None),
    ("SOURCE", "ADVERTISING", "Реклама", None),
    ("SOURCE", "PARTNER", "Существующий клиент", None),
    ("SOURCE", "RECOMMENDATION", "По рекомендации", None),
    ("SOURCE", "TRADE_SHOW", "Выставка", None),
    ("SOURCE", "WEBFORM", "CRM-форма", None),
    ("SOURCE", "CALLBACK", "Обратный звонок", None),
    ("SOURCE", "RC_GENERATOR", "Генератор продаж", None),
    ("SOURCE", "STORE", "Интернет-магазин", None),
    ("SOURCE", "OTHER", "Другое", None),
    ("SOURCE", "UC_BOT", "Чат-бот", None),
    ("DEAL_TYPE", "SALE", "Продажа", None),
    ("DEAL_TYPE", "COMPLEX", "Комплексная продажа", None),
    ("DEAL_TYPE", "GOODS", "Продажа товара", None),
    ("DEAL_TYPE", "SERVICES", "Продажа услуги", None),
    ("DEAL_TYPE", "SERVICE", "Сервисное обслуживание", None),
    ("CONTACT_TYPE", "CLIENT", "Клиенты", None),
    ("CONTACT_TYPE", "SUPPLIER", "Поставщики", None),
    ("CONTACT_TYPE", "PARTNER", "Партнеры", None),
    ("CONTACT_TYPE", "OTHER", "Другое", None),
    ("DEAL_STAGE", "NEW", "Новая", None),
    ("DEAL_STAGE", "PREPARATION", "Подготовка документов", None),
    ("DEAL_STAGE", "PREPAYMENT_INVOICE", "Счёт на предоплату", None),
    ("DEAL_STAGE", "EXECUTING", "В работе", None),
    ("DEAL_STAGE", "FINAL_INVOICE", "Финальный счёт", None),
    ("DEAL_STAGE", "WON", "Сделка успешна", "S"),
    ("DEAL_STAGE", "LOSE", "Сделка провалена", "F"),
    ("DEAL_STAGE", "APOLOGY", "Анализ причины провала", "F"),
    ("DEAL_STAGE_1", "C1:NEW", "Новая заявка", None),
    ("DEAL_STAGE_1", "C1:PREPARATION", "Консультация", None),
    ("DEAL_STAGE_1", "C1:PREPAYMENT_INVOICE", "Ожидает оплаты", None),
    ("DEAL_STAGE_1", "C1:EXECUTING", "Сборка заказа", None),
    ("DEAL_STAGE_1", "C1:WON", "Заказ выполнен", "S"),
    ("DEAL_STAGE_1", "C1:LOSE", "Отказ", "F"),
]

_COLORS = {None: "#39A8EF", "S": "#7BD500", "F": "#FF5752"}
_SEMANTIC_NAMES = {None: "process", "S": "success", "F": "failure"}


Keep = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]  # selects rows to read, from the live rows


def _copies(rows: list[dict[str, Any]], keep: Keep | None) -> list[dict[str, Any]]:
    """Deep copies of the rows `keep` selects: a list call copies its matches, not the whole store."""
    return [copy.deepcopy(r) for r in (keep(rows) if keep else rows)]


def normalize_phone(value: str) -> str:
    """Digits of a phone without its extension (how the duplicate index is assumed to compare)."""
    main = re.split(r"(?i)\s*(?:доб\.?|ext\.?|#|;|,)", value, maxsplit=1)[0]
    return re.sub(r"\D", "", main)


class CrmStore:
    """Thread-safe in-memory CRM; see the module docstring for the rules it enforces."""

    def __init__(self, *, now: Callable[[], float] = time.time, tz_offset_hours: float = 5.0,
                 users: Iterable[dict[str, Any]] | None = None) -> None:
        self.lock = threading.RLock()
        self.now = now
        self.tz = timezone(timedelta(hours=tz_offset_hours))
        self._seed_users = list(users) if users is not None else SEED_USERS
        self.reset()

    # --- lifecycle ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Drop every record and restore the seed (users, statuses, pipelines)."""
        with self.lock:
            self.users: dict[int, dict[str, Any]] = {}
            for user in self._seed_users:
                row = {"SECOND_NAME": "", "USER_TYPE": "employee", "IS_ONLINE": "N", "PERSONAL_MOBILE": "",
                       "WORK_PHONE": "", "TIME_ZONE": "Asia/Almaty", "IS_ADMIN": False, **copy.deepcopy(user)}
                self.users[int(row["ID"])] = row
            self.categories: dict[int, dict[str, Any]] = {c["id"]: dict(c) for c in SEED_CATEGORIES}
            self.statuses: list[dict[str, Any]] = []
            sort_by_entity: dict[str, int] = {}
            for n, (entity_id, status_id, name, semantics) in enumerate(SEED_STATUSES, start=1):
                sort_by_entity[entity_id] = sort_by_entity.get(entity_id, 0) + 10
                category = int(entity_id.rsplit("_", 1)[1]) if entity_id.startswith("DEAL_STAGE_") else (
                    0 if entity_id == "DEAL_STAGE" else None)
                self.statuses.append({
                    "ID": n, "ENTITY_ID": entity_id, "STATUS_ID": status_id, "NAME": name, "NAME_INIT": name,
                    "SORT": sort_by_entity[entity_id], "SYSTEM": "Y" if status_id.split(":")[-1] in
                    {"NEW", "WON", "LOSE", "CONVERTED", "JUNK"} else "N",
                    "CATEGORY_ID": category, "COLOR": _COLORS[semantics], "SEMANTICS": semantics,
                    "EXTRA": {"SEMANTICS": _SEMANTIC_NAMES[semantics], "COLOR": _COLORS[semantics]}
                    if entity_id.startswith(("DEAL_STAGE", "STATUS")) else None,
                })
            self.entities: dict[str, dict[int, dict[str, Any]]] = {k: {} for k in ENTITY_KINDS}
            self.product_rows: dict[tuple[str, int], list[dict[str, Any]]] = {}
            self.comments: dict[int, dict[str, Any]] = {}
            self.activities: dict[int, dict[str, Any]] = {}
            self.tasks: dict[int, dict[str, Any]] = {}
            self._ids: dict[str, int] = {}

    def _next_id(self, counter: str) -> int:
        self._ids[counter] = self._ids.get(counter, 0) + 1
        return self._ids[counter]

    # --- time --------------------------------------------------------------------------------

    def iso(self, ts: float | None = None) -> str:
        """Unix time → ISO 8601 with the portal's offset, like PHP date('c')."""
        moment = datetime.fromtimestamp(self.now() if ts is None else ts, tz=self.tz)
        return moment.replace(microsecond=0).isoformat()

    def parse_datetime(self, value: Any, *, date_only: bool = False) -> str | None:
        """Parse a client datetime; naive values are taken in the portal time zone."""
        if value in (None, "", False):
            return None
        try:
            moment = datetime.fromisoformat(str(value).strip().replace(" ", "T", 1))
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.tz)
        moment = moment.astimezone(self.tz).replace(microsecond=0)
        if date_only:
            moment = moment.replace(hour=0, minute=0, second=0)
        return moment.isoformat()

    # --- statuses and pipelines --------------------------------------------------------------

    def stage_entity(self, category_id: int) -> str:
        return "DEAL_STAGE" if category_id == 0 else f"DEAL_STAGE_{category_id}"

    def statuses_of(self, entity_id: str) -> list[dict[str, Any]]:
        with self.lock:
            rows = [s for s in self.statuses if s["ENTITY_ID"] == entity_id]
            return sorted(rows, key=lambda s: s["SORT"])

    def status_semantics(self, entity_id: str, status_id: str) -> str | None | bool:
        """Semantics of a status ("S", "F" or None for in-process), False when it does not exist."""
        for status in self.statuses_of(entity_id):
            if status["STATUS_ID"] == status_id:
                return status["SEMANTICS"]
        return False

    # --- field coercion ----------------------------------------------------------------------

    def _coerce_scalar(self, fd: FieldDef, value: Any) -> Any:
        if fd.multiple:
            items = as_list(value)
            if items is None:
                items = [] if value in (None, "", False) else [value]
            return [php_int(v) for v in items if php_int(v) > 0]
        if fd.type == "datetime":
            return self.parse_datetime(value)
        if fd.type == "date":
            return self.parse_datetime(value, date_only=True)
        if isinstance(value, dict | list):
            return None
        if fd.type in {"integer", "user", "crm_category", "crm_contact", "crm_company", "crm_lead"}:
            return None if value in (None, "") else php_int(value)
        if fd.type == "double":
            try:
                return round(float(php_str(value) or 0), 2)
            except ValueError:
                return 0.0
        if fd.type == "char":
            return "Y" if php_str(value).upper() in {"Y", "1", "TRUE"} else "N"
        return None if value is None else php_str(value)

    def _split_fields(self, kind: str, fields: dict[Any, Any], *, update: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """Writable scalar fields and multifield payloads; everything else is dropped."""
        defs = FIELDS[kind]
        scalars: dict[str, Any] = {}
        multis: dict[str, Any] = {}
        for raw_key, value in fields.items():
            key = str(raw_key)
            if is_user_field(key):
                scalars[key.upper()] = value
                continue
            fd = defs.get(key)
            if fd is None or fd.read_only or (update and fd.immutable):
                continue
            if fd.type == "crm_multifield":
                multis[key] = value
            else:
                scalars[key] = self._coerce_scalar(fd, value)
        return scalars, multis

    def _apply_multifields(self, row: dict[str, Any], multis: dict[str, Any]) -> None:
        for type_id, payload in multis.items():
            items = as_list(payload) or []
            current: list[dict[str, Any]] = row.setdefault(type_id, [])
            for item in items:
                if not isinstance(item, dict):
                    continue
                value = php_str(item.get("VALUE")) if item.get("VALUE") is not None else ""
                value_type = php_str(item.get("VALUE_TYPE")) or "WORK"
                if item.get("ID") is not None:
                    target = next((fm for fm in current if fm["ID"] == php_int(item["ID"])), None)
                    if target is None:
                        continue  # an ID of another entity or a deleted item is ignored
                    if php_str(item.get("DELETE")).upper() == "Y" or value == "":
                        current.remove(target)
                    else:
                        target["VALUE"] = value
                        if item.get("VALUE_TYPE") is not None:
                            target["VALUE_TYPE"] = value_type
                elif value != "":
                    current.append({"ID": self._next_id("multifield"), "VALUE_TYPE": value_type,
                                    "VALUE": value, "TYPE_ID": type_id})
            if not current:
                row.pop(type_id, None)
        if "HAS_PHONE" in FIELDS.get(row["_kind"], {}):
            row["HAS_PHONE"] = "Y" if row.get("PHONE") else "N"
            row["HAS_EMAIL"] = "Y" if row.get("EMAIL") else "N"
            row["HAS_IMOL"] = "Y" if row.get("IM") else "N"

    def _apply_semantics(self, kind: str, row: dict[str, Any], changed: dict[str, Any],
                         previous: dict[str, Any] | None) -> None:
        """Status/stage defaults and derived flags; an unknown status keeps the previous one."""
        previous = previous or {}
        if kind == "lead":
            status = row.get("STATUS_ID")
            if status is None or self.status_semantics("STATUS", status) is False:
                row["STATUS_ID"] = status = previous.get("STATUS_ID") or "NEW"
            semantics = self.status_semantics("STATUS", status)
            row["STATUS_SEMANTIC_ID"] = semantics or "P"
        elif kind == "deal":
            category = php_int(row.get("CATEGORY_ID"))
            if category not in self.categories:
                category = 0
            row["CATEGORY_ID"] = category
            entity = self.stage_entity(category)
            stages = self.statuses_of(entity)
            stage = row.get("STAGE_ID")
            if stage is None or self.status_semantics(entity, stage) is False:
                row["STAGE_ID"] = stage = previous.get("STAGE_ID") or stages[0]["STATUS_ID"]
            semantics = self.status_semantics(entity, stage)
            row["STAGE_SEMANTIC_ID"] = semantics or "P"
            row["CLOSED"] = "Y" if semantics in ("S", "F") else "N"
            if "CONTACT_IDS" in changed:
                row["CONTACT_ID"] = row["CONTACT_IDS"][0] if row["CONTACT_IDS"] else None
            elif "CONTACT_ID" in changed:
                row["CONTACT_IDS"] = [row["CONTACT_ID"]] if row.get("CONTACT_ID") else []

    # --- entities ----------------------------------------------------------------------------

    def add_entity(self, kind: str, fields: dict[Any, Any], user_id: int) -> int:
        """Create a lead/contact/deal; never deduplicates (no idempotency in classic REST)."""
        with self.lock:
            scalars, multis = self._split_fields(kind, fields, update=False)
            entity_id = self._next_id(kind)
            now = self.iso()
            row: dict[str, Any] = {name: None for name, fd in FIELDS[kind].items()
                                   if fd.type != "crm_multifield" and not fd.multiple}
            row.update({"_kind": kind, "ID": entity_id, "DATE_CREATE": now, "DATE_MODIFY": now,
                        "CREATED_BY_ID": user_id, "MODIFY_BY_ID": user_id, "ASSIGNED_BY_ID": user_id,
                        "OPENED": "Y", "CURRENCY_ID": "KZT"})
            if "OPPORTUNITY" in row:
                row["OPPORTUNITY"] = 0.0
                row["IS_MANUAL_OPPORTUNITY"] = "N"
            if kind == "deal":
                row.update({"CONTACT_IDS": [], "IS_NEW": "Y", "PROBABILITY": None, "CATEGORY_ID": 0,
                            "TYPE_ID": "SALE", "IS_RECURRING": "N", "IS_RETURN_CUSTOMER": "N"})
            if kind == "lead":
                row.update({"CONTACT_IDS": [], "IS_RETURN_CUSTOMER": "N"})
            if kind == "contact":
                row.update({"EXPORT": "Y", "COMPANY_IDS": [], "TYPE_ID": "CLIENT"})
            if kind == "deal" and "CATEGORY_ID" not in scalars:  # DealCategory::resolveFromStageID
                match = re.match(r"^C(\d+):", php_str(scalars.get("STAGE_ID")))
                if match and int(match.group(1)) in self.categories:
                    scalars["CATEGORY_ID"] = int(match.group(1))
            row.update({k: v for k, v in scalars.items() if v is not None or k not in row})
            if row.get("ASSIGNED_BY_ID") in (None, 0):
                row["ASSIGNED_BY_ID"] = user_id
            self._apply_multifields(row, multis)
            self._apply_semantics(kind, row, scalars, None)
            self.entities[kind][entity_id] = row
            return entity_id

    def update_entity(self, kind: str, entity_id: int, fields: dict[Any, Any], user_id: int) -> bool:
        """Update in place; False when the record does not exist."""
        with self.lock:
            row = self.entities[kind].get(entity_id)
            if row is None:
                return False
            scalars, multis = self._split_fields(kind, fields, update=True)
            previous = {"STATUS_ID": row.get("STATUS_ID"), "STAGE_ID": row.get("STAGE_ID")}
            row.update(scalars)
            self._apply_multifields(row, multis)
            self._apply_semantics(kind, row, scalars, previous)
            if kind == "deal":
                row["IS_NEW"] = "N"
            row["DATE_MODIFY"] = self.iso()
            row["MODIFY_BY_ID"] = user_id
            return True

    def delete_entity(self, kind: str, entity_id: int) -> bool:
        with self.lock:
            return self.entities[kind].pop(entity_id, None) is not None

    def get_entity(self, kind: str, entity_id: int) -> dict[str, Any] | None:
        with self.lock:
            row = self.entities[kind].get(entity_id)
            return copy.deepcopy(row) if row is not None else None

    def exists(self, kind: str, entity_id: int) -> bool:
        with self.lock:
            return entity_id in self.entities.get(kind, {})

    def rows(self, kind: str, keep: Keep | None = None) -> list[dict[str, Any]]:
        """Copies of the rows of `kind` that `keep` selects (under the lock; only those are copied)."""
        with self.lock:
            return _copies(list(self.entities[kind].values()), keep)

    # --- duplicates --------------------------------------------------------------------------

    def find_duplicates(self, comm_type: str, value: str, kinds: Iterable[str], limit: int = 20) -> dict[str, list[int]]:
        """Ids per entity kind having a PHONE/EMAIL equal to `value` (phones by digits)."""
        wanted = normalize_phone(value) if comm_type == "PHONE" else value.strip().lower()
        found: dict[str, list[int]] = {}
        if not wanted:
            return found
        with self.lock:
            for kind in kinds:
                for entity_id, row in self.entities.get(kind, {}).items():
                    for fm in row.get(comm_type, []):
                        have = normalize_phone(fm["VALUE"]) if comm_type == "PHONE" else fm["VALUE"].strip().lower()
                        if have == wanted:
                            found.setdefault(kind, []).append(entity_id)
                            break
                    if len(found.get(kind, [])) >= limit:
                        break
        return found

    # --- product rows ------------------------------------------------------------------------

    def set_product_rows(self, owner_type: str, owner_id: int, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Replace the whole row set of an owner ("D" deal, "L" lead); recompute OPPORTUNITY."""
        with self.lock:
            stored: list[dict[str, Any]] = []
            for sort, raw in enumerate(rows, start=1):
                row_id = self._next_id("productrow")
                price = float(php_str(raw.get("PRICE")) or 0)
                quantity = float(php_str(raw.get("QUANTITY")) or 1)
                tax_rate = raw.get("TAX_RATE")
                name = php_str(raw.get("PRODUCT_NAME"))
                product_id = php_int(raw.get("PRODUCT_ID"))
                stored.append({
                    "ID": row_id, "OWNER_ID": owner_id, "OWNER_TYPE": owner_type, "PRODUCT_ID": product_id,
                    "PRODUCT_NAME": name or (f"[{product_id}]" if product_id else f"[{row_id}]"),
                    "PRICE": price, "QUANTITY": quantity,
                    "DISCOUNT_TYPE_ID": php_int(raw.get("DISCOUNT_TYPE_ID")) or 2,
                    "DISCOUNT_RATE": float(php_str(raw.get("DISCOUNT_RATE")) or 0),
                    "DISCOUNT_SUM": float(php_str(raw.get("DISCOUNT_SUM")) or 0),
                    "TAX_RATE": None if tax_rate in (None, "") else float(php_str(tax_rate)),
                    "TAX_INCLUDED": "Y" if php_str(raw.get("TAX_INCLUDED")).upper() == "Y" else "N",
                    "MEASURE_CODE": php_int(raw.get("MEASURE_CODE")) or 796,
                    "MEASURE_NAME": php_str(raw.get("MEASURE_NAME")) or "шт",
                    "CUSTOMIZED": "Y", "SORT": php_int(raw.get("SORT")) or sort * 10,
                })
            self.product_rows[(owner_type, owner_id)] = stored
            kind = {"D": "deal", "L": "lead"}.get(owner_type)
            owner = self.entities.get(kind or "", {}).get(owner_id)
            if owner is not None and owner.get("IS_MANUAL_OPPORTUNITY") != "Y":
                owner["OPPORTUNITY"] = round(sum(r["PRICE"] * r["QUANTITY"] for r in stored), 2)
            return copy.deepcopy(stored)

    def get_product_rows(self, owner_type: str, owner_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self.product_rows.get((owner_type, owner_id), []))

    # --- timeline, activities, tasks ---------------------------------------------------------

    def add_comment(self, entity_type: str, entity_id: int, comment: str, author_id: int,
                    files: list[Any] | None = None) -> int:
        with self.lock:
            comment_id = self._next_id("comment")
            self.comments[comment_id] = {
                "ID": comment_id, "CREATED": self.iso(), "ENTITY_ID": entity_id, "ENTITY_TYPE": entity_type,
                "AUTHOR_ID": author_id, "COMMENT": comment, "FILES": files or [],
            }
            return comment_id

    def add_activity(self, fields: dict[str, Any]) -> int:
        with self.lock:
            activity_id = self._next_id("activity")
            self.activities[activity_id] = {"ID": activity_id, "CREATED": self.iso(), **fields}
            return activity_id

    def add_task(self, fields: dict[str, Any]) -> int:
        with self.lock:
            task_id = self._next_id("task")
            now = self.iso()
            self.tasks[task_id] = {"ID": task_id, "STATUS": 2, "PRIORITY": 1, "GROUP_ID": 0,
                                   "CREATED_DATE": now, "CHANGED_DATE": now, "UF_CRM_TASK": [], **fields}
            return task_id

    def comment_rows(self, keep: Keep | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return _copies(list(self.comments.values()), keep)

    def task_rows(self, keep: Keep | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return _copies(list(self.tasks.values()), keep)

    def get_task(self, task_id: int) -> dict[str, Any] | None:
        with self.lock:
            task = self.tasks.get(task_id)
            return copy.deepcopy(task) if task else None

    # --- admin -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything a test may assert on, with plain Python values."""
        with self.lock:
            def clean(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
                return [{k: copy.deepcopy(v) for k, v in r.items() if not k.startswith("_")} for r in rows]

            leads = clean(self.entities["lead"].values())
            contacts = clean(self.entities["contact"].values())
            deals = clean(self.entities["deal"].values())
            product_rows = {f"{t}_{i}": copy.deepcopy(r) for (t, i), r in self.product_rows.items()}
            return {
                "counts": {"leads": len(leads), "contacts": len(contacts), "deals": len(deals),
                           "product_rows": sum(len(r) for r in self.product_rows.values()),
                           "comments": len(self.comments), "activities": len(self.activities),
                           "tasks": len(self.tasks)},
                "leads": leads, "contacts": contacts, "deals": deals, "product_rows": product_rows,
                "comments": copy.deepcopy(list(self.comments.values())),
                "activities": copy.deepcopy(list(self.activities.values())),
                "tasks": copy.deepcopy(list(self.tasks.values())),
                "generated_at": datetime.now(UTC).isoformat(),
            }

    def owner_kind(self, entity_type: str) -> str | None:
        """Timeline ENTITY_TYPE (lead/deal/contact, any case) → store kind."""
        kind = str(entity_type).strip().lower()
        return kind if kind in ENTITY_KINDS else None
