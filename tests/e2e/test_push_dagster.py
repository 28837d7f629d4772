"""The Dagster side: `outbox_sensor` (real evaluation against an instance) requests `push_outbox`,
the job runs in process and delivers, dry run sends nothing, `replay_dead` brings dead rows back."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, Definitions, build_sensor_context

from pipelines.push import PUSH_JOBS, PUSH_SENSORS, PushConfigResource
from resources.bitrix24.resource import Bitrix24Resource
from resources.onec.resource import OneCResource
from resources.store import outbox
from resources.store.resource import StoreResource
from tests.e2e.push_fixtures import (
    ONEC_PASSWORD,
    ONEC_USER,
    assert_delivered_exactly_once,
    make_leads,
    make_orders,
    running_stack,
)

pytestmark = pytest.mark.e2e


def _tick(defs: Definitions, instance: DagsterInstance, resources: dict, cursor: str | None = None):
    sensor = defs.resolve_sensor_def("outbox_sensor")
    return sensor.evaluate_tick(build_sensor_context(instance=instance, resources=resources, definitions=defs,
                                                     cursor=cursor))


def _output(result) -> dict:
    return result.output_for_node("push_outbox_op")


def _step_metadata(result) -> dict:
    for event in result.all_events:
        if event.event_type_value == "STEP_OUTPUT":
            return {k: v.value for k, v in event.event_specific_data.metadata.items()}
    raise AssertionError("no step output")


def test_sensor_job_dry_run_and_replay(tmp_path):
    with running_stack(tmp_path) as stack, DagsterInstance.ephemeral() as instance:
        orders = make_orders(stack, 15)
        leads, activities = make_leads(stack, 15, with_activity=True)
        resources = {
            "store": StoreResource(database_url=stack.db_url),
            "onec": OneCResource(api_url=stack.onec_url, username=ONEC_USER, password=ONEC_PASSWORD, max_retries=2,
                                 backoff_base_seconds=0.02, backoff_max_seconds=0.1),
            "bitrix24": Bitrix24Resource(webhook_url=stack.webhook, rate_per_second=50, burst=60),
            "push_config": PushConfigResource(backoff_base_seconds=0.05, backoff_max_seconds=0.2, defer_seconds=0.05),
        }
        defs = Definitions(jobs=PUSH_JOBS, sensors=PUSH_SENSORS, resources=resources)
        job = defs.resolve_job_def("push_outbox")

        # work is due: one run is requested, with a key naming this work; the same work is not requested twice
        tick = _tick(defs, instance, resources)
        assert len(tick.run_requests) == 1
        first_key = tick.run_requests[0].run_key
        assert first_key.startswith("outbox:45.")
        again = _tick(defs, instance, resources, tick.cursor)
        assert again.run_requests == [] and "already requested" in again.skip_message

        # dry run: logs what it would send, sends nothing, changes nothing
        onec_before, bitrix_before = stack.onec_stats()["total"], stack.bitrix_stats()["requests"]
        dry = job.execute_in_process(instance=instance,
                                     run_config={"ops": {"push_outbox_op": {"config": {"dry_run": True}}}})
        assert dry.success and _output(dry)["dry_run"] == 45 and _output(dry)["done"] == 0
        assert (stack.onec_stats()["total"], stack.bitrix_stats()["requests"]) == (onec_before, bitrix_before)
        assert outbox.counts(stack.db)[outbox.PENDING] == 45

        # the requested run delivers everything and reports counts per outcome
        result = job.execute_in_process(instance=instance, tags=tick.run_requests[0].tags)
        assert result.success
        assert _output(result) == {"done": 45, "retried": 0, "dead": 0, "skipped": 0, "dry_run": 0}
        meta = _step_metadata(result)
        assert meta["done"] == 45 and meta["bitrix24_requests"] > 0
        assert instance.get_run_by_id(result.run_id).tags["zeta/done"] == "45"
        assert_delivered_exactly_once(stack, orders, leads, activities)
        nothing = _tick(defs, instance, resources, tick.cursor)
        assert nothing.run_requests == [] and "no outbox rows due" in nothing.skip_message

        # a new order whose posting 1C refuses: dead after one run, then replayed from the UI job
        stack.onec_faults(post_fails=True, post_fail_message="Не хватает товара на складе")
        late = make_orders(stack, 1, start=500)
        tick2 = _tick(defs, instance, resources, tick.cursor)
        assert len(tick2.run_requests) == 1 and tick2.run_requests[0].run_key != first_key
        failed = job.execute_in_process(instance=instance)
        assert _output(failed)["dead"] == 1
        assert "Не хватает товара на складе" in str(_step_metadata(failed)["not_done"])
        stack.onec_faults()
        replay = defs.resolve_job_def("replay_dead").execute_in_process(
            instance=instance, run_config={"ops": {"replay_dead_op": {"config": {"ids": late}}}})
        assert replay.output_for_node("replay_dead_op") == late
        tick3 = _tick(defs, instance, resources, tick2.cursor)
        assert len(tick3.run_requests) == 1 and tick3.run_requests[0].run_key != tick2.run_requests[0].run_key
        assert _output(job.execute_in_process(instance=instance))["done"] == 1
        assert_delivered_exactly_once(stack, orders + late, leads, activities)
