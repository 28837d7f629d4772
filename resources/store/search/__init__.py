"""Product search for the bot: folding, the SQLite FTS5 index, ranking (issue 4, item 3).

Public API:
- `search_products(db, query, limit=10) -> list[dict]` — what the bot calls.
- `search_text(name, sku, article, code, barcode, group_name) -> str` — what the sync writes
  into `products.search_text` for every row it inserts or updates.
- `rebuild_index(conn)` — rebuild the index (and stale `search_text`) in a write transaction.
- `fold`, `to_cyrillic_layout`, `to_latin_layout`, `latin_to_cyrillic`, `cyrillic_to_latin`,
  `latin_key` — the text tools.
- `ProductSearch` (backend base), `SqliteProductSearch`.
"""

from resources.store.search.base import ProductSearch
from resources.store.search.document import ident_key, search_text
from resources.store.search.engine import product_search_for, search_products
from resources.store.search.layout import to_cyrillic_layout, to_latin_layout
from resources.store.search.normalize import fold, tokens
from resources.store.search.sqlite import SqliteProductSearch, index_version, rebuild_index
from resources.store.search.translit import cyrillic_to_latin, latin_key, latin_to_cyrillic

__all__ = [
    "ProductSearch",
    "SqliteProductSearch",
    "cyrillic_to_latin",
    "fold",
    "ident_key",
    "index_version",
    "latin_key",
    "latin_to_cyrillic",
    "product_search_for",
    "rebuild_index",
    "search_products",
    "search_text",
    "to_cyrillic_layout",
    "to_latin_layout",
    "tokens",
]
