"""WAL checkpoints on a background thread while a bulk write runs (SQLite only).

By default the connection that commits past 1,000 WAL pages copies the whole WAL back into the
database file inside its `COMMIT`: a first-load publish waited ~0.6 s on its own checkpoint. While
a `BackgroundCheckpoints` is open, the store's writers skip that (`wal_autocheckpoint=0`) and a
thread with its own connection checkpoints every `interval` instead, on another core, as
sqlite.org/wal.html suggests for write-heavy work. On exit the thread runs one last checkpoint
and is joined, so whoever times the bulk write still pays for the checkpoint that is left.
PASSIVE checkpoints never block readers or the writer; nothing changes for PostgreSQL.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from .database import Database

logger = logging.getLogger("zeta.store")


class BackgroundCheckpoints:
    """Context manager: the writers of `db` stop checkpointing; a thread does it for them."""

    def __init__(self, db: Database, interval: float = 0.05) -> None:
        self.db = db
        self.interval = interval
        self.checkpoints = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._counted = False

    def __enter__(self) -> BackgroundCheckpoints:
        if not self.db.is_sqlite:
            return self
        self._counted = True
        if self.db.begin_background_checkpoints():  # nested: the outer one already checkpoints
            self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        if self._counted:
            self.db.end_background_checkpoints()

    def _run(self) -> None:
        path = make_url(self.db.url).database
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=0")
            while not self._stop.wait(self.interval):
                self._checkpoint(conn)
            self._checkpoint(conn)  # what the last commits left: paid for by the caller's exit
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1
        except sqlite3.OperationalError as exc:  # busy: another checkpointer; the next round retries
            logger.debug("background WAL checkpoint skipped: %s", exc)
