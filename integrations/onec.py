"""`OneCIntegration`: the seed's 1C:Enterprise connector, built on the OData client and the store.

`sync_products()` runs the very catalogue sync the Dagster assets run (extract → candidate →
checks → one-transaction publish), in a worker thread so the bot's event loop keeps serving.
`check_availability()` answers from the `products` table, optionally confirmed live by 1C.
`create_order()` validates the order and puts it into the outbox; Dagster pushes it to 1C.

Constructor arguments the seed shows (`api_url`, `username`, `password`) are enough: every other
setting falls back to `config/integrations.yaml` (`integrations.onec`), then to built-in defaults.
`${ENV}` references in the arguments are expanded, so values read raw from the YAML work too.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import SQLAlchemyError

from assets.catalogue.publish import ShrinkGuardError
from assets.catalogue.staging import MissingExtractError
from assets.catalogue.sync import CandidateCheckError, SyncOptions, run_catalogue_sync
from resources.onec.client import OneCClient, RetryPolicy
from resources.onec.errors import OneCError
from resources.onec.profile import MappingProfile, load_profile
from resources.settings import ConfigError, LiveAvailabilitySettings, OneCSettings, Settings, expand_env
from resources.store.database import Database
from resources.store.schema import extract_batches, products, sync_runs

from . import Integration, intake
from .availability import AvailabilityChecker, LiveBalance
from .backlog import outbox_backlog
from .defaults import open_database, settings_or_defaults
from .results import failure, iso_utc, plain_number, utcnow
from .secrets import Redactor

#: Failures a sync can meet in normal operation; they become `{"success": False, ...}`.
EXPECTED_SYNC_ERRORS = (OneCError, CandidateCheckError, ShrinkGuardError, MissingExtractError, ConfigError,
                        SQLAlchemyError, OSError)


def live_settings(value: bool | LiveAvailabilitySettings | Mapping[str, Any] | None,
                  configured: LiveAvailabilitySettings) -> LiveAvailabilitySettings:
    """The constructor's `live_availability` over the configured block: a bool only toggles it."""
    if value is None:
        return configured
    if isinstance(value, bool):
        return configured.model_copy(update={"enabled": value})
    if isinstance(value, LiveAvailabilitySettings):
        return value
    return LiveAvailabilitySettings.model_validate({**configured.model_dump(), **dict(value)})


def recorded_failures(conn: Connection) -> list[tuple[datetime, str]]:
    """The newest failed publish and the newest failed extract, as (when, error)."""
    found: list[tuple[datetime, str]] = []
    run = conn.execute(select(sync_runs.c.finished_at, sync_runs.c.error)
                       .where(sync_runs.c.source == "onec", sync_runs.c.status.in_(["failed", "blocked"]))
                       .order_by(sync_runs.c.id.desc()).limit(1)).first()
    if run and run.finished_at:
        found.append((run.finished_at, f"1C product sync failed: {run.error}"))
    batch = conn.execute(select(extract_batches.c.kind, extract_batches.c.finished_at, extract_batches.c.note)
                         .where(extract_batches.c.status == "failed")
                         .order_by(extract_batches.c.id.desc()).limit(1)).first()
    if batch and batch.finished_at:
        try:
            error = json.loads(batch.note or "{}").get("error")
        except ValueError:
            error = batch.note
        found.append((batch.finished_at, f"1C {batch.kind} extract failed: {error}"))
    return found


