"""The folded words of the index, held in memory for typo correction and prefix checks.

Correcting «малако» → «молоко» means comparing the query word with every indexed word of a
similar length; doing that against `fts5vocab` per query would cost a full vocabulary scan, so
the vocabulary is loaded once per index version and kept here (a 100k-product catalogue has some
tens of thousands of distinct words: a few MB).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from rapidfuzz import process
from rapidfuzz.distance import OSA

from resources.store.search.translit import latin_key

__all__ = ["MIN_CORRECTION_LENGTH", "Vocabulary", "max_edits"]

MIN_CORRECTION_LENGTH = 3
MIN_STEM_LENGTH = 4
_LATIN_WORD = re.compile(r"[a-z]+")


def max_edits(word: str) -> int:
    """How many typos a word of this length may carry: short words would match anything."""
    n = len(word)
    if n <= 2:
        return 0
    if n <= 4:
        return 1
    return 2


@dataclass(frozen=True)
class Vocabulary:
    """Indexed words with their document frequencies."""

    df: dict[str, int]
    sorted_terms: list[str] = field(repr=False)
    by_length: dict[int, list[str]] = field(repr=False)
    # Latin words by sound key (see `translit.latin_key`), and the keys by length
    latin_keys: dict[str, list[str]] = field(repr=False)
    keys_by_length: dict[int, list[str]] = field(repr=False)

    @classmethod
    def from_counts(cls, rows: Iterable[tuple[str, int]]) -> Vocabulary:
        df = {term: int(doc) for term, doc in rows if term}
        by_length: dict[int, list[str]] = {}
        latin_keys: dict[str, list[str]] = {}
        for term in df:
            # Numbers are never "typos" of each other, and nobody means «мл» when typing a word.
            if len(term) >= MIN_CORRECTION_LENGTH and not any(ch.isdigit() for ch in term):
                by_length.setdefault(len(term), []).append(term)
                if _LATIN_WORD.fullmatch(term):
                    latin_keys.setdefault(latin_key(term), []).append(term)
        keys_by_length: dict[int, list[str]] = {}
        for key in latin_keys:
            keys_by_length.setdefault(len(key), []).append(key)
        return cls(df=df, sorted_terms=sorted(df), by_length=by_length, latin_keys=latin_keys,
                   keys_by_length=keys_by_length)

    def __len__(self) -> int:
        return len(self.df)

    def __contains__(self, term: object) -> bool:
        return term in self.df

    def prefix_count(self, prefix: str) -> int:
        """How many indexed words start with `prefix` (0 means a prefix query finds nothing)."""
        lo = bisect.bisect_left(self.sorted_terms, prefix)
        hi = bisect.bisect_left(self.sorted_terms, prefix + "\U0010ffff")
        return hi - lo

    def corrections(self, word: str, limit: int = 6) -> list[tuple[str, int]]:
        """Indexed words within `max_edits(word)` edits (transpositions count as one), closest
        first and, among equally close ones, the more common first."""
        k = max_edits(word)
        if k == 0 or any(ch.isdigit() for ch in word):
            return []
        found: list[tuple[str, int]] = []
        for length in range(len(word) - k, len(word) + k + 1):
            choices = self.by_length.get(length)
            if not choices:
                continue
            for term, dist, _ in process.extract(
                word, choices, scorer=OSA.distance, score_cutoff=k, limit=None
            ):
                if dist:
                    found.append((term, int(dist)))
        found.sort(key=lambda td: (td[1], -self.df[td[0]], td[0]))
        return found[:limit]

    def latin_matches(self, word: str, limit: int = 4) -> list[tuple[str, int]]:
        """Latin indexed words that sound like the Latin `word` («neskafe» → nescafe, «koka» → coca),
        with the edit distance between their sound keys."""
        key = latin_key(word)
        if len(key) < MIN_CORRECTION_LENGTH:
            return []
        k = 0 if len(key) < 4 else 1 if len(key) < 7 else 2  # keys are coarse already: stricter
        found: dict[str, int] = {}
        for length in range(len(key) - k, len(key) + k + 1):
            choices = self.keys_by_length.get(length)
            if not choices:
                continue
            for other, dist, _ in process.extract(key, choices, scorer=OSA.distance, score_cutoff=k, limit=None):
                for term in self.latin_keys[other]:
                    if term != word and (term not in found or dist < found[term]):
                        found[term] = int(dist)
        ranked = sorted(found.items(), key=lambda td: (td[1], -self.df[td[0]], td[0]))
        return ranked[:limit]

    def stems(self, word: str) -> list[tuple[str, int]]:
        """The word cut by one or two letters, where indexed words start so (Russian endings:
        «гречка» → греч…, «пельменей» → пельмен…), with the number of letters cut."""
        out = []
        for cut in (1, 2):
            stem = word[:-cut]
            if len(stem) >= MIN_STEM_LENGTH and not any(ch.isdigit() for ch in stem) and self.prefix_count(stem):
                out.append((stem, cut))
        return out
