"""`products_next` carries the lookup keys of each candidate row (sku, article, code).

A first load or any bulk publish refills `product_idents` in one pass; evaluated per row, the
key expression of migration 0002 (five `replace()`s, `trim`, `upper`) cost 0.27 s of the 0.44 s
that refill took at 100k products. The candidate step now derives the keys from what the extract
already computed, and the publish copies them. NULL means "not precomputed": the expression is
used for that row, so the keys stay exactly what the triggers would write.

Revision ID: 0006_candidate_idents
Revises: 0005_crm_events
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_candidate_idents"
down_revision = "0005_crm_events"
branch_labels = None
depends_on = None

_COLUMNS = ("sku_ident", "article_ident", "code_ident")


def upgrade() -> None:
    with op.batch_alter_table("products_next") as batch:
        for name in _COLUMNS:
            batch.add_column(sa.Column(name, sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("products_next") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
