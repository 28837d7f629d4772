"""Dagster resource for the Bitrix24 REST client: webhook settings in, `Bitrix24Client` out.

The portal's request limit is per source IP, so every client made in this process for the same
portal shares one `Throttle` (one request stream per portal, reference §4.3). Processes do not
share it: run Bitrix24 pushes in one step at a time (a Dagster concurrency limit) if several
could overlap.
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

from dagster import ConfigurableResource
from pydantic import Field

from resources.bitrix24.client import Bitrix24Client
from resources.bitrix24.throttle import Throttle
from resources.settings import Bitrix24Settings

_THROTTLES: dict[tuple[str, float, int], Throttle] = {}
_THROTTLES_LOCK = threading.Lock()


def shared_throttle(webhook_url: str, rate_per_second: float, burst: int) -> Throttle:
    """The process-wide throttle of one portal (keyed by host, never by the webhook code)."""
    key = (urlsplit(webhook_url.strip()).netloc.lower(), rate_per_second, burst)
    with _THROTTLES_LOCK:
        throttle = _THROTTLES.get(key)
        if throttle is None:
            throttle = _THROTTLES[key] = Throttle.for_portal(rate_per_second, burst)
        return throttle


class Bitrix24Resource(ConfigurableResource):
    """One portal's incoming webhook; the URL is a secret (pass `EnvVar("BITRIX24_WEBHOOK_URL")`)."""

    webhook_url: str = Field(description="https://portal/rest/<user_id>/<code>/ — secret, from BITRIX24_WEBHOOK_URL")
    timeout_seconds: float = Field(75.0, description="read timeout; above the server's 60 s so a write's outcome is seen")
    rate_per_second: float = Field(2.0, description="portal drain rate (2/s; 5/s on Enterprise)")
    burst: int = Field(50, description="portal bucket threshold (50; 250 on Enterprise); the client stays 10 below")
    max_retries: int = Field(5, description="retries per call for rate limits and failed reads")

    @classmethod
    def from_settings(cls, s: Bitrix24Settings, **overrides: object) -> Bitrix24Resource:
        values: dict[str, object] = dict(webhook_url=s.webhook_url.get_secret_value(),
                                         timeout_seconds=s.timeout_seconds, rate_per_second=s.rate_per_second,
                                         burst=s.burst, max_retries=s.max_retries)
        values.update(overrides)
        return cls(**values)

    def client(self) -> Bitrix24Client:
        """A new client (close it when done) sharing this portal's throttle."""
        return Bitrix24Client(
            self.webhook_url, timeout=self.timeout_seconds, rate_per_second=self.rate_per_second,
            burst=self.burst, max_retries=self.max_retries,
            throttle=shared_throttle(self.webhook_url, self.rate_per_second, self.burst),
        )
