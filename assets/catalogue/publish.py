"""Swap a checked candidate into `products` / `product_stock` in one transaction.

The bot reads `products` at any moment; it must see the old catalogue or the new one, never a
mix. Only changed rows are rewritten (mapped columns and per-warehouse stock compared, see
`SAME_CONTENT`); products that vanished from 1C become inactive (never deleted); `synced_at` of
every confirmed row moves to this sync's time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, text, update

from resources.store.database import Database
from resources.store.schema import sync_runs
from resources.store.search.sqlite import idents_from, rebuild_index

from .checks import check_shrink_guard
from .staging import BatchInfo, batch_by_id, utcnow

logger = logging.getLogger("integrations.onec")

_PUBLISHED_COLUMNS = ["sku", "name", "price", "currency", "stock", "is_active", "onec_ref", "code", "article",
                      "unit", "group_name", "barcode", "deletion_mark", "data_version", "content_hash",
                      "search_text"]
VANISHED_HASH = "vanished"
# Bulk path (SQLite): when at least this many rows, and at least half of `products`, are written,
# the per-row search triggers are dropped for the transaction and the index is rebuilt once.
BULK_MIN_ROWS = 5000


class ShrinkGuardError(RuntimeError):
    """The publish would deactivate more of the active catalogue than allowed."""


@dataclass
class PublishResult:
    candidate_id: int
    inserted: int = 0
    updated: int = 0
    deactivated: int = 0
    unchanged: int = 0
    active: int = 0
    total: int = 0
    seconds: float = 0.0
    synced_at: datetime | None = None
    sample: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows_written(self) -> int:
        return self.inserted + self.updated + self.deactivated


def publish_candidate(db: Database, candidate_id: int, *, max_active_drop: float | None = None,
                      sample_size: int = 5, source: str = "onec") -> PublishResult:
    """Publish one candidate; raise `ShrinkGuardError` (and write nothing) when the guard trips."""
    started = time.perf_counter()
    now = utcnow()
    cols = _PUBLISHED_COLUMNS
    c = {"c": candidate_id, "now": now}
    result = PublishResult(candidate_id, synced_at=now)
    run_id = _start_run(db, source, now)
    try:
        with db.write() as conn:
            candidate, stock_batch = _staged_batches(conn, candidate_id)
            if max_active_drop is not None:
                guard = check_shrink_guard(conn, candidate_id, max_active_drop)
                if not guard.passed:
                    raise ShrinkGuardError(guard.description)
            # A first load: every row is new and there is nothing to compare, move, deactivate or
            # confirm (product_stock is empty too: its rows need a product).
            first_load = conn.execute(text("SELECT 1 FROM products LIMIT 1")).first() is None
            # The candidate step guessed each row's mark ('insert' on a first load, else 'same');
            # every mark is checked here against `products` as it is now, under the lock, and only
            # wrong ones are written (a re-sync's few changed rows: rewriting all 100k marks cost
            # ~0.3 s of it).
            mark = "'insert'" if first_load else f"""COALESCE(
                (SELECT CASE WHEN {_same_content(conn.dialect.name)} THEN 'same' ELSE 'update' END
                 FROM products p WHERE p.onec_ref = products_next.onec_ref), 'insert')"""
            differs = "IS NOT" if conn.dialect.name == "sqlite" else "IS DISTINCT FROM"
            conn.execute(text(f"UPDATE products_next SET change = {mark} "
                              f"WHERE candidate_id = :c AND change {differs} {mark}"), c)
            counts = {"insert": candidate.row_count} if first_load else dict(conn.execute(text(
                    "SELECT change, COUNT(*) FROM products_next WHERE candidate_id = :c GROUP BY change"), c).all())
            result.inserted, result.unchanged = counts.get("insert", 0), counts.get("same", 0)
            became_inactive = 0 if first_load else conn.execute(text("""
                SELECT COUNT(*) FROM products_next n JOIN products p ON p.onec_ref = n.onec_ref
                WHERE n.candidate_id = :c AND p.is_active AND NOT n.is_active"""), c).scalar_one()
            result.updated = counts.get("update", 0) - became_inactive
            triggers = _suspend_search_triggers(conn, result.inserted + counts.get("update", 0))
            if not first_load:
                result.deactivated = became_inactive + _clear_the_way(conn, c)
            col_list = ", ".join(cols)
            set_list = ", ".join(f"{col} = excluded.{col}" for col in cols if col != "sku")
            conn.execute(text(f"""
                INSERT INTO products ({col_list}, synced_at, updated_at)
                SELECT {col_list}, :now, :now FROM products_next WHERE candidate_id = :c AND change <> 'same'
                ON CONFLICT (sku) DO UPDATE SET {set_list}, synced_at = excluded.synced_at,
                    updated_at = excluded.updated_at"""), c)
            if not first_load:
                conn.execute(text("""
                    DELETE FROM product_stock WHERE sku IN (
                        SELECT sku FROM products_next WHERE candidate_id = :c AND change <> 'same')"""), c)
            each = ("json_each(t.detail) j" if conn.dialect.name == "sqlite" else
                    "LATERAL json_each_text(CAST(t.detail AS json)) j")
            quantity = "j.value" if conn.dialect.name == "sqlite" else "CAST(j.value AS DOUBLE PRECISION)"
            conn.execute(text(f"""
                INSERT INTO product_stock (sku, warehouse, quantity)
                SELECT n.sku, j.key, {quantity} FROM products_next n
                JOIN raw_stock_totals t ON t.batch_id = :sb AND t.product = n.onec_ref
                CROSS JOIN {each}
                WHERE n.candidate_id = :c AND n.change <> 'same'"""), {**c, "sb": stock_batch})
            if triggers:  # the active products are now exactly the candidate's active rows
                rebuild_index(conn, recompute_text=False, params=c, idents=idents_from(
                    "products_next", "candidate_id = :c AND is_active",
                    {"sku": "sku_ident", "article": "article_ident", "code": "code_ident"}))
                for ddl in triggers:
                    conn.exec_driver_sql(ddl)
            # Confirmation time of every row this sync saw and left alone (the rest was just written);
            # content columns stay untouched.
            if not first_load:
                conn.execute(text("""
                    UPDATE products SET synced_at = :now WHERE synced_at <> :now AND onec_ref IN (
                        SELECT onec_ref FROM products_next WHERE candidate_id = :c AND change = 'same')"""), c)
            result.active, result.total = conn.execute(text(
                "SELECT COALESCE(SUM(CASE WHEN is_active THEN 1 ELSE 0 END), 0), COUNT(*) FROM products")).one()
            if sample_size:
                result.sample = [dict(r) for r in conn.execute(text(
                    "SELECT sku, name, price, currency, stock, is_active FROM products_next "
                    "WHERE candidate_id = :c AND change <> 'same' ORDER BY sku LIMIT :n"),
                    {**c, "n": sample_size}).mappings()]
    except BaseException as exc:
        _finish_run(db, run_id, "blocked" if isinstance(exc, ShrinkGuardError) else "failed",
                    error=f"{type(exc).__name__}: {exc}")
        raise
    result.seconds = time.perf_counter() - started
    _finish_run(db, run_id, "success", result=result)
    logger.info("published candidate %d: +%d ~%d -%d =%d in %.2fs", candidate_id, result.inserted,
                result.updated, result.deactivated, result.unchanged, result.seconds)
    return result


# What a published row must match for the candidate row to count as unchanged: every mapped
# column, and `content_hash`, which keeps what no column shows (the stock per warehouse). 1C's
# DataVersion is left out: it moves on writes to fields this sync does not map.
SAME_CONTENT = ("sku", "name", "price", "currency", "stock", "is_active", "code", "article", "unit", "group_name",
                "barcode", "deletion_mark", "content_hash")


def _same_content(dialect: str) -> str:
    equal = "IS" if dialect == "sqlite" else "IS NOT DISTINCT FROM"  # NULL-safe on both
    return " AND ".join(f"p.{col} {equal} products_next.{col}" for col in SAME_CONTENT)


class StaleCandidateError(RuntimeError):
    """The candidate's staged stock rows are gone (pruned by newer stock extracts)."""


