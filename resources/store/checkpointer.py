"""WAL checkpoints on a background thread while a bulk write runs (SQLite only).

By default the connection that commits past 1,000 WAL pages copies the whole WAL back into the
database file inside its `COMMIT`: a first-load publish waited ~0.6 s on its own checkpoint. While
any `Database.background_checkpoints()` is open, its writers skip that (`wal_autocheckpoint=0`)
and one `WalCheckpointer` thread with its own connection checkpoints every `interval` instead, on
another core, as sqlite.org/wal.html suggests for write-heavy work. The `Database` starts the
thread when the first bulk write begins and stops it when the last one ends; stopping runs one
last checkpoint and joins, so whoever times the bulk write still pays for what is left. PASSIVE
checkpoints never block readers or the writer; nothing changes for PostgreSQL. If the thread dies,
writers go back to checkpointing themselves.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

logger = logging.getLogger("zeta.store")


class WalCheckpointer:
    """One thread running `PRAGMA wal_checkpoint(PASSIVE)` on `path` until stopped."""

    def __init__(self, path: str, interval: float = 0.05) -> None:
        self.path, self.interval = path, interval
        self.checkpoints = 0  # checkpoints that ran (not those that found the WAL busy)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._alive = True

    @property
    def alive(self) -> bool:
        return self._alive

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Run the last checkpoint and wait for it."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA busy_timeout=0")
                while not self._stop.wait(self.interval):
                    self._checkpoint(conn)
                self._checkpoint(conn)  # what the last commits left: paid for by the caller of stop()
            finally:
                conn.close()
        except Exception:  # noqa: BLE001 (a checkpointer must never take the sync down with it)
            logger.exception("background WAL checkpointer stopped; writers checkpoint themselves again")
        finally:
            self._alive = False

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if not busy:  # busy: another checkpoint is running; the next round catches up
            self.checkpoints += 1
