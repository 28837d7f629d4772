"""`fold` folds chunk by chunk through a cache: it must equal folding the whole text at once."""

from __future__ import annotations

import random

import pytest

from resources.store.search.normalize import _fold_text, fold
from simulators.onec.dataset import Dataset

# Characters that make folding interesting: digits and decimal marks, units glued to numbers,
# punctuation, ё and the Kazakh letters, Latin look-alikes, diacritics, compatibility forms,
# «№», and every kind of whitespace str.split() knows (NBSP, ogham, the C0 separators, …).
_ALPHABET = ("абвгдеёжзклмнопрстуфхцчшщыэюя АБВ ЁҚқҢңҒғҮүҰұӘәӨөІіҺһ aceopxyk ABCHKMOPT éüßæø "
             "0123456789 .,;:-/\\_%×\"'«»()[]№²①ﬁ㎏ \u00a0\u1680\u2003\u3000\t\n\x1c\x1f\u0301")


def test_chunked_fold_equals_whole_text_fold_on_random_text() -> None:
    rnd = random.Random(20261128)
    for _ in range(100_000):
        text = "".join(rnd.choice(_ALPHABET) for _ in range(rnd.randint(0, 24)))
        for kazakh in (True, False):
            assert fold(text, kazakh=kazakh) == _fold_text(text, kazakh=kazakh), repr(text)


def test_chunked_fold_equals_whole_text_fold_on_catalogue_names() -> None:
    data = Dataset(20_000)
    for i in range(20_000):
        name = data.name(i)
        assert fold(name) == _fold_text(name), name


@pytest.mark.parametrize("text, folded", [
    ("Молоко 3,2% 1л", "молоко 3.2 1 л"), ("Сүт  «Қазақстан»", "сут казакстан"), ("№5 мoлоко", "5 молоко"),
    ("Nestlé\u00a0Nesquik", "nestle nesquik"), ("", ""), ("  ", ""),
])
def test_folding_examples(text: str, folded: str) -> None:
    assert fold(text) == folded