def _staged_batches(conn: Connection, candidate_id: int) -> tuple[BatchInfo, int]:
    """The candidate, and the stock batch it was mapped from, still staged: `product_stock` is
    copied from it.

    On PostgreSQL the batch row is held FOR SHARE until the publish commits: a stock extract that
    completes meanwhile cannot prune it (its prune waits), so the copy never finds it half gone."""
    candidate = batch_by_id(conn, candidate_id)
    if candidate is None or candidate.kind != "candidate" or candidate.status != "complete":
        described = f"{candidate.kind}, {candidate.status}" if candidate else "missing"
        raise StaleCandidateError(f"batch {candidate_id} is not a complete candidate ({described})")
    stock_id = candidate.note.get("batches", {}).get("stock")
    stock = None if stock_id is None else batch_by_id(conn, stock_id, for_share=True)
    if stock is None or stock.status != "complete":
        raise StaleCandidateError(
            f"candidate {candidate_id} was mapped from stock batch {stock_id}, which is no longer staged "
            f"({stock.status if stock else 'missing'}): materialize products_candidate again, then publish")
    return candidate, int(stock_id)


def _clear_the_way(conn: Connection, c: dict[str, Any]) -> int:
    """Before the upsert: drop rows whose SKU changed or moved to another 1C product (so the upsert
    can take the key; stock rows go with them by the foreign key), and deactivate products that
    vanished from 1C (their stock rows go, the product stays). Returns how many vanished."""
    conn.execute(text("""
        DELETE FROM products WHERE onec_ref IN (
            SELECT n.onec_ref FROM products_next n JOIN products p ON p.onec_ref = n.onec_ref
            WHERE n.candidate_id = :c AND n.change = 'update' AND p.sku <> n.sku)"""), c)
    conn.execute(text("""
        DELETE FROM products WHERE sku IN (
            SELECT n.sku FROM products_next n JOIN products p ON p.sku = n.sku
            WHERE n.candidate_id = :c AND n.change <> 'same' AND p.onec_ref <> n.onec_ref)"""), c)
    vanishing = ("is_active AND NOT EXISTS (SELECT 1 FROM products_next n "
                 "WHERE n.candidate_id = :c AND n.onec_ref = products.onec_ref)")
    conn.execute(text(f"DELETE FROM product_stock WHERE sku IN (SELECT sku FROM products WHERE {vanishing})"), c)
    vanished = conn.execute(text(f"""
        UPDATE products SET is_active = false, stock = 0, content_hash = '{VANISHED_HASH}', updated_at = :now
        WHERE {vanishing}"""), c)
    return vanished.rowcount or 0


