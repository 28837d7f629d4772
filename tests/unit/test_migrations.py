"""Alembic migrations of the store on SQLite: 0004 keeps staged stock rows both ways; 0007 retires them."""

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, text

from resources.store.database import MIGRATIONS_DIR


def _alembic(engine, revision: str, *, down: bool = False) -> None:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def _table_sql(engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'product_stock_next'")).scalar_one()


def test_0004_clusters_product_stock_next_and_keeps_its_rows(tmp_path: Path):
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    _alembic(engine, "0003_outbox")
    rows = [(7, "ref-a", "Склад Алматы", 2.0), (7, "ref-a", "Склад Астана", 1.5), (7, "ref-b", "Склад Алматы", 4.0)]
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO product_stock_next VALUES (?, ?, ?, ?)", rows)
    _alembic(engine, "0004_stock_next_key")
    assert "WITHOUT ROWID" in _table_sql(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT * FROM product_stock_next ORDER BY 1, 2, 3")).all() == sorted(rows)
    _alembic(engine, "0003_outbox", down=True)
    assert "WITHOUT ROWID" not in _table_sql(engine)
    with engine.connect() as conn:
        assert sorted(conn.execute(text("SELECT * FROM product_stock_next")).all()) == sorted(rows)
        indexes = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'index'"))}
    assert "ix_product_stock_next_ref" in indexes
    engine.dispose()


def test_0007_keys_raw_stock_by_name_and_retires_stock_staged_by_refs(tmp_path: Path):
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    _alembic(engine, "0006_candidate_idents")
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO extract_batches (id, kind, status, started_at, row_count) "
                             "VALUES (1, 'stock', 'complete', '2026-01-01', 1), (2, 'stock', 'failed', '2026-01-01', 0)")
        conn.exec_driver_sql("INSERT INTO raw_stock VALUES (1, 'ref-a', 'wh-ref-1', 2.0)")
    _alembic(engine, "0007_stock_by_name")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, status FROM extract_batches ORDER BY id")).all() == [
            (1, "pruned"), (2, "failed")]
        raw_sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'raw_stock'")).scalar_one()
        assert "WITHOUT ROWID" in raw_sql and "PRIMARY KEY (batch_id, product, warehouse)" in raw_sql
        assert conn.execute(text("SELECT COUNT(*) FROM raw_stock")).scalar_one() == 0
        assert conn.execute(text("SELECT COUNT(*) FROM sqlite_master WHERE name = 'product_stock_next'")).scalar() == 0
    _alembic(engine, "0006_candidate_idents", down=True)
    with engine.connect() as conn:
        assert "WITHOUT ROWID" in _table_sql(engine)
        raw_sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'raw_stock'")).scalar_one()
        assert "WITHOUT ROWID" not in raw_sql
    engine.dispose()


def test_0008_cuts_stored_signatures_to_the_stock_detail(tmp_path: Path):
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    _alembic(engine, "0007_stock_by_name")
    old = "\x1f".join(["ART1", "Молоко", "450.0", "KZT", "15.0", "0", "00-1", "ART1", "шт", "Молочные",
                       "Основной склад\t10.0\nСклад Алматы\t5.0"])
    with engine.begin() as conn:
        for sku, ref, content in (("ART1", "r1", old), ("ART2", "r2", "vanished")):
            conn.exec_driver_sql(
                "INSERT INTO products (sku, name, stock, is_active, onec_ref, synced_at, deletion_mark, content_hash, "
                "updated_at) VALUES (?, 'x', 0, 1, ?, '2026-01-01', 0, ?, '2026-01-01')", (sku, ref, content))
        conn.exec_driver_sql(
            "INSERT INTO products_next (candidate_id, onec_ref, sku, name, stock, is_active, deletion_mark, "
            "content_hash) VALUES (3, 'r1', 'ART1', 'x', 0, 1, 0, ?)", (old,))
    _alembic(engine, "0008_content_hash_stock_only")
    with engine.connect() as conn:
        assert dict(conn.execute(text("SELECT sku, content_hash FROM products")).all()) == {
            "ART1": "Основной склад\t10.0\nСклад Алматы\t5.0", "ART2": "vanished"}
        assert conn.execute(text("SELECT content_hash FROM products_next")).scalar_one() == (
            "Основной склад\t10.0\nСклад Алматы\t5.0")
    engine.dispose()


