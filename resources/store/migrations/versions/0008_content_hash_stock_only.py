"""`content_hash` keeps only the stock per warehouse; the publish compares it with the columns.

The old signature repeated the row: SKU, name, price, currency, stock, deletion mark, code,
article, unit and group, then the per-warehouse stock, ~180 bytes a row in `products` and again
in `products_next`, built by string concatenation for every candidate row (0.18 s of a 100k
sync). Those values are all columns of the row, so the publish now compares the columns and
this field keeps only the part no column shows. Stored signatures are cut to that part here, so
no unchanged product is rewritten by the first sync after the upgrade. Not reversible: a
downgrade leaves the short form, and the next sync after it rewrites each row once.

Revision ID: 0008_content_hash_stock_only
Revises: 0007_stock_by_name
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_content_hash_stock_only"
down_revision = "0007_stock_by_name"
branch_labels = None
depends_on = None

_FIELDS = 11  # sku|name|price|currency|stock|deletion mark|code|article|unit|group|stock detail
_SEP = "\x1f"
_BATCH = 5000


def _shorten(table: str, keys: tuple[str, ...]) -> None:
    conn = op.get_bind()
    cols = ", ".join(keys)
    last: tuple = ()
    while True:
        after = f"WHERE ({cols}) > ({', '.join(f':k{i}' for i in range(len(keys)))})" if last else ""
        rows = conn.execute(sa.text(f"SELECT {cols}, content_hash FROM {table} {after} ORDER BY {cols} LIMIT {_BATCH}"),
                            {f"k{i}": v for i, v in enumerate(last)}).all()
        if not rows:
            return
        last = tuple(rows[-1][: len(keys)])
        changes = []
        for row in rows:
            parts = row[-1].split(_SEP)
            if len(parts) == _FIELDS:
                changes.append({"new": parts[-1], **{f"k{i}": v for i, v in enumerate(row[: len(keys)])}})
        if changes:
            where = " AND ".join(f"{k} = :k{i}" for i, k in enumerate(keys))
            conn.execute(sa.text(f"UPDATE {table} SET content_hash = :new WHERE {where}"), changes)


def upgrade() -> None:
    _shorten("products", ("sku",))
    _shorten("products_next", ("candidate_id", "onec_ref"))


def downgrade() -> None:
    pass  # see the docstring: the next sync rewrites each row once
