"""Turn what the customer typed into a search plan over the indexed vocabulary.

Every whitespace-separated chunk of the query is read as typed, as typed on the wrong keyboard
layout, and transliterated (Latin → Cyrillic; Cyrillic → Latin for brands: «нескафе»). Each
reading is folded and its words resolved against the vocabulary: an indexed word (exact), the
start of one (prefix), or guesses (fuzzy): words one or two edits away, a shorter stem
(«гречка» → греч…), Latin words that sound alike. The cheap readings of a chunk are kept as
alternatives (OR), chunks are combined with AND. Chunks no reading can resolve (filler like
«пожалуйста») are dropped and remembered, so the results can say they are partial.

The `fts()` methods render a plan in FTS5 query syntax (every term quoted, so nothing the
customer types is ever read as query syntax); another backend renders the same structure its
own way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from resources.store.search.layout import to_cyrillic_layout, to_latin_layout
from resources.store.search.normalize import fold
from resources.store.search.translit import cyrillic_to_latin, latin_key, latin_to_cyrillic
from resources.store.search.vocabulary import Vocabulary

__all__ = ["Chunk", "Form", "Plan", "Word", "build_plan", "TRANSFORM_PENALTY", "PREFIX_COST"]

WordKind = Literal["exact", "prefix", "fuzzy"]

PREFIX_COST = 0.25
UNRESOLVED_COST = 3.0
TRANSFORM_PENALTY = {"": 0.0, "layout": 0.5, "translit": 0.5}
KEEP_WITHIN = 1.0  # alternatives costing at most this much more than the best reading are kept
MAX_FORMS = 3

MAX_GUESSES = 8
MIN_EXPAND_LENGTH = 3
FIRST_LETTER_COST = 0.5

_LATIN = re.compile(r"[a-zA-Z]")
_LATIN_WORD = re.compile(r"[a-z]+")
_CYRILLIC = re.compile(r"[а-яА-ЯёЁ]")


def _quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


@dataclass(frozen=True)
class Word:
    """One folded query word and the indexed words it may stand for."""

    text: str
    kind: WordKind
    # (indexed word or word start, cost ≈ edits, is a prefix); for exact/prefix words: ((text, 0, …),)
    alternatives: tuple[tuple[str, float, bool], ...]

    @property
    def expandable(self) -> bool:
        """Whether an exact word may also stand for longer words (сыр → сырок): not numbers
        (5 is not 500) and not one- or two-letter words (с, л, кг), whose prefix matches half
        the catalogue."""
        return len(self.text) >= MIN_EXPAND_LENGTH and not any(ch.isdigit() for ch in self.text)

    @property
    def cost(self) -> float:
        if self.kind == "exact":
            return 0.0
        if self.kind == "prefix":
            return PREFIX_COST
        return float(min(d for _, d, _ in self.alternatives))

    def fts(self, *, strict: bool, narrow: bool = False) -> str:
        """FTS5 expression; a non-strict exact word also matches longer words (сыр → сырок), a
        narrow guessed word only its cheapest guesses."""
        if self.kind == "exact":
            return _quote(self.text) + ("" if strict or not self.expandable else "*")
        if self.kind == "prefix":
            return _quote(self.text) + "*"
        alternatives = self.alternatives
        if narrow:
            alternatives = tuple(a for a in alternatives if a[1] == self.cost)
        return "(" + " OR ".join(_quote(t) + ("*" if p else "") for t, _, p in alternatives) + ")"

    def match(self, words: list[str]) -> tuple[WordKind, float] | None:
        """How this word matches a document's words: (kind, edits), or None."""
        if self.text in words:
            return "exact", 0
        if self.kind in ("exact", "prefix") and len(self.text) >= 2:
            if any(w.startswith(self.text) for w in words):
                return "prefix", 0
            return None
        best: float | None = None
        for term, dist, is_prefix in self.alternatives:
            if best is not None and dist >= best:
                continue
            if (any(w.startswith(term) for w in words) if is_prefix else term in words):
                best = dist
        return None if best is None else ("fuzzy", best)


@dataclass(frozen=True)
class Form:
    """One reading of a chunk: as typed, layout-corrected or transliterated."""

    transform: str  # "", "layout", "translit"
    words: tuple[Word, ...]
    unresolved: tuple[str, ...]

    @property
    def cost(self) -> float:
        return (
            TRANSFORM_PENALTY[self.transform]
            + sum(w.cost for w in self.words)
            + UNRESOLVED_COST * len(self.unresolved)
        )

    def fts(self, *, strict: bool, narrow: bool = False) -> str:
        parts = [w.fts(strict=strict, narrow=narrow) for w in self.words]
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"


@dataclass(frozen=True)
class Chunk:
    raw: str
    forms: tuple[Form, ...]  # best first

    def fts(self, *, strict: bool, narrow: bool = False) -> str:
        """All kept readings (OR), or with `narrow` only the cheapest reading's cheapest guesses."""
        if narrow:
            return self.forms[0].fts(strict=strict, narrow=True)
        parts = list(dict.fromkeys(f.fts(strict=strict) for f in self.forms))
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"


