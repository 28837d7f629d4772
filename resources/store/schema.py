"""Tables of the product/outbox database (SQLAlchemy Core).

The `products` and `product_stock` tables are a public contract (DESIGN.md); the `raw_*` tables
are staging for extracts, so a 1M-product sync streams through the database instead of memory.
Schema changes go through Alembic migrations in `resources/store/migrations`.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

products = Table(
    "products",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("price", Float, nullable=True),
    Column("currency", String(3), nullable=True),
    Column("stock", Float, nullable=False, default=0.0),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("onec_ref", String(36), nullable=False, unique=True),
    Column("synced_at", DateTime, nullable=False),
    # extras beyond the contract
    Column("code", String(64), nullable=True),
    Column("article", String(128), nullable=True),
    Column("unit", String(64), nullable=True),
    Column("group_name", Text, nullable=True),
    Column("barcode", String(64), nullable=True),
    Column("deletion_mark", Boolean, nullable=False, default=False),
    Column("data_version", String(64), nullable=True),
    # migrations 0008, 0012: the stock per warehouse as JSON, the part of a row's content no column
    # shows ("vanished" for a product gone from 1C); the publish compares it with the columns
    Column("content_hash", Text, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("search_text", Text, nullable=True),  # migration 0002: what the search index reads
)

product_stock = Table(
    "product_stock",
    metadata,
    Column("sku", String(64), ForeignKey("products.sku", ondelete="CASCADE"), primary_key=True),
    Column("warehouse", String(255), primary_key=True),
    Column("quantity", Float, nullable=False),
)

extract_batches = Table(
    "extract_batches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # running | complete | failed
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime, nullable=True),
    Column("row_count", Integer, nullable=False, default=0),
    Column("note", Text, nullable=True),
    Index("ix_extract_batches_kind_status", "kind", "status", "id"),
)

raw_catalogue = Table(
    "raw_catalogue",
    metadata,
    Column("batch_id", Integer, nullable=False),
    Column("ref", String(36), nullable=False),
    Column("data_version", String(64), nullable=True),
    Column("deletion_mark", Boolean, nullable=False),
    Column("parent", String(36), nullable=True),
    Column("code", String(64), nullable=True),
    Column("article", String(128), nullable=True),
    Column("name", Text, nullable=True),
    Column("unit", String(36), nullable=True),
    # Search pieces computed at extract time (while the client waits for 1C), so the candidate
    # is one set-based statement: ident_key(article/code).lower(). NULL: not computed.
    Column("search_name", Text, nullable=True),  # fold(name) before migration 0011; no longer written
    Column("article_key", Text, nullable=True),
    Column("code_key", Text, nullable=True),
    # migration 0011: `document.search_text` for the first-choice SKU, computed by the extract
    Column("search_text", Text, nullable=True),
    Index("ix_raw_catalogue_batch_ref", "batch_id", "ref"),
)

raw_prices = Table(
    "raw_prices",
    metadata,
    Column("batch_id", Integer, nullable=False),
    Column("product", String(36), nullable=False),
    Column("package", String(36), nullable=True),
    Column("characteristic", String(36), nullable=True),
    Column("price", Float, nullable=False),
    Index("ix_raw_prices_batch_product", "batch_id", "product"),
)

# Migrations 0009, 0010: per product of a stock batch (summed per warehouse name by the extract),
# its total and `detail`, the quantities by warehouse name as a JSON object: expanded into
# `product_stock` by the publish, and compared as the row's `content_hash`.
raw_stock_totals = Table(
    "raw_stock_totals",
    metadata,
    Column("batch_id", Integer, primary_key=True),
    Column("product", String(36), primary_key=True),
    Column("total", Float, nullable=False),
    Column("detail", Text, nullable=False),
    sqlite_with_rowid=False,
)

# Small reference catalogues read alongside an extract: groups, units, currencies, price types,
# warehouses. `kind` names which; `extra` holds one kind-specific value (unit ratio, currency ref).
raw_reference = Table(
    "raw_reference",
    metadata,
    Column("batch_id", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("ref", String(36), nullable=False),
    Column("code", String(64), nullable=True),
    Column("name", Text, nullable=True),
    Column("parent", String(36), nullable=True),
    Column("extra", Text, nullable=True),
    Column("folded", Text, nullable=True),  # fold(name) of a group before migration 0011; no longer written
    Index("ix_raw_reference_batch_kind", "batch_id", "kind", "ref"),
)

# The mapped next version of `products`, built by the candidate step and checked before publish.
products_next = Table(
    "products_next",
    metadata,
    Column("candidate_id", Integer, primary_key=True),
    Column("onec_ref", String(36), primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("name", Text, nullable=False),
    Column("price", Float, nullable=True),
    Column("currency", String(3), nullable=True),
    Column("stock", Float, nullable=False),
    Column("is_active", Boolean, nullable=False),
    Column("code", String(64), nullable=True),
    Column("article", String(128), nullable=True),
    Column("unit", String(64), nullable=True),
    Column("group_name", Text, nullable=True),
    Column("barcode", String(64), nullable=True),
    Column("deletion_mark", Boolean, nullable=False),
    Column("data_version", String(64), nullable=True),
    # migrations 0008, 0012: the stock per warehouse as JSON, the part of a row's content no column
    # shows ("vanished" for a product gone from 1C); the publish compares it with the columns
    Column("content_hash", Text, nullable=False),
    Column("search_text", Text, nullable=True),
    Column("change", String(8), nullable=True),  # insert | update | same, set at publish
    # migration 0006: `document.ident_key` of sku / article / code for `product_idents`; NULL: not
    # precomputed (the publish falls back to the SQL expression for that row)
    Column("sku_ident", Text, nullable=True),
    Column("article_ident", Text, nullable=True),
    Column("code_ident", Text, nullable=True),
    Index("ix_products_next_sku", "candidate_id", "sku"),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(32), nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime, nullable=True),
    Column("status", String(16), nullable=False),  # success | failed | blocked
    Column("inserted", Integer, nullable=False, default=0),
    Column("updated", Integer, nullable=False, default=0),
    Column("deactivated", Integer, nullable=False, default=0),
    Column("unchanged", Integer, nullable=False, default=0),
    Column("active", Integer, nullable=False, default=0),
    Column("error", Text, nullable=True),
)
