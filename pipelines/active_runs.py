"""Whether a job already has a run on its way: the sensors start a job only when it has none."""

from __future__ import annotations

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

ACTIVE_STATUSES = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
                   DagsterRunStatus.STARTED]


def active_run(instance: DagsterInstance, job_name: str) -> DagsterRun | None:
    """A queued or running run of `job_name`, if any."""
    runs = instance.get_runs(RunsFilter(job_name=job_name, statuses=ACTIVE_STATUSES), limit=1)
    return runs[0] if runs else None
