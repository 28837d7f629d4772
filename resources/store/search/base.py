"""The search pipeline, independent of the database: identifiers, plan, candidates, ranking.

A backend (`SqliteProductSearch`, later a PostgreSQL one on pg_trgm + full text) supplies four
primitives: identifier lookup, the vocabulary, candidate retrieval for a plan, and fetching the
product rows. Everything that decides *what* is a good answer lives here, so both backends rank
alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from resources.store.search.document import ident_key
from resources.store.search.normalize import fold
from resources.store.search.planner import Plan, build_plan
from resources.store.search.ranking import IDENT_PREFIX_SCORE, IDENT_SCORES, score_candidate
from resources.store.search.vocabulary import Vocabulary

__all__ = ["Candidate", "ProductSearch", "RESULT_FIELDS"]

RESULT_FIELDS = ("sku", "name", "price", "currency", "stock", "is_active", "score", "match")
MAX_QUERY_CHARS = 200
MIN_IDENT_PREFIX = 5


@dataclass(frozen=True)
class Candidate:
    """A document the index returned for a plan: folded text, stock flag and raw BM25 (lower = better)."""

    sku: str
    name: str
    group: str
    in_stock: bool
    bm25: float


class ProductSearch(ABC):
    """`search(conn, query, limit)` over active products; see `search_products` for the contract."""

    candidate_limit = 120

    # --- backend primitives ---------------------------------------------------------------
    @abstractmethod
    def lookup_idents(self, conn: Connection, key: str, *, prefix: bool, limit: int) -> list[tuple[str, str]]:
        """(sku, kind) of active products whose sku/barcode/article/code key equals (or starts with) `key`."""

    @abstractmethod
    def vocabulary(self, conn: Connection) -> Vocabulary:
        """The indexed folded words (cached by the backend per index version)."""

    @abstractmethod
    def candidates(
        self, conn: Connection, plan: Plan, *, strict: bool, narrow: bool, skip: frozenset[int], names_only: bool,
        limit: int,
    ) -> list[Candidate]:
        """Active products matching the plan (in their names only, or names and groups), best BM25 first;
        see `Plan.fts` for strict/narrow/skip."""

    @abstractmethod
    def fetch(self, conn: Connection, skus: list[str]) -> dict[str, dict[str, Any]]:
        """Product rows (sku, name, price, currency, stock, is_active) of *active* products by sku."""

    # --- pipeline -------------------------------------------------------------------------
    def search(self, conn: Connection, query: str, limit: int = 10) -> list[dict[str, Any]]:
        if limit <= 0 or not query or not query.strip():
            return []
        query = query.strip()[:MAX_QUERY_CHARS]
        scores: dict[str, tuple[float, str]] = {}

        def offer(sku: str, score: float, match: str) -> None:
            if sku not in scores or scores[sku][0] < score:
                scores[sku] = (score, match)

        key = ident_key(query)
        if key and len(key) <= 64:
            for sku, kind in self.lookup_idents(conn, key, prefix=False, limit=limit):
                offer(sku, IDENT_SCORES[kind], kind)
            if not scores and len(key) >= MIN_IDENT_PREFIX and any(ch.isdigit() for ch in key):
                for sku, kind in self.lookup_idents(conn, key, prefix=True, limit=limit):
                    offer(sku, IDENT_PREFIX_SCORE, f"{kind}_prefix")

        # One word that is exactly an identifier is a code, not words to look for in names.
        is_code = bool(scores) and len(query.split()) == 1
        if fold(query) and not is_code:
            plan = build_plan(query, self.vocabulary(conn))
            # Words left out and the rest only guessed: nothing worth offering (see ranking).
            if plan is not None and (plan.has_sure_words or not plan.dropped):
                self._text_search(conn, plan, limit, offer)

        ranked = sorted(scores.items(), key=lambda kv: (-kv[1][0], kv[0]))
        top = [sku for sku, _ in ranked[: limit * 2]]  # spare rows in case the index is stale
        rows = self.fetch(conn, top)
        out: list[dict[str, Any]] = []
        for sku in top:
            row = rows.get(sku)
            if row is None:
                continue
            score, match = scores[sku]
            out.append({**row, "score": score, "match": match})
            if len(out) == limit:
                break
        return out

    def _text_search(self, conn: Connection, plan: Plan, limit: int, offer: Any) -> None:
        """Widen step by step until `limit` products are found: the cheapest reading with exact
        words in names, then word prefixes, then every kept reading and guess, then group names
        too; if nothing matched every chunk, drop the guessed chunks (or one chunk at a time) and
        call the results partial. (BM25 favours rare words, so a far-fetched guess must not
        compete with a good one for the candidate slots: hence the narrow steps first.)"""
        found: set[str] = set()
        none: frozenset[int] = frozenset()
        # (strict, narrow, skip, names_only)
        attempts: list[tuple[bool, bool, frozenset[int], bool]] = [(True, True, none, True)]
        if plan.has_exact_words:
            attempts.append((False, True, none, True))
        if plan.has_alternatives:
            attempts.append((False, False, none, True))
        attempts.append((False, False, none, False))
        relaxed = False
        while attempts:
            strict, narrow, skip, names_only = attempts.pop(0)
            cands = self.candidates(
                conn, plan, strict=strict, narrow=narrow, skip=skip, names_only=names_only,
                limit=self.candidate_limit,
            )
            best = min((c.bm25 for c in cands), default=0.0)
            for c in cands:
                relevance = c.bm25 / best if best < 0 else 0.0
                scored = score_candidate(plan, c.name, c.group, c.in_stock, relevance, skip=skip)
                if scored is not None:
                    offer(c.sku, scored.score, scored.match)
                    found.add(c.sku)
            if len(found) >= limit:
                break
            if not attempts and not found and not relaxed and len(plan.chunks) > 1:
                relaxed = True
                every = frozenset(range(len(plan.chunks)))
                sure = plan.sure_chunks()
                if sure and sure != every:
                    attempts.append((False, False, every - sure, True))
                order = sorted(every, key=lambda i: -plan.chunks[i].forms[0].cost)
                attempts.extend((False, False, frozenset({i}), True) for i in order[:3])
