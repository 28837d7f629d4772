"""Every Python example of the seed README, run as written against the simulators.

The snippets are read from the seed file itself (`../shared/seed/`), so this test follows the
document, not a copy. Only what the seed says must become real is replaced: the 1C URL, user and
password and the Bitrix24 webhook, which point at the loopback simulators. The snippets share one
namespace, like one bot script; the names they use without importing (`os`, `Dict`, `logger`,
`integration`) are provided, as the seed leaves them out for brevity.

The seed's SKU `ART001` at 45000 KZT is real here: the 1C simulator's data set gets one product
re-articled to `ART001`, priced 45000 (retail) and stocked 4 + 2 + 1 over its three warehouses
(the simulator's own articles are `ART000001`…).
"""

from __future__ import annotations

import ast
import asyncio
import logging
import os
import re
import sys
import types
import typing
from typing import Any

import pytest

from integrations.manager import integration_manager
from resources.settings import load_settings
from resources.store.database import PROJECT_ROOT
from simulators.bitrix24 import create_app as bitrix_app
from simulators.onec import Dataset
from simulators.onec import create_app as onec_app
from simulators.serving import ThreadServer

pytestmark = pytest.mark.e2e

SEED_DIR = PROJECT_ROOT.parent / "shared" / "seed"
ONEC_USER, ONEC_PASSWORD = "Администратор", "zeta-demo"
SEED_SKU, SEED_PRICE, SEED_STOCK = "ART001", 45000, (4, 2, 1)


# ---- the seed's snippets ----------------------------------------------------------------------

SEED_COPY = PROJECT_ROOT / "tests" / "seed_readme.md"  # a copy, for clones without ../shared


def seed_text() -> str:
    files = sorted(SEED_DIR.glob("000_*.txt")) or [SEED_COPY]
    return files[0].read_text(encoding="utf-8")


def seed_snippets() -> dict[str, str]:
    """The ```python blocks keyed by their heading (`How to Add New Integration/1`, `Basic Setup`, …)."""
    blocks: dict[str, str] = {}
    heading, step = "", ""
    for match in re.finditer(r"^(#{2,3}) ([^\n]+)$|^(\d+)\. \*\*|^```python\n(.*?)^```", seed_text(),
                             re.MULTILINE | re.DOTALL):
        if match.group(2):
            heading, step = match.group(2).strip(), ""
        elif match.group(3):
            step = match.group(3)
        else:
            blocks[f"{heading}/{step}" if step else heading] = match.group(4)
    return blocks


def make_real(code: str, onec_url: str, bitrix_url: str) -> str:
    """Point the seed's placeholder URLs and secrets at the simulators; nothing else changes."""
    for old, new in {'"http://1c-server/base/hs"': f'"{onec_url}/zeta/hs"', '"bot_user"': f'"{ONEC_USER}"',
                     'password="secret"': f'password="{ONEC_PASSWORD}"',
                     '"https://your-domain.bitrix24.com/rest/1/xxxxx/"': f'"{bitrix_url}/rest/1/zetademo/"'}.items():
        code = code.replace(old, new)
    return code


