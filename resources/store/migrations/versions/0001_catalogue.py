"""Catalogue tables: products, product_stock, extract staging, sync runs.

Revision ID: 0001_catalogue
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_catalogue"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("price", sa.Float, nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("stock", sa.Float, nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False),
        sa.Column("onec_ref", sa.String(36), nullable=False, unique=True),
        sa.Column("synced_at", sa.DateTime, nullable=False),
        sa.Column("code", sa.String(64)),
        sa.Column("article", sa.String(128)),
        sa.Column("unit", sa.String(64)),
        sa.Column("group_name", sa.Text),
        sa.Column("barcode", sa.String(64)),
        sa.Column("deletion_mark", sa.Boolean, nullable=False),
        sa.Column("data_version", sa.String(64)),
        sa.Column("content_hash", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_products_active", "products", ["is_active"])
    op.create_index("ix_products_barcode", "products", ["barcode"])
    op.create_table(
        "product_stock",
        sa.Column("sku", sa.String(64), sa.ForeignKey("products.sku", ondelete="CASCADE"), primary_key=True),
        sa.Column("warehouse", sa.String(255), primary_key=True),
        sa.Column("quantity", sa.Float, nullable=False),
    )
    op.create_table(
        "extract_batches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("row_count", sa.Integer, nullable=False),
        sa.Column("note", sa.Text),
    )
    op.create_index("ix_extract_batches_kind_status", "extract_batches", ["kind", "status", "id"])
    op.create_table(
        "raw_catalogue",
        sa.Column("batch_id", sa.Integer, nullable=False),
        sa.Column("ref", sa.String(36), nullable=False),
        sa.Column("data_version", sa.String(64)),
        sa.Column("deletion_mark", sa.Boolean, nullable=False),
        sa.Column("parent", sa.String(36)),
        sa.Column("code", sa.String(64)),
        sa.Column("article", sa.String(128)),
        sa.Column("name", sa.Text),
        sa.Column("unit", sa.String(36)),
        sa.Column("search_name", sa.Text),
        sa.Column("article_key", sa.Text),
        sa.Column("code_key", sa.Text),
    )
    op.create_index("ix_raw_catalogue_batch_ref", "raw_catalogue", ["batch_id", "ref"])
    op.create_table(
        "raw_prices",
        sa.Column("batch_id", sa.Integer, nullable=False),
        sa.Column("product", sa.String(36), nullable=False),
        sa.Column("package", sa.String(36)),
        sa.Column("characteristic", sa.String(36)),
        sa.Column("price", sa.Float, nullable=False),
    )
    op.create_index("ix_raw_prices_batch_product", "raw_prices", ["batch_id", "product"])
    op.create_table(
        "raw_stock",
        sa.Column("batch_id", sa.Integer, nullable=False),
        sa.Column("product", sa.String(36), nullable=False),
        sa.Column("warehouse", sa.String(36), nullable=False),
        sa.Column("quantity", sa.Float, nullable=False),
    )
    op.create_index("ix_raw_stock_batch_product", "raw_stock", ["batch_id", "product"])
    op.create_table(
        "raw_reference",
        sa.Column("batch_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("ref", sa.String(36), nullable=False),
        sa.Column("code", sa.String(64)),
        sa.Column("name", sa.Text),
        sa.Column("parent", sa.String(36)),
        sa.Column("extra", sa.Text),
        sa.Column("folded", sa.Text),
    )
    op.create_index("ix_raw_reference_batch_kind", "raw_reference", ["batch_id", "kind", "ref"])
    op.create_table(
        "products_next",
        sa.Column("candidate_id", sa.Integer, primary_key=True),
        sa.Column("onec_ref", sa.String(36), primary_key=True),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("price", sa.Float),
        sa.Column("currency", sa.String(3)),
        sa.Column("stock", sa.Float, nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False),
        sa.Column("code", sa.String(64)),
        sa.Column("article", sa.String(128)),
        sa.Column("unit", sa.String(64)),
        sa.Column("group_name", sa.Text),
        sa.Column("barcode", sa.String(64)),
        sa.Column("deletion_mark", sa.Boolean, nullable=False),
        sa.Column("data_version", sa.String(64)),
        sa.Column("content_hash", sa.Text, nullable=False),
        sa.Column("search_text", sa.Text),
        sa.Column("change", sa.String(8)),
    )
    op.create_index("ix_products_next_sku", "products_next", ["candidate_id", "sku"])
    op.create_table(
        "product_stock_next",
        sa.Column("candidate_id", sa.Integer, nullable=False),
        sa.Column("onec_ref", sa.String(36), nullable=False),
        sa.Column("warehouse", sa.String(255), nullable=False),
        sa.Column("quantity", sa.Float, nullable=False),
    )
    op.create_index("ix_product_stock_next_ref", "product_stock_next", ["candidate_id", "onec_ref"])
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("inserted", sa.Integer, nullable=False),
        sa.Column("updated", sa.Integer, nullable=False),
        sa.Column("deactivated", sa.Integer, nullable=False),
        sa.Column("unchanged", sa.Integer, nullable=False),
        sa.Column("active", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
    )


def downgrade() -> None:
    for table in ("sync_runs", "product_stock_next", "products_next", "raw_reference", "raw_stock", "raw_prices", "raw_catalogue",
                  "extract_batches", "product_stock", "products"):
        op.drop_table(table)
