"""The REST methods: request → store → the reply shape of each method family.

Three families with different conventions, kept apart on purpose:
- classic CRM (`crm.lead.*`, `crm.deal.*`, `crm.contact.*`, `crm.status.list`,
  `crm.duplicate.findbycomm`): UPPER_CASE fields, every scalar returned as a string, errors with
  an empty code, lenient parameter names, page-number paging;
- Engine controllers (`crm.item.*`, `crm.timeline.comment.*`, `crm.activity.todo.add`,
  `crm.category.list`, `tasks.task.*`): exact parameter names, camelCase replies wrapped in
  `{"item"}`/`{"items"}`/`{"task"}`/`{"tasks"}`, coded errors;
- `user.get`: parameter names in any case, `FILTER` or top-level filter keys.
Each handler returns a `Reply`; the app adds the envelope, limits and faults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulators.bitrix24.errors import ID_INVALID, NOT_FOUND, RestError, crm_error
from simulators.bitrix24.listing import (
    Condition,
    FieldKind,
    apply_filter,
    paginate,
    parse_filter,
    parse_order,
    select_names,
    sort_rows,
)
from simulators.bitrix24.params import Params, Resolution, as_list, as_map, php_int, php_str, php_truthy
from simulators.bitrix24.schema import (
    ENTITY_BY_TYPE_ID,
    EVENT_PREFIX,
    FIELDS,
    MULTIFIELD_TYPES,
    describe_fields,
    is_user_field,
    to_camel,
    to_upper,
)
from simulators.bitrix24.store import CrmStore, normalize_phone


@dataclass
class Reply:
    """A method's result plus the navigation the server lifts to the top level."""

    result: Any
    total: int | None = None
    next: int | None = None


@dataclass
class CallContext:
    """What a handler may use: the store, the webhook's user, `start`, and the event sink."""

    store: CrmStore
    user_id: int
    start: int
    emit: Callable[[str, int], None]


Handler = Callable[[CallContext, Params], Reply]


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: scope for the webhook check, name resolution, create flag."""

    name: str
    scope: str
    handler: Handler
    params: Resolution = "classic"
    creates: bool = False


REGISTRY: dict[str, MethodSpec] = {}


def register(name: str, scope: str, handler: Handler, params: Resolution = "classic", creates: bool = False) -> None:
    REGISTRY[name] = MethodSpec(name, scope, handler, params, creates)


def engine_missing(name: str) -> RestError:
    return RestError("100", f"Could not find value for parameter {{{name}}}", 400)


# --- classic value formatting ------------------------------------------------------------------


def classic_scalar(value: Any, type_: str | None = None) -> Any:
    """Classic CRM output: numbers as strings, money with two decimals, NULL stays null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "Y" if value else "N"
    if type_ == "double" and isinstance(value, int | float):
        return f"{float(value):.2f}"
    if isinstance(value, int | float):
        return php_str(value)
    return value


def classic_multifield(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"ID": str(fm["ID"]), "VALUE_TYPE": fm["VALUE_TYPE"], "VALUE": fm["VALUE"], "TYPE_ID": fm["TYPE_ID"]}
            for fm in items]


def classic_row(kind: str, row: dict[str, Any], select: list[str] | None, *, full: bool) -> dict[str, Any]:
    """Render a stored entity. `full` (get): standard + multifields + UF; list: per `select`."""
    defs = FIELDS[kind]
    standard = [n for n, fd in defs.items() if fd.type != "crm_multifield" and not fd.hidden_in_get]
    user_fields = sorted(k for k in row if is_user_field(k))
    if full:
        names = standard + [t for t in MULTIFIELD_TYPES if t in defs] + user_fields
    elif not select:
        names = standard
    else:
        names = []
        for item in select:  # field names are case-sensitive, like the SQL field map
            if item == "*":
                names.extend(standard)
            elif item == "UF_*":
                names.extend(user_fields)
            elif item in defs or item.startswith("UF_"):
                names.append(item)
        if "ID" not in names:
            names.insert(0, "ID")
    out: dict[str, Any] = {}
    for name in dict.fromkeys(names):
        fd = defs.get(name)
        if fd is not None and fd.type == "crm_multifield":
            if row.get(name):
                out[name] = classic_multifield(row[name])
            continue
        if fd is None:  # UF field, returned as stored
            out[name] = row.get(name)
            continue
        out[name] = classic_scalar(row.get(name), fd.type)
    return out


