"""The catalogue sync into PostgreSQL: the same Dagster materializations and the same expectations
as on SQLite (tests/postgres.py provides the server), plus a re-sync and the bot's lookups."""

import pytest

from integrations.availability import lookup_product
from resources.store.database import Database
from tests.e2e.test_catalogue_sync import as_expected, normalise, onec, run, snapshot, stock_rows  # noqa: F401
from tests.postgres import fresh_database

pytestmark = pytest.mark.e2e


@pytest.fixture
def pg_url() -> str:
    url = fresh_database("catalogue")
    if url is None:
        pytest.skip("no PostgreSQL: set ZETA_TEST_POSTGRES_URL or install pgserver")
    return url


def test_full_materialization_into_postgres_matches_1c(onec, pg_url, tmp_path):  # noqa: F811
    result = run(onec, pg_url)
    assert result.success
    assert normalise(snapshot(pg_url)) == as_expected(onec.dataset)
    sqlite_url = f"sqlite:///{tmp_path / 'zeta.db'}"
    assert run(onec, sqlite_url).success
    assert stock_rows(pg_url) == stock_rows(sqlite_url)


def test_resync_into_postgres_writes_only_changed_rows(onec, pg_url):  # noqa: F811
    assert run(onec, pg_url).success
    onec.dataset.rename(10, "Кефир «Ёлочка» 1 л")
    onec.dataset.set_stock(13, 0, 77)
    result = run(onec, pg_url)
    assert result.success
    meta = next(e.materialization.metadata for e in result.get_asset_materialization_events()
                if e.asset_key.to_user_string() == "products")
    assert (meta["inserted"].value, meta["updated"].value, meta["deactivated"].value) == (0, 2, 0)
    assert normalise(snapshot(pg_url)) == as_expected(onec.dataset)
    db = Database(pg_url)
    try:
        sku, want = next(iter(as_expected(onec.dataset).items()))
        row = lookup_product(db, sku)
        assert row is not None and row.name == want[1]
    finally:
        db.dispose()
