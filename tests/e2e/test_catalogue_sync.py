"""Catalogue sync end to end: real Dagster materializations against the 1C simulator over loopback
HTTP into a real SQLite file."""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from dagster import DagsterInstance, materialize
from sqlalchemy import text

from assets.catalogue.assets import CATALOGUE_ASSETS, CATALOGUE_CHECKS, CatalogueRulesResource
from resources.onec.resource import OneCResource
from resources.store.database import PROJECT_ROOT, Database
from resources.store.resource import StoreResource
from simulators.onec.app import create_app
from simulators.onec.dataset import Dataset
from simulators.serving import ThreadServer

pytestmark = pytest.mark.e2e
USER, PASSWORD = "Администратор", "пароль-e2e-42"
COMPARED = ("sku", "name", "price", "currency", "stock", "is_active", "onec_ref")


@pytest.fixture
def onec():
    dataset = Dataset(size=600, seed=7)
    app = create_app(dataset, users={USER: PASSWORD})
    with ThreadServer(app) as server:
        server.dataset = dataset
        server.odata = f"{server.url}/zeta"
        yield server


def set_faults(server, **faults) -> None:
    httpx.post(f"{server.url}/_admin/faults", json=faults, timeout=5).raise_for_status()


def resources(server, db_url: str, password: str = PASSWORD, **onec_kw) -> dict:
    onec_kw.setdefault("page_size", 100)
    return {
        "onec": OneCResource(api_url=server.odata, username=USER, password=password, backoff_base_seconds=0.01,
                             backoff_max_seconds=0.05, max_retries=8, **onec_kw),
        "store": StoreResource(database_url=db_url),
        "catalogue_rules": CatalogueRulesResource(max_active_drop=0.2, sample_size=3),
    }


def run(server, db_url: str, **kw):
    return materialize([*CATALOGUE_ASSETS, *CATALOGUE_CHECKS], resources=resources(server, db_url, **kw),
                       instance=DagsterInstance.ephemeral(), raise_on_error=False)


def snapshot(db_url: str) -> dict[str, tuple]:
    db = Database(db_url)
    try:
        with db.read() as conn:
            cols = ", ".join(COMPARED)
            return {r[0]: tuple(r) for r in conn.execute(text(f"SELECT {cols} FROM products"))}
    finally:
        db.dispose()


def stock_rows(db_url: str) -> set[tuple]:
    db = Database(db_url)
    try:
        with db.read() as conn:
            return {tuple(r) for r in conn.execute(text("SELECT sku, warehouse, quantity FROM product_stock"))}
    finally:
        db.dispose()


def as_expected(dataset: Dataset) -> dict[str, tuple]:
    out = {}
    for sku, e in dataset.expected_products().items():
        price = None if e["price"] is None else round(e["price"], 2)
        out[sku] = (sku, e["name"], price, e["currency"], e["stock"], e["is_active"], e["ref"])
    return out


def normalise(snap: dict[str, tuple]) -> dict[str, tuple]:
    return {k: (v[0], v[1], None if v[2] is None else round(v[2], 2), v[3], round(v[4], 3), bool(v[5]), v[6])
            for k, v in snap.items()}


def test_full_materialization_matches_1c(onec, tmp_path):
    url = f"sqlite:///{tmp_path / 'zeta.db'}"
    result = run(onec, url)
    assert result.success
    got = normalise(snapshot(url))
    want = as_expected(onec.dataset)
    assert got == want
    assert any(v[2] is None for v in got.values()), "products without a price stay null"
    assert any(v[4] == 0 for v in got.values()), "products absent from Balance have stock 0"
    assert any(not v[5] for v in got.values()), "deletion-marked products are inactive"
    mats = {e.asset_key.to_user_string(): e.materialization.metadata
            for e in result.get_asset_materialization_events()}
    assert mats["products"]["inserted"].value == len(want)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"unique_skus": True, "no_negative_prices": True, "shrink_guard": True}