def entity_kind_of(kind: str) -> Callable[[str], FieldKind | None]:
    defs = FIELDS[kind]

    def kind_of(field: str) -> FieldKind | None:
        fd = defs.get(field)
        if fd is None:
            return "text" if is_user_field(field) else None
        if fd.type == "crm_multifield":
            return "multi"
        if fd.numeric:
            return "number"
        if fd.type in ("datetime", "date"):
            return "date"
        return "text"

    return kind_of


def entity_value(row: dict[str, Any], field: str) -> Any:
    if field in MULTIFIELD_TYPES:
        values = [fm["VALUE"] for fm in row.get(field, [])]
        return [normalize_phone(v) for v in values] if field == "PHONE" else values
    return row.get(field)


def normalize_conditions(conditions: list[Condition]) -> list[Condition]:
    """Phone filters compare by digits, the way the multifield index does (assumed)."""
    out = []
    for cond in conditions:
        if cond.field == "PHONE" and cond.op not in ("%", "!%", "=%", "%="):
            values = as_list(cond.value)
            value: Any = [normalize_phone(php_str(v)) for v in values] if values is not None else \
                normalize_phone(php_str(cond.value))
            cond = Condition(cond.op, cond.field, value)
        out.append(cond)
    return out


def _as_is(name: str) -> str:
    """Classic filter/order/select keys are matched case-sensitively (`title` is not `TITLE`)."""
    return name


def require_map(value: Any, name: str) -> dict[Any, Any]:
    mapping = as_map(value if value is not None else {})
    if mapping is None:
        raise crm_error(f"Parameter '{name}' must be array.")
    return mapping


# --- classic CRM entities ----------------------------------------------------------------------


def _valid_id(p: Params) -> int:
    """The call's `id`/`ID`, or ID_INVALID as Bitrix24 answers for 0, negative or missing ids."""
    entity_id = p.entity_id()
    if entity_id <= 0:
        raise crm_error(ID_INVALID)
    return entity_id


def _existing_id(ctx: CallContext, p: Params, kind: str) -> int:
    """A valid id of an existing `kind` entity, else ID_INVALID / NOT_FOUND."""
    entity_id = _valid_id(p)
    if not ctx.store.exists(kind, entity_id):
        raise crm_error(NOT_FOUND)
    return entity_id


def classic_handlers(kind: str) -> None:
    prefix = f"crm.{kind}"
    event = EVENT_PREFIX[kind]

    def add(ctx: CallContext, p: Params) -> Reply:
        fields = as_map(p.array("fields")) or {}
        entity_id = ctx.store.add_entity(kind, fields, ctx.user_id)
        ctx.emit(event + "ADD", entity_id)
        return Reply(entity_id)

    def get(ctx: CallContext, p: Params) -> Reply:
        entity_id = _valid_id(p)
        row = ctx.store.get_entity(kind, entity_id)
        if row is None:
            raise crm_error(NOT_FOUND)
        return Reply(classic_row(kind, row, None, full=True))

    def update(ctx: CallContext, p: Params) -> Reply:
        entity_id = _valid_id(p)
        fields = as_map(p.array("fields")) or {}
        if not ctx.store.update_entity(kind, entity_id, fields, ctx.user_id):
            raise crm_error(NOT_FOUND)
        ctx.emit(event + "UPDATE", entity_id)
        return Reply(True)

    def delete(ctx: CallContext, p: Params) -> Reply:
        entity_id = _valid_id(p)
        if not ctx.store.delete_entity(kind, entity_id):
            raise crm_error(NOT_FOUND)
        ctx.emit(event + "DELETE", entity_id)
        return Reply(True)

    def list_(ctx: CallContext, p: Params) -> Reply:
        order = parse_order(require_map(p.array("order"), "order"), normalize=_as_is)
        conditions = normalize_conditions(parse_filter(require_map(p.array("filter"), "filter"), normalize=_as_is))
        select = select_names(p.array("select"))
        kind_of = entity_kind_of(kind)
        rows = ctx.store.rows(kind, lambda rs: apply_filter(rs, conditions, kind_of, entity_value))
        rows = sort_rows(rows, order, kind_of)
        page = paginate(rows, ctx.start, mode="page")
        return Reply([classic_row(kind, r, select, full=False) for r in page.rows], page.total, page.next)

    def fields(ctx: CallContext, p: Params) -> Reply:
        return Reply(describe_fields(kind))

    register(f"{prefix}.add", "crm", add, creates=True)
    register(f"{prefix}.get", "crm", get)
    register(f"{prefix}.update", "crm", update)
    register(f"{prefix}.delete", "crm", delete)
    register(f"{prefix}.list", "crm", list_)
    register(f"{prefix}.fields", "crm", fields)


