"""CRM events end to end: the Bitrix24 simulator posts its outgoing-webhook calls over loopback to
the real receiver, `crm_events_sensor` (a real evaluation) requests `apply_crm_events`, the job
reads the deals and leads back, and the bot sees each stage in `get_outbox_status`. Calls that
Bitrix24 sent with a wrong token are lost, as on a real portal, and `crm_reconcile` catches up."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from dagster import DagsterInstance, Definitions, build_sensor_context
from sqlalchemy import text

from integrations.intake import get_outbox_status
from pipelines.crm_events.jobs import CRM_JOBS, CRM_SENSORS
from pipelines.crm_events.receiver import EVENTS_PATH, create_receiver
from pipelines.push import PushConfigResource
from resources.bitrix24.resource import Bitrix24Resource
from resources.store import crm_events
from resources.store.resource import StoreResource
from simulators.serving import ThreadServer
from tests.e2e.push_fixtures import Stack, make_leads, make_orders, running_stack

pytestmark = pytest.mark.e2e
TOKEN = "e2e0token0for0the0outgoing0hook1"


def rest(stack: Stack, method: str, params: dict[str, Any]) -> Any:  # noqa: ANN401 - the REST result
    """A manager's change in the CRM (straight REST, not through our client)."""
    reply = httpx.post(stack.webhook + method + ".json", json=params, timeout=10).json()
    assert "error" not in reply, reply
    return reply["result"]


def configure_events(stack: Stack, **config: Any) -> None:
    httpx.post(stack.bitrix_server.url + "/_admin/events", json=config, timeout=10).raise_for_status()


