"""The folded words of the index, held in memory for typo correction and prefix checks.

Correcting «малако» → «молоко» means comparing the query word with indexed words of a similar
length; doing that against `fts5vocab` per query would cost a full vocabulary scan, so the
vocabulary is loaded once per index version and kept here (a 100k-product catalogue has some
thousands to tens of thousands of distinct words: a few MB). Words are bucketed by length and
first letter: a guess must keep the typed word's first or second letter (typos seldom hit the
first letter, and the buckets keep a 50k-word vocabulary to well under a millisecond per word).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from rapidfuzz import process
from rapidfuzz.distance import OSA

from resources.store.search.translit import latin_key

__all__ = ["MIN_CORRECTION_LENGTH", "MIN_STEM_LENGTH", "Vocabulary", "max_edits"]

MIN_CORRECTION_LENGTH = 3
MIN_STEM_LENGTH = 4
_LATIN_WORD = re.compile(r"[a-z]+")

Buckets = dict[tuple[int, str], list[str]]


def max_edits(word: str) -> int:
    """How many typos a word of this length may carry: short words would match anything."""
    n = len(word)
    if n <= 2:
        return 0
    if n <= 4:
        return 1
    return 2


def _bucket(buckets: Buckets, word: str) -> None:
    buckets.setdefault((len(word), word[0]), []).append(word)


# Sound keys whose first letters Cyrillic spelling confuses: «Жиллет» is Gillette.
_KEY_FIRST_ALIKE = {"z": "g", "g": "z"}


def _near(buckets: Buckets, word: str, max_dist: int, also_first: str = "") -> list[tuple[str, int]]:
    """Bucketed words within `max_dist` OSA edits of `word` (a transposition is one edit)."""
    found: list[tuple[str, int]] = []
    firsts = dict.fromkeys(word[:2] + also_first)
    for length in range(len(word) - max_dist, len(word) + max_dist + 1):
        for first in firsts:
            choices = buckets.get((length, first))
            if choices:
                found.extend(
                    (term, int(dist))
                    for term, dist, _ in process.extract(
                        word, choices, scorer=OSA.distance, score_cutoff=max_dist, limit=None
                    )
                )
    return found


@dataclass(frozen=True)
class Vocabulary:
    """Indexed words with their document frequencies."""

    df: dict[str, int]
    sorted_terms: list[str] = field(repr=False)
    buckets: Buckets = field(repr=False)
    # Latin words by sound key (see `translit.latin_key`), and the keys bucketed
    latin_keys: dict[str, list[str]] = field(repr=False)
    key_buckets: Buckets = field(repr=False)

    @classmethod
    def from_counts(cls, rows: Iterable[tuple[str, int]]) -> Vocabulary:
        df = {term: int(doc) for term, doc in rows if term}
        buckets: Buckets = {}
        latin_keys: dict[str, list[str]] = {}
        for term in df:
            # Numbers are never "typos" of each other, and nobody means «мл» when typing a word.
            if len(term) >= MIN_CORRECTION_LENGTH and not any(ch.isdigit() for ch in term):
                _bucket(buckets, term)
                if _LATIN_WORD.fullmatch(term):
                    latin_keys.setdefault(latin_key(term), []).append(term)
        key_buckets: Buckets = {}
        for key in latin_keys:
            if key:
                _bucket(key_buckets, key)
        return cls(df=df, sorted_terms=sorted(df), buckets=buckets, latin_keys=latin_keys,
                   key_buckets=key_buckets)

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
        """Indexed words within `max_edits(word)` edits, closest first and, among equally close
        ones, the more common first."""
        k = max_edits(word)
        if k == 0 or any(ch.isdigit() for ch in word):
            return []
        found = [(t, d) for t, d in _near(self.buckets, word, k) if d]
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
        for other, dist in _near(self.key_buckets, key, k, _KEY_FIRST_ALIKE.get(key[0], "")):
            for term in self.latin_keys[other]:
                if term != word and (term not in found or dist < found[term]):
                    found[term] = dist
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
