"""Text folding shared by the index and the queries.

Both sides must fold identically, so this is the only place that decides what a "word" is:
Unicode lowercase, ё→е, Kazakh letters folded to their nearest Russian letter (customers type
«сут» for «сүт» on a Russian keyboard), Latin diacritics dropped (Nestlé → nestle), Latin
look-alikes inside Cyrillic words fixed (мoлоко with a Latin «o»), decimal commas unified
(«3,2%» → «3.2»), numbers split from units («1л» → «1 л»), every other punctuation → space.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = ["KAZAKH_FOLD", "fold", "tokens"]

KAZAKH_FOLD = {"қ": "к", "ң": "н", "ғ": "г", "ү": "у", "ұ": "у", "ә": "а", "ө": "о", "і": "и", "һ": "х"}

_SPECIAL_LATIN = {"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "ı": "i", "đ": "d", "þ": "th"}
# Neighbouring Cyrillic letters (Ukrainian, Belarusian) that customers' keyboards may produce.
_CYRILLIC_EXTRA = {"ё": "е", "є": "е", "ї": "и", "ў": "у"}


def _build_table(kazakh: bool) -> dict[int, str]:
    """A `str.translate` table: folding runs at C speed for the 100k-name bulk."""
    table: dict[int, str] = {}
    for cp in range(0x80, 0x250):  # Latin-1 .. Latin Extended-B: drop diacritics
        ch = chr(cp)
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        if base and base != ch and base.isascii():
            table[cp] = base.lower()
    for src, dst in {**_SPECIAL_LATIN, **_CYRILLIC_EXTRA}.items():
        table[ord(src)] = dst
    if kazakh:
        for src, dst in KAZAKH_FOLD.items():
            table[ord(src)] = dst
    table[ord("_")] = " "
    return table


_TABLE_KZ = _build_table(kazakh=True)
_TABLE_NO_KZ = _build_table(kazakh=False)

_DECIMAL = re.compile(r"(?<=\d)[.,](?=\d)")
_PUNCT = re.compile(r"[^\w\x00]+")
_DIGIT_LETTER = re.compile(r"(?<=\d)(?=[^\W\d])|(?<=[^\W\d])(?=\d)")
_HAS_LATIN = re.compile(r"[a-z]").search
_HAS_CYRILLIC = re.compile(r"[а-я]").search
_WORD = re.compile(r"\w+")
# Latin letters that look like Cyrillic ones (after lowercasing: «H»→h→н, «B»→b→в).
_HOMOGLYPHS = str.maketrans("aceopxykmthbi", "асеорхукмтнви")


def _fix_homoglyphs(text: str) -> str:
    def fix(m: re.Match[str]) -> str:
        word = m.group(0)
        has_cyr = any("а" <= c <= "я" for c in word)
        has_lat = any("a" <= c <= "z" for c in word)
        return word.translate(_HOMOGLYPHS) if has_cyr and has_lat else word

    return _WORD.sub(fix, text)


def fold(text: str | None, *, kazakh: bool = True) -> str:
    """Fold `text` to space-separated search tokens (see the module docstring).

    Every step only looks inside a whitespace-separated chunk, so the text is folded chunk by
    chunk through a bounded cache: product names repeat their words (brands, kinds, units), and a
    100k-product sync folds each distinct word once instead of every name in full."""
    if not text:
        return ""
    parts = text.replace("№", " ").split()  # NFKC would make it «No»
    if len(parts) == 1:
        return _fold_chunk(parts[0], kazakh)
    return " ".join(folded for folded in (_fold_chunk(part, kazakh) for part in parts) if folded)


@lru_cache(maxsize=1 << 16)
def _fold_chunk(chunk: str, kazakh: bool) -> str:
    return _fold_text(chunk, kazakh=kazakh)


def _fold_text(text: str, *, kazakh: bool = True) -> str:
    """The folding itself, over any text (the reference `fold` is checked against in tests)."""
    if not text:
        return ""
    s = unicodedata.normalize("NFKC", text.replace("№", " ")).lower()  # NFKC would make it «No»
    s = s.translate(_TABLE_KZ if kazakh else _TABLE_NO_KZ)
    s = _DECIMAL.sub("\x00", s)  # keep «3,2» whole while punctuation goes
    s = _PUNCT.sub(" ", s)
    s = s.replace("\x00", ".")
    s = _DIGIT_LETTER.sub(" ", s)
    if _HAS_LATIN(s) and _HAS_CYRILLIC(s):  # some word may mix them; each word decides alone
        s = _fix_homoglyphs(s)
    return " ".join(s.split())


def tokens(text: str | None, *, kazakh: bool = True) -> list[str]:
    """The folded words of `text`, as the FTS tokenizer will see them."""
    return fold(text, kazakh=kazakh).split()
