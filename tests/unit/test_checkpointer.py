"""Background WAL checkpoints and the page size of a new SQLite store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import text

from resources.store.database import Database


def _db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    with db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    return db


def _autocheckpoint(db: Database) -> int:
    with db.write() as conn:
        return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


def test_a_new_store_uses_16k_pages(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA page_size").scalar_one() == 16384
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
    db.dispose()


def test_an_existing_store_keeps_its_page_size(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    raw.commit()
    raw.close()
    db = Database(f"sqlite:///{path}")
    with db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA page_size").scalar_one() == 4096
    db.dispose()


def test_writers_leave_the_wal_to_the_checkpointer_and_it_catches_up(tmp_path: Path) -> None:
    db = _db(tmp_path)
    assert _autocheckpoint(db) == 1000
    with db.background_checkpoints():
        checkpointer = db._checkpointer
        assert _autocheckpoint(db) == 0
        for batch in range(5):  # ~10 MB of WAL in five commits
            with db.write() as conn:
                conn.execute(text("INSERT INTO t (body) VALUES (:b)"),
                             [{"b": f"{batch}-{i}-" + "x" * 400} for i in range(5000)])
    assert checkpointer is not None and checkpointer.checkpoints >= 1 and db._checkpointer is None
    # The rows are in the database file itself (not only in the WAL) before anything else runs.
    assert (tmp_path / "store.db").stat().st_size > 10_000_000, "the exit's last checkpoint did not run"
    raw = sqlite3.connect(tmp_path / "store.db")
    assert raw.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 25000
    raw.close()
    assert _autocheckpoint(db) == 1000, "writers checkpoint themselves again after the bulk write"
    db.dispose()


def test_overlapping_bulk_writes_share_one_checkpointer_until_the_last_ends(tmp_path: Path) -> None:
    """Out of order too: the first to enter may leave first; the thread lives until the last leaves."""
    db = _db(tmp_path)
    first, second = db.background_checkpoints(), db.background_checkpoints()
    first.__enter__()
    checkpointer = db._checkpointer
    second.__enter__()
    assert db._checkpointer is checkpointer
    first.__exit__(None, None, None)
    assert db._checkpointer is checkpointer and checkpointer.alive
    assert _autocheckpoint(db) == 0, "the second bulk write is still running"
    second.__exit__(None, None, None)
    assert db._checkpointer is None and not checkpointer.alive
    assert _autocheckpoint(db) == 1000
    db.dispose()


def test_a_dead_checkpointer_gives_the_wal_back_to_the_writers(tmp_path: Path) -> None:
    from resources.store.checkpointer import WalCheckpointer

    dead = WalCheckpointer(str(tmp_path / "no-such-dir" / "x.db"))  # its connection cannot open
    dead.start()
    dead.stop()
    assert not dead.alive
    db = _db(tmp_path)
    with db.background_checkpoints():
        live, db._checkpointer = db._checkpointer, dead
        assert _autocheckpoint(db) == 1000
        db._checkpointer = live
    db.dispose()


def test_postgres_is_left_alone() -> None:
    db = Database("postgresql+psycopg2://zeta@127.0.0.1:1/none")  # never connected
    with db.background_checkpoints():
        assert db._checkpointer is None
    assert db._bulk_writers == 0
