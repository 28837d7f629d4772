"""The SQLite search index of migration 0002: triggers keep it in step with `products`, only for
changes to searched columns, without any custom SQL function; `rebuild_index` reproduces it."""

import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import text

from resources.store.database import MIGRATIONS_DIR, Database
from resources.store.search import index_version, rebuild_index, search_products, search_text
from tests.search_fixture import INSERT_PRODUCT, build_fixture_db, product_row


def _index_state(db: Database) -> tuple[list[tuple], list[tuple]]:
    with db.read() as conn:
        docs = conn.execute(text("SELECT sku, name, grp, in_stock FROM product_search ORDER BY sku")).all()
        idents = conn.execute(text("SELECT ident, kind, sku FROM product_idents ORDER BY 1, 2, 3")).all()
    return [tuple(r) for r in docs], [tuple(r) for r in idents]


def _fts_ok(db: Database) -> None:
    with db.write() as conn:  # raises "database disk image is malformed" on a drifted index
        conn.execute(text("INSERT INTO products_fts (products_fts, rank) VALUES ('integrity-check', 1)"))


def _skus(db: Database, query: str) -> list[str]:
    return [r["sku"] for r in search_products(db, query, 20)]


@pytest.fixture()
def db(tmp_path: Path) -> Database:
    return build_fixture_db(tmp_path / "store.db")


def test_migration_creates_the_index_and_fills_it(db: Database) -> None:
    with db.read() as conn:
        names = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master"))}
        active = conn.execute(text("SELECT count(*) FROM products WHERE is_active")).scalar()
        indexed = conn.execute(text("SELECT count(*) FROM product_search")).scalar()
    assert {"product_search", "products_fts", "products_fts_vocab", "product_idents", "products_search_ai",
            "products_search_ad", "products_search_au", "products_search_stock"} <= names
    assert indexed == active > 300
    _fts_ok(db)


def test_insert_update_deactivate_delete_follow_products(db: Database) -> None:
    row = product_row("NEW-1", "Тоқаш сүтті 300 г", group="Хлеб и выпечка", stock=3, barcode="4870009999990")
    with db.write() as conn:
        conn.execute(INSERT_PRODUCT, row)
    assert _skus(db, "токаш") == ["NEW-1"]
    assert _skus(db, "4870009999990") == ["NEW-1"]

    with db.write() as conn:
        conn.execute(
            text("UPDATE products SET name = :n, search_text = :st WHERE sku = 'NEW-1'"),
            {"n": "Булочка сдобная 300 г", "st": search_text("Булочка сдобная 300 г", "NEW-1", None, None,
                                                            "4870009999990", "Хлеб и выпечка")},
        )
    assert _skus(db, "токаш") == []
    assert "NEW-1" in _skus(db, "сдобная")

    with db.write() as conn:
        conn.execute(text("UPDATE products SET is_active = 0 WHERE sku = 'NEW-1'"))
    assert "NEW-1" not in _skus(db, "сдобная")
    assert _skus(db, "4870009999990") == []
    with db.write() as conn:
        conn.execute(text("UPDATE products SET is_active = 1 WHERE sku = 'NEW-1'"))
    assert "NEW-1" in _skus(db, "сдобная")

    with db.write() as conn:
        conn.execute(text("UPDATE products SET sku = 'NEW-2' WHERE sku = 'NEW-1'"))
    assert _skus(db, "NEW-2") == ["NEW-2"]
    assert "NEW-1" not in _skus(db, "NEW-1")

    with db.write() as conn:
        conn.execute(text("DELETE FROM products WHERE sku = 'NEW-2'"))
    assert "NEW-2" not in _skus(db, "сдобная")
    _fts_ok(db)


def test_sync_touches_that_change_nothing_searched_do_not_reindex(db: Database) -> None:
    with db.read() as conn:
        before = index_version(conn)
    state = _index_state(db)
    with db.write() as conn:
        conn.execute(text("UPDATE products SET synced_at = '2027-01-01 00:00:00', price = price + 1"))
        # the sync's upsert shape: SET of every column, no real change for these rows
        conn.execute(text(
            "UPDATE products SET name = name, search_text = search_text, is_active = is_active, "
            "group_name = group_name, barcode = barcode"
        ))
    with db.read() as conn:
        assert index_version(conn) == before
    assert _index_state(db) == state


def test_stock_change_updates_only_the_stock_flag(db: Database) -> None:
    with db.read() as conn:
        before = index_version(conn)
    with db.write() as conn:
        conn.execute(text("UPDATE products SET stock = 0 WHERE sku = 'RYA-002'"))
        conn.execute(text("UPDATE products SET stock = 7 WHERE sku = 'RYA-001'"))
    with db.read() as conn:
        assert index_version(conn) == before
        flags = dict(conn.execute(text(
            "SELECT sku, in_stock FROM product_search WHERE sku IN ('RYA-001', 'RYA-002')")).all())
    assert flags == {"RYA-001": 1, "RYA-002": 0}
    assert _skus(db, "ряженка")[:2] == ["RYA-001", "RYA-002"]


