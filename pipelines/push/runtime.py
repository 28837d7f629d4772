"""Build a push run from the settings (`config/integrations.yaml` + environment) or from the
Dagster resources, and run it. Used by the op, the CLI and the benchmark."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dagster import ConfigurableResource
from pydantic import Field

from resources.bitrix24.client import Bitrix24Client
from resources.onec.client import OneCClient, RetryPolicy
from resources.onec.orders import OneCOrders
from resources.onec.profile import load_profile
from resources.settings import ConfigError, Settings
from resources.store import outbox
from resources.store.database import Database

from .mapping import load_bitrix24_mapping
from .worker import PushOptions, PushReport, push_outbox


class PushConfigResource(ConfigurableResource):
    """How the outbox is pushed: retry budget, backoff, lease, dry run, targets, 1C order defaults."""

    max_attempts: int = Field(8, description="attempts per row before it is dead")
    backoff_base_seconds: float = Field(30.0, description="first retry delay; doubles per attempt (with jitter)")
    backoff_max_seconds: float = Field(3600.0, description="longest retry delay")
    lease_seconds: float = Field(300.0, description="how long a claim holds a row before another run may take it")
    dry_run: bool = Field(False, description="log what would be sent, send nothing, change nothing")
    chunk_size: int = Field(500, description="rows claimed at a time")
    onec_threads: int = Field(8, description="parallel 1C order pushes")
    post_orders: bool = Field(True, description="post 1C orders after creating them")
    onec_enabled: bool = True
    bitrix24_enabled: bool = True
    bitrix24_mapping: str = Field("", description="path of the Bitrix24 mapping; empty = config/mappings/bitrix24.yaml")
    order_defaults_json: str = Field("{}", description="1C order header defaults (integrations.onec.order_defaults) as JSON")
    defer_seconds: float = Field(15.0, description="delay before an activity log waiting for its lead is tried again")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> PushConfigResource:
        s = settings.outbox
        values: dict[str, Any] = dict(
            max_attempts=s.max_attempts, backoff_base_seconds=s.backoff_base_seconds,
            backoff_max_seconds=s.backoff_max_seconds, dry_run=s.dry_run,
            onec_enabled=settings.integrations.onec.enabled, bitrix24_enabled=settings.integrations.bitrix24.enabled,
            bitrix24_mapping=settings.integrations.bitrix24.mapping,
            order_defaults_json=json.dumps(settings.integrations.onec.order_defaults, ensure_ascii=False),
        )
        values.update(overrides)
        return cls(**values)

    def options(self, *, dry_run: bool | None = None, owner: str | None = None,
                max_rows: int | None = None, ignore_backoff: bool = False) -> PushOptions:
        return PushOptions(
            policy=outbox.RetryPolicy(self.max_attempts, self.backoff_base_seconds, self.backoff_max_seconds,
                                      self.lease_seconds),
            chunk_size=self.chunk_size, onec_threads=self.onec_threads,
            dry_run=self.dry_run if dry_run is None else dry_run, max_rows=max_rows, post_orders=self.post_orders,
            defer_seconds=self.defer_seconds, owner=owner, ignore_backoff=ignore_backoff)

    def order_defaults(self) -> dict[str, Any]:
        try:
            value = json.loads(self.order_defaults_json or "{}")
        except json.JSONDecodeError as exc:
            raise ConfigError(f"push_config.order_defaults_json is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ConfigError("push_config.order_defaults_json must be a JSON object")
        return value


C = TypeVar("C")


@dataclass
class PushTargets:
    """The clients of one push run; close them when done."""

    onec: OneCOrders | None = None
    bitrix: Bitrix24Client | None = None
    mapping: Any = None
    _closers: list[Any] = field(default_factory=list)

    def own(self, client: C) -> C:
        """Close `client` with the targets."""
        self._closers.append(client)
        return client

    def close(self) -> None:
        for c in self._closers:
            c.close()

    def __enter__(self) -> PushTargets:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def onec_orders(client: OneCClient, mapping: str, defaults: dict[str, Any]) -> OneCOrders:
    profile = load_profile(mapping)
    if profile.orders is None:
        raise ConfigError(f"{profile.source}: the mapping profile has no 'orders' section; 1C orders cannot be pushed")
    return OneCOrders(client, profile.orders, defaults)


def targets_from_settings(settings: Settings, *, bitrix_client: Bitrix24Client | None = None) -> PushTargets:
    """Clients for a push from the settings (secrets come from the environment through them)."""
    t = PushTargets()
    o = settings.integrations.onec
    if o.enabled:
        client = t.own(OneCClient(o.api_url, o.username, o.password.get_secret_value(), timeout=o.timeout_seconds,
                                  retry=RetryPolicy(o.max_retries), server_timezone=o.server_timezone))
        t.onec = onec_orders(client, o.mapping, dict(o.order_defaults))
    b = settings.integrations.bitrix24
    if b.enabled and (bitrix_client is not None or b.webhook_url.get_secret_value()):
        if bitrix_client is None:
            bitrix_client = t.own(Bitrix24Client(b.webhook_url.get_secret_value(), timeout=b.timeout_seconds,
                                                 rate_per_second=b.rate_per_second, burst=b.burst,
                                                 max_retries=b.max_retries))
        t.bitrix = bitrix_client
        t.mapping = load_bitrix24_mapping(b.mapping)
    return t


def push_from_settings(db: Database, settings: Settings, *, dry_run: bool | None = None, owner: str | None = None,
                       max_rows: int | None = None, bitrix_client: Bitrix24Client | None = None,
                       ignore_backoff: bool = False, **config: Any) -> PushReport:
    """One push run configured by `settings` (what `python -m pipelines.push` does)."""
    push_config = PushConfigResource.from_settings(settings, **config)
    with targets_from_settings(settings, bitrix_client=bitrix_client) as t:
        return push_outbox(db, onec=t.onec, bitrix=t.bitrix, mapping=t.mapping,
                           options=push_config.options(dry_run=dry_run, owner=owner, max_rows=max_rows,
                                                       ignore_backoff=ignore_backoff))