def _suspend_search_triggers(conn: Connection, written: int) -> list[str]:
    """Drop the FTS triggers of migration 0002 before a large write and return their DDL.

    Per-row index upkeep costs more than one rebuild when most of the table changes (a first
    load). SQLite DDL is transactional: readers see the old index or the new one, and a failed
    publish rolls the drop back with everything else. Returns [] (nothing dropped) otherwise."""
    if conn.dialect.name != "sqlite" or written < BULK_MIN_ROWS:
        return []
    existing = conn.execute(text("SELECT COUNT(*) FROM products")).scalar_one()
    if written * 2 < existing:
        return []
    rows = conn.execute(text(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'products' "
        "AND name LIKE 'products\\_search\\_%' ESCAPE '\\' ORDER BY name")).all()
    for name, _ in rows:
        conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
    return [sql for _, sql in rows]


def _start_run(db: Database, source: str, now: datetime) -> int:
    with db.write() as conn:
        res = conn.execute(insert(sync_runs).values(source=source, started_at=now, status="running", inserted=0,
                                                    updated=0, deactivated=0, unchanged=0, active=0))
        return int(res.inserted_primary_key[0])


def _finish_run(db: Database, run_id: int, status: str, *, result: PublishResult | None = None,
                error: str | None = None) -> None:
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "error": error}
    if result:
        values.update(inserted=result.inserted, updated=result.updated, deactivated=result.deactivated,
                      unchanged=result.unchanged, active=result.active)
    with db.write() as conn:
        conn.execute(update(sync_runs).where(sync_runs.c.id == run_id).values(**values))
