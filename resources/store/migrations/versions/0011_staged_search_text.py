"""`raw_catalogue.search_text`: the extract writes each product's search text as its page lands.

The search text (folded name and group, identifier keys) of a product depends only on its own
catalogue row and its group, so the extract computes it with `document.search_text` while 1C is
still sending pages, and the candidate copies it instead of assembling it in SQL after the last
page. NULL (rows staged before this revision, or a product whose SKU the collision rule changes)
still means "fill it in Python".

Revision ID: 0011_staged_search_text
Revises: 0010_stock_json
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_staged_search_text"
down_revision = "0010_stock_json"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("raw_catalogue") as batch:
        batch.add_column(sa.Column("search_text", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("raw_catalogue") as batch:
        batch.drop_column("search_text")
