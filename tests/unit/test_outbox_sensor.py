"""`outbox_sensor`: reads only the local outbox, a run key per piece of work, no pile-up of runs."""

from __future__ import annotations

import json
import time

import pytest
from dagster import DagsterInstance, DagsterRunStatus, Definitions, build_sensor_context

from pipelines.push import PUSH_JOBS, PUSH_SENSORS, PushConfigResource
from resources.bitrix24.resource import Bitrix24Resource
from resources.onec.resource import OneCResource
from resources.store import outbox
from resources.store.database import get_database
from resources.store.resource import StoreResource

# Nothing listens on these: the sensor must not make HTTP calls.
DEAD_ONEC = "http://127.0.0.1:9/zeta"
DEAD_WEBHOOK = "http://127.0.0.1:9/rest/1/nothing/"


@pytest.fixture()
def setup(tmp_path):
    url = f"sqlite:///{tmp_path / 'sensor.db'}"
    db = get_database(url)
    resources = {"store": StoreResource(database_url=url), "onec": OneCResource(api_url=DEAD_ONEC, username="u"),
                 "bitrix24": Bitrix24Resource(webhook_url=DEAD_WEBHOOK), "push_config": PushConfigResource()}
    defs = Definitions(jobs=PUSH_JOBS, sensors=PUSH_SENSORS, resources=resources)
    with DagsterInstance.ephemeral() as instance:
        yield db, defs, resources, instance


def tick(defs, instance, resources, cursor=None):
    return defs.resolve_sensor_def("outbox_sensor").evaluate_tick(
        build_sensor_context(instance=instance, resources=resources, definitions=defs, cursor=cursor))


def test_sensor_settings():
    sensor = PUSH_SENSORS[0]
    assert sensor.name == "outbox_sensor" and sensor.job_name == "push_outbox"
    assert sensor.minimum_interval_seconds <= 15
    assert sensor.default_status.value == "RUNNING"


def test_no_work_no_run(setup):
    db, defs, resources, instance = setup
    result = tick(defs, instance, resources)
    assert result.run_requests == [] and result.skip_message.startswith("no outbox rows due")


def test_each_new_piece_of_work_gets_its_own_run_key(setup):
    db, defs, resources, instance = setup
    outbox.enqueue(db, outbox.ORDER, {"n": 1})
    first = tick(defs, instance, resources)
    assert len(first.run_requests) == 1
    key1 = first.run_requests[0].run_key
    same = tick(defs, instance, resources, first.cursor)
    assert same.run_requests == []
    outbox.enqueue(db, outbox.LEAD, {"n": 2})
    second = tick(defs, instance, resources, first.cursor)
    assert len(second.run_requests) == 1 and second.run_requests[0].run_key != key1
    # a failed attempt that becomes due again is new work too
    rows = outbox.claim(db, "run", limit=10)
    for r in rows:
        outbox.fail(db, "run", r.id, "x", outbox.RetryPolicy(backoff_base_seconds=0.001, backoff_max_seconds=0.001))
    time.sleep(0.01)
    third = tick(defs, instance, resources, second.cursor)
    assert len(third.run_requests) == 1
    assert third.run_requests[0].run_key not in (key1, second.run_requests[0].run_key)


def test_work_nobody_picked_up_is_requested_again_later(setup):
    db, defs, resources, instance = setup
    outbox.enqueue(db, outbox.ORDER, {"n": 1})
    first = tick(defs, instance, resources)
    stale = json.loads(first.cursor)
    stale["at"] -= 3600  # the requested run never touched the rows
    again = tick(defs, instance, resources, json.dumps(stale))
    assert len(again.run_requests) == 1
    assert again.run_requests[0].run_key.startswith(first.run_requests[0].run_key + ":again")


def test_no_second_run_while_one_is_active(setup):
    db, defs, resources, instance = setup
    outbox.enqueue(db, outbox.ORDER, {"n": 1})
    instance.create_run_for_job(defs.resolve_job_def("push_outbox"), status=DagsterRunStatus.STARTED)
    result = tick(defs, instance, resources)
    assert result.run_requests == [] and "still running" in result.skip_message


def test_leads_wait_when_bitrix24_is_not_configured(setup):
    db, defs, _, instance = setup
    resources = {**defs.resources, "bitrix24": Bitrix24Resource(webhook_url="")}
    defs = Definitions(jobs=PUSH_JOBS, sensors=PUSH_SENSORS, resources=resources)
    outbox.enqueue(db, outbox.LEAD, {"n": 1})
    assert tick(defs, instance, resources).run_requests == []
    outbox.enqueue(db, outbox.ORDER, {"n": 2})
    assert len(tick(defs, instance, resources).run_requests) == 1