class OneCIntegration(Integration):
    """1C:Enterprise through its standard OData interface (the seed's `onec.py`)."""

    holds_stock = True

    def __init__(self, api_url: str, username: str, password: str | SecretStr | None = None, *,
                 mapping: str | None = None, price_type: str | None = None, warehouses: list[str] | None = None,
                 page_size: int | None = None, timeout_seconds: float | None = None,
                 max_retries: int | None = None, server_timezone: str | None = None,
                 live_availability: bool | LiveAvailabilitySettings | Mapping[str, Any] | None = None,
                 max_active_drop: float | None = None, sample_size: int | None = None,
                 database_url: str | None = None, settings: Settings | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        cfg = settings_or_defaults(settings, "integrations.onec")
        base: OneCSettings = cfg.integrations.onec
        secret = password.get_secret_value() if isinstance(password, SecretStr) else expand_env(password or "")
        self.api_url: str = expand_env(api_url or "").strip()
        self.username: str = expand_env(username or "")
        self._password = SecretStr(secret)
        self.mapping = mapping or base.mapping
        self.price_type = price_type or base.price_type
        self.warehouses = list(base.warehouses if warehouses is None else warehouses)
        self.page_size = page_size or base.page_size
        self.concurrent_extracts = base.concurrent_extracts
        self.timeout_seconds = timeout_seconds or base.timeout_seconds
        self.max_retries = base.max_retries if max_retries is None else max_retries
        self.server_timezone = server_timezone or base.server_timezone
        self.live = live_settings(live_availability, base.live_availability)
        self.max_active_drop = cfg.catalogue.max_active_drop if max_active_drop is None else max_active_drop
        self.sample_size = cfg.catalogue.sample_size if sample_size is None else sample_size
        self._database_url = database_url
        self._config_database_url = cfg.database.url
        self._transport = transport
        super().__init__(api_url=self.api_url, username=self.username, mapping=self.mapping,
                         price_type=self.price_type, warehouses=self.warehouses,
                         live_availability=self.live.enabled)
        self.name = "onec"
        self.redact = Redactor([secret])
        self.initialized: bool | None = None
        self._client: OneCClient | None = None
        self._live_client: OneCClient | None = None
        self._profile: MappingProfile | None = None
        self._db: Database | None = None
        self._sync_lock = threading.Lock()
        self._setup_lock = threading.Lock()
        self._last_error_at: datetime | None = None
        self._last_ok_at: datetime | None = None
        self._availability: AvailabilityChecker | None = None

    def __repr__(self) -> str:
        return (f"OneCIntegration(api_url={self.api_url!r}, username={self.username!r}, password='***', "
                f"mapping={self.mapping!r}, live_availability={self.live.enabled})")

    # ---- lazily built parts (__init__ reads only the config file: no network, no database) ------
    def database(self) -> Database:
        """The store: constructor `database_url`, else `ZETA_DATABASE_URL`, else the config's URL."""
        if self._db is None:
            self._db = open_database(self._database_url, self._config_database_url)
        return self._db

    def profile(self) -> MappingProfile:
        if self._profile is None:
            self._profile = load_profile(self.mapping)
        return self._profile

    def _new_client(self, timeout: float, max_retries: int, prefetch: int = 3) -> OneCClient:
        return OneCClient(base_url=self.api_url, username=self.username, password=self._password.get_secret_value(),
                          timeout=timeout, retry=RetryPolicy(max_retries=max_retries), prefetch=prefetch,
                          server_timezone=self.server_timezone, transport=self._transport)

    def client(self) -> OneCClient:
        """The sync client: the configured timeout and retries."""
        with self._setup_lock:
            if self._client is None:
                self._client = self._new_client(self.timeout_seconds, self.max_retries)
            return self._client

    def live_client(self) -> OneCClient:
        """The live-availability client: the short live timeout and no retries."""
        with self._setup_lock:
            if self._live_client is None:
                self._live_client = self._new_client(self.live.timeout_seconds, 0, prefetch=1)
            return self._live_client

    def availability(self) -> AvailabilityChecker:
        if self._availability is None:
            live = None
            if self.live.enabled:
                live = LiveBalance(self.live_client, self.profile(), self.warehouses, self.live, self.logger)
            self._availability = AvailabilityChecker(self.database, live, self.redact, self.logger)
        return self._availability

    # ---- error bookkeeping ----------------------------------------------------------------------
    def _failed(self, what: str, exc: BaseException) -> str:
        detail = str(exc) if isinstance(exc, OneCError | ConfigError) else f"{type(exc).__name__}: {exc}"
        message = self.redact(f"{what}: {detail}")
        self.last_error, self._last_error_at = message, utcnow()
        self.logger.error("%s", message)
        return message

    def _succeeded(self) -> None:
        self.last_error, self._last_ok_at = None, utcnow()

    # ---- the seed's four methods ----------------------------------------------------------------
    async def initialize(self) -> bool:
        """Reach 1C, check the mapping's objects are published, and prepare the database."""
        ok = await asyncio.to_thread(self._initialize_blocking)
        self.initialized = ok
        return ok

    def _initialize_blocking(self) -> bool:
        self.logger.info("checking 1C at %s as %r", self.api_url, self.username)
        try:
            profile = self.profile()
            self.database()
            self.client().check_entity_sets(profile.entity_sets())
        except (OneCError, ConfigError, SQLAlchemyError, OSError) as exc:
            self._failed("1C connection check failed", exc)
            return False
        self._succeeded()
        self.logger.info("1C connection OK (%s, profile %s)", self.client().root, profile.profile)
        return True

    async def sync_products(self) -> dict[str, Any]:
        """The full catalogue sync into `products`: `{"success", "products_synced", "errors", ...}`."""
        return await asyncio.to_thread(self._sync_blocking)

    def _sync_blocking(self) -> dict[str, Any]:
        if not self._sync_lock.acquire(blocking=False):
            message = "a 1C product sync is already running in this process"
            return failure(message, products_synced=0, errors=[message])
        started = time.perf_counter()
        try:
            self.logger.info("Product sync started")
            options = SyncOptions(price_type=self.price_type, warehouses=tuple(self.warehouses),
                                  page_size=self.page_size, max_active_drop=self.max_active_drop,
                                  sample_size=self.sample_size,
                                  concurrent_extracts=self.concurrent_extracts)
            result = run_catalogue_sync(self.client(), self.profile(), self.database(), options)
        except EXPECTED_SYNC_ERRORS as exc:
            message = self._failed("1C product sync failed", exc)
            return failure(message, products_synced=0, errors=[message],
                           seconds=round(time.perf_counter() - started, 3))
        finally:
            self._sync_lock.release()
        self._succeeded()
        pub = result.publish
        if self._availability and self._availability.live:
            self._availability.live.clear()  # the table is now at least as fresh as the cache
        self.logger.info("Product sync finished: %d products (+%d ~%d -%d =%d), %d active",
                         result.candidate.rows, pub.inserted, pub.updated, pub.deactivated, pub.unchanged, pub.active)
        return {"success": True, "products_synced": result.candidate.rows, "errors": [],
                "inserted": pub.inserted, "updated": pub.updated, "deactivated": pub.deactivated,
                "unchanged": pub.unchanged, "active": pub.active, "total": pub.total,
                "synced_at": iso_utc(pub.synced_at), "seconds": round(time.perf_counter() - started, 3)}

    async def create_order(self, order_data: dict) -> dict[str, Any]:
        """Validate and queue the order (outbox); `{"success": True, "order_id", "status": "queued"}`."""
        try:
            result = await asyncio.to_thread(lambda: intake.submit_order(self.database(), order_data))
        except (SQLAlchemyError, OSError) as exc:
            return failure(self._failed("order could not be queued (database)", exc))
        if result.get("success"):
            self.logger.info("order %s queued for 1C", result.get("order_id"))
        else:
            self.logger.warning("order rejected: %s", result.get("error"))
        return result

    async def check_availability(self, sku: str) -> dict[str, Any]:
        """Stock and price of one SKU; see `integrations.availability` for `source`/`stale`."""
        try:
            checker = self.availability()
        except (ConfigError, OneCError) as exc:
            return failure(self._failed("availability check is not configured", exc), sku=sku, available=False)
        return await checker.check(sku)

    async def search_products(self, query: str, limit: int = 10) -> dict[str, Any]:
        """Active products for what a customer typed (Russian/Kazakh, typos, wrong layout, SKU).

        `{"success": True, "query", "products": [{"sku", "name", "price", "currency", "stock",
        "score", "match"}, ...]}`, best first; the search itself lives in `resources.store.search`.
        """
        if not isinstance(query, str):
            return failure(f"query must be a string, got {type(query).__name__}", products=[])
        try:
            from resources.store.search import search_products

            rows = await asyncio.to_thread(lambda: search_products(self.database(), query, max(0, int(limit))))
        except (SQLAlchemyError, OSError, NotImplementedError, ValueError) as exc:
            return failure(self.redact(f"product search failed: {type(exc).__name__}: {exc}"), query=query,
                           products=[])
        products_found = [{**row, "price": plain_number(row.get("price")), "stock": plain_number(row.get("stock"))}
                          for row in rows]
        return {"success": True, "query": query, "products": products_found}

    # ---- status and lifecycle -------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Last sync and current error as the store records them (Dagster runs included)."""
        db = self.database()
        with db.read() as conn:
            ok = conn.execute(select(sync_runs).where(sync_runs.c.source == "onec", sync_runs.c.status == "success")
                              .order_by(sync_runs.c.id.desc()).limit(1)).mappings().first()
            recorded = recorded_failures(conn)
            active = conn.execute(select(func.count()).select_from(products).where(products.c.is_active)).scalar_one()
        last_ok = ok["finished_at"] if ok else None
        # The current error: the newest failure not followed by a success (ours or Dagster's).
        failures = [f for f in [(self._last_error_at, self.last_error), *recorded] if f[0] and f[1]]
        newest_ok = max((t for t in (last_ok, self._last_ok_at) if t), default=None)
        current = [f for f in failures if newest_ok is None or f[0] > newest_ok]
        backlog = outbox_backlog(db, ["order"])
        return {
            "initialized": self.initialized,
            "api_url": self.api_url,
            "last_sync": iso_utc(last_ok),
            "last_sync_result": ({k: ok[k] for k in ("inserted", "updated", "deactivated", "unchanged", "active")}
                                 if ok else None),
            "active_products": int(active),
            "last_error": self.redact(max(current)[1]) if current else None,
            "pending_outbox": backlog["pending"],
            "dead_outbox": backlog["dead"],
            "live_availability": self._live_status(),
        }

    def _live_status(self) -> dict[str, Any]:
        if self._availability and self._availability.live:
            return self._availability.live.status()
        return {"enabled": self.live.enabled}

    async def close(self) -> None:
        for client in (self._client, self._live_client):
            if client is not None:
                client.close()
        if self._availability and self._availability.live:
            self._availability.live.close()
        self._client = self._live_client = None
        self._availability = None