def test_injected_faults_give_the_same_result_as_a_clean_run(onec, tmp_path):
    clean, faulty = f"sqlite:///{tmp_path / 'clean.db'}", f"sqlite:///{tmp_path / 'faulty.db'}"
    assert run(onec, clean).success
    set_faults(onec, error_rate=0.2, drop_rate=0.05, seed=3)
    assert run(onec, faulty).success
    stats = httpx.get(f"{onec.url}/_admin/stats", timeout=5).json()
    assert snapshot(faulty) == snapshot(clean)
    assert stock_rows(faulty) == stock_rows(clean)
    assert stats, "the simulator served the faulty run"


def test_resync_writes_only_changed_rows_and_deactivates(onec, tmp_path):
    url = f"sqlite:///{tmp_path / 'zeta.db'}"
    assert run(onec, url).success
    ds = onec.dataset
    ds.rename(10, "Молоко «Айран» 1 л (новинка)")
    ds.mark_deleted(11, True)
    ds.remove(12)
    ds.set_stock(13, 0, 99)
    result = run(onec, url)
    assert result.success
    meta = next(e.materialization.metadata for e in result.get_asset_materialization_events()
                if e.asset_key.to_user_string() == "products")
    assert meta["inserted"].value == 0
    assert meta["updated"].value == 2 and meta["deactivated"].value == 2
    got = normalise(snapshot(url))
    want = as_expected(ds)
    removed = set(got) - set(want)
    assert len(removed) == 1 and not got[removed.pop()][5]  # vanished product kept, inactive
    assert {k: v for k, v in got.items() if k in want} == want


def test_a_page_that_stays_broken_fails_the_run_and_keeps_the_table(onec, tmp_path):
    url = f"sqlite:///{tmp_path / 'zeta.db'}"
    assert run(onec, url).success
    before, before_stock = snapshot(url), stock_rows(url)
    onec.dataset.rename(1, "Изменение, которое не должно появиться")
    set_faults(onec, broken_json=[{"entity_set": "Catalog_Номенклатура", "skip": 200}])
    result = run(onec, url)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "onec_catalogue_raw"
    message = failure.event_specific_data.error.to_string()
    assert "broken JSON" in message and "Catalog_Номенклатура" in message and "$skip=200" in message
    assert snapshot(url) == before and stock_rows(url) == before_stock


def test_wrong_password_gives_a_clear_error_without_the_password(onec, tmp_path):
    url = f"sqlite:///{tmp_path / 'zeta.db'}"
    result = run(onec, url, password="wrong-secret-123")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.event_specific_data.error.to_string()
    assert "rejected the credentials of user 'Администратор'" in message
    assert "wrong-secret-123" not in message
    for event in result.all_events:
        assert "wrong-secret-123" not in str(event)


def test_stock_refresh_reuses_the_last_catalogue(onec, tmp_path):
    from pipelines.catalogue import stock_refresh_job

    url = f"sqlite:///{tmp_path / 'zeta.db'}"
    assert run(onec, url).success
    onec.dataset.set_stock(20, 1, 123)
    from dagster import Definitions

    defs = Definitions(assets=CATALOGUE_ASSETS, asset_checks=CATALOGUE_CHECKS, jobs=[stock_refresh_job],
                       resources=resources(onec, url))
    result = defs.resolve_job_def("stock_refresh").execute_in_process(instance=DagsterInstance.ephemeral())
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"onec_stock_raw", "products_candidate", "products"}
    assert normalise(snapshot(url)) == as_expected(onec.dataset)


def test_contract_cli_materializes_everything(onec, tmp_path):
    """The DESIGN.md command, as an outside acceptance test would run it."""
    env = {**os.environ, "ONEC_BASE_URL": onec.odata, "ONEC_USERNAME": USER, "ONEC_PASSWORD": PASSWORD,
           "ZETA_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "DAGSTER_HOME": str(tmp_path / "dh")}
    Path(env["DAGSTER_HOME"]).mkdir()
    proc = subprocess.run([sys.executable, "-m", "dagster", "asset", "materialize", "-m", "pipelines.definitions",
                           "--select", "*"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert PASSWORD not in proc.stdout + proc.stderr
    assert normalise(snapshot(env["ZETA_DATABASE_URL"])) == as_expected(onec.dataset)
