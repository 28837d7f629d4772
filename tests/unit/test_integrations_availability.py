"""Availability for the bot: the table answer, the live 1C answer, its cache, its breaker and its
bounded wait when 1C is down or slow (1C faked with an httpx transport; a real SQLite file)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from sqlalchemy import insert

from integrations.onec import OneCIntegration
from resources.store.database import Database
from resources.store.schema import products

REF = "11111111-1111-1111-1111-111111111111"
OTHER = "22222222-2222-2222-2222-222222222222"
PASSWORD = "s3cret-Pa55"


def add_product(db: Database, sku: str, ref: str, *, stock: float = 3, price: float | None = 45000.0,
                active: bool = True, synced_ago: float = 300.0) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    with db.write() as conn:
        conn.execute(insert(products).values(
            sku=sku, name=f"Товар {sku}", price=price, currency="KZT", stock=stock, is_active=active,
            onec_ref=ref, synced_at=now - timedelta(seconds=synced_ago), content_hash="h", updated_at=now))


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'zeta.db'}"
    db = Database(url)
    db.migrate()
    add_product(db, "ART001", REF)
    add_product(db, "OLD1", OTHER, active=False, stock=0)
    db.dispose()
    return url


class Fake1C:
    """A 1C that answers `Balance` for one product; it can fail or hang on demand."""

    def __init__(self, balances: list[dict] | None = None) -> None:
        self.balances = balances if balances is not None else [
            {"Номенклатура_Key": REF, "Склад_Key": "w1", "ВНаличииBalance": 5},
            {"Номенклатура_Key": REF, "Склад_Key": "w2", "ВНаличииBalance": 2.5}]
        self.requests: list[str] = []
        self.mode = "ok"  # ok | down | slow | auth
        self.release = threading.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(unquote(str(request.url)))
        if self.mode == "down":
            raise httpx.ConnectError("connection refused", request=request)
        if self.mode == "slow":
            self.release.wait(5)
            raise httpx.ReadTimeout("timed out", request=request)
        if self.mode == "auth":
            return httpx.Response(401, text="Unauthorized")
        if "Catalog_Склады" in unquote(request.url.path):
            return httpx.Response(200, json={"value": [{"Ref_Key": "w1", "Description": "Основной склад"},
                                                       {"Ref_Key": "w2", "Description": "Склад Алматы"}]})
        return httpx.Response(200, json={"value": self.balances})


def make(db_url: str, fake: Fake1C | None, **kw) -> OneCIntegration:
    live = kw.pop("live", {"enabled": fake is not None, "timeout_seconds": 0.5, "ttl_seconds": 30,
                           "breaker_fail_max": 3, "breaker_reset_seconds": 30})
    return OneCIntegration("http://1c.test/base/hs", "bot", PASSWORD, database_url=db_url, live_availability=live,
                           transport=httpx.MockTransport(fake or Fake1C()), **kw)


def run(coro_factory: Callable):
    return asyncio.run(coro_factory())


def test_table_answer_without_live_checking(db_url):
    onec = make(db_url, None)
    info = run(lambda: onec.check_availability("ART001"))
    assert info["success"] and info["available"] and info["quantity"] == 3 and info["price"] == 45000
    assert info["currency"] == "KZT" and info["source"] == "table" and info["stale"] is False
    assert 299 <= info["age_seconds"] < 400 and info["synced_at"].endswith("+00:00")
    assert isinstance(info["quantity"], int)  # whole numbers print as "3", not "3.0"


def test_unknown_sku_inactive_product_and_bad_input(db_url):
    onec = make(db_url, Fake1C())
    unknown = run(lambda: onec.check_availability("NOPE-1"))
    assert unknown["success"] is False and unknown["available"] is False and "unknown SKU 'NOPE-1'" in unknown["error"]
    inactive = run(lambda: onec.check_availability("OLD1"))
    assert inactive["success"] and inactive["available"] is False and inactive["active"] is False
    assert inactive["source"] == "table"  # no live question for a product that is not on sale
    empty = run(lambda: onec.check_availability("  "))
    assert empty["success"] is False and "non-empty" in empty["error"]
    assert run(lambda: onec.check_availability(" ART001 "))["sku"] == "ART001"


def test_unknown_sku_on_empty_catalogue_says_to_sync_first(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    info = run(lambda: make(url, None).check_availability("ART001"))
    assert info["success"] is False and "catalogue is empty" in info["error"]


def test_live_answer_sums_the_balance_of_that_product(db_url):
    fake = Fake1C()
    info = run(lambda: make(db_url, fake).check_availability("ART001"))
    assert info["source"] == "1c" and info["stale"] is False and info["quantity"] == 7.5
    assert info["price"] == 45000 and info["age_seconds"] == 0.0
    (url,) = fake.requests
    assert "AccumulationRegister_ТоварыНаСкладах/Balance(" in url
    assert f"Condition='Номенклатура_Key eq guid'{REF}''" in url


def test_live_answer_counts_only_configured_warehouses(db_url):
    fake = Fake1C()
    info = run(lambda: make(db_url, fake, warehouses=["Склад Алматы"]).check_availability("ART001"))
    assert info["quantity"] == 2.5 and info["source"] == "1c"


def test_live_answer_ignores_rows_of_other_products(db_url):
    fake = Fake1C([{"Номенклатура_Key": OTHER, "Склад_Key": "w1", "ВНаличииBalance": 100},
                   {"Номенклатура_Key": REF, "Склад_Key": "w1", "ВНаличииBalance": 0}])
    info = run(lambda: make(db_url, fake).check_availability("ART001"))
    assert info["quantity"] == 0 and info["available"] is False and info["source"] == "1c"


def test_cache_hit_within_ttl_and_refetch_after(db_url):
    fake = Fake1C()
    onec = make(db_url, fake, live={"enabled": True, "ttl_seconds": 0.3, "timeout_seconds": 0.5})

    async def scenario():
        first = await onec.check_availability("ART001")
        second = await onec.check_availability("ART001")
        await asyncio.sleep(0.35)
        third = await onec.check_availability("ART001")
        return first, second, third

    first, second, third = run(scenario)
    assert (first["source"], second["source"], third["source"]) == ("1c", "cache", "1c")
    assert second["quantity"] == 7.5 and second["stale"] is False and 0 <= second["age_seconds"] < 0.3
    assert len(fake.requests) == 2


def test_1c_down_answers_from_the_table_marked_stale(db_url):
    fake = Fake1C()
    fake.mode = "down"
    started = time.perf_counter()
    info = run(lambda: make(db_url, fake).check_availability("ART001"))
    assert time.perf_counter() - started < 0.5
    assert info["success"] and info["source"] == "table" and info["stale"] is True
    assert info["quantity"] == 3 and info["age_seconds"] >= 299 and "network" in info["live_error"]


def test_1c_slow_answers_within_the_live_timeout(db_url):
    fake = Fake1C()
    fake.mode = "slow"
    onec = make(db_url, fake, live={"enabled": True, "timeout_seconds": 0.3})
    try:
        started = time.perf_counter()
        info = run(lambda: onec.check_availability("ART001"))
        elapsed = time.perf_counter() - started
    finally:
        fake.release.set()
    assert elapsed < 0.6, elapsed
    assert info["stale"] is True and info["source"] == "table" and "0.3s" in info["live_error"]


def test_breaker_opens_after_n_failures_and_then_answers_instantly(db_url):
    fake = Fake1C()
    fake.mode = "down"
    onec = make(db_url, fake, live={"enabled": True, "timeout_seconds": 0.5, "breaker_fail_max": 3,
                                    "breaker_reset_seconds": 30})

    async def scenario():
        answers = [await onec.check_availability("ART001") for _ in range(3)]
        started = time.perf_counter()
        answers.append(await onec.check_availability("ART001"))
        return answers, time.perf_counter() - started

    answers, last_took = run(scenario)
    assert len(fake.requests) == 3  # the 4th question never reached 1C
    assert all(a["stale"] and a["source"] == "table" for a in answers)
    assert "paused" in answers[-1]["live_error"] and "network" in answers[-1]["live_error"]
    assert last_took < 0.05
    assert onec.status()["live_availability"]["breaker"] == "open"


def test_breaker_half_opens_after_reset_and_closes_on_success(db_url):
    fake = Fake1C()
    fake.mode = "down"
    onec = make(db_url, fake, live={"enabled": True, "timeout_seconds": 0.5, "breaker_fail_max": 1,
                                    "breaker_reset_seconds": 0.2})

    async def scenario():
        down = await onec.check_availability("ART001")
        fake.mode = "ok"
        paused = await onec.check_availability("ART001")
        await asyncio.sleep(0.25)
        back = await onec.check_availability("ART001")
        return down, paused, back

    down, paused, back = run(scenario)
    assert down["stale"] and paused["stale"] and "paused" in paused["live_error"]
    assert back["source"] == "1c" and back["stale"] is False
    assert onec.status()["live_availability"]["breaker"] == "closed"


def test_live_error_never_carries_the_password(db_url):
    fake = Fake1C()
    fake.mode = "auth"
    info = run(lambda: make(db_url, fake).check_availability("ART001"))
    assert info["stale"] is True and "401" in info["live_error"] and PASSWORD not in str(info)
