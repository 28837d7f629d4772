"""A real PostgreSQL for the tests: `ZETA_TEST_POSTGRES_URL` when set, else a throwaway server.

The throwaway server is `pgserver` (PostgreSQL binaries from PyPI, UTF-8 locale, a Unix socket in a
temporary folder), started once per test session. Each caller gets a database of its own.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import threading

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

_lock = threading.Lock()
_server_url: str | None = None
_names = itertools.count(1)


def _server() -> str | None:
    """The URL of a server's maintenance database, or None when no PostgreSQL can be had."""
    global _server_url
    with _lock:
        if _server_url is None:
            configured = os.environ.get("ZETA_TEST_POSTGRES_URL", "")
            if configured:
                _server_url = configured
            else:
                try:
                    import pgserver
                except ImportError:
                    return None
                folder = tempfile.mkdtemp(prefix="zeta-pg-")
                pgserver.get_server(folder, cleanup_mode="delete")  # stopped and removed at exit
                _server_url = "postgresql+psycopg2://postgres@/postgres?host=" + folder
        return _server_url


def fresh_database(prefix: str) -> str | None:
    """A new, empty database on the test server; its URL, or None without PostgreSQL."""
    base = _server()
    if base is None:
        return None
    name = f"{prefix}_{os.getpid()}_{next(_names)}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0'))
    finally:
        engine.dispose()
    return make_url(base).set(database=name).render_as_string(hide_password=False)
