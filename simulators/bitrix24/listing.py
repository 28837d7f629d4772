"""List semantics shared by every `*.list` method: filter prefixes, order, paging.

Paging follows `IRestService::getNavData`/`setNavData`: 50 rows per page; classic methods page by
page number (`start` is rounded down to a multiple of 50), ORM-style ones (`crm.item.list`,
`tasks.task.list`) by exact offset; `total` always and `next` only when more rows exist;
`start = -1` returns the first 50 rows with neither.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from simulators.bitrix24.errors import RestError
from simulators.bitrix24.params import as_list, as_map, php_str

PAGE_SIZE = 50

# Longest prefixes first so "!@" is not read as "!".
_OPERATORS = ["!><", "><", ">=", "<=", "!=", "!@", "=%", "%=", "!%", ">", "<", "=", "!", "@", "%"]
FieldKind = Literal["number", "text", "date", "multi", "bool"]


@dataclass(frozen=True)
class Condition:
    """One filter entry: `>=ID: 10` → Condition(">=", "ID", 10)."""

    op: str
    field: str
    value: Any


def parse_filter(raw: Any, *, normalize: Callable[[str], str] = str.upper) -> list[Condition]:
    """Split filter keys into operator prefix and field name."""
    mapping = as_map(raw)
    if mapping is None:
        if raw in (None, "", []):
            return []
        raise RestError("ERROR_ARGUMENT", "The filter is not an array.", 400)
    conditions = []
    for key, value in mapping.items():
        key = str(key)
        match = re.match(r"^([^A-Za-z]*)(.*)$", key)
        prefix, field = (match.group(1), match.group(2)) if match else ("", key)
        if prefix and prefix not in _OPERATORS:
            raise RestError("ERROR_ARGUMENT", f"Filter operation not allowed: {prefix}", 400)
        if not field:
            continue
        conditions.append(Condition(prefix, normalize(field), value))
    return conditions


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(php_str(value).strip())
    except ValueError:
        return None


def _timestamp(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(php_str(value).strip().replace(" ", "T", 1)).timestamp()
    except ValueError:
        return None


def _like(pattern: str, value: str) -> bool:
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, flags=re.IGNORECASE | re.DOTALL) is not None


def _scalar_matches(op: str, have: Any, want: Any, kind: FieldKind) -> bool:
    """Compare one stored scalar against one filter value (MySQL-ish, case-insensitive text)."""
    if op in ("%", "!%"):
        return php_str(want).lower() in php_str(have).lower()
    if op in ("=%", "%="):
        return _like(php_str(want), php_str(have))
    if kind == "bool":
        have, want = php_str(have).upper() in ("Y", "1", "TRUE"), php_str(want).upper() in ("Y", "1", "TRUE")
        return have == want if op in ("", "=", "@") else False
    if want in (None, "") and op in ("", "=", "@"):
        return have in (None, "", 0) if kind != "number" else have is None
    if have is None:
        return False
    if kind == "number":
        a, b = _number(have), _number(want)
    elif kind == "date":
        a, b = _timestamp(have), _timestamp(want)
    else:
        a, b = php_str(have).casefold(), php_str(want).casefold()  # type: ignore[assignment]
    if a is None or b is None:
        return False
    if op in ("", "=", "@"):
        return a == b
    if op == ">":
        return a > b  # type: ignore[operator]
    if op == ">=":
        return a >= b  # type: ignore[operator]
    if op == "<":
        return a < b  # type: ignore[operator]
    if op == "<=":
        return a <= b  # type: ignore[operator]
    return False


def condition_matches(cond: Condition, have: Any, kind: FieldKind) -> bool:
    """Whether a row value satisfies a condition; list values match if any element does."""
    op, want = cond.op, cond.value
    negate = op in ("!", "!=", "!@", "!%", "!><")
    base = {"!": "=", "!=": "=", "!@": "@", "!%": "%", "!><": "><"}.get(op, op)
    haves = have if isinstance(have, list) else [have]
    if kind == "multi" and not haves:
        haves = [None]
    if base == "><":
        bounds = as_list(want) or []
        if len(bounds) != 2:
            return False
        hit = any(_scalar_matches(">=", h, bounds[0], kind) and _scalar_matches("<=", h, bounds[1], kind)
                  for h in haves)
    else:
        wants = as_list(want)
        if wants is None:
            wants = [want]
        elif not wants:
            wants = [None]
        hit = any(_scalar_matches(base, h, w, kind) for h in haves for w in wants)
    return not hit if negate else hit


def apply_filter(rows: list[dict[str, Any]], conditions: list[Condition],
                 kind_of: Callable[[str], FieldKind | None],
                 value_of: Callable[[dict[str, Any], str], Any] | None = None) -> list[dict[str, Any]]:
    """Keep rows matching every condition; conditions on unknown fields are ignored."""
    getter = value_of or (lambda row, field: row.get(field))
    active = [(c, kind_of(c.field)) for c in conditions]
    active = [(c, k) for c, k in active if k is not None]
    return [row for row in rows if all(condition_matches(c, getter(row, c.field), k) for c, k in active)]


def parse_order(raw: Any, *, normalize: Callable[[str], str] = str.upper) -> list[tuple[str, bool]]:
    """`{"ID": "DESC"}` → [("ID", True)]; a bad direction is ERROR_ARGUMENT like sanitizeOrder."""
    mapping = as_map(raw)
    if mapping is None:
        if raw in (None, "", []):
            return []
        raise RestError("ERROR_ARGUMENT", "The order is not an array.", 400)
    order = []
    for key, direction in mapping.items():
        if isinstance(key, int):  # ["ID"] form: ascending
            order.append((normalize(php_str(direction)), False))
            continue
        upper = php_str(direction).upper()
        if upper not in ("ASC", "DESC"):
            raise RestError("ERROR_ARGUMENT", "Order direction should be one of {ASC|DESC}", 400)
        order.append((normalize(str(key)), upper == "DESC"))
    return order


def sort_rows(rows: list[dict[str, Any]], order: list[tuple[str, bool]],
              kind_of: Callable[[str], FieldKind | None], default: str = "ID") -> list[dict[str, Any]]:
    """Stable multi-key sort; NULLs first on ASC (MySQL), numbers numerically."""
    keys = [(f, d) for f, d in order if kind_of(f) is not None] or [(default, False)]
    result = list(rows)
    for field, desc in reversed(keys):
        kind = kind_of(field)

        def key(row: Mapping[str, Any], field: str = field, kind: FieldKind | None = kind) -> tuple[int, Any]:
            value = row.get(field)
            if value is None or value == "":
                return (0, 0)
            if kind == "number":
                return (1, _number(value) or 0.0)
            if kind == "date":
                return (1, _timestamp(value) or 0.0)
            return (1, php_str(value).casefold())

        result.sort(key=key, reverse=desc)
    return result


@dataclass
class Page:
    """A page of rows with the navigation the server moves to the top level."""

    rows: list[dict[str, Any]]
    total: int | None
    next: int | None


def paginate(rows: list[dict[str, Any]], start: int, *, mode: Literal["page", "offset"] = "page") -> Page:
    """Cut one page; see the module docstring for the two paging styles."""
    if start < 0:
        return Page(rows[:PAGE_SIZE], None, None)
    total = len(rows)
    if mode == "page":
        page_no = start // PAGE_SIZE + 1
        offset = (page_no - 1) * PAGE_SIZE
        page_count = max(1, math.ceil(total / PAGE_SIZE))
        nxt = page_no * PAGE_SIZE if page_no < page_count else None
        return Page(rows[offset : offset + PAGE_SIZE], total, nxt)
    chunk = rows[start : start + PAGE_SIZE]
    nxt = start + len(chunk) if start + len(chunk) < total else None
    return Page(chunk, total, nxt)


def select_names(raw: Any) -> list[str] | None:
    """Normalise `select` to a list of names; None/empty means the default set."""
    items = as_list(raw)
    if items is None:
        return [php_str(raw)] if raw not in (None, "") else None
    names = [php_str(v) for v in items if isinstance(v, str | int)]
    return names or None
