"""Freshness end to end: Dagster's own freshness daemon, over the real code location, judges the
catalogue assets after a real materialization, and again as the clock moves past the windows."""

from datetime import timedelta

import pytest
from dagster import Definitions, instance_for_test
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.freshness import FreshnessDaemon
from dagster._time import get_current_datetime

from assets.catalogue.assets import CATALOGUE_ASSETS, CATALOGUE_CHECKS
from pipelines.catalogue import catalogue_sync_job, with_freshness
from resources.settings import load_settings
from resources.store.database import PROJECT_ROOT

from .test_catalogue_sync import PASSWORD, USER, onec, resources  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e
HOURLY = {"onec_catalogue_raw", "onec_prices_raw"}
EVERY_TEN_MINUTES = {"onec_stock_raw", "products_candidate", "products"}


def states(instance, defs: Definitions) -> dict[str, FreshnessState]:
    keys = list(defs.resolve_asset_graph().get_all_asset_keys())
    records = instance.get_freshness_state_records(keys)
    return {k.to_user_string(): records[k].freshness_state for k in keys if k in records}


def evaluate(instance) -> None:
    """One iteration of the daemon that `make ui` runs, over the `pipelines.definitions` location."""
    target = ModuleTarget(module_name="pipelines.definitions", attribute="defs", working_directory=str(PROJECT_ROOT),
                          location_name="zeta")
    with create_test_daemon_workspace_context(target, instance) as context:
        list(FreshnessDaemon().run_iteration(context))


def test_freshness_passes_after_a_sync_then_warns_and_fails_as_it_ages(onec, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ONEC_BASE_URL", onec.odata)
    monkeypatch.setenv("ONEC_USERNAME", USER)
    monkeypatch.setenv("ONEC_PASSWORD", PASSWORD)
    url = f"sqlite:///{tmp_path / 'zeta.db'}"
    monkeypatch.setenv("ZETA_DATABASE_URL", url)
    windows = load_settings().schedules
    defs = Definitions(assets=with_freshness(CATALOGUE_ASSETS, windows), asset_checks=CATALOGUE_CHECKS,
                       jobs=[catalogue_sync_job], resources=resources(onec, url))
    with instance_for_test() as instance:
        evaluate(instance)
        assert set(states(instance, defs).values()) <= {FreshnessState.UNKNOWN}  # never materialized

        assert defs.resolve_job_def("catalogue_sync").execute_in_process(instance=instance).success
        synced = get_current_datetime()
        evaluate(instance)
        assert states(instance, defs) == dict.fromkeys(HOURLY | EVERY_TEN_MINUTES, FreshnessState.PASS)

        stock_warn = windows.stock_freshness.warn_minutes
        with freeze_time(synced + timedelta(minutes=stock_warn + 1)):
            evaluate(instance)
        got = states(instance, defs)
        assert {k for k, v in got.items() if v == FreshnessState.WARN} == EVERY_TEN_MINUTES
        assert {k for k, v in got.items() if v == FreshnessState.PASS} == HOURLY

        with freeze_time(synced + timedelta(minutes=windows.catalogue_freshness.fail_minutes + 1)):
            evaluate(instance)
        assert states(instance, defs) == dict.fromkeys(HOURLY | EVERY_TEN_MINUTES, FreshnessState.FAIL)