def delivered(stack: Stack, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Every outgoing call the simulator attempted, once its queue is empty."""
    deadline = time.monotonic() + timeout
    while True:
        snap = httpx.get(stack.bitrix_server.url + "/_admin/events", timeout=10).json()
        if snap["pending"] == 0:
            return snap["deliveries"]
        assert time.monotonic() < deadline, f"{snap['pending']} event(s) still queued in the simulator"
        time.sleep(0.05)


def apply_through_dagster(defs: Definitions, instance: DagsterInstance, resources: dict) -> dict:
    """One sensor tick; when it asks for a run, run `apply_crm_events` in process."""
    sensor = defs.resolve_sensor_def("crm_events_sensor")
    tick = sensor.evaluate_tick(build_sensor_context(instance=instance, resources=resources, definitions=defs))
    if not tick.run_requests:
        return {}
    [request] = tick.run_requests
    result = defs.resolve_job_def("apply_crm_events").execute_in_process(instance=instance,
                                                                          tags={"dagster/run_key": request.run_key})
    assert result.success
    return result.output_for_node("apply_crm_events_op")


def crm(stack: Stack, row_id: str) -> dict[str, Any] | None:
    return get_outbox_status(stack.db, row_id).get("crm")


def test_stages_reach_the_bot_through_events_and_reconciliation(tmp_path):
    with running_stack(tmp_path) as stack, DagsterInstance.ephemeral() as instance, \
            ThreadServer(create_receiver(stack.db, TOKEN)) as receiver:
        configure_events(stack, handler_url=receiver.url + EVENTS_PATH, application_token=TOKEN, clear=True)
        orders = make_orders(stack, 4)
        leads, _ = make_leads(stack, 2)
        assert stack.push().summary()["done"] == 6
        resources = {"store": StoreResource(database_url=stack.db_url),
                     "bitrix24": Bitrix24Resource(webhook_url=stack.webhook, rate_per_second=50, burst=60),
                     "push_config": PushConfigResource()}
        defs = Definitions(jobs=CRM_JOBS, sensors=CRM_SENSORS, resources=resources)

        # the push's own creates and updates came back as events: every deal and lead is in progress
        calls = delivered(stack)
        assert calls and all(c["status"] == 200 for c in calls)
        summary = apply_through_dagster(defs, instance, resources)
        assert summary["failed"] == 0 and summary["events"] == len(calls)
        assert summary["ignored"] == sum(1 for c in calls if c["event"].startswith("ONCRMCONTACT"))
        deals = {o: get_outbox_status(stack.db, o)["b24_deal_id"] for o in orders}
        for order in orders:
            assert crm(stack, order)["semantic"] == "in_progress"
            assert crm(stack, order)["stage"] == "C1:NEW" and crm(stack, order)["id"] == deals[order]
        assert all(crm(stack, lead)["semantic"] == "in_progress" for lead in leads)
        assert apply_through_dagster(defs, instance, resources) == {}  # nothing pending: no run

        # a manager wins one order, loses another, converts a lead and deletes a deal
        lead_id = get_outbox_status(stack.db, leads[0])["b24_lead_id"]
        rest(stack, "crm.deal.update", {"id": deals[orders[0]], "fields": {"STAGE_ID": "C1:WON"}})
        rest(stack, "crm.deal.update", {"id": deals[orders[1]], "fields": {"STAGE_ID": "C1:LOSE"}})
        rest(stack, "crm.lead.update", {"id": lead_id, "fields": {"STATUS_ID": "CONVERTED"}})
        rest(stack, "crm.deal.delete", {"id": deals[orders[3]]})
        # and a deal the bot did not create changes too: it is not the bot's business
        foreign = rest(stack, "crm.deal.add", {"fields": {"TITLE": "manager's own deal"}})
        calls = delivered(stack)
        assert all(c["status"] == 200 for c in calls)

        # Bitrix24 delivers a call twice: the inbox keeps it once
        last = calls[-1]
        again = httpx.post(receiver.url + EVENTS_PATH, content=urlencode({
            "event": last["event"], "data[FIELDS][ID]": str(last["id"]), "ts": str(last["ts"]),
            "auth[application_token]": TOKEN}).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"}).json()
        assert again["duplicate"] is True

        summary = apply_through_dagster(defs, instance, resources)
        assert summary["failed"] == 0 and summary["ignored"] >= 1
        assert crm(stack, orders[0])["semantic"] == "won" and crm(stack, orders[0])["stage"] == "C1:WON"
        assert crm(stack, orders[1])["semantic"] == "lost"
        assert crm(stack, orders[2])["semantic"] == "in_progress"
        assert crm(stack, orders[3])["semantic"] == "deleted"
        assert crm(stack, leads[0]) == {**crm(stack, leads[0]), "semantic": "won", "stage": "CONVERTED"}
        assert crm_events.state_of(stack.db, "deal", foreign) is None

        # calls with a wrong token are refused and lost; the reconciliation finds the change anyway
        configure_events(stack, wrong_token=True, clear=True)
        rest(stack, "crm.deal.update", {"id": deals[orders[2]], "fields": {"STAGE_ID": "C1:EXECUTING"}})
        rest(stack, "crm.lead.update", {"id": get_outbox_status(stack.db, leads[1])["b24_lead_id"],
                                        "fields": {"STATUS_ID": "JUNK"}})
        assert {c["status"] for c in delivered(stack)} == {401}
        assert apply_through_dagster(defs, instance, resources) == {}
        assert crm(stack, orders[2])["stage"] == "C1:NEW"
        # a later change arrives and is applied before the reconciliation runs: it must not hide the lost ones
        configure_events(stack, wrong_token=False, clear=True)
        rest(stack, "crm.deal.update", {"id": deals[orders[0]], "fields": {"STAGE_ID": "C1:EXECUTING"}})
        assert [c["status"] for c in delivered(stack)] == [200]
        assert apply_through_dagster(defs, instance, resources)["states_changed"] == 1
        result = defs.resolve_job_def("crm_reconcile").execute_in_process(instance=instance)
        assert result.success and result.output_for_node("reconcile_crm_op")["states_changed"] == 2
        assert crm(stack, orders[2])["stage"] == "C1:EXECUTING"
        assert crm(stack, leads[1])["semantic"] == "lost"
        assert crm(stack, orders[0])["stage"] == "C1:EXECUTING"
        assert crm(stack, orders[3])["semantic"] == "deleted"  # untouched by the reconciliation
        # the next reconciliation starts where this one began: nothing new to store
        result = defs.resolve_job_def("crm_reconcile").execute_in_process(instance=instance)
        assert result.output_for_node("reconcile_crm_op")["states_changed"] == 0

        # the receiver's /metrics tells the same story as the tables
        metrics = scrape_metrics(receiver.url)
        with stack.db.read() as conn:
            active, in_stock = conn.execute(text(
                "SELECT COUNT(*) FILTER (WHERE is_active), COUNT(*) FILTER (WHERE is_active AND stock > 0) "
                "FROM products")).one()
            done_orders = conn.execute(text(
                "SELECT COUNT(*) FROM outbox WHERE kind = 'order' AND status = 'done'")).scalar_one()
        assert metrics['zeta_products{state="active"}'] == active > 0
        assert metrics['zeta_products{state="in_stock"}'] == in_stock
        assert metrics['zeta_outbox_rows{kind="order",status="done"}'] == done_orders == 4
        assert metrics['zeta_outbox_oldest_undelivered_age_seconds'] == 0
        assert metrics['zeta_crm_events{status="pending"}'] == 0
        assert metrics['zeta_crm_events{status="done"}'] == crm_events.event_counts(stack.db)["done"] > 0
        assert 0 <= metrics['zeta_catalogue_last_sync_age_seconds{status="success"}'] < 600


def scrape_metrics(url: str) -> dict[str, float]:
    reply = httpx.get(url + "/metrics", timeout=10)
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in reply.text.splitlines() if line and not line.startswith("#")}


def test_receiver_answers(tmp_path):
    with running_stack(tmp_path, products_in_1c=30) as stack, \
            ThreadServer(create_receiver(stack.db, TOKEN)) as receiver:
        url = receiver.url + EVENTS_PATH
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        good = urlencode({"event": "ONCRMDEALUPDATE", "data[FIELDS][ID]": "5", "ts": "100",
                          "auth[application_token]": TOKEN}).encode()
        assert httpx.post(url, content=good, headers=form).json()["duplicate"] is False
        assert httpx.post(url, content=good, headers=form).json()["duplicate"] is True
        wrong = httpx.post(url, content=good.replace(TOKEN.encode(), b"x" * len(TOKEN)), headers=form)
        assert wrong.status_code == 401 and TOKEN not in wrong.text
        as_json = httpx.post(url, json={"event": "ONCRMDEALUPDATE"})
        assert as_json.status_code == 415 and "content-type" in as_json.json()["error"]
        bad = httpx.post(url, content=good.replace(b"ID%5D=5", b"ID%5D=x"), headers=form)
        assert bad.status_code == 400 and bad.json()["error"].startswith("data[FIELDS][ID]")
        assert httpx.get(receiver.url + "/health").json() == {"ok": True, "pending_events": 1}

        def chunks():  # no Content-Length: the size is only known while reading
            yield good + b"&pad="
            for _ in range(40):
                yield b"x" * 1024

        big = httpx.post(url, content=chunks(), headers=form)
        assert big.status_code == 413


def test_metrics_can_ask_for_a_token(tmp_path):
    with running_stack(tmp_path, products_in_1c=30) as stack, \
            ThreadServer(create_receiver(stack.db, TOKEN, metrics_token="m-secret")) as receiver:
        assert httpx.get(receiver.url + "/metrics").status_code == 401
        reply = httpx.get(receiver.url + "/metrics", headers={"Authorization": "Bearer m-secret"})
        assert reply.status_code == 200 and "zeta_products" in reply.text
