"""`raw_stock_totals`: one row per product of a stock batch, its total and per-warehouse detail.

The stock extract already sums Balance per product and warehouse name while 1C sends pages
(0007); it now also writes the product's total and the detail text the content check compares,
so the candidate joins one row by key instead of aggregating `raw_stock` twice per product
(0.19 s of a 100k sync, after the last page). Stock batches staged before it have no totals:
they are retired like in 0007, so the next candidate asks for a new stock extract.

Revision ID: 0009_stock_totals
Revises: 0008_content_hash_stock_only
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_stock_totals"
down_revision = "0008_content_hash_stock_only"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE extract_batches SET status = 'pruned' WHERE kind = 'stock' AND status <> 'failed'")
    op.execute("DELETE FROM raw_stock")
    op.create_table(
        "raw_stock_totals",
        sa.Column("batch_id", sa.Integer, nullable=False),
        sa.Column("product", sa.String(36), nullable=False),
        sa.Column("total", sa.Float, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),  # "name\tquantity" lines, by name
        sa.PrimaryKeyConstraint("batch_id", "product"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("raw_stock_totals")