for _kind in ("lead", "contact", "deal"):
    classic_handlers(_kind)


# --- product rows ------------------------------------------------------------------------------


def product_row_view(row: dict[str, Any]) -> dict[str, Any]:
    """crm.deal.productrows.get row: string ids, numeric money, like the docs sample."""
    rate = row["TAX_RATE"] or 0.0
    exclusive = row["PRICE"] / (1 + rate / 100) if row["TAX_INCLUDED"] == "Y" and rate else row["PRICE"]
    netto = exclusive + row["DISCOUNT_SUM"]
    return {
        "ID": str(row["ID"]), "OWNER_ID": str(row["OWNER_ID"]), "OWNER_TYPE": row["OWNER_TYPE"],
        "PRODUCT_ID": row["PRODUCT_ID"], "PRODUCT_NAME": row["PRODUCT_NAME"], "PRICE": row["PRICE"],
        "PRICE_EXCLUSIVE": round(exclusive, 2), "PRICE_NETTO": round(netto, 2),
        "PRICE_BRUTTO": round(netto * (1 + rate / 100), 2), "QUANTITY": row["QUANTITY"],
        "DISCOUNT_TYPE_ID": row["DISCOUNT_TYPE_ID"], "DISCOUNT_RATE": row["DISCOUNT_RATE"],
        "DISCOUNT_SUM": row["DISCOUNT_SUM"], "TAX_RATE": row["TAX_RATE"], "TAX_INCLUDED": row["TAX_INCLUDED"],
        "CUSTOMIZED": row["CUSTOMIZED"], "MEASURE_CODE": row["MEASURE_CODE"], "MEASURE_NAME": row["MEASURE_NAME"],
        "SORT": row["SORT"],
    }


def product_rows_handlers(kind: str, owner_type: str) -> None:
    def set_(ctx: CallContext, p: Params) -> Reply:
        entity_id = _existing_id(ctx, p, kind)
        rows = [r for r in as_list(p.array("rows")) or [] if isinstance(r, dict)]
        ctx.store.set_product_rows(owner_type, entity_id, rows)
        return Reply(True)

    def get(ctx: CallContext, p: Params) -> Reply:
        entity_id = _existing_id(ctx, p, kind)
        return Reply([product_row_view(r) for r in ctx.store.get_product_rows(owner_type, entity_id)])

    register(f"crm.{kind}.productrows.set", "crm", set_)
    register(f"crm.{kind}.productrows.get", "crm", get)


product_rows_handlers("deal", "D")
product_rows_handlers("lead", "L")


def camel_product_row(row: dict[str, Any]) -> dict[str, Any]:
    view = product_row_view(row)
    out = {to_camel(k): v for k, v in view.items()}
    out["id"], out["ownerId"] = row["ID"], row["OWNER_ID"]
    return out


def item_productrow_set(ctx: CallContext, p: Params) -> Reply:
    owner_type = php_str(p.get("ownerType")).upper()
    owner_id = php_int(p.get("ownerId"))
    if not owner_type:
        raise engine_missing("ownerType")
    if owner_id <= 0:
        raise engine_missing("ownerId")
    kind = {"D": "deal", "L": "lead"}.get(owner_type)
    if kind is None or not ctx.store.exists(kind, owner_id):
        raise RestError("NOT_FOUND", "Owner element was not found", 400)
    rows = [{to_upper(str(k)): v for k, v in r.items()} for r in as_list(p.get("productRows")) or []
            if isinstance(r, dict)]
    stored = ctx.store.set_product_rows(owner_type, owner_id, rows)
    return Reply({"productRows": [camel_product_row(r) for r in stored]})