@dataclass(frozen=True)
class Plan:
    chunks: tuple[Chunk, ...]
    dropped: tuple[str, ...]  # raw chunks that matched nothing in the vocabulary

    def fts(self, *, strict: bool = True, skip: frozenset[int] = frozenset(), narrow: bool = False) -> str:
        """The FTS5 MATCH expression (AND of chunks); `skip` leaves chunks out."""
        parts = [c.fts(strict=strict, narrow=narrow) for i, c in enumerate(self.chunks) if i not in skip]
        return " AND ".join(parts)

    @property
    def has_alternatives(self) -> bool:
        """Whether the narrow plan (cheapest reading and guesses only) differs from the full one."""
        return self.fts(strict=False, narrow=True) != self.fts(strict=False)

    def sure_chunks(self) -> frozenset[int]:
        """Chunks read as typed, with every word indexed (exactly or as a prefix)."""
        return frozenset(
            i for i, c in enumerate(self.chunks)
            if not c.forms[0].transform and all(w.kind != "fuzzy" for w in c.forms[0].words)
        )

    @property
    def has_sure_words(self) -> bool:
        """Whether some word matched the vocabulary as typed (exactly or as a prefix)."""
        return any(w.kind != "fuzzy" for c in self.chunks for f in c.forms for w in f.words)

    @property
    def has_exact_words(self) -> bool:
        """Whether the non-strict plan differs: some exact word may stand for longer words."""
        return any(w.kind == "exact" and w.expandable for c in self.chunks for f in c.forms for w in f.words)


def resolve_word(word: str, vocab: Vocabulary) -> Word | None:
    """Read one folded word against the vocabulary, or None if it matches nothing: the word
    itself, a word it starts, else guesses (typos, a shorter stem, a Latin spelling that sounds
    alike), cheapest first."""
    if word in vocab:
        return Word(word, "exact", ((word, 0, False),))
    if len(word) >= 2 and vocab.prefix_count(word):
        return Word(word, "prefix", ((word, 0, True),))
    guesses: dict[tuple[str, bool], float] = {}
    # Typos seldom hit the first letter: a guess that changes it costs a little more.
    candidates = [
        (t, d + (FIRST_LETTER_COST if t[0] != word[0] else 0.0), False) for t, d in vocab.corrections(word)
    ]
    candidates += [(t, float(d), True) for t, d in vocab.stems(word)]
    if _LATIN_WORD.fullmatch(word):
        first = latin_key(word)[:1]  # sound-alike: «koka» and «coca» start alike
        candidates += [(t, d + (FIRST_LETTER_COST if latin_key(t)[:1] != first else 0.0), False)
                       for t, d in vocab.latin_matches(word)]
    for term, dist, is_prefix in candidates:
        key = (term, is_prefix)
        if key not in guesses or dist < guesses[key]:
            guesses[key] = dist
    if not guesses:
        return None

    def popularity(term: str, is_prefix: bool) -> int:
        return vocab.prefix_count(term) if is_prefix else vocab.df.get(term, 0)

    ranked = sorted(guesses.items(), key=lambda kv: (kv[1], -popularity(*kv[0]), kv[0]))[:MAX_GUESSES]
    return Word(word, "fuzzy", tuple((t, d, p) for (t, p), d in ranked))


def _form(transform: str, text: str, vocab: Vocabulary) -> Form:
    words: list[Word] = []
    unresolved: list[str] = []
    for w in fold(text).split():
        resolved = resolve_word(w, vocab)
        if resolved is None:
            unresolved.append(w)
        else:
            words.append(resolved)
    return Form(transform, tuple(words), tuple(unresolved))


def readings(raw: str) -> list[tuple[str, str]]:
    """(transform, text) readings of one typed chunk, as-typed first."""
    out = [("", raw)]
    if len(raw) < 2:
        return out  # «с», «в», «5»: nothing to re-read
    if _LATIN.search(raw):
        out.append(("layout", to_cyrillic_layout(raw)))
        out.append(("translit", latin_to_cyrillic(raw)))
    elif _CYRILLIC.search(raw):
        out.append(("layout", to_latin_layout(raw)))
        out.append(("translit", cyrillic_to_latin(fold(raw))))
    return out


def _chunk(raw: str, vocab: Vocabulary) -> Chunk | None:
    forms: dict[str, Form] = {}
    for transform, text in readings(raw):
        form = _form(transform, text, vocab)
        key = " ".join(w.text for w in form.words)
        if form.words and key not in forms:
            forms[key] = form
    if not forms:
        return None
    ranked = sorted(forms.values(), key=lambda f: f.cost)
    best = ranked[0].cost
    kept = [f for f in ranked if f.cost <= best + KEEP_WITHIN and (not f.unresolved or f is ranked[0])]
    return Chunk(raw, tuple(kept[:MAX_FORMS]))


def build_plan(query: str, vocab: Vocabulary) -> Plan | None:
    """The plan for `query`, or None when nothing in it matches the vocabulary."""
    chunks: list[Chunk] = []
    dropped: list[str] = []
    for raw in query.split():
        chunk = _chunk(raw, vocab)
        if chunk is None:
            if fold(raw):
                dropped.append(raw)
        else:
            chunks.append(chunk)
            dropped.extend(u for u in chunk.forms[0].unresolved)
    if not chunks:
        return None
    return Plan(tuple(chunks), tuple(dropped))
