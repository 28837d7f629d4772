"""`raw_stock` holds one row per product and warehouse *name*, keyed; `product_stock_next` goes.

The stock extract now resolves warehouse names and sums per (product, name) while 1C is still
sending pages (Balance comes back ordered by product), so the candidate reads stock by key and the
publish copies `product_stock` straight from the batch. Before, the candidate step re-joined the
names, grouped 172k rows and wrote them again as `product_stock_next` (0.22 s of a 100k sync, after
the last page). Rows staged in the old layout hold warehouse refs: they are dropped and their stock
batches marked `pruned`, so the next candidate asks for a new stock extract instead of misreading
them; a candidate built from them can no longer be published (its stock batch is gone).

Revision ID: 0007_stock_by_name
Revises: 0006_candidate_idents
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_stock_by_name"
down_revision = "0006_candidate_idents"
branch_labels = None
depends_on = None


def _retire_stock_batches() -> None:
    op.execute("UPDATE extract_batches SET status = 'pruned' WHERE kind = 'stock' AND status <> 'failed'")


def upgrade() -> None:
    _retire_stock_batches()
    op.drop_index("ix_raw_stock_batch_product", table_name="raw_stock")
    op.drop_table("raw_stock")
    op.create_table(
        "raw_stock",
        sa.Column("batch_id", sa.Integer, nullable=False),
        sa.Column("product", sa.String(36), nullable=False),
        sa.Column("warehouse", sa.String(255), nullable=False),  # the warehouse's name
        sa.Column("quantity", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("batch_id", "product", "warehouse"),
        sqlite_with_rowid=False,
    )
    op.drop_table("product_stock_next")


def downgrade() -> None:
    # Candidates built since have no `product_stock_next` rows: the old publish would drop stock.
    op.execute("DELETE FROM products_next WHERE candidate_id IN "
               "(SELECT id FROM extract_batches WHERE kind = 'candidate' AND status = 'complete')")
    op.execute("UPDATE extract_batches SET status = 'pruned' WHERE kind = 'candidate' AND status = 'complete'")
    _retire_stock_batches()
    op.drop_table("raw_stock")
    op.create_table(
        "raw_stock",
        sa.Column("batch_id", sa.Integer, nullable=False),
        sa.Column("product", sa.String(36), nullable=False),
        sa.Column("warehouse", sa.String(36), nullable=False),
        sa.Column("quantity", sa.Float, nullable=False),
    )
    op.create_index("ix_raw_stock_batch_product", "raw_stock", ["batch_id", "product"])
    op.create_table(
        "product_stock_next",
        sa.Column("candidate_id", sa.Integer, nullable=False),
        sa.Column("onec_ref", sa.String(36), nullable=False),
        sa.Column("warehouse", sa.String(255), nullable=False),
        sa.Column("quantity", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("candidate_id", "onec_ref", "warehouse"),
        sqlite_with_rowid=False,
    )
