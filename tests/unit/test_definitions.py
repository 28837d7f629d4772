"""The Dagster code location loads, with the contract's names and the config's crons."""

import importlib
import os
import subprocess
import sys
from datetime import timedelta

from dagster import AssetKey

from resources.store.database import PROJECT_ROOT


def test_definitions_load_with_contract_names():
    from pipelines.definitions import defs

    jobs = {j.name for j in defs.resolve_all_job_defs()}
    assert {"catalogue_sync", "stock_refresh", "push_outbox", "replay_dead"} <= jobs
    assert {"apply_crm_events", "crm_reconcile"} <= jobs
    assert {s.name for s in defs.sensors} == {"outbox_sensor", "crm_events_sensor"}
    schedules = {s.name: s for s in defs.schedules}
    assert schedules["catalogue_hourly"].cron_schedule == "0 * * * *"
    assert schedules["stock_every_10_minutes"].cron_schedule == "*/10 * * * *"
    assert schedules["crm_reconcile_schedule"].cron_schedule == "*/15 * * * *"
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"onec_catalogue_raw", "onec_prices_raw", "onec_stock_raw", "products_candidate", "products"}
    checks = {k.name for k in graph.asset_check_keys}
    assert checks == {"unique_skus", "no_negative_prices", "shrink_guard"}
    windows = {k.to_user_string(): (graph.get(k).freshness_policy.warn_window.to_timedelta().total_seconds() / 60,
                                    graph.get(k).freshness_policy.fail_window.to_timedelta().total_seconds() / 60)
               for k in graph.get_all_asset_keys()}
    assert windows == {"onec_catalogue_raw": (90, 180), "onec_prices_raw": (90, 180), "onec_stock_raw": (20, 60),
                       "products_candidate": (20, 60), "products": (20, 60)}


def test_crons_come_from_the_config(tmp_path, monkeypatch):
    cfg = (PROJECT_ROOT / "config" / "integrations.yaml").read_text(encoding="utf-8")
    cfg = cfg.replace('catalogue_cron: "0 * * * *"', 'catalogue_cron: "15 */2 * * *"')
    cfg = cfg.replace("stock_freshness: {warn_minutes: 20, fail_minutes: 60}",
                      "stock_freshness: {warn_minutes: 45, fail_minutes: 120}")
    path = tmp_path / "integrations.yaml"
    path.write_text(cfg, encoding="utf-8")
    monkeypatch.setenv("ZETA_CONFIG", str(path))
    import pipelines.definitions as module

    defs = importlib.reload(module).defs
    assert {s.name: s.cron_schedule for s in defs.schedules}["catalogue_hourly"] == "15 */2 * * *"
    policy = defs.resolve_asset_graph().get(AssetKey("products")).freshness_policy
    assert (policy.warn_window.to_timedelta(), policy.fail_window.to_timedelta()) == (timedelta(minutes=45),
                                                                                      timedelta(minutes=120))
    monkeypatch.delenv("ZETA_CONFIG")
    importlib.reload(module)


def test_secrets_are_env_references_not_values():
    env = {**os.environ, "ONEC_PASSWORD": "top-secret-pw-9", "BITRIX24_WEBHOOK_URL": "http://p/rest/1/hookcode77/"}
    code = ("from pipelines.definitions import defs\n"
            "r = defs.resources\n"
            "print(repr(r['onec']), repr(r.get('bitrix24')))\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert "ONEC_PASSWORD" in out and "top-secret-pw-9" not in out and "hookcode77" not in out
