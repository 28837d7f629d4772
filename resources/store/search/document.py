"""What the sync stores per product for search: the `search_text` column and identifier keys.

`search_text` is computed in Python (by the sync, for every row it writes) so that SQL triggers
only copy it into the index: no connection ever needs a custom SQL function, and a write from
the plain `sqlite3` shell cannot break on a missing one. Layout: three folded sections joined by
`|` (fold() never emits `|`): ``name|group|identifiers``. A NULL `search_text` still gets indexed
from the raw name (case-folded by FTS5 itself, but without ё/Kazakh folding).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from resources.store.search.normalize import fold

__all__ = ["SECTION_SEP", "ident_key", "ident_search_key", "search_text", "search_text_of_keys", "split_search_text"]

SECTION_SEP = "|"

_IDENT_DROP = re.compile(r"[ \t\-./]+")
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def ident_key(value: object) -> str:
    """Normalise an SKU/article/code/barcode for exact lookup: no spaces, dashes, dots or slashes;
    ASCII letters uppercased. Mirrors the SQL in migration 0002 (SQLite `upper()` is ASCII-only),
    so «ab-123», «AB 123» and «AB123» are the same key."""
    if value is None:
        return ""
    return _IDENT_DROP.sub("", str(value)).translate(_ASCII_UPPER)


def ident_search_key(value: str) -> str:
    """`ident_key(value).lower()` (the identifier piece of `search_text`) without the ASCII
    uppercasing that `.lower()` undoes: the extract computes it for every product."""
    return _IDENT_DROP.sub("", value).lower()


def search_text(
    name: str | None,
    sku: str | None = None,
    article: str | None = None,
    code: str | None = None,
    barcode: str | None = None,
    group_name: str | None = None,
) -> str:
    """The value of `products.search_text` for one product (deterministic, pure)."""
    keys = (ident_search_key(str(value)) for value in (sku, article, code, barcode) if value is not None)
    return search_text_of_keys(name, group_name, keys)


def search_text_of_keys(name: str | None, group_name: str | None, keys: Iterable[str]) -> str:
    """`search_text` from identifier search keys already computed (sku, article, code, barcode
    order): the extract has them anyway and calls this for every product."""
    idents: list[str] = []
    for key in keys:
        if key and key not in idents:
            idents.append(key)
    return SECTION_SEP.join((fold(name), _fold_group(group_name), " ".join(idents)))


@lru_cache(maxsize=4096)
def _fold_group(group_name: str | None) -> str:
    """Group names repeat across thousands of products: fold each once."""
    return fold(group_name)


def split_search_text(value: str) -> tuple[str, str, str]:
    """(name, group, identifiers) sections of a `search_text` value, as the triggers split it."""
    name, _, rest = value.partition(SECTION_SEP)
    group, _, idents = rest.partition(SECTION_SEP)
    return name, group, idents
