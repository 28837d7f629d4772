"""Availability of one SKU for the bot: the `products` table, optionally confirmed live by 1C.

The table is always there and always fast, so it is the answer of last resort. With live checking
on, the product's current balance is asked from 1C (`Balance` of the stock register with a
`Condition` on the product, summed over the configured warehouses) through a TTL cache and a
circuit breaker. The live path is bounded by its own short timeout and never retried: when 1C is
down, slow or the breaker is open, the bot still gets the table's answer at once, flagged
`stale: True` with its `age_seconds` — never an exception, never a long wait.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pybreaker
from cachetools import TTLCache
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from assets.catalogue.extract import resolve_warehouses
from resources.onec.client import OneCClient, guid_literal
from resources.onec.errors import OneCBadResponse, OneCError
from resources.onec.profile import MappingProfile
from resources.settings import LiveAvailabilitySettings
from resources.store.database import Database
from resources.store.schema import products

from .results import age_seconds, failure, iso_utc, plain_number, utcnow

WAREHOUSE_TTL_SECONDS = 3600.0  # warehouse names → refs change rarely; one lookup an hour
_CACHE_SIZE = 10_000
_LIVE_WORKERS = 8


class LiveUnavailable(Exception):
    """The live balance could not be had (1C down, slow, breaker open); the message says why."""


@dataclass(frozen=True)
class ProductRow:
    sku: str
    name: str
    price: float | None
    currency: str | None
    stock: float
    is_active: bool
    onec_ref: str
    synced_at: datetime


@dataclass(frozen=True)
class LiveReading:
    quantity: float
    fetched_at: float  # time.monotonic() of the 1C answer
    checked_at: datetime  # the same moment, naive UTC


def lookup_product(db: Database, sku: str) -> ProductRow | None:
    """The `products` row of an exact SKU (primary-key lookup), or None."""
    c = products.c
    query = select(c.sku, c.name, c.price, c.currency, c.stock, c.is_active, c.onec_ref, c.synced_at).where(
        c.sku == sku)
    with db.read() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    return ProductRow(row.sku, row.name, row.price, row.currency, float(row.stock or 0), bool(row.is_active),
                      row.onec_ref, row.synced_at)


def catalogue_is_empty(db: Database) -> bool:
    with db.read() as conn:
        return conn.execute(select(products.c.sku).limit(1)).first() is None


def answer(row: ProductRow, *, quantity: float, source: str, stale: bool, age: float | None,
           checked_at: datetime | None = None, live_error: str | None = None) -> dict[str, Any]:
    """The bot's availability answer for a known SKU.

    `checked_at` is when `quantity` was last confirmed by 1C (the row's sync time for a table
    answer), and `age_seconds` is how long ago that was.
    """
    result: dict[str, Any] = {
        "success": True,
        "sku": row.sku,
        "name": row.name,
        "available": row.is_active and quantity > 0,
        "quantity": plain_number(quantity if row.is_active else 0.0),
        "price": plain_number(row.price),
        "currency": row.currency,
        "active": row.is_active,
        "synced_at": iso_utc(row.synced_at),
        "checked_at": iso_utc(checked_at or row.synced_at),
        "source": source,
        "stale": stale,
        "age_seconds": age,
    }
    if live_error:
        result["live_error"] = live_error
    return result


class _OpenedAt(pybreaker.CircuitBreakerListener):
    """Remembers when the breaker opened, so an open breaker is answered without a thread hop."""

    def __init__(self) -> None:
        self.opened_at: float | None = None

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        self.opened_at = time.monotonic() if new_state.name == pybreaker.STATE_OPEN else None


class LiveBalance:
    """A product's current 1C balance behind a TTL cache and a circuit breaker.

    The client must have the short live timeout and no retries: a slow 1C should cost the bot one
    timeout, and repeated failures open the breaker so later questions cost nothing at all.
    """

    def __init__(self, client_factory: Callable[[], OneCClient], profile: MappingProfile,
                 warehouses: list[str], settings: LiveAvailabilitySettings, logger: logging.Logger) -> None:
        self._client_factory = client_factory
        self._profile = profile
        self._warehouses = list(warehouses)
        self.settings = settings
        self._logger = logger
        self._cache: TTLCache[str, LiveReading] = TTLCache(_CACHE_SIZE, settings.ttl_seconds, timer=time.monotonic)
        self._warehouse_refs: tuple[float, set[str] | None] | None = None
        self._lock = threading.Lock()
        self._opened = _OpenedAt()
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=settings.breaker_fail_max, reset_timeout=settings.breaker_reset_seconds,
            name="onec-live-availability", listeners=[self._opened])
        self._pool = ThreadPoolExecutor(max_workers=_LIVE_WORKERS, thread_name_prefix="onec-live")
        self._last_failure: str | None = None
        self.requests = 0  # 1C round trips made, for status and tests

    # ---- async entry point ---------------------------------------------------------------------
    async def reading(self, onec_ref: str) -> tuple[LiveReading, bool]:
        """(reading, from_cache); raises `LiveUnavailable` within the live timeout at most."""
        cached = self._cached(onec_ref)
        if cached is not None:
            return cached, True
        if self._breaker_open():
            raise LiveUnavailable(self._open_message())
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, self._fetch, onec_ref)
        try:
            return await asyncio.wait_for(future, timeout=self.settings.timeout_seconds), False
        except TimeoutError:
            raise LiveUnavailable(f"1C did not answer within {self.settings.timeout_seconds:g}s") from None

    # ---- blocking work (worker thread) -----------------------------------------------------------
    def _fetch(self, onec_ref: str) -> LiveReading:
        try:
            with self.breaker.calling():
                try:
                    quantity = self._query(onec_ref)
                except BaseException as exc:
                    self._last_failure = str(exc) if isinstance(exc, OneCError) else f"{type(exc).__name__}: {exc}"
                    raise
        except pybreaker.CircuitBreakerError:
            raise LiveUnavailable(self._open_message()) from None
        except OneCError as exc:
            raise LiveUnavailable(str(exc)) from None
        except Exception as exc:  # the live path must never break the answer
            self._logger.exception("live availability check failed unexpectedly")
            raise LiveUnavailable(f"{type(exc).__name__}: {exc}") from None
        reading = LiveReading(quantity, time.monotonic(), utcnow())
        with self._lock:
            self._cache[onec_ref] = reading
        return reading

    def _query(self, onec_ref: str) -> float:
        client = self._client_factory()
        stock = self._profile.stock
        f = stock.fields
        included = self._included_warehouses(client)
        path = client.virtual_table_path(
            stock.register_name, stock.function, Period=client.server_now(),
            Condition=f"'{f.product} eq {guid_literal(onec_ref)}'",
            Dimensions=stock.dimensions_param)
        self.requests += 1
        rows = client.list_page(stock.register_name, path=path, select=[f.product, f.warehouse, f.quantity],
                                orderby=None)
        total = 0.0
        for item in rows:
            if f.quantity not in item:
                raise OneCBadResponse(f"1C: {stock.register_name} balance rows have no field {f.quantity!r}")
            if item.get(f.product, onec_ref) != onec_ref:
                continue  # a server that ignored the Condition: count only this product
            if included is not None and item.get(f.warehouse) not in included:
                continue
            total += float(item[f.quantity] or 0)
        return total

    def _included_warehouses(self, client: OneCClient) -> set[str] | None:
        """Refs of the configured warehouses (None = all), looked up once an hour."""
        if not self._warehouses:
            return None
        cached = self._warehouse_refs
        if cached and time.monotonic() - cached[0] < WAREHOUSE_TTL_SECONDS:
            return cached[1]
        section = self._profile.warehouses
        self.requests += 1
        rows = client.list_page(section.entity_set, select=[section.fields.ref, section.fields.name], orderby=None)
        known = [{"ref": r.get(section.fields.ref), "name": str(r.get(section.fields.name) or "")} for r in rows]
        refs = resolve_warehouses(known, self._warehouses, section.entity_set)
        self._warehouse_refs = (time.monotonic(), refs)
        return refs

    # ---- cache and breaker ------------------------------------------------------------------------
    def _cached(self, onec_ref: str) -> LiveReading | None:
        with self._lock:
            return self._cache.get(onec_ref)

    def _breaker_open(self) -> bool:
        opened = self._opened.opened_at
        return (self.breaker.current_state == pybreaker.STATE_OPEN and opened is not None
                and time.monotonic() - opened < self.settings.breaker_reset_seconds)

    def _open_message(self) -> str:
        reason = f" (last failure: {self._last_failure})" if self._last_failure else ""
        return (f"1C live checks paused for {self.settings.breaker_reset_seconds:g}s after "
                f"{self.settings.breaker_fail_max} failures in a row{reason}")

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def status(self) -> dict[str, Any]:
        return {"enabled": True, "breaker": self.breaker.current_state, "cached": len(self._cache),
                "ttl_seconds": self.settings.ttl_seconds, "timeout_seconds": self.settings.timeout_seconds,
                "last_failure": self._last_failure}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class AvailabilityChecker:
    """`check_availability(sku)` of the 1C integration: table first, live when configured."""

    def __init__(self, database: Callable[[], Database], live: LiveBalance | None,
                 redact: Callable[[object], str], logger: logging.Logger) -> None:
        self._database = database
        self.live = live
        self._redact = redact
        self._logger = logger

    async def check(self, sku: str) -> dict[str, Any]:
        if not isinstance(sku, str) or not sku.strip():
            return failure(f"SKU must be a non-empty string, got {sku!r}", sku=sku, available=False)
        sku = sku.strip()
        try:
            row = await asyncio.to_thread(self._lookup, sku)
        except (SQLAlchemyError, OSError) as exc:
            message = self._redact(f"the catalogue database is unavailable: {type(exc).__name__}: {exc}")
            self._logger.error("availability of %s: %s", sku, message)
            return failure(message, sku=sku, available=False)
        if isinstance(row, str):
            return failure(row, sku=sku, available=False)
        table_age = age_seconds(row.synced_at)
        if self.live is None or not row.is_active:
            return answer(row, quantity=row.stock, source="table", stale=False, age=table_age)
        try:
            reading, cached = await self.live.reading(row.onec_ref)
        except LiveUnavailable as exc:
            reason = self._redact(exc)
            self._logger.warning("live availability of %s unavailable, answering from the table: %s", sku, reason)
            return answer(row, quantity=row.stock, source="table", stale=True, age=table_age, live_error=reason)
        age = round(time.monotonic() - reading.fetched_at, 3) if cached else 0.0
        return answer(row, quantity=reading.quantity, source="cache" if cached else "1c", stale=False, age=age,
                      checked_at=reading.checked_at)

    def _lookup(self, sku: str) -> ProductRow | str:
        """The row, or the message of an unknown SKU (which also says when there is no catalogue yet)."""
        db = self._database()
        row = lookup_product(db, sku)
        if row is not None:
            return row
        if catalogue_is_empty(db):
            return (f"unknown SKU {sku!r}: the catalogue is empty — run integration_manager.sync_all() or the "
                    "Dagster catalogue job first")
        return f"unknown SKU {sku!r}: no such product in the catalogue"
