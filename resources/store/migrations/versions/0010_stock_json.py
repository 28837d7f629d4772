"""Per-warehouse stock travels as JSON in `raw_stock_totals.detail`; `raw_stock` goes.

The stock extract is the longest of the three (172k Balance rows at 100k products) and the last
to finish, so its own work sets the end of the fetch. It wrote every (product, warehouse) row to
`raw_stock` and one row per product to `raw_stock_totals`; now it writes only the latter, its
`detail` being the quantities by warehouse name as a JSON object (the text the content check
compares, see 0012), and the publish expands it into `product_stock` (`json_each` on SQLite,
`json_each_text` on PostgreSQL). Stock batches staged before are retired.

Revision ID: 0010_stock_json
Revises: 0009_stock_totals
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_stock_json"
down_revision = "0009_stock_totals"
branch_labels = None
depends_on = None


def _retire_stock_batches() -> None:
    op.execute("UPDATE extract_batches SET status = 'pruned' WHERE kind = 'stock' AND status <> 'failed'")
    op.execute("DELETE FROM raw_stock_totals")


def upgrade() -> None:
    _retire_stock_batches()
    op.drop_table("raw_stock")


def downgrade() -> None:
    _retire_stock_batches()
    op.create_table(
        "raw_stock",
        sa.Column("batch_id", sa.Integer, nullable=False),
        sa.Column("product", sa.String(36), nullable=False),
        sa.Column("warehouse", sa.String(255), nullable=False),
        sa.Column("quantity", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("batch_id", "product", "warehouse"),
        sqlite_with_rowid=False,
    )
