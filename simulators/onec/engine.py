"""Query execution: `$filter` + `$orderby` over a table, cached per query and data version.

Clients page with `$orderby=Ref_Key&$top=N&$skip=k` (catalogues) or `$orderby=Номенклатура_Key,…`
(virtual tables). The first page computes the full ordered id list once; later pages slice the
cached list, so each page costs O(page) even at 1M products. Any change to the data bumps the
version in the cache key. Equality filters on the key column (`Ref_Key eq guid'…' or …`) become
direct lookups instead of scans.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from simulators.onec.errors import ODataError
from simulators.onec.query import (
    MISSING,
    compile_filter,
    parse_filter,
    parse_orderby,
    restrictions,
    sort_key,
)
from simulators.onec.tables import RID_SPAN, Registry, Table


class TableContext:
    """Resolves property paths of filters and `$orderby` against a table (one hop through refs)."""

    def __init__(self, table: Table, registry: Registry) -> None:
        self.table = table
        self.registry = registry

    def getter(self, path: tuple[str, ...]) -> Callable[[Any], Any] | None:
        if len(path) == 1:
            name = path[0]
            fmap = self.table.field_map()
            if name.endswith("_Key") and name[:-4] in fmap and fmap[name[:-4]].composite:
                # reported for 1C: `Recorder_Key eq guid'…'` is a 400, only `Recorder eq cast(…)` works
                raise ODataError(400, "14", f"Свойство \"{name}\" не найдено; для составного типа используйте "
                                 f"{name[:-4]} eq cast(guid'…','<Тип>')")
            return self.table.getter(name)
        if len(path) == 2:
            ref = self.table.field_map().get(f"{path[0]}_Key")
            key_of = self.table.getter(f"{path[0]}_Key")
            if ref is None or key_of is None or not ref.target:
                return None
            target = self.registry.table(ref.target)
            if target is None or target.getter(path[1]) is None:
                return None
            registry, prop = self.registry, path[1]

            def through(rid: Any) -> Any:
                hit = registry.lookup(key_of(rid))
                if hit is None:
                    return None
                get = hit[0].getter(prop)
                return get(hit[1]) if get else MISSING

            return through
        return None


class QueryEngine:
    """Evaluates filter/order for a table and keeps the resulting id lists in an LRU cache."""

    def __init__(self, registry: Registry, max_entries: int = 48) -> None:
        self.registry = registry
        self.max_entries = max_entries
        self._cache: OrderedDict[tuple[Any, ...], Sequence[int]] = OrderedDict()
        self._tables: OrderedDict[tuple[Any, ...], Table] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        self._cache.clear()
        self._tables.clear()

    def cached_table(self, key: tuple[Any, ...], build: Callable[[], Table]) -> Table:
        """Virtual tables are objects with their own lazily filled state; reuse them per key."""
        table = self._tables.get(key)
        if table is None:
            table = build()
            self._tables[key] = table
            while len(self._tables) > self.max_entries:
                self._tables.popitem(last=False)
        else:
            self._tables.move_to_end(key)
        return table

    def rids(self, table: Table, filter_text: str | None, orderby_text: str | None) -> Sequence[int]:
        """Row ids matching the filter, in the requested (else natural) order."""
        key = (table.cache_key, filter_text or "", orderby_text or "")
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            self.hits += 1
            return hit
        self.misses += 1
        order = parse_orderby(orderby_text)
        ids = self._filtered(table, filter_text)
        ids = self._ordered(table, ids, order)
        if not isinstance(ids, range | array):
            ids = array("q", ids)
        self._cache[key] = ids
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return ids

    def _filtered(self, table: Table, filter_text: str | None) -> Sequence[int]:
        if not filter_text or not filter_text.strip():
            return table.rids()
        ast = parse_filter(filter_text)
        restr, exact = restrictions(ast, table.indexed)
        base = table.candidates(restr) if restr else None
        if base is not None and exact and restr is not None and len(restr) == 1:
            return base
        if base is None:
            base = table.rids()
        predicate = compile_filter(ast, TableContext(table, self.registry))
        return [r for r in base if predicate(r)]

    def _ordered(self, table: Table, ids: Sequence[int],
                 order: list[tuple[tuple[str, ...], bool]]) -> Sequence[int]:
        if not order:
            return ids
        paths = [(p[0] if len(p) == 1 else None) for p, _asc in order]
        natural = list(table.natural)
        for p in paths:
            if p is not None and table.getter(p) is None:
                raise ODataError(400, "14", f"Свойство \"{p}\" не найдено у \"{table.name}\" ($orderby)")
        if all(asc for _p, asc in order) and None not in paths:
            if paths == natural[: len(paths)]:
                return ids
            if natural == ["Ref_Key"] and paths[0] == "Ref_Key" and table.keyed:
                return ids  # Ref_Key is unique: later keys never matter
        ctx = TableContext(table, self.registry)
        getters = []
        for path, asc in order:
            get = ctx.getter(path)
            if get is None:  # e.g. $orderby=Ref_Key on a virtual table, which has no Ref_Key
                raise ODataError(400, "14", f"Свойство \"{'/'.join(path)}\" не найдено у \"{table.name}\" ($orderby)")
            getters.append((get, asc))
        per_product = table.kind in ("register", "virtual") and natural[:1] == ["Номенклатура_Key"] and (
            paths[0] == "Номенклатура_Key" and order[0][1])
        if per_product:
            return _group_sort(ids, getters[1:])
        out = list(ids)
        for get, asc in reversed(getters):
            out.sort(key=lambda r, g=get: sort_key(g(r)), reverse=not asc)
        return out


def _group_sort(ids: Sequence[int], getters: list[tuple[Callable[[Any], Any], bool]]) -> list[int]:
    """Sort inside each product's run of rows only (rows are already grouped by product)."""
    out: list[int] = []
    run: list[int] = []
    current = -1

    def flush() -> None:
        if len(run) > 1:
            for get, asc in reversed(getters):
                run.sort(key=lambda r, g=get: sort_key(g(r)), reverse=not asc)
        out.extend(run)

    for rid in ids:
        group = rid // RID_SPAN
        if group != current:
            flush()
            run = [rid]
            current = group
        else:
            run.append(rid)
    flush()
    return out