def item_productrow_list(ctx: CallContext, p: Params) -> Reply:
    flt = {str(k).lstrip("="): v for k, v in (as_map(p.get("filter")) or {}).items()}
    owner_type = php_str(flt.get("ownerType")).upper()
    owner_id = php_int(flt.get("ownerId"))
    if not owner_type or owner_id <= 0:
        raise RestError("INVALID_ARG_VALUE", "Filter must contain ownerType and ownerId", 400)
    rows = ctx.store.get_product_rows(owner_type, owner_id)
    return Reply({"productRows": [camel_product_row(r) for r in rows]}, len(rows))


register("crm.item.productrow.set", "crm", item_productrow_set, params="exact")
register("crm.item.productrow.list", "crm", item_productrow_list, params="exact")


# --- crm.item.* --------------------------------------------------------------------------------


def item_view(kind: str, row: dict[str, Any], select: list[str] | None = None) -> dict[str, Any]:
    """camelCase item with native JSON types (ints stay ints) and multifields as `fm`."""
    defs = FIELDS[kind]
    out: dict[str, Any] = {}
    for name, fd in defs.items():
        if fd.type == "crm_multifield":
            continue
        value = row.get(name)
        if name == "CATEGORY_ID" and value is None:
            value = 0
        out[to_camel(name)] = value
    for name in sorted(k for k in row if is_user_field(k)):
        out[to_camel(name)] = row[name]
    fm = [{"id": item["ID"], "typeId": item["TYPE_ID"], "valueType": item["VALUE_TYPE"], "value": item["VALUE"]}
          for t in MULTIFIELD_TYPES for item in row.get(t, [])]
    if any(t in defs for t in MULTIFIELD_TYPES):
        out["fm"] = fm
    if select and "*" not in select:
        wanted = {s for s in select} | {"id"}
        out = {k: v for k, v in out.items() if k in wanted}
    return out


def item_fields_to_classic(kind: str, fields: dict[Any, Any]) -> dict[str, Any]:
    """camelCase input → the classic field names the store understands."""
    out: dict[str, Any] = {}
    multis: dict[str, list[dict[str, Any]]] = {}
    for key, value in fields.items():
        name = str(key)
        if name == "fm":
            for item in as_list(value) or []:
                if not isinstance(item, dict):
                    continue
                type_id = php_str(item.get("typeId")).upper()
                if type_id in MULTIFIELD_TYPES:
                    entry = {"VALUE": item.get("value"), "VALUE_TYPE": item.get("valueType")}
                    if item.get("id") is not None:
                        entry["ID"] = item["id"]
                    multis.setdefault(type_id, []).append(entry)
            continue
        out[to_upper(name, kind)] = value
    out.update(multis)
    return out


def item_kind(p: Params) -> str:
    raw = p.get("entityTypeId")
    if raw is None:
        raise engine_missing("entityTypeId")
    kind = ENTITY_BY_TYPE_ID.get(php_int(raw))
    if kind not in ("lead", "deal", "contact"):
        raise RestError("NOT_FOUND", "Smart process not found", 400)
    return kind


def item_add(ctx: CallContext, p: Params) -> Reply:
    kind = item_kind(p)
    fields = as_map(p.get("fields"))
    if fields is None:
        raise engine_missing("fields")
    entity_id = ctx.store.add_entity(kind, item_fields_to_classic(kind, fields), ctx.user_id)
    ctx.emit(EVENT_PREFIX[kind] + "ADD", entity_id)
    return Reply({"item": item_view(kind, ctx.store.get_entity(kind, entity_id) or {})})


def item_update(ctx: CallContext, p: Params) -> Reply:
    kind = item_kind(p)
    entity_id = php_int(p.get("id"))
    fields = as_map(p.get("fields"))
    if fields is None:
        raise engine_missing("fields")
    if not ctx.store.update_entity(kind, entity_id, item_fields_to_classic(kind, fields), ctx.user_id):
        raise RestError("NOT_FOUND", "Element not found", 400)
    ctx.emit(EVENT_PREFIX[kind] + "UPDATE", entity_id)
    return Reply({"item": item_view(kind, ctx.store.get_entity(kind, entity_id) or {})})


