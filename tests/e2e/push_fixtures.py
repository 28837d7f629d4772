"""Shared pieces of the outbox push end-to-end tests: both simulators on loopback, a real SQLite
file, the catalogue seeded by the real catalogue sync, order/lead generators, a drain loop and the
exactly-once assertions (made through the simulators' admin state, not through our own tables).

Imported by the `tests/e2e/test_push*.py` modules (no shared conftest).
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import select

from assets.catalogue.sync import SyncOptions, run_catalogue_sync
from integrations.intake import log_activity, submit_lead, submit_order
from pipelines.push.mapping import Bitrix24Mapping, load_bitrix24_mapping
from pipelines.push.worker import PushOptions, PushReport, push_outbox
from resources.bitrix24.client import Bitrix24Client
from resources.onec.client import OneCClient, RetryPolicy
from resources.onec.orders import OneCOrders
from resources.onec.profile import load_profile
from resources.store import outbox
from resources.store.database import Database, get_database
from resources.store.schema import products
from simulators.bitrix24 import FaultConfig as BitrixFaults
from simulators.bitrix24 import create_app as bitrix_app
from simulators.onec import Dataset
from simulators.onec import create_app as onec_app
from simulators.serving import ThreadServer

ONEC_USER = "Администратор"
ONEC_PASSWORD = "zeta-e2e-пароль"
WEBHOOK_PATH = "/rest/1/zetademo/"
MARKER = re.compile(r"\[((?:BOT|LEAD|ACT)-\d+)\]")
FAST_POLICY = outbox.RetryPolicy(max_attempts=60, backoff_base_seconds=0.05, backoff_max_seconds=0.4,
                                 lease_seconds=60)


@dataclass
class Stack:
    """Both simulators, the store and the pieces a push needs."""

    tmp: Path
    db_url: str
    db: Database
    onec_server: ThreadServer
    bitrix_server: ThreadServer
    mapping: Bitrix24Mapping
    catalogue: list[dict[str, Any]] = field(default_factory=list)
    _clients: list[Any] = field(default_factory=list)

    @property
    def onec_url(self) -> str:
        return self.onec_server.url + "/zeta"

    @property
    def webhook(self) -> str:
        return self.bitrix_server.url + WEBHOOK_PATH

    def onec_orders(self, *, retries: int = 3) -> OneCOrders:
        client = OneCClient(self.onec_url, ONEC_USER, ONEC_PASSWORD, timeout=10,
                            retry=RetryPolicy(max_retries=retries, backoff_base=0.02, backoff_max=0.2))
        self._clients.append(client)
        profile = load_profile("ut11")
        assert profile.orders is not None
        return OneCOrders(client, profile.orders, {})

    def bitrix_client(self, *, rate: float = 50.0, burst: int = 50, retries: int = 8) -> Bitrix24Client:
        client = Bitrix24Client(self.webhook, timeout=10, rate_per_second=rate, burst=burst, headroom=0,
                                max_retries=retries, backoff_base=0.05, backoff_max=0.5)
        self._clients.append(client)
        return client

    def push(self, *, options: PushOptions | None = None, rate: float = 50.0, burst: int = 50,
             onec: bool = True, bitrix: bool = True) -> PushReport:
        return push_outbox(self.db, onec=self.onec_orders() if onec else None,
                           bitrix=self.bitrix_client(rate=rate, burst=burst) if bitrix else None,
                           mapping=self.mapping, options=options or PushOptions(policy=FAST_POLICY, defer_seconds=0.05))

    # ---- simulator admin ---------------------------------------------------------------
    def onec_faults(self, **faults: Any) -> None:
        httpx.delete(self.onec_server.url + "/_admin/faults").raise_for_status()
        if faults:
            httpx.post(self.onec_server.url + "/_admin/faults", json=faults).raise_for_status()

    def bitrix_faults(self, **faults: Any) -> None:
        httpx.post(self.bitrix_server.url + "/_admin/faults", json={"reset": True, **faults}).raise_for_status()

    def bitrix_limits(self, **limits: Any) -> None:
        httpx.post(self.bitrix_server.url + "/_admin/limits", json={"reset_counters": True, **limits}).raise_for_status()

    def onec_documents(self) -> list[dict[str, Any]]:
        return httpx.get(self.onec_server.url + "/_admin/documents", timeout=30).json()

    def bitrix_state(self) -> dict[str, Any]:
        return httpx.get(self.bitrix_server.url + "/_admin/state", timeout=30).json()

    def bitrix_stats(self) -> dict[str, Any]:
        return httpx.get(self.bitrix_server.url + "/_admin/stats", timeout=30).json()

    def onec_stats(self) -> dict[str, Any]:
        return httpx.get(self.onec_server.url + "/_admin/stats", timeout=30).json()

    def close(self) -> None:
        for c in self._clients:
            c.close()
        self.onec_server.stop()
        self.bitrix_server.stop()

    # ---- config for subprocess runs (python -m pipelines.push) -----------------------------
    def write_config(self, **outbox_settings: Any) -> Path:
        path = self.tmp / "integrations.yaml"
        config = {
            "database": {"url": self.db_url},
            "outbox": {"max_attempts": 60, "backoff_base_seconds": 0.05, "backoff_max_seconds": 0.4,
                       **outbox_settings},
            "integrations": {
                "onec": {"api_url": self.onec_url, "username": ONEC_USER, "password": "${ONEC_PASSWORD}",
                         "mapping": "ut11", "timeout_seconds": 10, "max_retries": 3},
                "bitrix24": {"webhook_url": "${BITRIX24_WEBHOOK_URL}", "rate_per_second": 4, "burst": 12,
                             "timeout_seconds": 10},
            },
        }
        path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        return path

    def env(self, config: Path) -> dict[str, str]:
        return {"ZETA_CONFIG": str(config), "ZETA_DATABASE_URL": self.db_url, "ONEC_PASSWORD": ONEC_PASSWORD,
                "BITRIX24_WEBHOOK_URL": self.webhook}


@contextmanager
def running_stack(tmp: Path, *, products_in_1c: int = 120, bitrix_burst: float = 50, bitrix_drain: float = 50.0,
                  seed: int = 7) -> Iterator[Stack]:
    """Start both simulators on loopback, make the store and seed `products` with the real
    catalogue sync against the 1C simulator."""
    onec_server = ThreadServer(onec_app(Dataset(size=products_in_1c, seed=seed), users={ONEC_USER: ONEC_PASSWORD})).start()
    bitrix_server = ThreadServer(bitrix_app(rate_limit=(bitrix_burst, bitrix_drain),
                                            faults=BitrixFaults(seed=seed))).start()
    db_url = f"sqlite:///{tmp / 'zeta.db'}"
    stack = Stack(tmp, db_url, get_database(db_url), onec_server, bitrix_server, load_bitrix24_mapping())
    try:
        client = OneCClient(stack.onec_url, ONEC_USER, ONEC_PASSWORD, timeout=30)
        stack._clients.append(client)
        run_catalogue_sync(client, load_profile("ut11"), stack.db, SyncOptions(page_size=500))
        with stack.db.read() as conn:
            stack.catalogue = [dict(r) for r in conn.execute(
                select(products.c.sku, products.c.price, products.c.onec_ref)
                .where(products.c.is_active.is_(True), products.c.price.is_not(None), products.c.price > 0)
                .order_by(products.c.sku)).mappings()]
        assert len(stack.catalogue) >= 10, "the 1C simulator should give enough priced, active products"
        yield stack
    finally:
        stack.close()


# ---- bot traffic ---------------------------------------------------------------------------

def phone(n: int, prefix: str = "777") -> str:
    return f"+7{prefix}{n:07d}"


def make_orders(stack: Stack, count: int, *, rng: random.Random | None = None, start: int = 0) -> list[str]:
    rng = rng or random.Random(11)
    ids = []
    for i in range(start, start + count):
        picked = rng.sample(stack.catalogue, rng.randint(1, 3))
        lines = [{"sku": p["sku"], "quantity": rng.randint(1, 4), "price": p["price"]} for p in picked]
        total = round(sum(li["quantity"] * li["price"] for li in lines), 2)
        answer = submit_order(stack.db, {
            "customer": {"name": rng.choice(["Иван Петров", "Әлия Жұмабаева", "Дмитрий Ким", "Айгерим"]),
                         "phone": phone(i)},
            "products": lines, "total": total, "delivery": {"address": f"Алматы, ул. Абая {i}"},
            "conversation_id": f"order-conv-{i}", "order_id": f"tg-order-{i}",
        })
        assert answer["success"], answer
        ids.append(answer["order_id"])
    return ids


def make_leads(stack: Stack, count: int, *, start: int = 0, with_activity: bool = False) -> tuple[list[str], list[str]]:
    leads, activities = [], []
    for i in range(start, start + count):
        answer = submit_lead(stack.db, {"customer": {"name": "Клиент Чат-бота", "phone": phone(i, "701")},
                                        "source": "telegram", "conversation_id": f"lead-conv-{i}",
                                        "comment": f"Спрашивал про товар №{i}"})
        assert answer["success"], answer
        leads.append(answer["lead_id"])
        if with_activity:
            logged = log_activity(stack.db, {"conversation_id": f"lead-conv-{i}",
                                             "summary": f"Клиент {i} выбрал чайник и ждёт звонка"})
            assert logged["success"], logged
            activities.append(logged["activity_id"])
    return leads, activities


def drain(push: Callable[[], PushReport], db: Database, *, rounds: int = 120, pause: float = 0.1) -> Counter[str]:
    """Push again and again until nothing is pending, failed or in progress."""
    total: Counter[str] = Counter()
    for _ in range(rounds):
        total.update(push().summary())
        counts = outbox.counts(db)
        if counts[outbox.PENDING] == counts[outbox.FAILED] == counts[outbox.IN_PROGRESS] == 0:
            return total
        time.sleep(pause)
    raise AssertionError(f"the outbox did not drain: {outbox.counts(db)} after {rounds} rounds ({dict(total)})")


# ---- exactly-once assertions ------------------------------------------------------------------

def _dupes(counter: Counter[str]) -> dict[str, int]:
    return {k: v for k, v in counter.items() if v > 1}


def assert_delivered_exactly_once(stack: Stack, orders: list[str], leads: list[str],
                                  activities: list[str] = ()) -> None:  # type: ignore[assignment]
    """One posted 1C document per order id; one deal per order and one lead per lead (by
    ORIGIN_ID); one task per order/lead and one timeline comment per order/lead/activity (by the
    id marker); one contact per phone; the 1C number written back to each deal."""
    rows = {r.id: r for r in outbox.list_rows(stack.db)}
    assert {i: rows[i].status for i in [*orders, *leads, *activities] if rows[i].status != outbox.DONE} == {}

    docs = stack.onec_documents()
    by_number = Counter(d["НомерПоДаннымКлиента"] for d in docs)
    assert _dupes(by_number) == {}, "1C documents created twice"
    assert set(by_number) == set(orders)
    assert all(d["Posted"] for d in docs)
    doc_of = {d["НомерПоДаннымКлиента"]: d for d in docs}

    state = stack.bitrix_state()
    deals = Counter(d["ORIGIN_ID"] for d in state["deals"] if d.get("ORIGINATOR_ID") == "zeta-bot")
    assert _dupes(deals) == {}, "deals created twice"
    assert set(deals) == set(orders)
    lead_origins = Counter(d["ORIGIN_ID"] for d in state["leads"] if d.get("ORIGINATOR_ID") == "zeta-bot")
    assert _dupes(lead_origins) == {}, "leads created twice"
    assert set(lead_origins) == set(leads)
    tasks = Counter(m.group(1) for t in state["tasks"] if (m := MARKER.search(t["TITLE"])))
    assert _dupes(tasks) == {}, "tasks created twice"
    assert set(tasks) == set(orders) | set(leads)
    comments = Counter(m.group(1) for c in state["comments"] if (m := MARKER.search(c["COMMENT"])))
    assert _dupes(comments) == {}, "timeline comments created twice"
    assert set(comments) == set(orders) | set(leads) | set(activities)
    contacts = Counter(c["ORIGIN_ID"] for c in state["contacts"])
    assert _dupes(contacts) == {}, "contacts created twice for one phone"

    field_name = stack.mapping.deal.onec_number_field
    for deal in state["deals"]:
        order_id = deal["ORIGIN_ID"]
        assert deal.get(field_name) == doc_of[order_id]["Number"] == rows[order_id].onec_number
        assert rows[order_id].b24_deal_id == deal["ID"]
    deal_by_id = {d["ID"]: d for d in state["deals"]}
    for order_id in orders:
        row = rows[order_id]
        assert len(state["product_rows"][f"D_{row.b24_deal_id}"]) == len(row.payload["lines"])
        assert abs(deal_by_id[row.b24_deal_id]["OPPORTUNITY"] - row.payload["total"]) < 0.01
    for activity_id in activities:
        row = rows[activity_id]
        lead_row = next(r for r in rows.values() if r.kind == outbox.LEAD
                        and r.conversation_id == row.conversation_id)
        comment = next(c for c in state["comments"] if MARKER.search(c["COMMENT"]).group(1) == activity_id)
        assert (comment["ENTITY_TYPE"], comment["ENTITY_ID"]) == ("lead", lead_row.b24_lead_id)
