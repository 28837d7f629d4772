"""Keyboard-layout slips: text typed with the wrong layout active.

«vjkjrj» is «молоко» typed on the QWERTY layout; «Ьшдлф» is «Milka» typed on ЙЦУКЕН. Only the
standard Russian layout is mapped (the Kazakh one differs on the digit row, where guessing would
wreck real numbers). A decimal separator between digits is left alone so «3.2» survives.
"""

from __future__ import annotations

import re

__all__ = ["to_cyrillic_layout", "to_latin_layout"]

_LATIN_KEYS = "`qwertyuiop[]asdfghjkl;'zxcvbnm,./" + '~QWERTYUIOP{}ASDFGHJKL:"ZXCVBNM<>?'
_CYRILLIC_KEYS = "ёйцукенгшщзхъфывапролджэячсмитьбю." + "ЁЙЦУКЕНГШЩЗХЪФЫВАПРОЛДЖЭЯЧСМИТЬБЮ,"

_TO_CYRILLIC = str.maketrans(_LATIN_KEYS, _CYRILLIC_KEYS)
# Back to Latin only for letters: Cyrillic-layout punctuation is ordinary punctuation.
_TO_LATIN = str.maketrans(
    {c: latin for c, latin in zip(_CYRILLIC_KEYS, _LATIN_KEYS, strict=True) if c.isalpha()}
)
_DECIMAL = re.compile(r"(?<=\d)[.,](?=\d)")


def to_cyrillic_layout(text: str) -> str:
    """What the customer meant if they typed on QWERTY while thinking ЙЦУКЕН."""
    protected = _DECIMAL.sub("\x00", text)
    return protected.translate(_TO_CYRILLIC).replace("\x00", ".")


def to_latin_layout(text: str) -> str:
    """What the customer meant if they typed on ЙЦУКЕН while thinking QWERTY (Latin brands)."""
    return text.translate(_TO_LATIN)