def item_get(ctx: CallContext, p: Params) -> Reply:
    kind = item_kind(p)
    if p.get("id") is None:
        raise engine_missing("id")
    row = ctx.store.get_entity(kind, php_int(p.get("id")))
    if row is None:
        raise RestError("NOT_FOUND", "Element not found", 400)
    return Reply({"item": item_view(kind, row)})


def item_list(ctx: CallContext, p: Params) -> Reply:
    kind = item_kind(p)
    kind_of = entity_kind_of(kind)
    conditions = normalize_conditions(parse_filter(p.get("filter"), normalize=lambda n: to_upper(n, kind)))
    for cond in conditions:
        if kind_of(cond.field) is None:
            raise RestError("INVALID_ARG_VALUE", f"Invalid filter: field '{to_camel(cond.field)}' is not allowed "
                            "in filter", 400)
    order = parse_order(p.get("order"), normalize=lambda n: to_upper(n, kind))
    rows = sort_rows(ctx.store.rows(kind, lambda rs: apply_filter(rs, conditions, kind_of, entity_value)),
                     order, kind_of)
    page = paginate(rows, ctx.start, mode="offset")
    select = select_names(p.get("select"))
    return Reply({"items": [item_view(kind, r, select) for r in page.rows]}, page.total, page.next)


register("crm.item.add", "crm", item_add, params="exact", creates=True)
register("crm.item.update", "crm", item_update, params="exact")
register("crm.item.get", "crm", item_get, params="exact")
register("crm.item.list", "crm", item_list, params="exact")


# --- duplicates --------------------------------------------------------------------------------

_OWNER_NAMES = {"LEAD": 1, "DEAL": 2, "CONTACT": 3, "COMPANY": 4}


def find_by_comm(ctx: CallContext, p: Params) -> Reply:
    """CCrmDuplicateRestProxy FINDBYCOMM, including its silent skipping and 20-value cap."""
    comm_type = php_str(p.scalar("type")).upper()
    if comm_type not in ("EMAIL", "PHONE"):
        if comm_type == "":
            raise crm_error("Communication type is not defined.")
        raise crm_error(f"Communication type '{comm_type}' is not supported in current context.")
    values = as_list(p.array("values"))
    if not values:
        raise crm_error("Communication values is not defined.")
    raw_type = p.multipart("entity", "type")
    type_name = php_str(raw_type).upper()
    type_id = _OWNER_NAMES.get(type_name) or (php_int(raw_type) if php_str(raw_type).isdigit() else 0)
    if type_id == 2:
        raise crm_error("Deal is not supported in current context.")
    kinds = {1: ["lead"], 3: ["contact"], 4: []}.get(type_id, ["lead", "contact"])
    found: dict[str, list[int]] = {}
    seen: set[str] = set()
    for value in values:
        if not isinstance(value, str) or value == "":
            continue  # non-strings are skipped silently
        key = normalize_phone(value) if comm_type == "PHONE" else value.strip().lower()
        if key in seen:
            continue
        seen.add(key)
        for kind, ids in ctx.store.find_duplicates(comm_type, value, kinds).items():
            bucket = found.setdefault(kind.upper(), [])
            bucket.extend(i for i in ids if i not in bucket)
        if len(seen) >= 20:
            break
    return Reply(found)  # {} is rendered as [] like PHP


register("crm.duplicate.findbycomm", "crm", find_by_comm)


# --- statuses and categories -------------------------------------------------------------------


def status_view(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: classic_scalar(v) for k, v in row.items() if k != "EXTRA"}
    if row.get("EXTRA"):
        out["EXTRA"] = row["EXTRA"]
    return out


def status_list(ctx: CallContext, p: Params) -> Reply:
    order = parse_order(require_map(p.array("order"), "order"), normalize=_as_is)
    conditions = parse_filter(require_map(p.array("filter"), "filter"), normalize=_as_is)

    def kind_of(field: str) -> FieldKind | None:
        if field in ("ID", "SORT", "CATEGORY_ID"):
            return "number"
        return "text" if field in ("ENTITY_ID", "STATUS_ID", "NAME", "NAME_INIT", "SYSTEM", "COLOR",
                                   "SEMANTICS") else None

    with ctx.store.lock:
        rows = [dict(s) for s in ctx.store.statuses]
    rows = sort_rows(apply_filter(rows, conditions, kind_of), order, kind_of)
    return Reply([status_view(r) for r in rows], len(rows))  # not paged: all rows, total only