async def run_snippet(code: str, namespace: dict[str, Any]) -> None:
    """Execute a snippet with top-level `await`, as a notebook or an async REPL would."""
    compiled = compile(code, "<seed README>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, namespace)  # noqa: S307 - the seed's own examples
    if asyncio.iscoroutine(result):
        await result


# ---- simulators -------------------------------------------------------------------------------

def seed_product(ds: Dataset) -> int:
    """Make one active, piece-priced product the seed's ART001 at 45000 KZT."""
    expected = ds.expected_products()
    for i in range(ds.size):
        row = expected.get(ds.sku(i)) if ds.exists(i) else None
        if row and row["is_active"] and row["unit"] == "шт" and i != ds.char_product:
            break
    else:  # pragma: no cover - the data set always has such a product
        raise AssertionError("no piece-priced product in the simulator's data set")
    ds.set_article(i, SEED_SKU)
    ds.set_price(i, "Розничная", SEED_PRICE)
    for warehouse, qty in enumerate(SEED_STOCK):
        ds.set_stock(i, warehouse, qty)
    return i


@pytest.fixture(scope="module")
def sims():
    ds = Dataset(size=400)
    seed_product(ds)
    app = onec_app(ds)
    with ThreadServer(app) as onec, ThreadServer(bitrix_app()) as bitrix:
        yield onec.url, bitrix.url, app


@pytest.fixture
def env(sims, tmp_path, monkeypatch):
    onec_url, bitrix_url, _ = sims
    monkeypatch.setenv("ZETA_DATABASE_URL", f"sqlite:///{tmp_path / 'zeta.db'}")
    monkeypatch.setenv("ONEC_BASE_URL", f"{onec_url}/zeta")
    monkeypatch.setenv("ONEC_USERNAME", ONEC_USER)
    monkeypatch.setenv("ONEC_PASSWORD", ONEC_PASSWORD)
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL", f"{bitrix_url}/rest/1/zetademo/")
    monkeypatch.delenv("ZETA_CONFIG", raising=False)
    integration_manager.clear()
    yield sims
    asyncio.run(integration_manager.close_all())
    integration_manager.clear()


def test_the_seed_has_the_examples_this_test_runs():
    names = set(seed_snippets())
    assert {"Basic Setup", "Sync Products", "Check Availability", "Create Order", "Get Status",
            "Configuration Loading", "Error Handling", "Logging", "Testing"} <= names
    assert {f"How to Add New Integration/{n}" for n in ("1", "2", "4")} <= names


# ---- How to Add New Integration ---------------------------------------------------------------

def test_how_to_add_new_integration(env, capsys):
    snippets = seed_snippets()
    module = types.ModuleType("integrations.myservice")
    module.__package__ = "integrations"
    module.Dict = typing.Dict  # the seed's class uses `Dict` without importing it  # noqa: UP006
    sys.modules["integrations.myservice"] = module
    try:
        # 1. Create connector class — as the file integrations/myservice.py (its `from . import`).
        exec(compile(snippets["How to Add New Integration/1"], "integrations/myservice.py", "exec"),  # noqa: S102
             module.__dict__)
        namespace: dict[str, Any] = {}
        asyncio.run(run_snippet(snippets["How to Add New Integration/2"], namespace))
        svc = integration_manager.get("myservice")
        assert type(svc).__name__ == "MyServiceIntegration" and svc.logger.name == "integrations.myservice"
        assert "api_key='***'" in repr(svc)

        async def step4() -> None:
            await run_snippet(snippets["How to Add New Integration/4"], namespace)
            # the four methods only `pass`: every call still answers in the seed's shape
            assert (await integration_manager.initialize_all())["myservice"]["success"] is False
            sync = (await integration_manager.sync_all())["myservice"]
            assert sync["success"] is False and sync["products_synced"] == 0 and sync["errors"]

        asyncio.run(step4())
        assert namespace["result"]["success"] is False and "create_order" in namespace["result"]["error"]
    finally:
        sys.modules.pop("integrations.myservice", None)


def test_how_to_add_new_integration_config_step(tmp_path):
    snippet = re.search(r"```yaml\n(.*?)```", seed_text(), re.DOTALL).group(1)
    config = (PROJECT_ROOT / "config" / "integrations.yaml").read_text(encoding="utf-8")
    added = snippet.split("integrations:\n", 1)[1]
    path = tmp_path / "integrations.yaml"
    path.write_text(config.replace("integrations:\n", "integrations:\n" + added, 1), encoding="utf-8")
    settings = load_settings(path)
    assert settings.integrations.model_extra["myservice"]["api_url"] == "https://api.myservice.com"


# ---- Usage examples, in the README's order ----------------------------------------------------

def test_usage_examples(env, capsys, caplog):
    onec_url, bitrix_url, onec_sim = env
    snippets = {k: make_real(v, onec_url, bitrix_url) for k, v in seed_snippets().items()}
    namespace: dict[str, Any] = {"os": os, "__file__": str(PROJECT_ROOT / "bot.py"),
                                 "logger": logging.getLogger("integrations")}

    async def scenario() -> None:
        await run_snippet(snippets["Basic Setup"], namespace)
        assert integration_manager.names == ["1c", "bitrix24"]
        status = integration_manager.get_status()
        assert status["1c"]["initialized"] is True and status["bitrix24"]["initialized"] is True
        capsys.readouterr()

        await run_snippet(snippets["Sync Products"], namespace)
        out = capsys.readouterr().out
        synced = namespace["results"]["1c"]["products_synced"]
        assert f"✓ 1c: {synced} products" in out and synced >= 390 and "✓ bitrix24: 0 products" in out

        await run_snippet(snippets["Check Availability"], namespace)
        assert capsys.readouterr().out == f"1c: {sum(SEED_STOCK)} in stock @ {SEED_PRICE} KZT\n"
        assert namespace["availability"]["1c"]["stale"] is False

        await run_snippet(snippets["Create Order"], namespace)
        out = capsys.readouterr().out
        assert re.fullmatch(r"Order created: BOT-\d{6}\n", out), out
        assert namespace["result"] == {"success": True, "order_id": out.split(": ")[1].strip(), "status": "queued"}

        await run_snippet(snippets["Get Status"], namespace)
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith("1c: enabled=True, last_sync=20") and out[1] == "bitrix24: enabled=True, last_sync=None"
        assert namespace["status"]["1c"]["pending_outbox"] == 1 and namespace["status"]["1c"]["last_error"] is None

        await run_snippet(snippets["Configuration Loading"], namespace)
        assert namespace["onec"] is integration_manager.get("1c")  # the config's 1C replaced the manual one
        assert (await integration_manager.initialize_all())["1c"] == {"success": True}

        namespace["integration"] = integration_manager.get("1c")
        await run_snippet(snippets["Error Handling"], namespace)
        assert namespace["result"]["success"] is True
        onec_sim.state.simulator.faults.merge({"odata_disabled": True})
        try:
            with caplog.at_level(logging.ERROR, logger="integrations"):
                await run_snippet(snippets["Error Handling"], namespace)
        finally:
            onec_sim.state.simulator.faults.merge({"odata_disabled": False})
        assert namespace["result"]["success"] is False and "Sync failed: 1C product sync failed" in caplog.text

        await run_snippet(snippets["Logging"], namespace)
        assert logging.getLogger("integrations").level == logging.INFO

        await run_snippet(snippets["Testing"], namespace)
        assert capsys.readouterr().out == "✓ Connection successful\n"
        namespace["integration"] = type(namespace["onec"])(f"{onec_url}/zeta/hs", ONEC_USER, "wrong-password")
        await run_snippet(snippets["Testing"], namespace)
        assert capsys.readouterr().out == "✗ Connection failed\n"
        assert "wrong-password" not in caplog.text

    with caplog.at_level(logging.INFO, logger="integrations"):
        asyncio.run(scenario())
    names = {r.name for r in caplog.records}
    assert {"integrations.onec", "integrations.bitrix24", "integrations.manager"} <= names
    assert ONEC_PASSWORD not in caplog.text and "zetademo" not in caplog.text


# ---- docs/bot_api.md: its runnable examples, in order ----------------------------------------

def test_bot_api_doc_examples(env, capsys):
    onec_url, bitrix_url, _ = env
    doc = (PROJECT_ROOT / "docs" / "bot_api.md").read_text(encoding="utf-8")
    blocks = [make_real(b, onec_url, bitrix_url) for b in re.findall(r"^```python\n(.*?)^```", doc, re.M | re.S)]
    assert len(blocks) >= 10
    namespace: dict[str, Any] = {}

    async def scenario() -> None:
        for block in blocks:
            await run_snippet(block, namespace)

    asyncio.run(scenario())
    out = capsys.readouterr().out
    assert "1c OK\nbitrix24 OK\n" in out and "✓ 1c: " in out and "✓ bitrix24: 0 products" in out
    assert f"True {sum(SEED_STOCK)} {SEED_PRICE} KZT 1c False" in out
    assert f"В наличии: {sum(SEED_STOCK)} шт. по {SEED_PRICE} KZT" in out  # from the cache, still fresh
    assert re.search(r"Order created: BOT-\d{6}\nqueued\n", out)
    found = namespace["found"]
    assert found["success"] and found["products"] and all("Молоко" in p["name"] for p in found["products"])
    assert namespace["lead"]["success"] and namespace["logged"]["success"], (namespace["lead"], namespace["logged"])
    assert re.search(r"1c: enabled=True, last_sync=20\S+, last_error=None, pending=1", out)
    assert "bitrix24: enabled=True, last_sync=None, last_error=None, pending=3" in out