def test_0010_moves_per_warehouse_stock_into_the_totals_and_retires_older_stock(tmp_path: Path):
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    _alembic(engine, "0009_stock_totals")
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO extract_batches (id, kind, status, started_at, row_count) "
                             "VALUES (1, 'stock', 'complete', '2026-01-01', 1)")
        conn.exec_driver_sql("INSERT INTO raw_stock_totals VALUES (1, 'ref-a', 2.0, 'Склад\t2.0')")
    _alembic(engine, "head")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM extract_batches")).scalar_one() == "pruned"
        assert conn.execute(text("SELECT COUNT(*) FROM raw_stock_totals")).scalar_one() == 0
        assert conn.execute(text("SELECT COUNT(*) FROM sqlite_master WHERE name = 'raw_stock'")).scalar() == 0
        columns = [r[1] for r in conn.execute(text("PRAGMA table_info(raw_stock_totals)"))]
    assert columns == ["batch_id", "product", "total", "detail"]
    _alembic(engine, "0009_stock_totals", down=True)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM sqlite_master WHERE name = 'raw_stock'")).scalar() == 1
    engine.dispose()


def test_0012_turns_stored_stock_lines_into_the_extract_json(tmp_path: Path):
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    _alembic(engine, "0011_staged_search_text")
    with engine.begin() as conn:
        for sku, ref, content in (("A", "r1", "Основной склад\t10.0\nСклад Алматы\t5.5"), ("B", "r2", "vanished"),
                                  ("C", "r3", "")):
            conn.exec_driver_sql(
                "INSERT INTO products (sku, name, stock, is_active, onec_ref, synced_at, deletion_mark, content_hash, "
                "updated_at) VALUES (?, 'x', 0, 1, ?, '2026-01-01', 0, ?, '2026-01-01')", (sku, ref, content))
    _alembic(engine, "head")
    with engine.connect() as conn:
        assert dict(conn.execute(text("SELECT sku, content_hash FROM products")).all()) == {
            "A": '{"Основной склад":10.0,"Склад Алматы":5.5}', "B": "vanished", "C": ""}
    engine.dispose()


def _idents(engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT ident, kind, sku FROM product_idents ORDER BY 3, 2"))]


def test_0013_keeps_each_key_once_per_product_under_its_best_kind_and_back(tmp_path: Path):
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    _alembic(engine, "0012_stock_detail_json")
    rows = (("ART-1", "art-1", "00-01", None, "r1"),  # sku = article
            ("00-02", None, "00-02", "4600000000017", "r2"),  # sku = code
            ("X 3", "x3", "X3", None, "r3"))  # article, code and sku all key to X3
    with engine.begin() as conn:
        for sku, article, code, barcode, ref in rows:
            conn.exec_driver_sql(
                "INSERT INTO products (sku, name, stock, is_active, onec_ref, synced_at, deletion_mark, content_hash, "
                "updated_at, article, code, barcode) VALUES (?, 'x', 0, 1, ?, '2026-01-01', 0, '', '2026-01-01', ?, ?, ?)",
                (sku, ref, article, code, barcode))
    twins = _idents(engine)
    assert ("ART1", "article", "ART-1") in twins and ("X3", "code", "X 3") in twins
    _alembic(engine, "0013_idents_best_kind_only")
    best = [("ART1", "sku", "ART-1"), ("0001", "code", "ART-1"),
            ("0002", "sku", "00-02"), ("4600000000017", "barcode", "00-02"),
            ("X3", "sku", "X 3")]
    assert _idents(engine) == sorted(best, key=lambda r: (r[2], r[1]))
    with engine.begin() as conn:  # the new triggers follow the same rule
        conn.exec_driver_sql("DELETE FROM products")
        assert conn.execute(text("SELECT COUNT(*) FROM product_idents")).scalar() == 0
        for sku, article, code, barcode, ref in rows:
            conn.exec_driver_sql(
                "INSERT INTO products (sku, name, stock, is_active, onec_ref, synced_at, deletion_mark, content_hash, "
                "updated_at, article, code, barcode) VALUES (?, 'x', 0, 1, ?, '2026-01-01', 0, '', '2026-01-01', ?, ?, ?)",
                (sku, ref, article, code, barcode))
    assert _idents(engine) == sorted(best, key=lambda r: (r[2], r[1]))
    _alembic(engine, "0012_stock_detail_json", down=True)
    assert _idents(engine) == twins
    engine.dispose()
