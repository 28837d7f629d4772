"""Dagster wiring of the outbox push: job `push_outbox`, job `replay_dead`, sensor `outbox_sensor`.

Thin: the logic lives in `pipelines.push.worker` (plain functions). No `from __future__ import
annotations` here — Dagster reads the real annotations of ops and sensors.
"""

import json
import time
from typing import Any

from dagster import (
    Config,
    DefaultSensorStatus,
    MetadataValue,
    OpExecutionContext,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    job,
    op,
    sensor,
)
from pydantic import Field

from pipelines.active_runs import active_run
from resources.bitrix24.resource import Bitrix24Resource
from resources.onec.resource import OneCResource
from resources.store import outbox
from resources.store.resource import StoreResource

from .mapping import load_bitrix24_mapping
from .runtime import PushConfigResource, PushTargets, onec_orders
from .worker import PushReport, push_kinds, push_outbox

PUSH_JOB_NAME = "push_outbox"
SENSOR_INTERVAL_SECONDS = 15
STALE_REQUEST_SECONDS = 300  # re-request the same work when no run picked it up for this long


class PushOutboxConfig(Config):
    dry_run: bool | None = Field(None, description="true: log what would be sent, send nothing "
                                                      "(default: outbox.dry_run of the config)")
    max_rows: int | None = Field(None, description="stop after this many rows (default: everything due)")
    retry_now: bool = Field(False, description="also push failed rows whose backoff has not expired yet")


def _report_metadata(report: PushReport) -> dict[str, Any]:
    meta: dict[str, Any] = {**report.summary(), "duration_s": round(report.seconds, 3),
                            "bitrix24_requests": report.bitrix_requests, "bitrix24_commands": report.bitrix_commands,
                            "bitrix24_rate_limited": report.bitrix_rate_limited}
    problems = [r for r in report.rows if r["outcome"] != "done"][:50]
    if problems:
        table = "| id | kind | outcome | error |\n|---|---|---|---|\n" + "\n".join(
            f"| {r['id']} | {r['kind']} | {r['outcome']} | {str(r.get('error', '')).replace('|', '/')[:300]} |"
            for r in problems)
        meta["not_done"] = MetadataValue.md(table)
    return meta


@op(description="Claim every outbox row due now and deliver it to 1C and Bitrix24 exactly once; "
                "metadata counts the outcomes (done, retried, dead, skipped, dry_run).")
def push_outbox_op(context: OpExecutionContext, config: PushOutboxConfig, store: StoreResource, onec: OneCResource,
                   bitrix24: Bitrix24Resource, push_config: PushConfigResource) -> dict:
    db = store.database()
    with PushTargets() as t:
        if push_config.onec_enabled:
            t.onec = onec_orders(t.own(onec.client()), onec.mapping, push_config.order_defaults())
        if push_config.bitrix24_enabled and bitrix24.webhook_url:
            t.bitrix = t.own(bitrix24.client())
            t.mapping = load_bitrix24_mapping(push_config.bitrix24_mapping)
        elif push_config.bitrix24_enabled:
            context.log.warning("Bitrix24 is enabled but BITRIX24_WEBHOOK_URL is empty: leads and activity logs wait, "
                                "orders go to 1C only")
        report = push_outbox(db, onec=t.onec, bitrix=t.bitrix, mapping=t.mapping,
                             options=push_config.options(dry_run=config.dry_run, max_rows=config.max_rows,
                                                         owner=f"dagster:{context.run_id[:8]}",
                                                         ignore_backoff=config.retry_now))
    context.log.info(f"push_outbox: {report.summary()} in {report.seconds:.1f}s, "
                     f"{report.bitrix_requests} Bitrix24 request(s)")
    context.add_output_metadata(_report_metadata(report))
    # the counts also as run tags, so the runs list shows them without opening the run
    context.instance.add_run_tags(context.run_id, {f"zeta/{k}": str(v) for k, v in report.summary().items()})
    return report.summary()


@job(name=PUSH_JOB_NAME, description="Push the outbox (bot orders, leads, activity logs) to 1C and Bitrix24.",
     tags={"zeta/area": "outbox"})
def push_outbox_job() -> None:
    push_outbox_op()


class ReplayDeadConfig(Config):
    ids: list[str] = Field(default_factory=list, description='outbox ids to replay, e.g. ["BOT-000123"]; ["all"] '
                                                            'replays every dead row')
    all: bool = Field(False, description="replay every dead row")


@op(description="Put dead outbox rows back to pending with a fresh retry budget; their stored external ids "
                "stay, so the next push resumes and never creates twice.")
def replay_dead_op(context: OpExecutionContext, config: ReplayDeadConfig, store: StoreResource) -> list:
    everything = config.all or [i.strip().lower() for i in config.ids] == ["all"]
    if not everything and not config.ids:
        context.log.warning('nothing to replay: give ids (e.g. ["BOT-000123"]) or all: true')
        replayed: list[str] = []
    else:
        replayed = outbox.replay_dead(store.database(), None if everything else [i.strip() for i in config.ids])
        missing = [] if everything else sorted(set(i.strip() for i in config.ids) - set(replayed))
        if missing:
            context.log.warning(f"not dead (or unknown), left as they are: {', '.join(missing)}")
    context.log.info(f"replayed {len(replayed)} dead row(s)")
    context.add_output_metadata({"replayed": len(replayed), "ids": MetadataValue.json(replayed[:500])})
    return replayed


@job(name="replay_dead", description="Replay dead outbox rows (op config: ids, or all).", tags={"zeta/area": "outbox"})
def replay_dead_job() -> None:
    replay_dead_op()


@sensor(name="outbox_sensor", job=push_outbox_job, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description="Starts push_outbox when outbox rows are due; reads only the local outbox table.")
def outbox_sensor(context: SensorEvaluationContext, store: StoreResource, push_config: PushConfigResource,
                  bitrix24: Bitrix24Resource):
    kinds = push_kinds(push_config.onec_enabled, push_config.bitrix24_enabled and bool(bitrix24.webhook_url))
    if not kinds:
        return SkipReason("both 1C and Bitrix24 are disabled: nothing to push")
    summary = outbox.due_summary(store.database(), kinds=kinds)
    if summary.count == 0:
        when = f"; next at {summary.next_due_at:%Y-%m-%d %H:%M:%S} UTC" if summary.next_due_at else ""
        return SkipReason(f"no outbox rows due{when}")
    active = active_run(context.instance, PUSH_JOB_NAME)
    if active:
        return SkipReason(f"{summary.count} row(s) due; push_outbox run {active.run_id[:8]} is still running")
    key = f"outbox:{summary.work_key}"
    previous = json.loads(context.cursor) if context.cursor else {}
    now = time.time()
    if previous.get("work") == key:
        if now - float(previous.get("at", 0)) < STALE_REQUEST_SECONDS:
            return SkipReason(f"{summary.count} row(s) due, already requested as {previous.get('run_key')}")
        run_key = f"{key}:again{int(now)}"  # requested before, yet nothing touched the rows: ask again
    else:
        run_key = key
    context.update_cursor(json.dumps({"work": key, "run_key": run_key, "at": now}))
    return RunRequest(run_key=run_key, tags={"zeta/outbox_due": str(summary.count)})


PUSH_JOBS = [push_outbox_job, replay_dead_job]
PUSH_SENSORS = [outbox_sensor]
