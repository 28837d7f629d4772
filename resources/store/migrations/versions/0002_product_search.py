"""Product search: `products.search_text`, and on SQLite an FTS5 index kept in step by triggers.

Revision ID: 0002_product_search
Revises: 0001_catalogue

`products.search_text` is written by the sync (see `resources.store.search.document`); the
triggers only copy and split it, so no custom SQL function is needed by any connection. A row
written without it (NULL) is still indexed, from its raw name and group with ё and the Kazakh
letters folded by plain `replace()`.

SQLite objects (the DDL is frozen here; change it only in a later migration):
- `product_search`: one row per *active* product, `doc_id INTEGER PRIMARY KEY AUTOINCREMENT`
  (stable, unlike the implicit rowid of `products`, which VACUUM may renumber); every (re)index
  takes a fresh doc_id, so `sqlite_sequence` doubles as the index version for caches.
- `products_fts`: FTS5 over `product_search` (external content: columns name, grp).
- `products_fts_vocab`: fts5vocab 'row' view of the folded words, for typo correction.
- `product_idents`: normalised sku/barcode/article/code of active products, for exact lookup.
Triggers fire on changes to searched columns only (not `synced_at`), and a stock change
touches only `product_search.in_stock`.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_product_search"
down_revision = "0001_catalogue"
branch_labels = None
depends_on = None

_SEARCHED = ("sku", "name", "group_name", "article", "code", "barcode", "is_active", "search_text")


def _ident(expr: str) -> str:
    """SQL twin of `document.ident_key` (SQLite upper() is ASCII-only, as is ident_key's)."""
    for ch in (" ", "-", ".", "/", "char(9)"):
        lit = ch if ch.startswith("char(") else f"'{ch}'"
        expr = f"replace({expr}, {lit}, '')"
    return f"upper(trim({expr}))"


# ё and the Kazakh letters, both cases (FTS5 folds case itself; SQLite's lower() is ASCII-only).
_LETTER_FOLD = "ёЁқҚңҢғҒүҮұҰәӘөӨіІһҺ"
_LETTER_BASE = "еЕкКнНгГуУуУаАоОиИхХ"


def _sql_fold(expr: str) -> str:
    """Fallback folding in plain SQL, for rows written without `search_text`."""
    for src, dst in zip(_LETTER_FOLD, _LETTER_BASE, strict=True):
        expr = f"replace({expr}, '{src}', '{dst}')"
    return expr


def _sections(r: str) -> tuple[str, str]:
    """SQL for the (name, group) sections of `search_text` of row alias `r` (`new` or a table)."""
    st = f"{r}.search_text"
    rest = f"substr({st}, instr({st}, '|') + 1)"
    name = (
        f"CASE WHEN {st} IS NULL THEN {_sql_fold(f'{r}.name')} WHEN instr({st}, '|') = 0 THEN {st} "
        f"ELSE substr({st}, 1, instr({st}, '|') - 1) END"
    )
    raw_group = f"coalesce({r}.group_name, '')"
    group = (
        f"CASE WHEN {st} IS NULL THEN {_sql_fold(raw_group)} "
        f"WHEN instr({st}, '|') = 0 THEN '' "
        f"WHEN instr({rest}, '|') = 0 THEN {rest} ELSE substr({rest}, 1, instr({rest}, '|') - 1) END"
    )
    return name, group


def _insert_doc(r: str, where: str) -> str:
    name, group = _sections(r)
    return (
        "INSERT INTO product_search (sku, in_stock, name, grp) "
        f"SELECT {r}.sku, {r}.stock > 0, {name}, {group} {where}"
    )


def _insert_idents(r: str, source: str) -> str:
    parts = " UNION ALL ".join(
        f"SELECT {_ident(f'{r}.{col}')} AS ident, '{col}' AS kind, {r}.sku AS sku {source}"
        for col in ("sku", "barcode", "article", "code")
    )
    return f"INSERT OR IGNORE INTO product_idents (ident, kind, sku) SELECT ident, kind, sku FROM ({parts}) WHERE ident IS NOT NULL AND ident <> ''"


_UNINDEX_OLD = """
    INSERT INTO products_fts (products_fts, rowid, name, grp)
        SELECT 'delete', doc_id, name, grp FROM product_search WHERE sku = old.sku;
    DELETE FROM product_search WHERE sku = old.sku;
    DELETE FROM product_idents WHERE sku = old.sku;
"""


def _index_new() -> str:
    return f"""
    {_insert_doc("new", "WHERE new.is_active")};
    INSERT INTO products_fts (rowid, name, grp)
        SELECT doc_id, name, grp FROM product_search WHERE sku = new.sku AND new.is_active;
    {_insert_idents("new", "WHERE new.is_active")};
"""


def _changed() -> str:
    return " OR ".join(f"old.{c} IS NOT new.{c}" for c in _SEARCHED)


def _sqlite_upgrade() -> None:
    op.execute(
        """
        CREATE TABLE product_search (
            doc_id INTEGER PRIMARY KEY AUTOINCREMENT,
            sku TEXT NOT NULL UNIQUE,
            in_stock INTEGER NOT NULL,
            name TEXT NOT NULL,
            grp TEXT NOT NULL
        )
        """
    )
    op.execute(
        """
        CREATE VIRTUAL TABLE products_fts USING fts5(
            name, grp,
            content='product_search', content_rowid='doc_id',
            tokenize="unicode61 remove_diacritics 0 tokenchars '.'",
            prefix='2 3'
        )
        """
    )
    op.execute("CREATE VIRTUAL TABLE products_fts_vocab USING fts5vocab(products_fts, 'row')")
    op.execute(
        """
        CREATE TABLE product_idents (
            ident TEXT NOT NULL,
            kind TEXT NOT NULL,
            sku TEXT NOT NULL,
            PRIMARY KEY (ident, kind, sku)
        ) WITHOUT ROWID
        """
    )
    op.execute("CREATE INDEX ix_product_idents_sku ON product_idents (sku)")

    # Fill from what is already there, then keep in step.
    op.execute(_insert_doc("products", "FROM products WHERE products.is_active"))
    op.execute("INSERT INTO products_fts (products_fts) VALUES ('rebuild')")
    op.execute(_insert_idents("products", "FROM products WHERE products.is_active"))

    op.execute(f"CREATE TRIGGER products_search_ai AFTER INSERT ON products BEGIN {_index_new()} END")
    op.execute(f"CREATE TRIGGER products_search_ad AFTER DELETE ON products BEGIN {_UNINDEX_OLD} END")
    op.execute(
        f"CREATE TRIGGER products_search_au AFTER UPDATE OF {', '.join(_SEARCHED)} ON products "
        f"WHEN {_changed()} BEGIN {_UNINDEX_OLD} {_index_new()} END"
    )
    op.execute(
        "CREATE TRIGGER products_search_stock AFTER UPDATE OF stock ON products "
        "WHEN (old.stock > 0) IS NOT (new.stock > 0) BEGIN "
        "UPDATE product_search SET in_stock = new.stock > 0 WHERE sku = new.sku; END"
    )


def _backfill_search_text(batch: int = 5000) -> None:
    """Compute `search_text` for rows written before this revision (the sync keeps it after),
    in key order and in batches, so a large catalogue is never all in memory."""
    from resources.store.search.document import search_text

    bind = op.get_bind()
    select = sa.text(
        "SELECT sku, name, article, code, barcode, group_name FROM products "
        "WHERE sku > :last ORDER BY sku LIMIT :batch"
    )
    update = sa.text("UPDATE products SET search_text = :st WHERE sku = :sku")
    last = ""
    while True:
        rows = bind.execute(select, {"last": last, "batch": batch}).all()
        if not rows:
            return
        last = rows[-1].sku
        bind.execute(update, [
            {"sku": r.sku, "st": search_text(r.name, r.sku, r.article, r.code, r.barcode, r.group_name)}
            for r in rows
        ])


def upgrade() -> None:
    op.add_column("products", sa.Column("search_text", sa.Text, nullable=True))
    _backfill_search_text()
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_upgrade()


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("products_search_ai", "products_search_ad", "products_search_au", "products_search_stock"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        for table in ("products_fts_vocab", "products_fts", "product_idents", "product_search"):
            op.execute(f"DROP TABLE IF EXISTS {table}")
    with op.batch_alter_table("products") as batch:
        batch.drop_column("search_text")
