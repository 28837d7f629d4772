"""`run_catalogue_sync` (the plain call behind `integration_manager` and the benchmark) over
loopback HTTP: the three extracts fetched side by side give exactly the sequential result, and one
failing extract fails the sync without a candidate while the others still finish their batches."""

import pytest
from sqlalchemy import text

from assets.catalogue.sync import SyncOptions, run_catalogue_sync
from resources.onec.client import OneCClient
from resources.onec.errors import OneCConfigError
from resources.onec.profile import load_profile
from resources.store.database import Database
from simulators.onec.app import create_app
from simulators.onec.dataset import Dataset
from simulators.serving import ThreadServer
from tests.postgres import fresh_database

pytestmark = pytest.mark.e2e
USER, PASSWORD = "Администратор", "пароль-plain-7"


@pytest.fixture(scope="module")
def onec_url():
    app = create_app(Dataset(size=900, seed=11), users={USER: PASSWORD})
    with ThreadServer(app) as server:
        yield f"{server.url}/zeta"


def sync(url: str, db: Database, **options) -> None:
    with OneCClient(url, USER, PASSWORD, prefetch=2) as client:
        run_catalogue_sync(client, load_profile("ut11"), db, SyncOptions(page_size=70, **options))


def dump(db: Database) -> tuple[list, list]:
    """Products and stock rows, sorted here (a PostgreSQL collation may order text differently)."""
    with db.read() as conn:
        products = conn.execute(text(
            "SELECT sku, name, price, currency, stock, is_active, onec_ref, content_hash FROM products")).all()
        stock = conn.execute(text("SELECT sku, warehouse, quantity FROM product_stock")).all()
    return sorted(tuple(r) for r in products), sorted(tuple(r) for r in stock)


def test_concurrent_extracts_equal_sequential_ones(onec_url, tmp_path):
    seq, con = Database(f"sqlite:///{tmp_path / 'seq.db'}"), Database(f"sqlite:///{tmp_path / 'con.db'}")
    for db in (seq, con):
        db.migrate()
    sync(onec_url, seq, concurrent_extracts=False)
    sync(onec_url, con, concurrent_extracts=True)
    products, stock = dump(con)
    assert len(products) > 800 and len(stock) > 800
    assert (products, stock) == dump(seq)


def test_one_failing_extract_fails_the_sync_and_publishes_nothing(onec_url, tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'zeta.db'}")
    db.migrate()
    with pytest.raises(OneCConfigError, match="Оптовая сверхцена"):
        sync(onec_url, db, price_type="Оптовая сверхцена")
    with db.read() as conn:
        batches = dict(conn.execute(text("SELECT kind, status FROM extract_batches")).all())
        assert conn.execute(text("SELECT COUNT(*) FROM products")).scalar_one() == 0
        assert conn.execute(text("SELECT COUNT(*) FROM raw_prices")).scalar_one() == 0
    assert batches == {"catalogue": "complete", "prices": "failed", "stock": "complete"}


def test_concurrent_extracts_into_postgres_give_the_sqlite_result(onec_url, tmp_path):
    pg_url = fresh_database("plain")
    if pg_url is None:
        pytest.skip("no PostgreSQL: set ZETA_TEST_POSTGRES_URL or install pgserver")
    lite, pg = Database(f"sqlite:///{tmp_path / 'lite.db'}"), Database(pg_url)
    for db in (lite, pg):
        db.migrate()
    sync(onec_url, lite, concurrent_extracts=False)
    sync(onec_url, pg, concurrent_extracts=True)
    (lite_products, lite_stock), (pg_products, pg_stock) = dump(lite), dump(pg)
    # the content signature is backend-specific text (float formatting): compare everything else
    assert [r[:-1] for r in pg_products] == [r[:-1] for r in lite_products]
    assert pg_stock == lite_stock
    pg.dispose()
