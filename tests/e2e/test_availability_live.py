"""Live availability against the 1C simulator over loopback HTTP, after a real catalogue sync.

The table is synced once; then 1C's stock changes, slows down or goes away, and the bot's
answer is checked: live and fresh when 1C answers, cached within the TTL, and from the table —
flagged stale, within the live timeout — when it does not.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from integrations.onec import OneCIntegration
from simulators.onec import Dataset, FaultConfig
from simulators.onec import create_app as onec_app
from simulators.serving import ThreadServer

pytestmark = pytest.mark.e2e

USER, PASSWORD = "Администратор", "zeta-demo"
STOCK = (4, 2, 1)  # Основной склад, Склад Алматы, Склад Астана
REGISTER = "ТоварыНаСкладах"


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The simulator with ART001 stocked 4 + 2 + 1, and a table synced from it."""
    ds = Dataset(size=150)
    expected = ds.expected_products()
    index = next(i for i in range(ds.size) if ds.exists(i) and i != ds.char_product
                 and (row := expected.get(ds.sku(i))) and row["is_active"] and row["unit"] == "шт")
    ds.set_article(index, "ART001")
    ds.set_price(index, "Розничная", 45000)
    for warehouse, qty in enumerate(STOCK):
        ds.set_stock(index, warehouse, qty)
    app = onec_app(ds)
    db_url = f"sqlite:///{tmp_path_factory.mktemp('live') / 'zeta.db'}"
    with ThreadServer(app) as server:
        loader = OneCIntegration(f"{server.url}/zeta", USER, PASSWORD, database_url=db_url, live_availability=False)
        synced = run(loader.sync_products())
        assert synced["success"], synced
        run(loader.close())
        yield {"url": f"{server.url}/zeta", "db_url": db_url, "ds": ds, "index": index,
               "sim": app.state.simulator}


@pytest.fixture
def sim(world):
    yield world["sim"]
    world["sim"].faults.set(FaultConfig())
    for warehouse, qty in enumerate(STOCK):
        world["ds"].set_stock(world["index"], warehouse, qty)


def connect(world: dict[str, Any], password: str = PASSWORD, **live: Any) -> OneCIntegration:
    settings = {"enabled": True, "timeout_seconds": 1.0, "ttl_seconds": 30, "breaker_fail_max": 3,
                "breaker_reset_seconds": 30, **live}
    return OneCIntegration(world["url"], USER, password, database_url=world["db_url"], live_availability=settings)


def balance_requests(sim) -> int:
    return sum(sum(c.values()) for name, c in sim.stats.by_set.items() if REGISTER in name)


def test_table_answer_is_the_synced_stock(world, sim):
    info = run(connect(world, enabled=False).check_availability("ART001"))
    assert info["source"] == "table" and info["stale"] is False and info["quantity"] == 7 and info["price"] == 45000


def test_live_answer_sees_stock_changed_after_the_sync(world, sim):
    world["ds"].set_stock(world["index"], 0, 10)  # 10 + 2 + 1 in 1C now; the table still says 7
    live = run(connect(world).check_availability("ART001"))
    table = run(connect(world, enabled=False).check_availability("ART001"))
    assert live["source"] == "1c" and live["quantity"] == 13 and live["stale"] is False
    assert table["quantity"] == 7


def test_live_answer_counts_only_the_configured_warehouses(world, sim):
    onec = OneCIntegration(world["url"], USER, PASSWORD, database_url=world["db_url"], warehouses=["Склад Алматы"],
                           live_availability={"enabled": True, "timeout_seconds": 1.0})
    info = run(onec.check_availability("ART001"))
    assert info["source"] == "1c" and info["quantity"] == 2


def test_cache_answers_within_ttl_without_asking_1c(world, sim):
    onec = connect(world)
    before = balance_requests(sim)

    async def twice():
        return await onec.check_availability("ART001"), await onec.check_availability("ART001")

    first, second = run(twice())
    assert (first["source"], second["source"]) == ("1c", "cache") and second["quantity"] == 7
    assert balance_requests(sim) - before == 1


def test_slow_1c_gives_the_table_answer_within_the_live_timeout(world, sim):
    sim.faults.merge({"latency_seconds": 1.5})
    started = time.perf_counter()
    info = run(connect(world, timeout_seconds=0.4).check_availability("ART001"))
    elapsed = time.perf_counter() - started
    assert elapsed < 0.9, elapsed
    assert info["success"] and info["source"] == "table" and info["stale"] is True and info["quantity"] == 7
    assert info["age_seconds"] > 0 and "0.4s" in info["live_error"]


def test_1c_down_opens_the_breaker_and_later_answers_are_instant(world, sim):
    sim.faults.merge({"odata_disabled": True})
    onec = connect(world, breaker_fail_max=2)

    async def scenario():
        answers = [await onec.check_availability("ART001") for _ in range(2)]
        requests = sim.stats.total
        started = time.perf_counter()
        answers.append(await onec.check_availability("ART001"))
        return answers, time.perf_counter() - started, sim.stats.total - requests

    answers, last_took, new_requests = run(scenario())
    assert all(a["stale"] and a["source"] == "table" and a["quantity"] == 7 for a in answers)
    assert "404" in answers[0]["live_error"]
    assert "paused" in answers[-1]["live_error"] and new_requests == 0 and last_took < 0.05
    assert onec.status()["live_availability"]["breaker"] == "open"


def test_wrong_live_password_is_stale_and_secret_free(world, sim):
    info = run(connect(world, password="not-the-password").check_availability("ART001"))
    assert info["stale"] is True and "401" in info["live_error"] and "not-the-password" not in str(info)


def test_unknown_sku_does_not_ask_1c(world, sim):
    before = sim.stats.total
    info = run(connect(world).check_availability("NO-SUCH-SKU"))
    assert info["success"] is False and info["available"] is False and "unknown SKU" in info["error"]
    assert sim.stats.total == before
