"""Alembic migrations of the store on SQLite: 0004 keeps staged stock rows both ways."""

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
    _alembic(engine, "head")
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
