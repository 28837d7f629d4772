"""`OneCIntegration`, `Bitrix24Integration` and config setup: constructor arguments, secrets, the
database URL precedence, connection checks, queued orders/leads and the status they report."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from sqlalchemy import insert

from integrations.bitrix24 import Bitrix24Integration
from integrations.config import load_integrations_config, setup_from_config
from integrations.manager import IntegrationManager
from integrations.onec import OneCIntegration
from resources.onec.profile import load_profile
from resources.store.database import Database
from resources.store.schema import products, sync_runs

PASSWORD = "pa55-w0rd-secret"
WEBHOOK_CODE = "zetademo4f2a9c"
WEBHOOK = f"https://portal.example.kz/rest/1/{WEBHOOK_CODE}/"
ORDER = {"customer": {"name": "Иван Петров", "phone": "+77771234567"},
         "products": [{"sku": "ART001", "quantity": 1, "price": 45000}],
         "delivery": {"address": "Алматы, ул. Абая 10"}, "total": 45000}


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'zeta.db'}"
    db = Database(url)
    db.migrate()
    now = datetime.now(UTC).replace(tzinfo=None)
    with db.write() as conn:
        conn.execute(insert(products).values(sku="ART001", name="Пылесос", price=45000.0, currency="KZT", stock=3,
                                             is_active=True, onec_ref="r1", synced_at=now, content_hash="h",
                                             updated_at=now))
    db.dispose()
    return url


def onec_transport(status: int = 200, published: set[str] | None = None) -> httpx.MockTransport:
    names = published if published is not None else set(load_profile("ut11").entity_sets())

    def handler(request: httpx.Request) -> httpx.Response:
        if status == 401:
            return httpx.Response(401, json={"odata.error": {"code": "20", "message": {"value": "Не удалось"}}})
        if status == 0:
            raise httpx.ConnectError("connection refused", request=request)
        if unquote(request.url.path).endswith("standard.odata/"):
            return httpx.Response(200, json={"value": [{"name": n, "url": n} for n in names]})
        return httpx.Response(404, text="no")

    return httpx.MockTransport(handler)


# ---- OneCIntegration --------------------------------------------------------------------------

def test_onec_constructor_expands_env_and_hides_the_password(monkeypatch, db_url):
    monkeypatch.setenv("ONEC_BASE_URL", "http://1c.test/zeta")
    onec = OneCIntegration("${ONEC_BASE_URL:-http://x}", "${ONEC_USERNAME:-Администратор}", PASSWORD,
                           database_url=db_url)
    assert onec.api_url == "http://1c.test/zeta" and onec.username == "Администратор"
    assert PASSWORD not in repr(onec) and PASSWORD not in str(onec.config) and onec.logger.name == "integrations.onec"
    assert OneCIntegration("http://1c/base/hs", "bot", None).live.enabled is False  # os.getenv() may give None


def test_onec_database_url_precedence(monkeypatch, tmp_path):
    env_url = f"sqlite:///{tmp_path / 'env.db'}"
    arg_url = f"sqlite:///{tmp_path / 'arg.db'}"
    monkeypatch.setenv("ZETA_DATABASE_URL", env_url)
    assert OneCIntegration("http://1c/x", "u", "p").database().url.endswith("env.db")
    assert OneCIntegration("http://1c/x", "u", "p", database_url=arg_url).database().url.endswith("arg.db")


def test_onec_initialize_ok_wrong_password_down_and_unpublished(db_url, caplog):
    ok = OneCIntegration("http://1c/base/hs", "bot", PASSWORD, database_url=db_url, transport=onec_transport())
    assert run(ok.initialize()) is True and ok.last_error is None
    with caplog.at_level(logging.INFO, logger="integrations"):
        bad = OneCIntegration("http://1c/base/hs", "bot", PASSWORD, database_url=db_url,
                              transport=onec_transport(401))
        assert run(bad.initialize()) is False
    assert "401" in bad.last_error and "'bot'" in bad.last_error and PASSWORD not in caplog.text
    assert any(r.name == "integrations.onec" and r.levelno == logging.ERROR for r in caplog.records)
    down = OneCIntegration("http://1c/base/hs", "bot", PASSWORD, database_url=db_url, max_retries=0,
                           transport=onec_transport(0))
    assert run(down.initialize()) is False and "network" in down.last_error
    partial = OneCIntegration("http://1c/base/hs", "bot", PASSWORD, database_url=db_url,
                              transport=onec_transport(published={"Catalog_Номенклатура"}))
    assert run(partial.initialize()) is False and "does not publish" in partial.last_error


def test_onec_initialize_rejects_a_bad_url_without_raising(db_url):
    onec = OneCIntegration("ftp://1c/base", "bot", PASSWORD, database_url=db_url)
    assert run(onec.initialize()) is False and "http://" in onec.last_error


def test_onec_sync_failure_is_a_structured_result_and_shows_in_status(db_url):
    onec = OneCIntegration("http://1c/base/hs", "bot", PASSWORD, database_url=db_url, max_retries=0,
                           transport=onec_transport(401))
    result = run(onec.sync_products())
    assert result["success"] is False and result["products_synced"] == 0
    assert result["errors"] == [result["error"]] and "401" in result["error"] and PASSWORD not in result["error"]
    status = onec.status()
    assert status["last_error"] == result["error"] and status["last_sync"] is None
    assert status["active_products"] == 1 and status["pending_outbox"] == 0


def test_onec_status_reads_sync_runs_and_a_later_success_clears_the_error(db_url):
    onec = OneCIntegration("http://1c/base/hs", "bot", PASSWORD, database_url=db_url, max_retries=0,
                           transport=onec_transport(401))
    run(onec.sync_products())
    assert onec.status()["last_error"]
    finished = datetime.now(UTC).replace(tzinfo=None)
    with onec.database().write() as conn:  # a Dagster run succeeding afterwards
        conn.execute(insert(sync_runs).values(source="onec", started_at=finished, finished_at=finished,
                                              status="success", inserted=1, updated=0, deactivated=0,
                                              unchanged=0, active=1))
    status = onec.status()
    assert status["last_error"] is None and status["last_sync"].startswith(finished.isoformat()[:19])
    assert status["last_sync_result"]["inserted"] == 1


def test_onec_create_order_queues_valid_orders_and_explains_invalid_ones(db_url):
    onec = OneCIntegration("http://1c/base/hs", "bot", PASSWORD, database_url=db_url)
    queued = run(onec.create_order(ORDER))
    assert queued["success"] and queued["status"] == "queued" and queued["order_id"].startswith("BOT-")
    wrong = run(onec.create_order({**ORDER, "products": [{"sku": "NOPE", "quantity": 1, "price": 1}], "total": 1}))
    assert wrong["success"] is False and "unknown SKU 'NOPE'" in wrong["error"]
    assert run(onec.create_order("not an order"))["success"] is False
    assert onec.status()["pending_outbox"] == 1


# ---- Bitrix24Integration ----------------------------------------------------------------------

def bitrix_transport(mode: str = "ok") -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if mode == "auth":
            return httpx.Response(401, json={"error": "INVALID_CREDENTIALS",
                                             "error_description": f"Invalid request credentials for {request.url}"})
        assert request.url.path.endswith("/user.current.json")
        return httpx.Response(200, json={"result": {"ID": "1", "NAME": "Ержан", "LAST_NAME": "Сапаров"},
                                         "time": {"start": 0, "finish": 0.01, "duration": 0.01}})

    return httpx.MockTransport(handler)


def test_bitrix_initialize_and_webhook_masking(db_url, caplog):
    b24 = Bitrix24Integration(WEBHOOK, database_url=db_url, transport=bitrix_transport())
    assert WEBHOOK_CODE not in repr(b24) and "portal.example.kz/rest/1/***/" in repr(b24)
    assert run(b24.initialize()) is True and b24.user["ID"] == "1"
    with caplog.at_level(logging.INFO, logger="integrations"):
        bad = Bitrix24Integration(WEBHOOK, database_url=db_url, transport=bitrix_transport("auth"))
        assert run(bad.initialize()) is False
    assert WEBHOOK_CODE not in bad.last_error and WEBHOOK_CODE not in caplog.text
    nothing = Bitrix24Integration("", database_url=db_url)
    assert run(nothing.initialize()) is False and "BITRIX24_WEBHOOK_URL" in nothing.last_error
    malformed = Bitrix24Integration("https://portal.example.kz/nope", database_url=db_url)
    assert run(malformed.initialize()) is False and "rest/<user_id>" in malformed.last_error


def test_bitrix_queues_leads_and_activity_and_holds_no_stock(db_url):
    b24 = Bitrix24Integration(WEBHOOK, database_url=db_url)
    lead = run(b24.create_lead({"customer": {"name": "Айгерим", "phone": "8 777 123 45 67"}, "source": "telegram",
                                "conversation_id": "tg-1"}))
    assert lead["success"] and lead["lead_id"].startswith("LEAD-") and lead["status"] == "queued"
    activity = run(b24.log_activity({"conversation_id": "tg-1", "summary": "Спросила про пылесос"}))
    assert activity["success"] and activity["activity_id"].startswith("ACT-")
    assert run(b24.create_lead({"customer": {"name": "X"}}))["error"].startswith("customer.phone")
    assert run(b24.sync_products()) == {"success": True, "products_synced": 0, "errors": [],
                                        "note": "Bitrix24 is not a product source; the catalogue comes from 1C"}
    assert run(b24.check_availability("ART001"))["success"] is False and b24.holds_stock is False
    assert b24.status()["pending_outbox"] == 2


# ---- config -----------------------------------------------------------------------------------

def write_config(tmp_path: Path, *, bitrix_enabled: bool = True) -> Path:
    path = tmp_path / "integrations.yaml"
    path.write_text(f"""
