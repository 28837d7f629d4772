"""Register virtual tables: SliceLast/SliceFirst, Balance, Turnovers, BalanceAndTurnovers.

Parameters arrive in every form clients use (onec.md §1.6): bare, `()`, `(Period=datetime'…',
Condition='ВидЦены_Key eq guid'…'',Dimensions='Номенклатура,Склад')` with unescaped inner quotes,
and as query-string parameters with or without outer quotes. Results are per-product groups
addressed by row id (product index * RID_SPAN + group), so building the id list is one cheap pass
(no record generation for untouched products) and a page materialises only its own rows.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Sequence
from typing import Any

from simulators.onec import vocab
from simulators.onec.dataset import (
    DAY,
    PRICE_START,
    PRICE_START_SPAN,
    STOCK_START,
    STOCK_START_SPAN,
    Dataset,
    mix,
)
from simulators.onec.errors import ODataError
from simulators.onec.keys import Kind, from_seconds, resolve, to_seconds
from simulators.onec.profiles import DIM_TARGETS, Field, N, PriceRegister, Profile, StockRegister
from simulators.onec.query import DictContext, compile_filter, parse_datetime, parse_filter, restrictions
from simulators.onec.tables import (
    RID_SPAN,
    Table,
    price_record_row,
    price_records,
    price_register_fields,
    stock_dim_value,
)

INFO_FUNCTIONS = {"SliceLast": {"Period", "Condition"}, "SliceFirst": {"Period", "Condition"}}
ACCUM_FUNCTIONS = {
    "Balance": {"Period", "Condition", "Dimensions"},
    "Turnovers": {"StartPeriod", "EndPeriod", "Condition", "Dimensions"},
    "BalanceAndTurnovers": {"StartPeriod", "EndPeriod", "Condition", "Dimensions"},
}
ALL_FUNCTIONS = {**INFO_FUNCTIONS, **ACCUM_FUNCTIONS}
SERVICE_PARAMS = {"allowedOnly"}  # query-string parameters that are not function parameters

_PARAM_START = re.compile(r"\s*([^\W\d]\w*)\s*=(?!=)")


def split_params(text: str) -> dict[str, str]:
    """`Period=datetime'…',Condition='A eq guid'…''` → {name: raw value}.

    Splits at top-level commas followed by `Name=`; inner quotes need not be escaped because the
    split never looks at quotes (1C's documented form leaves them unescaped).
    """
    out: dict[str, str] = {}
    text = text.strip()
    if not text:
        return out
    cuts = [0]
    depth = 0
    for pos, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0 and _PARAM_START.match(text, pos + 1):
            cuts.append(pos + 1)
    cuts.append(len(text) + 1)
    for start, end in zip(cuts, cuts[1:], strict=False):
        piece = text[start:end - 1]
        m = _PARAM_START.match(piece)
        if not m:
            raise ODataError(400, "14", f"Неверный формат параметров виртуальной таблицы: '{piece}'")
        out[m.group(1)] = piece[m.end():].strip()
    return out


def _unquote(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == "'" and raw[-1] == "'":
        return raw[1:-1]
    return raw


def parse_period(name: str, raw: str) -> int:
    raw = raw.strip()
    m = re.fullmatch(r"datetime'([^']*)'", raw)
    text = m.group(1) if m else _unquote(raw)
    try:
        return to_seconds(parse_datetime(text))
    except ODataError:
        raise ODataError(400, "4", f"Неверное значение параметра {name}: {raw}") from None


def parse_condition(raw: str) -> Any:
    """A `Condition` in any quoting: 'A eq guid'x'' (unescaped), 'A eq guid''x''' or bare."""
    raw = raw.strip()
    candidates = []
    if len(raw) >= 2 and raw[0] == "'" and raw[-1] == "'":
        inner = raw[1:-1]
        candidates += [inner, inner.replace("''", "'")]
    candidates.append(raw)
    error: ODataError | None = None
    for text in candidates:
        try:
            return parse_filter(text)
        except ODataError as exc:
            error = error or exc
    assert error is not None
    raise error


def check_params(function: str, params: dict[str, str]) -> None:
    allowed = ALL_FUNCTIONS[function]
    for name in params:
        if name not in allowed:
            raise ODataError(501, "0", f"Параметр {name} не поддерживается для виртуальной таблицы {function}")


def _dimensions(raw: str | None, reg_dims: tuple[str, ...]) -> tuple[str, ...]:
    if raw is None:
        return reg_dims
    names = [n.strip() for n in _unquote(raw).split(",") if n.strip()]
    for n in names:
        if n not in reg_dims:
            raise ODataError(400, "4", f"Неверное значение параметра Dimensions: измерение \"{n}\" не найдено")
    return tuple(d for d in reg_dims if d in names)


def _products(ds: Dataset, restr: dict[str, frozenset[Any]] | None) -> Sequence[int]:
    if restr and "Номенклатура_Key" in restr:
        found = (ds.index_of(k) for k in restr["Номенклатура_Key"])
        return sorted(i for i in found if i is not None)
    if not ds._removed:
        return range(ds.size)
    return [i for i in range(ds.size) if i not in ds._removed]


def _index_set(restr: dict[str, frozenset[Any]] | None, column: str, kind: Kind, offset: int = 1) -> set[int] | None:
    """Dimension values allowed by a pushed-down restriction, as indexes (None = all)."""
    if not restr or column not in restr:
        return None
    out = set()
    for key in restr[column]:
        if key == "00000000-0000-0000-0000-000000000000":
            out.add(-1 if offset else 0)
            continue
        found = resolve(key)
        if found and found[0] == kind:
            out.add(found[1] - offset)
    return out


class _VirtualTable(Table):
    kind = "virtual"
    keyed = False
    indexed = frozenset({"Номенклатура_Key"})

    def __init__(self, ds: Dataset, p: Profile, set_name: str, function: str, params: dict[str, str]) -> None:
        self.ds = ds
        self.profile = p
        self.set_name = set_name
        self.function = function
        self.name = f"{set_name}_{function}"
        self._params_key = tuple(sorted(params.items()))
        self.condition = parse_condition(params["Condition"]) if params.get("Condition") else None
        self.restr: dict[str, frozenset[Any]] | None = None
        self.residual: Callable[[Any], bool] | None = None

    def _pushdown(self, columns: set[str]) -> None:
        if self.condition is None:
            return
        self.restr, exact = restrictions(self.condition, columns)
        if not exact:
            self.residual = compile_filter(self.condition, DictContext())

    @property
    def cache_key(self) -> tuple[Any, ...]:
        return (self.name, self._params_key, self.ds.catalog_version)

    def groups(self, i: int) -> list[int]:
        raise NotImplementedError

    def _ids(self, products: Sequence[int]) -> Sequence[int]:
        out: list[int] = []
        for i in products:
            base = i * RID_SPAN
            out.extend(base + g for g in self.groups(i))
        return out

    def rids(self) -> Sequence[int]:
        return self._ids(_products(self.ds, self.restr))

    def candidates(self, restr: dict[str, frozenset[Any]]) -> Sequence[int] | None:
        if "Номенклатура_Key" in restr:
            allowed = set(_products(self.ds, restr))
            return self._ids([i for i in _products(self.ds, self.restr) if i in allowed]
                             if self.restr else sorted(allowed))
        return None


class SliceTable(_VirtualTable):
    """SliceLast / SliceFirst over a price register: one row per (product, characteristic, type)."""

    def __init__(self, ds: Dataset, p: Profile, reg: PriceRegister, function: str, params: dict[str, str]) -> None:
        super().__init__(ds, p, reg.entity_set, function, params)
        self.reg = reg
        self.type_key = f"{reg.type_dim}_Key"
        self.period = parse_period("Period", params["Period"]) if params.get("Period") else None
        self.fields = price_register_fields(reg, p)
        self.natural = ("Номенклатура_Key", "Характеристика_Key", self.type_key)
        self._pushdown({"Номенклатура_Key", "Характеристика_Key", self.type_key})
        self.types = _index_set(self.restr, self.type_key, Kind.PRICE_TYPE)
        self.chars = _index_set(self.restr, "Характеристика_Key", Kind.CHARACTERISTIC, offset=0)
        self._last: tuple[int, dict[tuple[int, int], tuple[Any, ...]]] = (-1, {})

    def rids(self) -> Sequence[int]:
        """One hash per untouched product decides whether it has a row (no record generation)."""
        ds = self.ds
        products = _products(ds, self.restr)
        if not (self.residual is None and self.function == "SliceLast" and not self.reg.legacy
                and (self.chars is None or 0 in self.chars)):
            return self._ids(products)
        special = set(ds._price_over) | {ds.char_product, ds.future_product}
        need_start = self.period is not None and self.period < PRICE_START + PRICE_START_SPAN * DAY
        retail = self.types is None or 0 in self.types
        wholesale = self.types is None or 1 in self.types
        salt = ds._salt
        out = array("q")
        for i in products:
            if i in special or need_start:
                out.extend(i * RID_SPAN + g for g in self.groups(i))
                continue
            roll = (mix(salt + i) >> 30) & 1023
            if roll < 31:
                continue
            if retail:
                out.append(i * RID_SPAN)
            if wholesale and roll >= 51:
                out.append(i * RID_SPAN + 1)
        return out

    def _slice(self, i: int) -> dict[tuple[int, int], tuple[Any, ...]]:
        records = price_records(self.ds, self.reg, i)
        if self.types is not None:
            records = [r for r in records if r[1] in self.types]
        if self.chars is not None:
            records = [r for r in records if r[2] in self.chars]
        if self.residual is not None:
            residual = self.residual
            records = [r for r in records if residual(price_record_row(self.ds, self.reg, self.profile, i, r))]
        if self.function == "SliceLast":
            return self.ds.slice_last(records, self.period)
        return self.ds.slice_first(records, self.period)

    def groups(self, i: int) -> list[int]:
        ds = self.ds
        if (self.residual is None and self.function == "SliceLast" and not self.reg.legacy
                and i not in ds._price_over and i != ds.char_product and i != ds.future_product):
            f = ds.facts(i)
            if f.no_price or (self.period is not None and self.period < ds.price_start(f)):
                return []
            if self.chars is not None and 0 not in self.chars:
                return []
            types = (0,) if f.no_wholesale else (0, 1)
            return [t for t in types if self.types is None or t in self.types]
        return sorted(c * 4 + t for (t, c) in self._slice(i))

    def row(self, rid: int) -> dict[str, Any]:
        i, g = divmod(rid, RID_SPAN)
        if self._last[0] != i:
            self._last = (i, self._slice(i))
        rec = self._last[1][(g % 4, g // 4)]
        return price_record_row(self.ds, self.reg, self.profile, i, rec)


class StockTable(_VirtualTable):
    """Balance / Turnovers / BalanceAndTurnovers over the stock register."""

    def __init__(self, ds: Dataset, p: Profile, reg: StockRegister, function: str, params: dict[str, str]) -> None:
        super().__init__(ds, p, reg.name, function, params)
        self.reg = reg
        self.wh_key = f"{reg.warehouse_dim}_Key"
        self.period = parse_period("Period", params["Period"]) if params.get("Period") else None
        self.start = parse_period("StartPeriod", params["StartPeriod"]) if params.get("StartPeriod") else None
        self.end = parse_period("EndPeriod", params["EndPeriod"]) if params.get("EndPeriod") else None
        self.dims = _dimensions(params.get("Dimensions"), reg.dims)
        if function == "Balance":
            self.suffixes = ("Balance",)
        elif function == "Turnovers":
            self.suffixes = ("Receipt", "Expense", "Turnover")
        else:
            self.suffixes = ("OpeningBalance", "Receipt", "Expense", "Turnover", "ClosingBalance")
        self.fields = (
            *(Field(f"{d}_Key", "Edm.Guid", p.warehouses if d == reg.warehouse_dim else DIM_TARGETS.get(d))
              for d in self.dims),
            *(Field(f"{r}{s}", N) for r in reg.resources for s in self.suffixes),
        )
        self.natural = tuple(f"{d}_Key" for d in self.dims)
        self._pushdown({"Номенклатура_Key", "Характеристика_Key", self.wh_key})
        self.whs = _index_set(self.restr, self.wh_key, Kind.WAREHOUSE)
        self.chars = _index_set(self.restr, "Характеристика_Key", Kind.CHARACTERISTIC, offset=0)
        self.by_product = "Номенклатура" in self.dims
        self.keep_char = "Характеристика" in self.dims
        self.keep_wh = reg.warehouse_dim in self.dims
        self._eager: list[dict[str, Any]] | None = None
        self._last: tuple[int, dict[int, list[float]]] = (-1, {})
        if not self.by_product:
            self.indexed = frozenset()

    def _records(self, i: int) -> list[tuple[Any, ...]]:
        records = self.ds.stock_records(i)
        if self.whs is not None:
            records = [r for r in records if r[2] in self.whs]
        if self.chars is not None:
            records = [r for r in records if r[1] in self.chars]
        if self.residual is not None:
            residual = self.residual
            records = [r for r in records if residual(self._record_view(i, r))]
        return records

    def _record_view(self, i: int, r: tuple[Any, ...]) -> dict[str, Any]:
        view: dict[str, Any] = {f"{d}_Key": stock_dim_value(d, i, r[1], r[2]) for d in self.reg.dims}
        view["Period"] = from_seconds(r[0])
        view["RecordType"] = "Expense" if min(r[3], r[4]) < 0 else "Receipt"
        return view

    def _values(self, i: int) -> dict[int, list[float]]:
        """group → resource values in field order, zero groups dropped."""
        n_res = len(self.reg.resources)
        acc: dict[int, list[float]] = {}
        width = len(self.suffixes)
        for period, c, w, qty, reserve, _rec, _line in self._records(i):
            g = (c if self.keep_char else 0) * 64 + (w if self.keep_wh else 0)
            slot = acc.setdefault(g, [0.0] * (n_res * width))
            for k, delta in enumerate((qty, reserve)[:n_res]):
                base = k * width
                if self.function == "Balance":
                    if self.period is None or period <= self.period:
                        slot[base] += delta
                    continue
                before = self.start is not None and period < self.start
                after = self.end is not None and period > self.end
                if self.function == "BalanceAndTurnovers":
                    if before:
                        slot[base] += delta
                    elif not after:
                        slot[base + (1 if delta > 0 else 2)] += abs(delta)
                        slot[base + 3] += delta
                    if not after:
                        slot[base + 4] += delta
                elif not before and not after:
                    slot[base + (0 if delta > 0 else 1)] += abs(delta)
                    slot[base + 2] += delta
        out = {}
        for g, values in acc.items():
            values = [round(v, 3) for v in values]
            if any(values):
                out[g] = values
        return out

    def groups(self, i: int) -> list[int]:
        ds = self.ds
        if (self.function == "Balance" and self.residual is None and i not in ds._stock_over
                and i != ds.char_product):
            f = ds.facts(i)
            if f.no_stock:
                return []
            _h, first, mask = ds.stock_layout(f)
            if self.period is not None and self.period < first:
                return []
            if self.chars is not None and 0 not in self.chars:
                return []
            whs = [w for w in range(len(vocab.WAREHOUSES)) if mask >> w & 1 and (self.whs is None or w in self.whs)]
            if not whs:
                return []
            return whs if self.keep_wh else [0]
        return sorted(self._values(i))

    def _row(self, i: int, g: int, values: list[float]) -> dict[str, Any]:
        c, w = divmod(g, 64)
        row: dict[str, Any] = {f"{d}_Key": stock_dim_value(d, i, c, w) for d in self.dims}
        for f, v in zip(self.fields[len(self.dims):], values, strict=True):
            row[f.name] = v
        return row

    def row(self, rid: int) -> dict[str, Any]:
        if not self.by_product:
            return self._materialized()[rid]
        i, g = divmod(rid, RID_SPAN)
        if self._last[0] != i:
            self._last = (i, self._values(i))
        return self._row(i, g, self._last[1][g])

    def _materialized(self) -> list[dict[str, Any]]:
        """Dimensions without Номенклатура: aggregate everything once (few rows)."""
        if self._eager is None:
            totals: dict[int, list[float]] = {}
            for i in _products(self.ds, self.restr):
                for g, values in self._values(i).items():
                    acc = totals.setdefault(g, [0.0] * len(values))
                    for k, v in enumerate(values):
                        acc[k] += v
            rows = []
            for g in sorted(totals):
                values = [round(v, 3) for v in totals[g]]
                if any(values):
                    rows.append(self._row(0, g, values))
            self._eager = rows
        return self._eager

    def rids(self) -> Sequence[int]:
        if not self.by_product:
            return range(len(self._materialized()))
        ds = self.ds
        products = _products(ds, self.restr)
        if not (self.function == "Balance" and self.residual is None and (self.chars is None or 0 in self.chars)):
            return self._ids(products)
        special = set(ds._stock_over) | {ds.char_product, ds.future_product}
        need_start = self.period is not None and self.period < STOCK_START + STOCK_START_SPAN * DAY
        whs = [w for w in range(len(vocab.WAREHOUSES)) if self.whs is None or w in self.whs]
        salt = ds._salt
        out = array("q")
        for i in products:
            if i in special or need_start:
                out.extend(i * RID_SPAN + g for g in self.groups(i))
                continue
            h = mix(salt + i)
            if ((h >> 40) & 1023) < 102:  # no stock at all
                continue
            mask = ds.stock_layout(h)[2]
            present = [w for w in whs if mask >> w & 1]
            if not present:
                continue
            base = i * RID_SPAN
            if self.keep_wh:
                out.extend(base + w for w in present)
            else:
                out.append(base)
        return out

    def candidates(self, restr: dict[str, frozenset[Any]]) -> Sequence[int] | None:
        return super().candidates(restr) if self.by_product else None


def build(ds: Dataset, p: Profile, set_name: str, kind: str, reg: Any, function: str,
          params: dict[str, str]) -> Table:
    """The virtual table `function(params)` of a register, validating binding and parameters."""
    if kind == "price":
        if function not in INFO_FUNCTIONS:
            raise ODataError(400, "6", f"Лишние сегменты в URL: функция {function} не применима к {set_name}")
        check_params(function, params)
        return SliceTable(ds, p, reg, function, params)
    if function not in ACCUM_FUNCTIONS:
        raise ODataError(400, "6", f"Лишние сегменты в URL: функция {function} не применима к {set_name}")
    check_params(function, params)
    return StockTable(ds, p, reg, function, params)

