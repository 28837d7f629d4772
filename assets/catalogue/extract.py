"""Extract the 1C catalogue, prices and stock into staging batches, page by page.

Plain functions over an `OneCClient`, a `MappingProfile` and the `Database`; the Dagster assets
call them. A failed extract leaves no rows behind (the batch is marked failed and emptied).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError

from resources.onec.client import OneCClient, empty_to_none, guid_literal
from resources.onec.errors import OneCBadResponse, OneCConfigError
from resources.onec.profile import MappingProfile, ProductFields, ReferenceSection
from resources.store.database import Database
from resources.store.schema import raw_catalogue, raw_prices, raw_reference, raw_stock_totals
from resources.store.search.document import ident_search_key, search_text_of_keys

from .staging import RowBuffer, complete_batch, fail_batch, insert_rows, open_batch

logger = logging.getLogger("integrations.onec")

ISO_4217_NUMERIC = {
    "398": "KZT", "643": "RUB", "840": "USD", "978": "EUR", "156": "CNY", "417": "KGS", "860": "UZS",
    "933": "BYN", "051": "AMD", "944": "AZN", "981": "GEL", "972": "TJS", "934": "TMT", "826": "GBP",
    "392": "JPY", "949": "TRY", "356": "INR", "784": "AED",
}


@dataclass
class ExtractResult:
    kind: str
    batch_id: int
    rows: int
    pages: int = 0
    seconds: float = 0.0
    note: dict[str, Any] = field(default_factory=dict)


def currency_letters(code: str | None, description: str | None) -> str | None:
    """ISO letters from `Catalog_Валюты`: the numeric `Code` first, `Description` only as a fallback."""
    numeric = (code or "").strip()
    if numeric.isdigit():
        return ISO_4217_NUMERIC.get(numeric.zfill(3))
    desc = (description or "").strip().upper()
    return desc if len(desc) == 3 and desc.isascii() and desc.isalpha() else None


def _field(item: dict[str, Any], name: str, entity_set: str) -> Any:
    try:
        return item[name]
    except KeyError:
        raise OneCBadResponse(
            f"1C: {entity_set} rows have no field {name!r}: check the mapping profile's field names "
            f"against this base's $metadata") from None


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _staged(db: Database, kind: str, work: Callable[[int], ExtractResult]) -> ExtractResult:
    batch_id = open_batch(db, kind)
    started = time.perf_counter()
    try:
        result = work(batch_id)
    except BaseException as exc:
        fail_batch(db, batch_id, f"{type(exc).__name__}: {exc}")
        raise
    result.seconds = time.perf_counter() - started
    complete_batch(db, batch_id, result.rows, result.note)
    logger.info("1C %s extract: %d rows in %d pages, %.2fs", kind, result.rows, result.pages, result.seconds)
    return result


# The pages each extract reads, as requests only: the benchmark's fetch-only floor reads exactly these.

def reference_pages(client: OneCClient, section: ReferenceSection, page_size: int) -> Iterator[list[dict[str, Any]]]:
    f = section.fields
    select = [f.ref, f.name] + [x for x in (f.code, f.ratio, f.currency, f.deletion_mark) if x]
    return client.iter_pages(section.entity_set, page_size=page_size, select=select)


def group_pages(client: OneCClient, profile: MappingProfile, page_size: int) -> Iterator[list[dict[str, Any]]]:
    f = profile.products.fields
    return client.iter_pages(profile.products.entity_set, page_size=page_size, select=[f.ref, f.name, f.parent],
                             filter_=f"{f.is_folder} eq true")


def product_pages(client: OneCClient, profile: MappingProfile, page_size: int) -> Iterator[list[dict[str, Any]]]:
    f = profile.products.fields
    select = [f.ref, f.data_version, f.deletion_mark, f.parent, f.code, f.article, f.name]
    if f.unit:
        select.append(f.unit)
    return client.iter_pages(profile.products.entity_set, page_size=page_size, select=select,
                             filter_=f"{f.is_folder} eq false")


def price_pages(client: OneCClient, profile: MappingProfile, price_type_ref: str,
                page_size: int) -> Iterator[list[dict[str, Any]]]:
    """`SliceLast` of one price type as of now (server time zone)."""
    section = profile.prices
    f = section.fields
    path = client.virtual_table_path(section.register_name, section.function, Period=client.server_now(),
                                     Condition=f"'{f.price_type} eq {guid_literal(price_type_ref)}'")
    select = [f.product, f.price] + [x for x in (f.package, f.characteristic) if x]
    return client.iter_pages(section.register_name, page_size=page_size, select=select, path=path,
                             orderby=",".join(select[:1] + select[2:]))


def stock_pages(client: OneCClient, profile: MappingProfile, page_size: int) -> Iterator[list[dict[str, Any]]]:
    """One `Balance` as of now over the profile's dimensions."""
    section = profile.stock
    f = section.fields
    path = client.virtual_table_path(section.register_name, section.function, Period=client.server_now(),
                                     Dimensions=section.dimensions_param)
    return client.iter_pages(section.register_name, page_size=page_size, path=path,
                             select=[f.product, f.warehouse, f.quantity], orderby=f"{f.product},{f.warehouse}")