def category_list(ctx: CallContext, p: Params) -> Reply:
    raw = p.get("entityTypeId")
    if raw is None:
        raise engine_missing("entityTypeId")
    type_id = php_int(raw)
    if type_id == 2:
        with ctx.store.lock:
            categories = sorted((dict(c) for c in ctx.store.categories.values()), key=lambda c: c["sort"])
    elif type_id == 3:
        categories = [{"id": 0, "name": "Контакты", "sort": 100, "entityTypeId": 3, "isDefault": "Y"}]
    else:
        raise RestError("NOT_FOUND", f"Entity type {type_id} does not support categories", 400)
    return Reply({"categories": categories}, len(categories))


register("crm.status.list", "crm", status_list)
register("crm.category.list", "crm", category_list, params="exact")


# --- timeline and activities -------------------------------------------------------------------


def comment_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"ID": str(row["ID"]), "CREATED": row["CREATED"], "ENTITY_ID": str(row["ENTITY_ID"]),
            "ENTITY_TYPE": row["ENTITY_TYPE"], "AUTHOR_ID": str(row["AUTHOR_ID"]), "COMMENT": row["COMMENT"],
            "FILES": row["FILES"]}


def comment_add(ctx: CallContext, p: Params) -> Reply:
    fields = as_map(p.get("fields"))  # lowercase `fields` only (crm ≥ 23.100.0)
    if fields is None:
        raise engine_missing("fields")
    kind = ctx.store.owner_kind(php_str(fields.get("ENTITY_TYPE")))
    entity_id = php_int(fields.get("ENTITY_ID"))
    if kind is None or entity_id <= 0 or not ctx.store.exists(kind, entity_id):
        raise RestError("OWNER_NOT_FOUND", "Owner element was not found", 400)
    comment = php_str(fields.get("COMMENT")) if not isinstance(fields.get("COMMENT"), dict | list) else ""
    files = as_list(fields.get("FILES")) or []
    if comment.strip() == "" and not files:
        raise RestError("INVALID_ARG_VALUE", "Empty comment message.", 400)
    author = php_int(fields.get("AUTHOR_ID")) or ctx.user_id
    return Reply(ctx.store.add_comment(kind, entity_id, comment, author, [php_str(f) for f in files]))


def comment_list(ctx: CallContext, p: Params) -> Reply:
    conditions = parse_filter(p.get("filter"))
    fields = {c.field for c in conditions}
    if not {"ENTITY_ID", "ENTITY_TYPE"} <= fields:
        raise RestError("INVALID_ARG_VALUE", "ENTITY_ID and ENTITY_TYPE are required in filter.", 400)
    conditions = [Condition(c.op, c.field, php_str(c.value).lower()) if c.field == "ENTITY_TYPE" else c
                  for c in conditions]

    def kind_of(field: str) -> FieldKind | None:
        return {"ID": "number", "ENTITY_ID": "number", "AUTHOR_ID": "number", "CREATED": "date",
                "ENTITY_TYPE": "text", "COMMENT": "text"}.get(field)  # type: ignore[return-value]

    order = parse_order(p.get("order")) or [("CREATED", True)]
    rows = sort_rows(ctx.store.comment_rows(lambda rs: apply_filter(rs, conditions, kind_of)), order, kind_of)
    page = paginate(rows, ctx.start, mode="offset")
    select = select_names(p.get("select"))
    views = [comment_view(r) for r in page.rows]
    if select and "*" not in select:
        wanted = {s.upper() for s in select} | {"ID"}
        views = [{k: v for k, v in view.items() if k in wanted} for view in views]
    return Reply(views, page.total, page.next)


