"""Map the staged 1C extracts into the next version of `products` (the candidate).

The candidate lives in `products_next` / `product_stock_next` until the checks pass and the
publish step swaps it in. Mapping rules (reference/onec.md §5, §7): SKU = Артикул, else Code
(collisions fall back along `sku_rule`, then to the 1C ref); price of the configured type per
base unit, null when 1C has none; stock summed over the configured warehouses, 0 when absent.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from resources.onec.profile import MappingProfile
from resources.store.database import Database
from resources.store.schema import product_stock_next, products_next

from .staging import complete_batch, fail_batch, latest_batch, open_batch

logger = logging.getLogger("integrations.onec")
CHUNK = 5000

SearchTextFn = Callable[..., str]


@dataclass
class CandidateResult:
    candidate_id: int
    batches: dict[str, int]
    rows: int = 0
    active: int = 0
    with_price: int = 0
    in_stock: int = 0
    sku_fallbacks: int = 0
    sku_collision_count: int = 0
    sku_collisions: list[dict[str, str]] = field(default_factory=list)  # a sample

    def note_collision(self, entry: dict[str, str]) -> None:
        self.sku_collision_count += 1
        if len(self.sku_collisions) < 20:
            self.sku_collisions.append(entry)


def content_hash(values: tuple[Any, ...]) -> str:
    """A digest of every published column: equal hash ⇒ the row need not be rewritten."""
    return hashlib.md5("\x1f".join("" if v is None else str(v) for v in values).encode()).hexdigest()


def _string_agg(dialect: str, expr: str, sep: str) -> str:
    return f"group_concat({expr}, {sep})" if dialect == "sqlite" else f"string_agg({expr}, {sep})"


def _mapping_sql(dialect: str) -> str:
    detail = _string_agg(dialect, "w.warehouse || :tab || CAST(w.qty AS TEXT)", ":nl")
    ratio = "CAST(pu.extra AS REAL)" if dialect == "sqlite" else "CAST(pu.extra AS DOUBLE PRECISION)"
    order = "c.ref" if dialect == "sqlite" else 'c.ref COLLATE "C"'
    return f"""
    SELECT c.ref, c.code, c.article, c.name, c.deletion_mark, c.data_version,
           g.name AS group_name, u.name AS unit_name, pr.price, st.total AS stock, st.detail AS stock_detail
    FROM raw_catalogue c
    LEFT JOIN raw_reference g ON g.batch_id = :cb AND g.kind = 'group' AND g.ref = c.parent
    LEFT JOIN raw_reference u ON u.batch_id = :cb AND u.kind = 'unit' AND u.ref = c.unit
    LEFT JOIN (
        SELECT p.product,
               COALESCE(MIN(CASE WHEN p.package IS NULL AND p.characteristic IS NULL THEN p.price END),
                        MIN(CASE WHEN p.package IS NULL THEN p.price END),
                        MIN(p.price / CASE WHEN {ratio} > 0 THEN {ratio} ELSE 1 END)) AS price
        FROM raw_prices p
        LEFT JOIN raw_reference pu ON pu.batch_id = :cb AND pu.kind = 'unit' AND pu.ref = p.package
        WHERE p.batch_id = :pb
        GROUP BY p.product
    ) pr ON pr.product = c.ref
    LEFT JOIN (
        SELECT w.product, SUM(w.qty) AS total, {detail} AS detail
        FROM (SELECT s.product, COALESCE(r.name, s.warehouse) AS warehouse, SUM(s.quantity) AS qty
              FROM raw_stock s
              LEFT JOIN raw_reference r ON r.batch_id = :sb AND r.kind = 'warehouse' AND r.ref = s.warehouse
              WHERE s.batch_id = :sb
              GROUP BY s.product, COALESCE(r.name, s.warehouse)) w
        GROUP BY w.product
    ) st ON st.product = c.ref
    WHERE c.batch_id = :cb
    ORDER BY {order}
    """


_DUPLICATE_LOSERS_SQL = """
SELECT ref FROM (
    SELECT ref,
           ROW_NUMBER() OVER (PARTITION BY article ORDER BY deletion_mark, code, ref) AS rn
    FROM raw_catalogue
    WHERE batch_id = :cb AND article <> '' AND article IN (
        SELECT article FROM raw_catalogue WHERE batch_id = :cb AND article <> ''
        GROUP BY article HAVING COUNT(*) > 1)
) ranked WHERE rn > 1
"""


def _parse_stock_detail(detail: str | None) -> list[tuple[str, float]]:
    if not detail:
        return []
    out = []
    for part in detail.split("\n"):
        name, _, qty = part.rpartition("\t")
        out.append((name, float(qty)))
    return sorted(out)


def build_candidate(db: Database, profile: MappingProfile, *, search_text: SearchTextFn | None = None,
                    ) -> CandidateResult:
    """Map the latest complete catalogue, prices and stock batches into a new candidate."""
    with db.read() as conn:
        batches = {k: latest_batch(conn, k) for k in ("catalogue", "prices", "stock")}
    currency = batches["prices"].note.get("currency")
    candidate_id = open_batch(db, "candidate")
    result = CandidateResult(candidate_id, {k: b.id for k, b in batches.items()})
    rule = profile.products.sku_rule
    try:
        params = {"cb": batches["catalogue"].id, "pb": batches["prices"].id, "sb": batches["stock"].id,
                  "tab": "\t", "nl": "\n"}
        with db.read() as conn:
            losers = {r for (r,) in conn.execute(text(_DUPLICATE_LOSERS_SQL), {"cb": params["cb"]})}
            dialect = conn.dialect.name
            rows = conn.execution_options(yield_per=CHUNK).execute(text(_mapping_sql(dialect)), params)
            used: set[str] = set()
            pending: list[tuple[Any, ...]] = []
            pending_stock: list[tuple[Any, ...]] = []
            for r in rows:
                sku = _assign_sku(r, rule, losers, used, result)
                used.add(sku)
                detail = _parse_stock_detail(r.stock_detail)
                stock = float(r.stock or 0.0)
                active = not r.deletion_mark
                values = (sku, r.name, r.price, currency, stock, active, r.code, r.article or None,
                          r.unit_name, r.group_name, None, bool(r.deletion_mark), tuple(detail))
                row = {
                    "candidate_id": candidate_id, "onec_ref": r.ref, "sku": sku, "name": r.name or sku,
                    "price": r.price, "currency": currency, "stock": stock, "is_active": active,
                    "code": r.code, "article": r.article or None, "unit": r.unit_name,
                    "group_name": r.group_name, "barcode": None, "deletion_mark": bool(r.deletion_mark),
                    "data_version": r.data_version, "content_hash": content_hash(values),
                    "search_text": search_text(name=r.name or sku, sku=sku, article=r.article, code=r.code,
                                               barcode=None, group_name=r.group_name) if search_text else None,
                }
                pending.append(tuple(row[c] for c in _NEXT_COLUMNS))
                pending_stock.extend((candidate_id, r.ref, w, q) for w, q in detail)
                result.rows += 1
                result.active += active
                result.with_price += r.price is not None
                result.in_stock += stock > 0
                if len(pending) >= CHUNK:
                    _flush(db, pending, pending_stock)
            _flush(db, pending, pending_stock)
    except BaseException as exc:
        fail_batch(db, candidate_id, f"{type(exc).__name__}: {exc}")
        raise
    complete_batch(db, candidate_id, result.rows, {"batches": result.batches, "currency": currency})
    if result.sku_collision_count:
        logger.warning("%d SKU collisions resolved by fallback, e.g. %s", result.sku_collision_count,
                       result.sku_collisions[:3])
    return result


def _assign_sku(row: Any, rule: list[str], losers: set[str], used: set[str], result: CandidateResult) -> str:
    """First non-empty, unused value along the SKU rule; the 1C ref as the last resort."""
    for i, source in enumerate(rule):
        value = (row.article if source == "article" else row.code) or ""
        value = value.strip()
        if not value:
            continue
        if source == "article" and row.ref in losers:
            result.note_collision({"ref": row.ref, "article": value, "reason": "duplicate article"})
            continue
        if value in used:
            result.note_collision({"ref": row.ref, source: value, "reason": "sku taken"})
            continue
        if i > 0:
            result.sku_fallbacks += 1
        return value
    return row.ref


_NEXT_COLUMNS = [c.name for c in products_next.columns if c.name != "change"]
_STOCK_COLUMNS = [c.name for c in product_stock_next.columns]


def _insert_sql(db: Database, table: str, columns: list[str]) -> str:
    mark = "?" if db.is_sqlite else "%s"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"


def _flush(db: Database, pending: list[tuple[Any, ...]], pending_stock: list[tuple[Any, ...]]) -> None:
    """Driver-level executemany of plain tuples: the candidate is written at bulk-load speed."""
    if not pending:
        return
    with db.write() as conn:
        conn.exec_driver_sql(_insert_sql(db, "products_next", _NEXT_COLUMNS), pending)
        if pending_stock:
            conn.exec_driver_sql(_insert_sql(db, "product_stock_next", _STOCK_COLUMNS), pending_stock)
    pending.clear()
    pending_stock.clear()