def _reference_rows(client: OneCClient, section: ReferenceSection, page_size: int) -> Iterator[dict[str, Any]]:
    f = section.fields
    for page in reference_pages(client, section, page_size):
        for item in page:
            yield {
                "ref": _field(item, f.ref, section.entity_set),
                "name": (item.get(f.name) or "").strip(),
                "code": str(item.get(f.code) or "").strip() if f.code else None,
                "ratio": item.get(f.ratio) if f.ratio else None,
                "currency": empty_to_none(item.get(f.currency)) if f.currency else None,
                "deletion_mark": bool(item.get(f.deletion_mark)) if f.deletion_mark else False,
            }


def _stage_reference(db: Database, batch_id: int, kind: str, rows: Iterable[dict[str, Any]],
                     extra_key: str | None = None) -> list[dict[str, Any]]:
    rows = list(rows)
    insert_rows(db, raw_reference, [
        {"batch_id": batch_id, "kind": kind, "ref": r["ref"], "code": r.get("code"), "name": r["name"],
         "parent": r.get("parent"), "extra": None if extra_key is None or r.get(extra_key) is None
         else str(r[extra_key])}
        for r in rows])
    return rows


_CATALOGUE_COLUMNS = ["batch_id", "ref", "data_version", "deletion_mark", "parent", "code", "article", "name", "unit",
                      "article_key", "code_key", "search_text"]


def first_choice_sku(ref: str, article: str | None, code: str | None, rule: list[str]) -> str:
    """The SKU before collisions are known: the first non-empty source of `sku_rule`, else the
    1C ref (no strip, no collision checks; the candidate's SQL `CASE` is its twin)."""
    for source in rule:
        value = article if source == "article" else code
        if value:
            return value
    return ref


def _catalogue_row(batch_id: int, item: dict[str, Any], f: ProductFields, es: str, rule: list[str],
                   groups: dict[str, str]) -> tuple[Any, ...]:
    """One staged product (in `_CATALOGUE_COLUMNS` order), with its search pieces and its search
    text for the first-choice SKU: computed here, page by page, while 1C still sends pages, so the
    candidate step copies them after the last page."""
    ref = _field(item, f.ref, es)
    code = str(_field(item, f.code, es) or "").strip()
    article = str(item.get(f.article) or "").strip()
    name = " ".join(str(_field(item, f.name, es) or "").split())
    parent = empty_to_none(item.get(f.parent))
    sku = first_choice_sku(ref, article, code, rule)
    article_key, code_key = ident_search_key(article), ident_search_key(code)
    sku_key = article_key if sku == article else code_key if sku == code else ident_search_key(sku)
    # = document.search_text(name or sku, sku, article or None, code, None, group), keys reused
    text = search_text_of_keys(name or sku, groups.get(parent) if parent else None, (sku_key, article_key, code_key))
    return (batch_id, ref, item.get(f.data_version), bool(_field(item, f.deletion_mark, es)),
            parent, code, article, name, empty_to_none(item.get(f.unit)) if f.unit else None,
            article_key, code_key, text)