def todo_add(ctx: CallContext, p: Params) -> Reply:
    for name in ("ownerTypeId", "ownerId", "deadline"):
        if p.get(name) in (None, ""):
            raise engine_missing(name)
    kind = ENTITY_BY_TYPE_ID.get(php_int(p.get("ownerTypeId")))
    owner_id = php_int(p.get("ownerId"))
    if kind not in ("lead", "deal", "contact") or not ctx.store.exists(kind, owner_id):
        raise RestError("OWNER_NOT_FOUND", "Owner element was not found", 400)
    deadline = ctx.store.parse_datetime(p.get("deadline"))
    if deadline is None:
        raise RestError("WRONG_DATETIME_FORMAT", "Wrong datetime format", 400)
    activity_id = ctx.store.add_activity({
        "OWNER_TYPE_ID": php_int(p.get("ownerTypeId")), "OWNER_ID": owner_id, "DEADLINE": deadline,
        "TITLE": php_str(p.get("title")), "DESCRIPTION": php_str(p.get("description")),
        "RESPONSIBLE_ID": php_int(p.get("responsibleId")) or ctx.user_id,
        "PING_OFFSETS": [php_int(v) for v in as_list(p.get("pingOffsets")) or []],
    })
    return Reply({"id": activity_id})


register("crm.timeline.comment.add", "crm", comment_add, params="exact", creates=True)
register("crm.timeline.comment.list", "crm", comment_list, params="exact")
register("crm.activity.todo.add", "crm", todo_add, params="exact", creates=True)


# --- tasks -------------------------------------------------------------------------------------

_TASK_NUMBERS = {"ID", "RESPONSIBLE_ID", "CREATED_BY", "GROUP_ID", "STATUS", "PRIORITY"}
_TASK_DATES = {"DEADLINE", "CREATED_DATE", "CHANGED_DATE", "START_DATE_PLAN", "END_DATE_PLAN"}
_TASK_DEFAULT_SELECT = ["ID", "TITLE", "DESCRIPTION", "STATUS", "PRIORITY", "GROUP_ID", "RESPONSIBLE_ID",
                        "CREATED_BY", "DEADLINE", "CREATED_DATE", "CHANGED_DATE", "START_DATE_PLAN",
                        "END_DATE_PLAN"]


def _user_brief(store: CrmStore, user_id: int) -> dict[str, Any]:
    user = store.users.get(user_id, {})
    return {"id": str(user_id), "name": f"{user.get('NAME', '')} {user.get('LAST_NAME', '')}".strip(),
            "link": f"/company/personal/user/{user_id}/", "icon": "/bitrix/images/tasks/default_avatar.png",
            "workPosition": user.get("WORK_POSITION", "")}


def task_view(store: CrmStore, row: dict[str, Any], select: list[str] | None = None) -> dict[str, Any]:
    """camelCase task with string ids; `ufCrmTask` only when selected."""
    names = [s.upper() for s in select] if select and "*" not in select else list(_TASK_DEFAULT_SELECT)
    if select and "*" in select:
        names = list(_TASK_DEFAULT_SELECT) + [s.upper() for s in select if s != "*"]
    if "ID" not in names:
        names.insert(0, "ID")
    out: dict[str, Any] = {}
    for name in dict.fromkeys(names):
        if name not in row:
            continue
        value = row[name]
        if name in _TASK_NUMBERS:
            value = str(value) if value is not None else None
        out[to_camel(name)] = value
    if "RESPONSIBLE_ID" in names:
        out["responsible"] = _user_brief(store, int(row["RESPONSIBLE_ID"]))
    if "CREATED_BY" in names:
        out["creator"] = _user_brief(store, int(row["CREATED_BY"]))
    return out


def task_add(ctx: CallContext, p: Params) -> Reply:
    raw = as_map(p.get("fields"))
    if raw is None:
        raise engine_missing("fields")
    fields = {to_upper(str(k)): v for k, v in raw.items()}
    title = php_str(fields.get("TITLE")).strip() if not isinstance(fields.get("TITLE"), dict | list) else ""
    if not title:
        raise RestError("ERROR_CORE", "Task title is not specified<br>", 400)
    responsible = php_int(fields.get("RESPONSIBLE_ID"))
    if fields.get("RESPONSIBLE_ID") in (None, "") or responsible <= 0:
        raise RestError("ERROR_CORE", "Responsible person not specified<br>", 400)
    user = ctx.store.users.get(responsible)
    if user is None or not user.get("ACTIVE"):
        raise RestError("ERROR_CORE", "User specified in the 'Responsible' field not found<br>", 400)
    creator = php_int(fields.get("CREATED_BY")) or ctx.user_id
    bindings = as_list(fields.get("UF_CRM_TASK"))
    if bindings is None:
        bindings = [] if fields.get("UF_CRM_TASK") in (None, "") else [fields["UF_CRM_TASK"]]
    record = {
        "TITLE": title, "DESCRIPTION": php_str(fields.get("DESCRIPTION")), "RESPONSIBLE_ID": responsible,
        "CREATED_BY": creator, "DEADLINE": ctx.store.parse_datetime(fields.get("DEADLINE")),
        "START_DATE_PLAN": ctx.store.parse_datetime(fields.get("START_DATE_PLAN")),
        "END_DATE_PLAN": ctx.store.parse_datetime(fields.get("END_DATE_PLAN")),
        "PRIORITY": php_int(fields.get("PRIORITY")) if fields.get("PRIORITY") not in (None, "") else 1,
        "GROUP_ID": php_int(fields.get("GROUP_ID")),
        "UF_CRM_TASK": [php_str(b) for b in bindings if php_str(b)],
    }
    task_id = ctx.store.add_task(record)
    return Reply({"task": task_view(ctx.store, ctx.store.get_task(task_id) or {})})


