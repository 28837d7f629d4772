"""Stored `content_hash` values turn from "name\\tquantity" lines into the JSON of the stock extract.

Since 0010 the stock extract writes each product's quantities by warehouse name once, as a JSON
object, and that text is also what the content check compares; the lines-of-text form needed a
second string per product and SQLite's number formatting. Stored values are converted here so no
unchanged product is rewritten by the first sync after the upgrade ('' and 'vanished' stay).
A line that does not parse is left alone: that product is rewritten once.

Revision ID: 0012_stock_detail_json
Revises: 0011_staged_search_text
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0012_stock_detail_json"
down_revision = "0011_staged_search_text"
branch_labels = None
depends_on = None

_BATCH = 5000


def as_json(lines: str) -> str | None:
    """{"name": quantity} of "name\\tquantity" lines, or None when a line does not parse."""
    by_name = {}
    for line in lines.split("\n"):
        name, tab, quantity = line.rpartition("\t")
        if not tab:
            return None
        try:
            by_name[name] = float(quantity)
        except ValueError:
            return None
    # by code point, as the extract orders them (PostgreSQL's old order followed its collation)
    return json.dumps(dict(sorted(by_name.items())), ensure_ascii=False, separators=(",", ":"))


def _convert(table: str, keys: tuple[str, ...]) -> None:
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
            value = row[-1]
            new = as_json(value) if value and "\t" in value else None
            if new is not None:
                changes.append({"new": new, **{f"k{i}": v for i, v in enumerate(row[: len(keys)])}})
        if changes:
            where = " AND ".join(f"{k} = :k{i}" for i, k in enumerate(keys))
            conn.execute(sa.text(f"UPDATE {table} SET content_hash = :new WHERE {where}"), changes)


def upgrade() -> None:
    _convert("products", ("sku",))
    _convert("products_next", ("candidate_id", "onec_ref"))


def downgrade() -> None:
    pass  # the next sync after a downgrade rewrites each product with stock once
