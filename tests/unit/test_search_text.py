"""Text tools of product search: folding, keyboard layout, transliteration, the `search_text` contract."""

import pytest

from resources.store.search import (
    cyrillic_to_latin,
    fold,
    ident_key,
    latin_key,
    latin_to_cyrillic,
    search_text,
    to_cyrillic_layout,
    to_latin_layout,
    tokens,
)
from resources.store.search.document import split_search_text
from resources.store.search.vocabulary import Vocabulary, max_edits


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("МОЛОКО", "молоко"),
        ("Ёжик в тумане", "ежик в тумане"),
        ("Сүт «Қазақстан» 2,5% 1 л", "сут казакстан 2.5 1 л"),
        ("ҚЫМЫЗ Ірімшік Ұн Ғ Ң Ө Ә Һ Ү", "кымыз иримшик ун г н о а х у"),
        ("Молоко 3,2% 930мл", "молоко 3.2 930 мл"),
        ("Вода 1.5л.", "вода 1.5 л"),
        ("Nestlé Coca-Cola Dr. Körner", "nestle coca cola dr korner"),
        ("мoлоко", "молоко"),  # a Latin «o» inside a Cyrillic word
        ("Lay's", "lay s"),
        ("Макароны №5", "макароны 5"),
        ("  \t ", ""),
        ("", ""),
        ("Head & Shoulders / 400 мл", "head shoulders 400 мл"),
        ("ПОЛОТЕНЦЕ 70×140 см", "полотенце 70 140 см"),
    ],
)
def test_fold(raw: str, folded: str) -> None:
    assert fold(raw) == folded


def test_fold_kazakh_is_optional() -> None:
    assert fold("Сүт", kazakh=False) == "сүт"
    assert fold("Сүт") == "сут"


def test_fold_is_idempotent_and_never_emits_the_section_separator() -> None:
    for raw in ("Сүт «Қазақстан» 2,5%", "a|b|c", "Молоко | Простоквашино"):
        once = fold(raw)
        assert fold(once) == once
        assert "|" not in once


def test_tokens() -> None:
    assert tokens("Йогурт 2,5% клубника") == ["йогурт", "2.5", "клубника"]


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("vjkjrj", "молоко"), ("[kt,", "хлеб"), ("cf[fh", "сахар"), ("Vjkjrj 3.2", "Молоко 3.2"), ("`krf", "ёлка")],
)
def test_to_cyrillic_layout(typed: str, meant: str) -> None:
    assert to_cyrillic_layout(typed) == meant


def test_to_latin_layout_maps_letters_only() -> None:
    assert to_latin_layout("Ьшдлф") == "Milka"
    assert to_latin_layout("ытшслукы 3,5.") == "snickers 3,5."


@pytest.mark.parametrize(
    ("latin", "cyrillic"),
    [
        ("moloko", "молоко"),
        ("sahar", "сахар"),
        ("sakhar", "сахар"),
        ("khleb", "хлеб"),
        ("zhvachka", "жвачка"),
        ("chay", "чай"),
        ("chai", "чай"),
        ("shokolad", "шоколад"),
        ("shchi", "щи"),
        ("yaitsa", "яйца"),
        ("syr", "сыр"),
        ("yogurt", "йогурт"),
        ("pechen'e", "печенье"),
        ("coca cola", "кока кола"),
        ("qymyz", "кымыз"),
        ("şubat", "шубат"),
        ("jumyrtqa", "жумыртка"),
        ("Sut 2,5%", "сут 2,5%"),
    ],
)
def test_latin_to_cyrillic(latin: str, cyrillic: str) -> None:
    assert latin_to_cyrillic(latin) == cyrillic


def test_search_text_contract() -> None:
    value = search_text(
        name="Сүт «Қазақстан» 2,5% 1 л", sku="MLK-007", article="ab 12/3", code="00-00000007",
        barcode="4870000000017", group_name="Молочная продукция",
    )
    assert value == "сут казакстан 2.5 1 л|молочная продукция|mlk007 ab123 0000000007 4870000000017"
    assert split_search_text(value) == (
        "сут казакстан 2.5 1 л", "молочная продукция", "mlk007 ab123 0000000007 4870000000017"
    )
    # positional call, missing parts
    assert search_text("Хлеб", None, None, None, None, None) == "хлеб||"
    assert search_text(None) == "||"


def test_ident_key_matches_the_sql_twin() -> None:
    assert ident_key(" mlk-003 ") == "MLK003"
    assert ident_key("AB 12/3.4") == "AB1234"
    assert ident_key("арт-5") == "арт5"  # SQLite upper() leaves non-ASCII alone, so do we
    assert ident_key(None) == ""


def test_vocabulary_prefix_and_corrections() -> None:
    vocab = Vocabulary.from_counts(
        [("молоко", 50), ("молочный", 10), ("малина", 3), ("мл", 80), ("3.2", 9), ("колбаса", 7)]
    )
    assert "молоко" in vocab and len(vocab) == 6
    assert vocab.prefix_count("мол") == 2
    assert vocab.prefix_count("мур") == 0
    assert vocab.corrections("малоко")[0] == ("молоко", 1)
    assert ("молоко", 2) in vocab.corrections("малако")
    assert vocab.corrections("колбсаа") == [("колбаса", 1)]  # a transposition is one edit
    assert vocab.corrections("мк") == []  # too short to guess
    assert all(term != "мл" for term, _ in vocab.corrections("млк"))  # no guessing into units
    assert vocab.corrections("3.3") == []  # numbers are not typos


@pytest.mark.parametrize(
    ("cyrillic", "brand"),
    [("нескафе", "nescafe"), ("кока", "coca"), ("сникерс", "snickers"), ("вискас", "whiskas"),
     ("якобс", "jacobs"), ("ариэль", "ariel"), ("данон", "danone"), ("милка", "milka")],
)
def test_cyrillic_brand_spellings_share_the_sound_key(cyrillic: str, brand: str) -> None:
    assert latin_key(cyrillic_to_latin(cyrillic)) == latin_key(brand)


def test_cyrillic_to_latin() -> None:
    assert cyrillic_to_latin("Щука жёлтая") == "schuka zheltaya"
    assert cyrillic_to_latin("Қазы") == "kazy"


def test_vocabulary_guesses_latin_brands_and_stems() -> None:
    vocab = Vocabulary.from_counts(
        [("nescafe", 4), ("coca", 3), ("cola", 3), ("gillette", 2), ("гречневая", 5), ("греческий", 1)]
    )
    assert vocab.latin_matches("neskafe") == [("nescafe", 0)]
    assert vocab.latin_matches("koka")[0] == ("coca", 0)
    assert vocab.latin_matches("zhillet") == [("gillette", 1)]  # «жиллет»
    assert vocab.latin_matches("xyz") == []
    assert vocab.stems("гречка") == [("греч", 2)]
    assert vocab.stems("сок") == []


def test_max_edits() -> None:
    assert [max_edits("x" * n) for n in range(1, 8)] == [0, 0, 1, 1, 2, 2, 2]


@pytest.mark.parametrize("value", ["ab-12/3", "АБ-7", "", " x.y ", "Кк-ab", "Q\t9", "ÄÖ.ü", "İstanbul"])
def test_ident_search_key_is_the_lowered_ident_key(value: str) -> None:
    from resources.store.search.document import ident_key, ident_search_key

    assert ident_search_key(value) == ident_key(value).lower()
