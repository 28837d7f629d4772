"""Score a candidate product against a plan: match kind first, then stock, then BM25.

The score is one number so callers can sort and threshold it, laid out in bands so the order is
strict: identifier hits (100..) > exact words (90..) > word prefixes (80..) > layout/translit
(70..) > typos (60..) > partial (40..) > group-only (30..). Within a band: fewer edits, then the
product's first word being matched (names start with the product type: «Молоко …» before
«Шоколад молочный …»), then in stock (+1), then relative BM25 (< 1), so in-stock products win
ties of match quality but never beat a better match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from resources.store.search.normalize import fold
from resources.store.search.planner import PREFIX_COST, TRANSFORM_PENALTY, Plan

__all__ = ["IDENT_SCORES", "Scored", "score_candidate"]

IDENT_SCORES = {"sku": 100.0, "barcode": 99.0, "article": 98.0, "code": 97.0}
IDENT_PREFIX_SCORE = 75.0
_BANDS = {"exact": 90.0, "prefix": 80.0, "layout": 70.0, "translit": 70.0, "fuzzy": 60.0,
          "partial": 40.0, "group": 30.0}
_EDIT_PENALTY = 1.5
_MAX_EDIT_PENALTY = 6.0
_FIRST_WORD_BONUS = 2.0
_IN_STOCK_BONUS = 1.0
_RELEVANCE_SPAN = 0.9


_FOLDED = re.compile(r"[0-9a-zа-я. ]*")


def _words(index_text: str) -> list[str]:
    """Words of an index text; folded here too if the row was indexed from a raw name (no search_text)."""
    return (index_text if _FOLDED.fullmatch(index_text) else fold(index_text)).split()


@dataclass(frozen=True)
class Scored:
    score: float
    match: str


def score_candidate(
    plan: Plan,
    name: str,
    group: str,
    in_stock: bool,
    relevance: float,
    *,
    skip: frozenset[int] = frozenset(),
) -> Scored | None:
    """Score one candidate (`name`/`group` are folded index text; `relevance` in [0, 1], best = 1).

    None if the plan does not actually match (FTS prefix matching is a little wider than ours)."""
    name_words = _words(name)
    group_words = _words(group)
    kinds: set[str] = set()
    transforms: set[str] = set()
    edits = 0.0
    in_name = False
    first_word_hit = False
    for i, chunk in enumerate(plan.chunks):
        if i in skip:
            continue
        best: tuple[float, str, set[str], float, bool, bool] | None = None
        for form in chunk.forms:
            cost = 0.0
            f_kinds: set[str] = set()
            f_edits = 0.0
            f_in_name = False
            f_first = False
            for word in form.words:
                m = word.match(name_words)
                if m is not None:
                    f_in_name = True
                    if name_words and word.match(name_words[:1]) is not None:
                        f_first = True
                else:
                    m = word.match(group_words)
                    if m is None:
                        break
                kind, dist = m
                f_kinds.add(kind)
                f_edits += dist
                cost += dist + (PREFIX_COST if kind == "prefix" else 0.0)
            else:
                cost += TRANSFORM_PENALTY[form.transform]
                if best is None or cost < best[0]:
                    best = (cost, form.transform, f_kinds, f_edits, f_in_name, f_first)
        if best is None:
            return None
        _, transform, f_kinds, f_edits, f_in_name, f_first = best
        if transform:
            transforms.add(transform)
        kinds |= f_kinds
        edits += f_edits
        in_name = in_name or f_in_name
        first_word_hit = first_word_hit or f_first

    partial = bool(skip or plan.dropped)
    if partial and not kinds & {"exact", "prefix"}:
        return None  # part of the query ignored and the rest only guessed: too weak to offer
    if not in_name:
        match = "group"
    elif partial:
        match = "partial"
    elif "layout" in transforms:
        match = "layout"
    elif "translit" in transforms:
        match = "translit"
    elif "fuzzy" in kinds:
        match = "fuzzy"
    elif "prefix" in kinds:
        match = "prefix"
    else:
        match = "exact"
    score = _BANDS[match]
    if match in ("layout", "translit") and edits > 0:
        score -= 5.0
    score -= min(edits * _EDIT_PENALTY, _MAX_EDIT_PENALTY)
    if first_word_hit:
        score += _FIRST_WORD_BONUS
    if in_stock:
        score += _IN_STOCK_BONUS
    score += _RELEVANCE_SPAN * max(0.0, min(1.0, relevance))
    return Scored(round(score, 4), match)