def test_upsert_like_the_sync_reindexes_changed_rows_only(db: Database) -> None:
    changed = product_row("KEF-001", "Кефир Food Master 3,2% 1 л", group="Молочная продукция", stock=18)
    same = product_row("MLK-001", "Молоко Food Master 2,5% 1 л", group="Молочная продукция", stock=40)
    with db.read() as conn:
        same_hash = conn.execute(text("SELECT content_hash FROM products WHERE sku = 'MLK-001'")).scalar()
        doc_ids = dict(conn.execute(text(
            "SELECT sku, doc_id FROM product_search WHERE sku IN ('KEF-001', 'MLK-001')")).all())
    same["content_hash"] = same_hash
    upsert = text(
        str(INSERT_PRODUCT) + " ON CONFLICT (sku) DO UPDATE SET name = excluded.name, "
        "search_text = excluded.search_text, content_hash = excluded.content_hash, synced_at = excluded.synced_at "
        "WHERE products.content_hash <> excluded.content_hash"
    )
    with db.write() as conn:
        conn.execute(upsert, [changed, same])
    with db.read() as conn:
        after = dict(conn.execute(text(
            "SELECT sku, doc_id FROM product_search WHERE sku IN ('KEF-001', 'MLK-001')")).all())
    assert after["MLK-001"] == doc_ids["MLK-001"]
    assert after["KEF-001"] != doc_ids["KEF-001"]
    assert search_products(db, "кефир 3,2", 3)[0]["sku"] in {"KEF-001", "KEF-002"}
    assert "KEF-001" in _skus(db, "кефир food master 3.2")


def test_plain_sqlite3_connection_can_write_products(db: Database) -> None:
    """No custom SQL function in the triggers: the `sqlite3` shell or another process can write."""
    path = db.url.split("///", 1)[1]
    con = sqlite3.connect(path)
    try:
        con.execute(
            "INSERT INTO products (sku, name, stock, is_active, onec_ref, synced_at, deletion_mark, content_hash, "
            "updated_at) VALUES ('CLI-1', 'Қазы «Шығыс» 1 кг', 2, 1, 'cli-ref-1', '2026-01-01', 0, 'h', '2026-01-01')"
        )
        con.execute("UPDATE products SET stock = 0 WHERE sku = 'CLI-1'")
        con.commit()
    finally:
        con.close()
    # NULL search_text: indexed from the raw name, ё and Kazakh letters folded by plain SQL
    assert "CLI-1" in _skus(db, "шығыс")
    assert "CLI-1" in _skus(db, "казы шыгыс")
    with db.write() as conn:
        rebuild_index(conn)
        st = conn.execute(text("SELECT search_text FROM products WHERE sku = 'CLI-1'")).scalar()
    assert st == search_text("Қазы «Шығыс» 1 кг", "CLI-1")
    assert "CLI-1" in _skus(db, "шыгыс")


def test_rebuild_index_reproduces_the_trigger_maintained_index(db: Database) -> None:
    with db.write() as conn:
        conn.execute(text("UPDATE products SET stock = 0 WHERE sku LIKE 'MLK-%'"))
        conn.execute(text("UPDATE products SET is_active = 0 WHERE sku = 'KEF-001'"))
        conn.execute(text("DELETE FROM products WHERE sku = 'VEG-020'"))
    expected = _index_state(db)
    with db.write() as conn:
        conn.execute(text("DELETE FROM product_idents"))
        conn.execute(text("DELETE FROM product_search WHERE sku LIKE 'S%'"))
        count = rebuild_index(conn, recompute_text=False)
    assert count == len(expected[0])
    assert _index_state(db) == expected
    _fts_ok(db)
    assert _skus(db, "сметана")


def test_upgrade_over_existing_products_backfills_and_indexes(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db.writer.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001_catalogue")
    row = product_row("OLD-1", "Сүт Береке 2,5% 1 л", group="Молочная продукция", stock=4)
    row.pop("search_text")
    columns = ", ".join(row)
    with db.write() as conn:
        conn.execute(text(f"INSERT INTO products ({columns}) VALUES ({', '.join(':' + c for c in row)})"), row)
    db.migrate()
    with db.read() as conn:
        st = conn.execute(text("SELECT search_text FROM products WHERE sku = 'OLD-1'")).scalar()
    assert st == search_text("Сүт Береке 2,5% 1 л", "OLD-1", None, None, None, "Молочная продукция")
    assert _skus(db, "сут береке") == ["OLD-1"]

    with db.writer.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001_catalogue")
    with db.read() as conn:
        names = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master"))}
        columns_after = {r[1] for r in conn.execute(text("PRAGMA table_info(products)"))}
    assert not {"product_search", "products_fts", "product_idents"} & names
    assert "search_text" not in columns_after
    db.dispose()
