"""Map the staged 1C extracts into the next version of `products` (the candidate).

The candidate lives in `products_next` until the checks pass and the publish step swaps it in
(with `product_stock` copied from the candidate's stock batch). Mapping rules (reference/onec.md §5, §7): SKU = Артикул, else Code
(collisions fall back along `sku_rule`, then to the 1C ref); price of the configured type per
base unit, null when 1C has none; stock summed over the configured warehouses, 0 when absent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text

from resources.onec.profile import MappingProfile
from resources.store.database import Database
from resources.store.search import document

from .extract import first_choice_sku as _first_choice
from .staging import complete_batch, fail_batch, latest_batch, open_batch

logger = logging.getLogger("integrations.onec")

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

def _source_sql(source: str) -> tuple[str, str]:
    """(condition, value) of one `sku_rule` source as the set-based first choice takes it: any
    non-empty value (duplicate-article losers and taken SKUs are fixed after, see `_apply_sku_rule`)."""
    if source == "article":
        return "COALESCE(c.article, '') <> ''", "c.article"
    return "COALESCE(c.code, '') <> ''", "c.code"


def _ident_sql(key: str, source: str) -> str:
    """`document.ident_key` of `source` from its staged search key (`ident_key(source).lower()`):
    uppercasing undoes the lowering only when `source` is ASCII (lowering can also turn a
    non-ASCII letter into an ASCII one, e.g. the Kelvin sign), so for any other value the key is
    NULL (not precomputed) and the publish evaluates the 0002 expression. SQLite only."""
    return f"CASE WHEN length(CAST({source} AS BLOB)) = length({source}) THEN upper({key}) END"


def _candidate_sql(dialect: str, rule: list[str], sql_search: bool) -> str:
    """One INSERT … SELECT for the whole candidate: mapping, first-choice SKU, stock detail, the
    search text and lookup keys the extract precomputed."""
    ratio = "CAST(pu.extra AS REAL)" if dialect == "sqlite" else "CAST(pu.extra AS DOUBLE PRECISION)"
    # Price per product by key: looked up per catalogue row (a grouped join materialised all prices
    # and built a temporary index over them first).
    price = f"""SELECT COALESCE(MIN(CASE WHEN p.package IS NULL AND p.characteristic IS NULL THEN p.price END),
                                MIN(CASE WHEN p.package IS NULL THEN p.price END),
                                MIN(p.price / CASE WHEN {ratio} > 0 THEN {ratio} ELSE 1 END))
                FROM raw_prices p
                LEFT JOIN raw_reference pu ON pu.batch_id = :cb AND pu.kind = 'unit' AND pu.ref = p.package
                WHERE p.batch_id = :pb AND p.product = c.ref"""
    sources = [_source_sql(src) for src in rule]
    sku = "CASE " + " ".join(f"WHEN {cond} THEN {value}" for cond, value in sources) + " ELSE c.ref END"
    # The extract staged the search text for the first-choice SKU; NULL (an older extract, or a
    # SKU the collision rule changes later) is filled in Python.
    search = "m.search_text" if sql_search else "NULL"
    ident_cols = ("NULL, NULL, NULL" if dialect != "sqlite" else
                  f"CASE WHEN m.sku = m.article THEN {_ident_sql('m.article_key', 'm.article')} "
                  f"WHEN m.sku = m.code THEN {_ident_sql('m.code_key', 'm.code')} END, "
                  f"{_ident_sql('m.article_key', 'm.article')}, {_ident_sql('m.code_key', 'm.code')}")
    # `content_hash` keeps what no column of the row shows: the stock per warehouse. The publish
    # compares it together with the columns (see `publish.SAME_CONTENT`).
    stock_json = "COALESCE(m.stock_detail, '')"
    # The change mark is a guess the publish checks: 'insert' on a first load, else 'same' (a
    # re-sync changes few rows). The publish compares every row under its lock and writes only
    # the marks that are wrong, so the guess costs nothing here and saves rewriting each row there.
    return f"""
    INSERT INTO products_next (candidate_id, onec_ref, sku, name, price, currency, stock, is_active, code, article,
                               unit, group_name, barcode, deletion_mark, data_version, content_hash, search_text,
                               sku_ident, article_ident, code_ident, change)
    SELECT :cand, m.ref, m.sku, COALESCE(NULLIF(m.name, ''), m.sku), m.price, :cur, m.stock, NOT m.deletion_mark,
           m.code, NULLIF(m.article, ''), m.unit_name, m.group_name, NULL, m.deletion_mark, m.data_version,
           {stock_json}, {search}, {ident_cols},
           CASE WHEN (SELECT 1 FROM products LIMIT 1) IS NULL THEN 'insert' ELSE 'same' END
    FROM (
        SELECT c.ref, c.code, c.article, c.name, c.deletion_mark, c.data_version, c.article_key,
               c.code_key, c.search_text, g.name AS group_name,
               u.name AS unit_name, ({price}) AS price, COALESCE(st.total, 0.0) AS stock,
               st.detail AS stock_detail,
               {sku} AS sku
        FROM raw_catalogue c
        LEFT JOIN raw_reference g ON g.batch_id = :cb AND g.kind = 'group' AND g.ref = c.parent
        LEFT JOIN raw_reference u ON u.batch_id = :cb AND u.kind = 'unit' AND u.ref = c.unit
        LEFT JOIN raw_stock_totals st ON st.batch_id = :sb AND st.product = c.ref
        WHERE c.batch_id = :cb
    ) m
    """


def build_candidate(db: Database, profile: MappingProfile, *, search_text: SearchTextFn | None = None,
                    ) -> CandidateResult:
    """Map the latest complete catalogue, prices and stock batches into a new candidate.

    Set-based (one INSERT … SELECT per table): only the order-dependent SKU collision rule runs
    in Python, over (ref, article, code), and rewrites the few rows where it differs."""
    with db.read() as conn:
        batches = {k: latest_batch(conn, k) for k in ("catalogue", "prices", "stock")}
    currency = batches["prices"].note.get("currency")
    candidate_id = open_batch(db, "candidate")
    result = CandidateResult(candidate_id, {k: b.id for k, b in batches.items()})
    rule = list(profile.products.sku_rule)
    try:
        params = {"cb": batches["catalogue"].id, "pb": batches["prices"].id, "sb": batches["stock"].id,
                  "cand": candidate_id, "cur": currency}
        # The SKU rule reads only the staged catalogue: it is planned on a reader connection while
        # the writer runs the set-based inserts (Python work beside SQLite work that frees the GIL).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sku-rule") as pool:
            planned = pool.submit(_plan_sku_fixes, db, params, rule, result)
            with db.write() as conn:
                dialect = conn.dialect.name
                conn.execute(text(_candidate_sql(dialect, rule, search_text is document.search_text)), params)
                _apply_sku_fixes(conn, planned.result())
                if search_text is not None:
                    _fill_search_text(conn, candidate_id, search_text)
                counts = conn.execute(text("""
                    SELECT COUNT(*), COALESCE(SUM(CASE WHEN is_active THEN 1 ELSE 0 END), 0),
                           COUNT(price), COALESCE(SUM(CASE WHEN stock > 0 THEN 1 ELSE 0 END), 0)
                    FROM products_next WHERE candidate_id = :cand"""), params).one()
                result.rows, result.active, result.with_price, result.in_stock = (int(v) for v in counts)
    except BaseException as exc:
        fail_batch(db, candidate_id, f"{type(exc).__name__}: {exc}")
        raise
    complete_batch(db, candidate_id, result.rows, {"batches": result.batches, "currency": currency,
                                                   "active": result.active})
    if result.sku_collision_count:
        logger.warning("%d SKU collisions resolved by fallback, e.g. %s", result.sku_collision_count,
                       result.sku_collisions[:3])
    return result


def _plan_sku_fixes(db: Database, params: dict[str, Any], rule: list[str],
                    result: CandidateResult) -> list[dict[str, Any]]:
    """Run the sequential SKU rule (in 1C ref order) over the staged catalogue and return the rows
    where its SKU is not the set-based first choice: a duplicate-article loser, a taken SKU,
    surrounding whitespace. Collisions are noted in `result`."""
    with db.read() as conn:
        losers = {r for (r,) in conn.execute(text(_DUPLICATE_LOSERS_SQL), {"cb": params["cb"]})}
        order = "ref" if conn.dialect.name == "sqlite" else 'ref COLLATE "C"'
        # Streamed, not fetched whole: at 1M products the list alone would cost ~300 MB of RSS.
        rows = conn.execute(text(
            f"SELECT ref, article, code, COALESCE(name, '') = '' FROM raw_catalogue "
            f"WHERE batch_id = :cb ORDER BY {order}").execution_options(yield_per=5000),
            {"cb": params["cb"]}).tuples()
        used: set[str] = set()
        fixes = []
        first_is_article = rule[0] == "article"
        for ref, article, code, no_name in rows:
            value = article if first_is_article else code
            if value and value not in used and value == value.strip() and not (first_is_article and ref in losers):
                used.add(value)  # the common case, inlined: the first source wins, as the SQL took it
                continue
            sku = _assign_sku(ref, article, code, rule, losers, used, result)
            used.add(sku)
            if sku != _first_choice(ref, article, code, rule):
                fixes.append({"cand": params["cand"], "ref": ref, "sku": sku, "no_name": bool(no_name)})
    return fixes


def _apply_sku_fixes(conn: Connection, fixes: list[dict[str, Any]]) -> None:
    if fixes:
        # The name is the SKU when 1C has none; the change mark is left to the publish.
        conn.execute(text("""
            UPDATE products_next SET sku = :sku, search_text = NULL, sku_ident = NULL, change = NULL,
                name = CASE WHEN :no_name THEN :sku ELSE name END
            WHERE candidate_id = :cand AND onec_ref = :ref"""), fixes)


def _fill_search_text(conn: Connection, candidate_id: int, search_text: SearchTextFn) -> None:
    """`search_text` of the rows the SQL left NULL (pieces not precomputed, SKU changed, no name)."""
    rows = conn.execute(text(
        "SELECT onec_ref, name, sku, article, code, group_name FROM products_next "
        "WHERE candidate_id = :c AND search_text IS NULL"), {"c": candidate_id}).all()
    if rows:
        conn.execute(text("UPDATE products_next SET search_text = :st WHERE candidate_id = :c AND onec_ref = :ref"), [
            {"c": candidate_id, "ref": r.onec_ref,
             "st": search_text(name=r.name, sku=r.sku, article=r.article, code=r.code, barcode=None,
                               group_name=r.group_name)} for r in rows])


def _assign_sku(ref: str, article: str | None, code: str | None, rule: list[str], losers: set[str],
                used: set[str], result: CandidateResult) -> str:
    """First non-empty, unused value along the SKU rule; the 1C ref as the last resort."""
    for i, source in enumerate(rule):
        value = ((article if source == "article" else code) or "").strip()
        if not value:
            continue
        if source == "article" and ref in losers:
            result.note_collision({"ref": ref, "article": value, "reason": "duplicate article"})
            continue
        if value in used:
            result.note_collision({"ref": ref, source: value, "reason": "sku taken"})
            continue
        if i > 0:
            result.sku_fallbacks += 1
        return value
    return ref
