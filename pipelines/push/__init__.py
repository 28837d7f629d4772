"""Outbox push: bot orders, leads and activity logs to 1C and Bitrix24, exactly once.

`PUSH_JOBS` (`push_outbox`, `replay_dead`), `PUSH_SENSORS` (`outbox_sensor`) and
`push_resources(settings)` are merged into `pipelines.definitions`; the logic lives in
`pipelines.push.worker` and is callable without Dagster (`push_outbox(db, onec=…, bitrix=…)`).
"""

from __future__ import annotations

import os
from typing import Any

from dagster import EnvVar

from resources.bitrix24.resource import Bitrix24Resource
from resources.settings import Settings

from .jobs import PUSH_JOBS, PUSH_SENSORS, outbox_sensor, push_outbox_job, replay_dead_job
from .runtime import PushConfigResource, push_from_settings
from .worker import PushOptions, PushReport, push_outbox


def push_resources(settings: Settings) -> dict[str, Any]:
    """Resources the push jobs and the sensor need besides `store` and `onec`: `bitrix24` (the
    webhook URL as an EnvVar reference, so it never shows in the UI) and `push_config`."""
    b = settings.integrations.bitrix24
    webhook: Any = EnvVar("BITRIX24_WEBHOOK_URL") if os.environ.get("BITRIX24_WEBHOOK_URL") \
        else b.webhook_url.get_secret_value()
    return {
        "bitrix24": Bitrix24Resource.from_settings(b, webhook_url=webhook),
        "push_config": PushConfigResource.from_settings(settings),
    }


__all__ = [
    "PUSH_JOBS", "PUSH_SENSORS", "PushConfigResource", "PushOptions", "PushReport", "outbox_sensor", "push_from_settings",
    "push_outbox", "push_outbox_job", "push_resources", "replay_dead_job",
]
