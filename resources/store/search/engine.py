"""`search_products(db, query, limit)`: the one call the bot makes."""

from __future__ import annotations

import threading
import weakref
from typing import Any

from resources.store.database import Database
from resources.store.search.base import ProductSearch
from resources.store.search.sqlite import SqliteProductSearch

__all__ = ["product_search_for", "search_products"]

_backends: weakref.WeakKeyDictionary[Database, ProductSearch] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def product_search_for(db: Database) -> ProductSearch:
    """The search backend of `db` (one per Database, so its vocabulary cache is shared)."""
    with _lock:
        backend = _backends.get(db)
        if backend is None:
            if not db.is_sqlite:
                raise NotImplementedError("product search is implemented for SQLite only so far")
            backend = SqliteProductSearch()
            _backends[db] = backend
        return backend


def search_products(db: Database, query: str, limit: int = 10) -> list[dict[str, Any]]:
    """Active products for what a customer typed, best first.

    Each row: sku, name, price, currency, stock, is_active, score (higher is better) and match
    (sku | barcode | article | code | *_prefix | exact | prefix | layout | translit | fuzzy |
    partial | group). Empty or blank query → []. Reads one consistent snapshot."""
    if not query or not query.strip() or limit <= 0:
        return []
    backend = product_search_for(db)
    with db.read() as conn:
        return backend.search(conn, query, limit)