def extract_catalogue(client: OneCClient, profile: MappingProfile, db: Database, page_size: int) -> ExtractResult:
    """Products (non-folders), their groups and units into a `catalogue` batch."""
    section = profile.products
    f = section.fields
    client.check_entity_sets(profile.entity_sets())

    def work(batch_id: int) -> ExtractResult:
        groups = _stage_reference(db, batch_id, "group", (
            {"ref": g[f.ref], "name": (g.get(f.name) or "").strip(), "parent": empty_to_none(g.get(f.parent))}
            for page in group_pages(client, profile, page_size) for g in page))
        group_names = {g["ref"]: g["name"] for g in groups}
        rule = list(section.sku_rule)
        if profile.units:
            _stage_reference(db, batch_id, "unit", _reference_rows(client, profile.units, page_size), "ratio")
        rows = pages = 0
        es = section.entity_set
        staged = RowBuffer(db, raw_catalogue, _CATALOGUE_COLUMNS)
        for page in product_pages(client, profile, page_size):
            staged.add([_catalogue_row(batch_id, item, f, es, rule, group_names) for item in page])
            rows += len(page)
            pages += 1
        staged.flush()
        return ExtractResult("catalogue", batch_id, rows, pages, note={"profile": profile.profile})

    return _staged(db, "catalogue", work)


def resolve_price_type(client: OneCClient, profile: MappingProfile, name: str, page_size: int) -> dict[str, Any]:
    """The configured price type by name (trimmed, case-folded); a clear error when absent."""
    types = list(_reference_rows(client, profile.price_types, page_size))
    matches = [t for t in types if _norm(t["name"]) == _norm(name)]
    live = [t for t in matches if not t["deletion_mark"]] or matches
    if not live:
        names = ", ".join(sorted({t["name"] for t in types})) or "none"
        raise OneCConfigError(f"1C price type {name!r} not found in {profile.price_types.entity_set} "
                              f"(available: {names}): set integrations.onec.price_type")
    return live[0]


def extract_prices(client: OneCClient, profile: MappingProfile, db: Database, price_type: str,
                   page_size: int) -> ExtractResult:
    """Current prices of one price type (`SliceLast` as of now) into a `prices` batch."""
    section = profile.prices
    f = section.fields

    def work(batch_id: int) -> ExtractResult:
        ptype = resolve_price_type(client, profile, price_type, page_size)
        currencies = {c["ref"]: c for c in _reference_rows(client, profile.currencies, page_size)}
        cur = currencies.get(ptype["currency"] or "")
        letters = currency_letters(cur["code"], cur["name"]) if cur else None
        if cur and letters is None:
            logger.warning("1C currency %r (code %r) has no ISO 4217 mapping", cur["name"], cur["code"])
        _stage_reference(db, batch_id, "price_type", [{**ptype, "code": letters}])
        rows = pages = 0
        es = section.register_name
        staged = RowBuffer(db, raw_prices, ["batch_id", "product", "package", "characteristic", "price"])
        for page in price_pages(client, profile, ptype["ref"], page_size):
            staged.add([(
                batch_id,
                _field(item, f.product, es),
                empty_to_none(item.get(f.package)) if f.package else None,
                empty_to_none(item.get(f.characteristic)) if f.characteristic else None,
                float(_field(item, f.price, es) or 0),
            ) for item in page])
            rows += len(page)
            pages += 1
        staged.flush()
        return ExtractResult("prices", batch_id, rows, pages,
                             note={"price_type": ptype["name"], "price_type_ref": ptype["ref"], "currency": letters})

    return _staged(db, "prices", work)


