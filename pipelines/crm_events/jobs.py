"""Dagster wiring of CRM events: job `apply_crm_events`, sensor `crm_events_sensor`, job and
schedule `crm_reconcile`.

Thin: the logic lives in `pipelines.crm_events.apply`. No `from __future__ import annotations`
here — Dagster reads the real annotations of ops and sensors.
"""

import time

from dagster import (
    DefaultScheduleStatus,
    DefaultSensorStatus,
    OpExecutionContext,
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    SkipReason,
    job,
    op,
    sensor,
)

from pipelines.active_runs import active_run
from pipelines.push.mapping import load_bitrix24_mapping
from pipelines.push.runtime import PushConfigResource
from resources.bitrix24.resource import Bitrix24Resource
from resources.settings import ScheduleSettings
from resources.store.crm_events import event_counts, pending_summary
from resources.store.resource import StoreResource

from .apply import apply_pending_events, reconcile

APPLY_JOB_NAME = "apply_crm_events"
SENSOR_INTERVAL_SECONDS = 15
RETRY_BUCKET_SECONDS = 120


def _originator(push_config: PushConfigResource) -> str:
    return load_bitrix24_mapping(push_config.bitrix24_mapping).originator_id


@op(description="Read every deal and lead named by pending Bitrix24 events and store its stage "
                "(crm_state); metadata counts events, objects read, states changed, ignored, failed.")
def apply_crm_events_op(context: OpExecutionContext, store: StoreResource, bitrix24: Bitrix24Resource,
                        push_config: PushConfigResource) -> dict:
    if not bitrix24.webhook_url:
        context.log.warning("BITRIX24_WEBHOOK_URL is empty: events stay pending until the CRM can be read")
        return {}
    db = store.database()
    with bitrix24.client() as client:
        report = apply_pending_events(db, client, _originator(push_config))
    context.log.info(f"apply_crm_events: {report.summary()} in {report.seconds:.2f}s")
    for error in report.errors[:20]:
        context.log.warning(error)
    context.add_output_metadata({**report.summary(), "duration_s": round(report.seconds, 3),
                                 **{f"inbox_{k}": v for k, v in event_counts(db).items()}})
    return report.summary()


@job(name=APPLY_JOB_NAME, description="Apply pending Bitrix24 events: the stages of the bot's deals and leads.",
     tags={"zeta/area": "crm_events"})
def apply_crm_events_job() -> None:
    apply_crm_events_op()


@op(description="List the bot's deals and leads changed since the last reconciliation began and store their stages: "
                "catches events Bitrix24 dropped (it never resends one).")
def reconcile_crm_op(context: OpExecutionContext, store: StoreResource, bitrix24: Bitrix24Resource,
                     push_config: PushConfigResource) -> dict:
    if not bitrix24.webhook_url:
        context.log.warning("BITRIX24_WEBHOOK_URL is empty: nothing to reconcile")
        return {}
    with bitrix24.client() as client:
        report = reconcile(store.database(), client, _originator(push_config))
    summary = {**{f"listed_{k}": v for k, v in report.listed.items()}, "states_changed": report.states_changed}
    context.add_output_metadata({**summary, "duration_s": round(report.seconds, 3)})
    return summary


@job(name="crm_reconcile", description="Re-read the bot's Bitrix24 deals and leads changed lately.",
     tags={"zeta/area": "crm_events"})
def crm_reconcile_job() -> None:
    reconcile_crm_op()


def run_key(work_key: str, now: float) -> str:
    """Run keys are kept forever: the key names the work (newest event, count, tries so far) and a
    time bucket, so events still due after a run that died before recording anything are asked for
    again within `RETRY_BUCKET_SECONDS` instead of never."""
    return f"crm-events:{work_key}:{int(now // RETRY_BUCKET_SECONDS)}"


@sensor(name="crm_events_sensor", job=apply_crm_events_job, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description="Starts apply_crm_events when Bitrix24 events are due; reads only the local inbox.")
def crm_events_sensor(context: SensorEvaluationContext, store: StoreResource, bitrix24: Bitrix24Resource):
    if not bitrix24.webhook_url:
        return SkipReason("BITRIX24_WEBHOOK_URL is empty: events wait until the CRM can be read")
    summary = pending_summary(store.database())
    if summary.count == 0:
        return SkipReason("no Bitrix24 events due")
    active = active_run(context.instance, APPLY_JOB_NAME)
    if active:
        return SkipReason(f"{summary.count} event(s) due; run {active.run_id[:8]} is still going")
    return RunRequest(run_key=run_key(summary.work_key, time.time()), tags={"zeta/due_events": str(summary.count)})


def crm_schedules(s: ScheduleSettings) -> list[ScheduleDefinition]:
    return [ScheduleDefinition(name="crm_reconcile_schedule", job=crm_reconcile_job, cron_schedule=s.crm_reconcile_cron,
                               execution_timezone=s.timezone, default_status=DefaultScheduleStatus.RUNNING)]


CRM_JOBS = [apply_crm_events_job, crm_reconcile_job]
CRM_SENSORS = [crm_events_sensor]
