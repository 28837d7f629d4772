"""SQLite backend: FTS5 (`products_fts`), its vocabulary, and `product_idents` (migration 0002).

Reads are plain SQL on tables the triggers maintain, so any connection (the bot, Dagster, the
`sqlite3` shell) can read and write products without registering anything.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Connection, text

from resources.store.search.base import Candidate, ProductSearch
from resources.store.search.document import search_text
from resources.store.search.planner import Plan
from resources.store.search.ranking import IDENT_SCORES
from resources.store.search.vocabulary import Vocabulary

__all__ = ["SqliteProductSearch", "idents_from", "index_version", "rebuild_index"]

_VERSION_SQL = text("SELECT seq FROM sqlite_sequence WHERE name = 'product_search'")
_VOCAB_SQL = text("SELECT term, doc FROM products_fts_vocab")
_IDENT_SQL = text(
    "SELECT sku, kind FROM product_idents WHERE ident = :key ORDER BY kind = 'sku' DESC, sku LIMIT :limit"
)
_IDENT_PREFIX_SQL = text(
    "SELECT sku, kind FROM product_idents WHERE ident >= :key AND ident < :key || char(1114111) "
    "ORDER BY ident, sku LIMIT :limit"
)
# BM25 weights: a word in the name counts more than one in the group.
_CANDIDATES_SQL = text(
    "SELECT s.sku, s.name, s.grp, s.in_stock, f.score FROM "
    "(SELECT rowid AS doc_id, bm25(products_fts, 1.0, 0.3) AS score FROM products_fts "
    "WHERE products_fts MATCH :q ORDER BY score LIMIT :limit) f "
    "JOIN product_search s ON s.doc_id = f.doc_id ORDER BY f.score"
)


def index_version(conn: Connection) -> int:
    """Grows on every (re)indexed product; caches of the vocabulary are keyed by it."""
    return int(conn.execute(_VERSION_SQL).scalar() or 0)


class SqliteProductSearch(ProductSearch):
    """FTS5-backed search; one instance per database (it caches the vocabulary)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._vocab: tuple[int, Vocabulary] | None = None

    def lookup_idents(self, conn: Connection, key: str, *, prefix: bool, limit: int) -> list[tuple[str, str]]:
        rows = conn.execute(_IDENT_PREFIX_SQL if prefix else _IDENT_SQL, {"key": key, "limit": limit * 4}).all()
        best: dict[str, str] = {}
        for sku, kind in rows:
            if sku not in best or IDENT_SCORES[kind] > IDENT_SCORES[best[sku]]:
                best[sku] = kind
        return list(best.items())[:limit]

    def vocabulary(self, conn: Connection) -> Vocabulary:
        version = index_version(conn)
        cached = self._vocab
        if cached is not None and cached[0] == version:
            return cached[1]
        with self._lock:
            cached = self._vocab
            if cached is not None and cached[0] == version:
                return cached[1]
            vocab = Vocabulary.from_counts(conn.execute(_VOCAB_SQL).tuples())
            self._vocab = (version, vocab)
            return vocab

    def candidates(
        self, conn: Connection, plan: Plan, *, strict: bool, narrow: bool, skip: frozenset[int], names_only: bool,
        limit: int,
    ) -> list[Candidate]:
        expr = plan.fts(strict=strict, skip=skip, narrow=narrow)
        if not expr:
            return []
        if names_only:
            expr = "{name} : (" + expr + ")"
        rows = conn.execute(_CANDIDATES_SQL, {"q": expr, "limit": limit}).all()
        return [Candidate(r[0], r[1], r[2], bool(r[3]), float(r[4])) for r in rows]

    def fetch(self, conn: Connection, skus: list[str]) -> dict[str, dict[str, Any]]:
        if not skus:
            return {}
        marks = ", ".join(f":s{i}" for i in range(len(skus)))
        rows = conn.execute(
            text(
                "SELECT sku, name, price, currency, stock, is_active FROM products "
                f"WHERE sku IN ({marks}) AND is_active"
            ),
            {f"s{i}": s for i, s in enumerate(skus)},
        ).mappings()
        return {r["sku"]: {**r, "is_active": bool(r["is_active"])} for r in rows}


_LETTER_FOLD = "ёЁқҚңҢғҒүҮұҰәӘөӨіІһҺ"
_LETTER_BASE = "еЕкКнНгГуУуУаАоОиИхХ"