integrations:
  onec:
    enabled: true
    api_url: "${{ONEC_BASE_URL:-http://127.0.0.1:1/zeta}}"
    username: "${{ONEC_USERNAME:-Администратор}}"
    password: "${{ONEC_PASSWORD}}"
    live_availability: {{enabled: true, timeout_seconds: 1}}
  bitrix24:
    enabled: {str(bitrix_enabled).lower()}
    webhook_url: "${{BITRIX24_WEBHOOK_URL:-}}"
""", encoding="utf-8")
    return path


def test_load_integrations_config_expands_env(monkeypatch, tmp_path):
    monkeypatch.setenv("ONEC_PASSWORD", PASSWORD)
    monkeypatch.delenv("ONEC_BASE_URL", raising=False)
    config = load_integrations_config(write_config(tmp_path))
    assert config["integrations"]["onec"]["enabled"] is True
    assert config["integrations"]["onec"]["api_url"] == "http://127.0.0.1:1/zeta"
    assert config["integrations"]["onec"]["password"] == PASSWORD


def test_setup_from_config_registers_both_connectors(monkeypatch, tmp_path, db_url):
    monkeypatch.setenv("ONEC_PASSWORD", PASSWORD)
    monkeypatch.setenv("ZETA_DATABASE_URL", db_url)
    monkeypatch.delenv("BITRIX24_WEBHOOK_URL", raising=False)
    manager = IntegrationManager()
    results = setup_from_config(write_config(tmp_path, bitrix_enabled=False), manager=manager)
    assert results["1c"] == {"success": True, "enabled": True} and results["bitrix24"]["enabled"] is False
    onec = manager.get("1c")
    assert isinstance(onec, OneCIntegration) and onec.live.enabled and onec.live.timeout_seconds == 1
    assert PASSWORD not in repr(onec)
    status = manager.get_status()
    assert status["1c"]["enabled"] and status["bitrix24"]["enabled"] is False
    missing = setup_from_config(tmp_path / "missing.yaml", manager=IntegrationManager())
    assert missing["config"]["success"] is False and "not found" in missing["config"]["error"]


def test_onec_search_answers_structured_results(db_url):
    onec = OneCIntegration("http://1c/base/hs", "bot", PASSWORD, database_url=db_url)
    assert run(onec.search_products("")) == {"success": True, "query": "", "products": []}
    bad = run(onec.search_products(None))  # type: ignore[arg-type]
    assert bad["success"] is False and bad["products"] == [] and "string" in bad["error"]
