"""Latin → Cyrillic transliteration of what customers type on a phone without Cyrillic.

Covers the informal Russian schemes (moloko, sahar/sakhar, zh/kh/ch/sh/shch/ts, ya/yu/yo/ye,
y as ы or й, j as ж or й) and the 2021 Kazakh Latin alphabet (ä ö ü ū ğ ş ç ñ ı, q → қ). Output need
not be perfect: the result is folded and then typo-corrected against the catalogue vocabulary,
so «yaytsa» → «яйтса» still reaches «яйца».
"""

from __future__ import annotations

__all__ = ["cyrillic_to_latin", "latin_key", "latin_to_cyrillic"]

_VOWELS = set("aeiouyäöüū")

_MULTI: tuple[tuple[str, str], ...] = (
    ("shch", "щ"), ("sch", "щ"), ("tch", "ч"),
    ("kh", "х"), ("zh", "ж"), ("ch", "ч"), ("sh", "ш"), ("ts", "ц"), ("tz", "ц"),
    ("ya", "я"), ("yu", "ю"), ("yo", "йо"), ("ye", "е"),
    ("ck", "к"), ("ph", "ф"), ("qu", "кв"), ("ks", "кс"),
)
_MAX_MULTI = max(len(src) for src, _ in _MULTI)
_MULTI_MAP = dict(_MULTI)

_SINGLE = {
    "a": "а", "b": "б", "d": "д", "e": "е", "f": "ф", "g": "г", "h": "х", "i": "и",
    "k": "к", "l": "л", "m": "м", "n": "н", "o": "о", "p": "п", "q": "к", "r": "р", "s": "с",
    "t": "т", "u": "у", "v": "в", "w": "в", "x": "кс", "z": "з", "'": "ь",
    # Kazakh Latin (2021) letters
    "ä": "ә", "ö": "ө", "ü": "ү", "ū": "ұ", "ğ": "ғ", "ş": "ш", "ç": "ч", "ñ": "ң", "ı": "ы",
}


def latin_to_cyrillic(text: str) -> str:
    """Transliterate the Latin letters of `text`; anything else passes through unchanged."""
    src = text.lower()
    out: list[str] = []
    i, n = 0, len(src)
    while i < n:
        ch = src[i]
        prev = src[i - 1] if i else " "
        nxt = src[i + 1] if i + 1 < n else " "
        for size in range(_MAX_MULTI, 1, -1):
            chunk = src[i : i + size]
            if len(chunk) == size and chunk in _MULTI_MAP:
                out.append(_MULTI_MAP[chunk])
                i += size
                break
        else:
            if ch == "y" or ch == "j":
                # after a vowel it is «й» (chay, moj); «y» elsewhere is «ы» (syr), «j» is «ж» (jumyrtqa)
                if prev in _VOWELS:
                    out.append("й")
                else:
                    out.append("ы" if ch == "y" else "ж")
            elif ch == "i" and prev in _VOWELS and nxt not in _VOWELS:
                out.append("й")  # chai, yaitsa
            elif ch == "c":
                out.append("ц" if nxt in "eiy" else "к")
            else:
                out.append(_SINGLE.get(ch, ch))
            i += 1
    return "".join(out)


_CYR_TO_LAT = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z", "и": "i",
    "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
    "у": "u", "ф": "f", "х": "h", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "sch", "ъ": "", "ы": "y", "ь": "",
    "э": "e", "ю": "yu", "я": "ya",
    "ә": "a", "ғ": "g", "қ": "k", "ң": "n", "ө": "o", "ұ": "u", "ү": "u", "і": "i", "һ": "h",
}
_CYR_TABLE = str.maketrans(_CYR_TO_LAT)


def cyrillic_to_latin(text: str) -> str:
    """Latin spelling of Cyrillic text: «нескафе» → «neskafe», to meet brands indexed in Latin
    (compared through `latin_key`, which forgives c/k, w/v, y/i, doubled letters and the like)."""
    return text.lower().translate(_CYR_TABLE)


_KEY_STEPS: tuple[tuple[str, str], ...] = (
    ("sch", "sh"), ("tch", "ch"), ("ck", "k"), ("ph", "f"), ("qu", "kv"), ("x", "ks"),
    ("ce", "se"), ("ci", "si"), ("cy", "si"), ("c", "k"), ("q", "k"), ("w", "v"), ("j", "y"), ("y", "i"),
    ("ee", "i"), ("oo", "u"), ("ou", "u"),
)
_CONSONANTS = set("bcdfgjklmnpqrstvwxz")


def latin_key(word: str) -> str:
    """A rough sound key of a Latin word, equal for «coca»/«koka», «whiskas»/«viskas»,
    «snickers»/«snikers», «nescafe»/«neskafe»; used only to compare Latin spellings."""
    key = word.lower()
    for src, dst in _KEY_STEPS:
        key = key.replace(src, dst)
    out: list[str] = []
    for ch in key:
        if ch == "h" and out and out[-1] in _CONSONANTS:
            continue  # sh/kh/zh/wh…: transliterations disagree on the h
        if out and out[-1] == ch:
            continue
        out.append(ch)
    if len(out) > 3 and out[-1] == "e" and out[-2] in _CONSONANTS:
        out.pop()  # silent final e: colgate ~ колгейт
    return "".join(out)