def _task_kind(field: str) -> FieldKind | None:
    if field in _TASK_NUMBERS:
        return "number"
    if field in _TASK_DATES:
        return "date"
    if field == "UF_CRM_TASK":
        return "multi"
    return "text" if field in ("TITLE", "DESCRIPTION") else None


def task_list(ctx: CallContext, p: Params) -> Reply:
    conditions = parse_filter(p.get("filter"), normalize=to_upper)
    order = parse_order(p.get("order"), normalize=to_upper)
    rows = sort_rows(ctx.store.task_rows(lambda rs: apply_filter(rs, conditions, _task_kind)), order, _task_kind)
    page = paginate(rows, ctx.start, mode="offset")
    select = select_names(p.get("select"))
    return Reply({"tasks": [task_view(ctx.store, r, select) for r in page.rows]}, page.total, page.next)


def task_get(ctx: CallContext, p: Params) -> Reply:
    if p.get("taskId") is None:
        raise engine_missing("taskId")
    row = ctx.store.get_task(php_int(p.get("taskId")))
    if row is None:
        raise RestError("ERROR_CORE", "Task not found or access denied<br>", 400)
    return Reply({"task": task_view(ctx.store, row, select_names(p.get("select")))})


register("tasks.task.add", "task", task_add, params="exact", creates=True)
register("tasks.task.list", "task", task_list, params="exact")
register("tasks.task.get", "task", task_get, params="exact")


# --- users -------------------------------------------------------------------------------------

_USER_CONTROL = {"SORT", "ORDER", "ADMIN_MODE", "FILTER", "START"}


def user_view(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k != "IS_ADMIN"}
    out["ID"] = str(row["ID"])
    return out


def _user_kind(field: str) -> FieldKind | None:
    if field in ("ID",):
        return "number"
    if field == "ACTIVE":
        return "bool"
    if field == "UF_DEPARTMENT":
        return "multi"
    return "text"


def user_get(ctx: CallContext, p: Params) -> Reply:
    flt = as_map(p.array("FILTER"))
    if flt is None:
        flt = {k: v for k, v in p.data.items() if str(k).upper() not in _USER_CONTROL}
    conditions = [Condition(c.op, c.field, ("Y" if php_truthy(c.value) and php_str(c.value).lower() != "false"
                                             else "N") if c.field == "ACTIVE" else c.value)
                  for c in parse_filter(flt)]
    sort_field = php_str(p.scalar("sort") or "ID").upper()
    desc = php_str(p.scalar("order") or "ASC").upper() == "DESC"
    with ctx.store.lock:
        rows = [dict(u) for u in ctx.store.users.values()]
    rows = sort_rows(apply_filter(rows, conditions, _user_kind), [(sort_field, desc)], _user_kind)
    page = paginate(rows, ctx.start, mode="page")
    return Reply([user_view(r) for r in page.rows], page.total, page.next)


def user_current(ctx: CallContext, p: Params) -> Reply:
    user = ctx.store.users.get(ctx.user_id)
    if user is None:
        raise RestError("NOT_FOUND", "User not found", 400)
    return Reply(user_view(user))


register("user.get", "user", user_get, params="anycase")
register("user.current", "user", user_current, params="anycase")
