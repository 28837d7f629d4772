"""`IntegrationManager` semantics: the seed's structured answers whatever a connector does."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from integrations import Integration
from integrations.manager import AVAILABILITY_KEYS, IntegrationManager, integration_manager

API_KEY = "key-0123456789-secret"


class Seedlike(Integration):
    """Exactly the seed's "How to add new integration" class: four methods whose bodies `pass`."""

    async def initialize(self) -> bool:
        pass

    async def sync_products(self) -> dict:
        pass

    async def create_order(self, order_data: dict) -> dict:
        pass

    async def check_availability(self, sku: str) -> dict:
        pass


class Working(Integration):
    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.orders: list[dict] = []
        self.leads: list[dict] = []

    async def initialize(self) -> bool:
        self.logger.info("connected")
        return True

    async def sync_products(self) -> dict:
        return {"success": True, "products_synced": 12, "errors": []}

    async def create_order(self, order_data: dict) -> dict:
        self.orders.append(order_data)
        return {"success": True, "order_id": "W-1", "status": "queued"}

    async def check_availability(self, sku: str) -> dict:
        return {"success": True, "available": True, "quantity": 2}

    async def create_lead(self, lead_data: dict) -> dict:
        self.leads.append(lead_data)
        return {"success": True, "lead_id": "L-1", "status": "queued"}


class Broken(Working):
    async def initialize(self) -> bool:
        raise RuntimeError(f"cannot log in with {self.config['api_key']}")

    async def sync_products(self) -> dict:
        raise ConnectionError(f"refused for key={self.config['api_key']}")

    async def check_availability(self, sku: str) -> dict:
        raise KeyError(sku)


class NoStock(Working):
    holds_stock = False


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def manager() -> IntegrationManager:
    return IntegrationManager()


def test_the_singleton_is_a_manager():
    assert isinstance(integration_manager, IntegrationManager)


def test_seed_style_subclass_gets_structured_failures_not_exceptions(manager):
    svc = Seedlike(api_url="https://api.myservice.com", api_key=API_KEY)
    assert API_KEY not in repr(svc) and "api.myservice.com" in repr(svc)
    manager.register("myservice", svc, enabled=True)
    assert svc.name == "myservice" and svc.logger.name == "integrations.myservice"
    init = run(manager.initialize_all())
    assert init == {"myservice": {"success": False, "error": "myservice: connection check failed"}}
    sync = run(manager.sync_all())["myservice"]
    assert sync["success"] is False and sync["products_synced"] == 0 and sync["errors"] == [sync["error"]]
    assert "returned NoneType" in sync["error"]
    order = run(manager.create_order("myservice", order_data={"total": 1}))
    assert order["success"] is False and "create_order" in order["error"]
    info = run(manager.check_availability("ART001"))["myservice"]
    assert set(AVAILABILITY_KEYS) <= set(info) and info["available"] is False


def test_working_integration_results_pass_through(manager):
    w = Working(api_url="x")
    manager.register("w", w)
    assert run(manager.initialize_all()) == {"w": {"success": True}}
    assert run(manager.sync_all())["w"] == {"success": True, "products_synced": 12, "errors": []}
    assert run(manager.create_order("w", {"a": 1})) == {"success": True, "order_id": "W-1", "status": "queued"}
    info = run(manager.check_availability("X"))["w"]
    assert info["available"] is True and info["quantity"] == 2 and info["price"] is None
    status = manager.get_status()["w"]
    assert status["enabled"] is True and status["initialized"] is True and status["last_sync"]
    assert status["last_error"] is None