def _sql_fold(expr: str) -> str:
    """Same fallback folding as the triggers of migration 0002 (for rows without `search_text`)."""
    for src, dst in zip(_LETTER_FOLD, _LETTER_BASE, strict=True):
        expr = f"replace({expr}, '{src}', '{dst}')"
    return expr


def _sql_ident(col: str) -> str:
    expr = col
    for ch in ("' '", "'-'", "'.'", "'/'", "char(9)"):
        expr = f"replace({expr}, {ch}, '')"
    return f"upper(trim({expr}))"


_REST = "substr(search_text, instr(search_text, '|') + 1)"
_IDENT_COLUMNS = ("sku", "barcode", "article", "code")  # best first, as ranking.IDENT_SCORES
_REFILL = (
    "DELETE FROM product_idents",
    "DELETE FROM product_search",
    f"""
    INSERT INTO product_search (sku, in_stock, name, grp)
    SELECT sku, stock > 0,
        CASE WHEN search_text IS NULL THEN {_sql_fold("name")}
             WHEN instr(search_text, '|') = 0 THEN search_text
             ELSE substr(search_text, 1, instr(search_text, '|') - 1) END,
        CASE WHEN search_text IS NULL THEN {_sql_fold("coalesce(group_name, '')")}
             WHEN instr(search_text, '|') = 0 THEN ''
             WHEN instr({_REST}, '|') = 0 THEN {_REST}
             ELSE substr({_REST}, 1, instr({_REST}, '|') - 1) END
    FROM products WHERE is_active
    """,
    "INSERT INTO products_fts (products_fts) VALUES ('rebuild')",
)
def idents_from(source: str, where: str, precomputed: dict[str, str]) -> list[str]:
    """`product_idents` refill statements reading another table (e.g. a publish's candidate) whose
    rows are exactly the active products: `precomputed` maps a kind to a column holding its key
    (NULL there = evaluate the expression for that row). The rows equal the triggers' rows
    (migration 0013): each key once per product, under the best kind that has it. An empty key
    becomes NULL, which OR IGNORE skips (ident is NOT NULL)."""

    def key(col: str) -> str:
        expr = f"COALESCE({precomputed[col]}, {_sql_ident(col)})" if col in precomputed else _sql_ident(col)
        return f"NULLIF({expr}, '')"

    return [
        f"""
        INSERT OR IGNORE INTO product_idents (ident, kind, sku)
        SELECT {key(col)}, '{col}', sku FROM {source}
        WHERE {where} AND {col} IS NOT NULL{"".join(f" AND {key(col)} IS NOT {key(b)}" for b in _IDENT_COLUMNS[:i])}
        """
        for i, col in enumerate(_IDENT_COLUMNS)
    ]


_REFILL_IDENTS = idents_from("products", "is_active", {})


def rebuild_index(conn: Connection, *, recompute_text: bool = True, batch: int = 5000,
                  idents: list[str] | None = None, params: dict[str, Any] | None = None) -> int:
    """Rebuild the search index from `products` inside the caller's transaction.

    With `recompute_text`, first rewrites `products.search_text` wherever it differs from
    `search_text(...)` of the row (after a folding change, or rows written by an older sync);
    that part runs on any database, the index refill on SQLite only. `idents` (see `idents_from`,
    run with `params`) replaces the identifier refill from `products`. Returns the number of
    indexed (active) products, or of active products where there is no SQLite index."""
    if recompute_text:
        last = ""
        while True:
            rows = conn.execute(
                text(
                    "SELECT sku, name, article, code, barcode, group_name, search_text FROM products "
                    "WHERE sku > :last ORDER BY sku LIMIT :batch"
                ),
                {"last": last, "batch": batch},
            ).all()
            if not rows:
                break
            last = rows[-1].sku
            changes = []
            for r in rows:
                value = search_text(r.name, r.sku, r.article, r.code, r.barcode, r.group_name)
                if value != r.search_text:
                    changes.append({"sku": r.sku, "st": value})
            if changes:
                conn.execute(text("UPDATE products SET search_text = :st WHERE sku = :sku"), changes)
    if conn.dialect.name != "sqlite":
        return int(conn.execute(text("SELECT count(*) FROM products WHERE is_active")).scalar() or 0)
    for sql in _REFILL:
        conn.execute(text(sql))
    for sql in idents if idents is not None else _REFILL_IDENTS:
        conn.execute(text(sql), params or {})
    return int(conn.execute(text("SELECT count(*) FROM product_search")).scalar() or 0)