def resolve_warehouses(all_warehouses: list[dict[str, Any]], wanted: list[str], entity_set: str) -> set[str] | None:
    """Refs of the configured warehouse names, or None for "all"; unknown names are an error."""
    if not wanted:
        return None
    by_name = {_norm(w["name"]): w["ref"] for w in all_warehouses}
    missing = [n for n in wanted if _norm(n) not in by_name]
    if missing:
        names = ", ".join(sorted(w["name"] for w in all_warehouses)) or "none"
        raise OneCConfigError(f"1C warehouses {missing} not found in {entity_set} (available: {names}): "
                              "fix integrations.onec.warehouses")
    return {by_name[_norm(n)] for n in wanted}


class StockStager:
    """Stage Balance rows per product, summed per warehouse name, page by page.

    1C returns Balance ordered by product (`stock_pages` asks for it), so a product is complete
    once the next one starts: only the last product of a page waits for the next page. Rows of a
    product that come back apart hit the batch's primary key and fail the extract by name."""

    def __init__(self, db: Database, batch_id: int, register: str) -> None:
        self.db, self.batch_id, self.register = db, batch_id, register
        self._staged = RowBuffer(db, raw_stock_totals, ["batch_id", "product", "total", "detail"])
        self._product: str | None = None
        self._by_name: dict[str, float] = {}

    def add(self, rows: Iterable[tuple[str, str, float]]) -> None:
        """(product, warehouse name, quantity) rows in 1C order."""
        totals: list[tuple[Any, ...]] = []
        for product, name, quantity in rows:
            if product != self._product:
                self._drain(totals)
                self._product = product
            self._by_name[name] = self._by_name.get(name, 0.0) + quantity
        self._insert(totals)

    def finish(self) -> None:
        totals: list[tuple[Any, ...]] = []
        self._drain(totals)
        self._insert(totals, flush=True)

    def _drain(self, totals: list[tuple[Any, ...]]) -> None:
        if not self._by_name:
            return
        by_name = {name: self._by_name[name] for name in sorted(self._by_name)}  # the order SQL sums in
        total = 0.0
        for qty in by_name.values():
            total += qty
        totals.append((self.batch_id, self._product, total,
                       json.dumps(by_name, ensure_ascii=False, separators=(",", ":"))))
        self._by_name = {}

    def _insert(self, totals: list[tuple[Any, ...]], flush: bool = False) -> None:
        try:
            self._staged.add(totals)
            if flush:
                self._staged.flush()
        except IntegrityError:
            raise OneCBadResponse(
                f"1C: {self.register} Balance rows of one product came back apart (not next to each other): "
                "the server did not honour $orderby by product, so stock cannot be summed page by page") from None


def extract_stock(client: OneCClient, profile: MappingProfile, db: Database, warehouses: list[str],
                  page_size: int) -> ExtractResult:
    """Current balances over the configured warehouses (`Balance` as of now) into a `stock` batch:
    warehouse refs resolved to names (an unknown ref stays a ref) and summed per product and name."""
    section = profile.stock
    f = section.fields

    def work(batch_id: int) -> ExtractResult:
        all_wh = _stage_reference(db, batch_id, "warehouse",
                                  _reference_rows(client, profile.warehouses, page_size))
        included = resolve_warehouses(all_wh, warehouses, profile.warehouses.entity_set)
        names = {w["ref"]: w["name"] for w in all_wh}
        es = section.register_name
        stager = StockStager(db, batch_id, es)
        rows = pages = 0
        for page in stock_pages(client, profile, page_size):
            batch: list[tuple[str, str, float]] = []
            for item in page:
                wh = _field(item, f.warehouse, es)
                if included is not None and wh not in included:
                    continue
                batch.append((_field(item, f.product, es), names.get(wh, wh), float(_field(item, f.quantity, es) or 0)))
            stager.add(batch)
            rows += len(batch)
            pages += 1
        stager.finish()
        return ExtractResult("stock", batch_id, rows, pages,
                             note={"warehouses": warehouses or "all"})

    return _staged(db, "stock", work)