def test_exceptions_become_failed_results_with_secrets_masked(manager, caplog):
    manager.register("bad", Broken(api_key=API_KEY))
    manager.register("good", Working())
    with caplog.at_level(logging.ERROR, logger="integrations.manager"):
        init = run(manager.initialize_all())
        sync = run(manager.sync_all())
        avail = run(manager.check_availability("ART001"))
    assert init["good"] == {"success": True} and init["bad"]["success"] is False
    assert "RuntimeError" in init["bad"]["error"] and API_KEY not in init["bad"]["error"]
    assert sync["good"]["success"] and not sync["bad"]["success"] and "ConnectionError" in sync["bad"]["errors"][0]
    assert avail["good"]["available"] and avail["bad"]["available"] is False
    assert API_KEY not in caplog.text and "Traceback" in caplog.text
    status = manager.get_status()
    assert "KeyError" in status["bad"]["last_error"] and status["good"]["last_error"] is None  # the latest crash


def test_disabled_integrations_are_kept_but_not_called(manager):
    w = Working()
    manager.register("w", w, enabled=False)
    assert run(manager.initialize_all()) == {}
    assert run(manager.sync_all()) == {}
    assert run(manager.check_availability("X")) == {}
    order = run(manager.create_order("w", {"x": 1}))
    assert order == {"success": False, "error": "integration 'w' is disabled"} and w.orders == []
    assert manager.get_status()["w"]["enabled"] is False
    assert manager.set_enabled("w", True) and run(manager.create_order("w", {"x": 1}))["success"]
    assert manager.set_enabled("nope", True) is False


def test_create_order_for_an_unknown_integration(manager):
    manager.register("w", Working())
    result = run(manager.create_order("1c", {}))
    assert result["success"] is False and "unknown integration '1c'" in result["error"] and "w" in result["error"]


def test_availability_asks_only_integrations_that_hold_stock(manager):
    manager.register("crm", NoStock())
    manager.register("shop", Working())
    assert list(run(manager.check_availability("X"))) == ["shop"]


def test_leads_and_activity_go_to_the_crm_integration(manager):
    assert run(manager.create_lead({"x": 1}))["success"] is False
    crm = Working()
    manager.register("shop", Seedlike())
    manager.register("bitrix24", crm)
    result = run(manager.create_lead({"customer": {"name": "A", "phone": "+77770000000"}}))
    assert result == {"success": True, "lead_id": "L-1", "status": "queued"} and len(crm.leads) == 1
    activity = run(manager.log_activity({"summary": "x"}))
    assert activity["success"] is False and "log_activity" in activity["error"]


def test_register_rejects_non_integrations_and_replaces_by_name(manager):
    with pytest.raises(TypeError):
        manager.register("x", object())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        manager.register("", Working())
    first, second = Working(), Working()
    manager.register("w", first)
    manager.register("w", second)
    assert manager.get("w") is second and manager.names == ["w"]
    assert manager.unregister("w") is second and manager.names == []


def test_status_survives_a_failing_status_method(manager):
    class BadStatus(Working):
        def status(self) -> dict:
            raise OSError("disk gone")

    manager.register("b", BadStatus())
    status = manager.get_status()["b"]
    assert status["enabled"] is True and "disk gone" in status["last_error"]


def test_integrations_run_concurrently(manager):
    class Slow(Working):
        async def sync_products(self) -> dict:
            await asyncio.sleep(0.2)
            return {"success": True, "products_synced": 1, "errors": []}

    for n in range(5):
        manager.register(f"s{n}", Slow())

    async def timed():
        loop = asyncio.get_running_loop()
        started = loop.time()
        await manager.sync_all()
        return loop.time() - started

    assert run(timed()) < 0.6


def test_search_goes_to_the_catalogue_integration(manager):
    assert run(manager.search_products("молоко"))["success"] is False

    class Catalogue(Working):
        async def search_products(self, query: str, limit: int = 10) -> dict:
            return {"success": True, "query": query, "products": [{"sku": "A1"}][:limit]}

    manager.register("crm", NoStock())
    manager.register("1c", Catalogue())
    assert run(manager.search_products("молоко", limit=1)) == {"success": True, "query": "молоко",
                                                               "products": [{"sku": "A1"}]}
