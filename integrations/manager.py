"""`integration_manager`: the one object the bot talks to (the seed's `manager.py`).

It fans calls out to the registered integrations and guarantees the seed's contract on the way
back: every answer is a dict with `success` (and `error` when it failed), whatever an integration
did — returned None, a half-filled dict, or raised. A bug in one connector becomes a failed
result for that connector, logged with its traceback (secrets masked), never an exception in the
bot's conversation handler.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import Integration
from .results import failure, iso_utc, utcnow
from .secrets import Redactor, is_secret_key

logger = logging.getLogger("integrations.manager")

#: Keys every availability answer carries, so `info["quantity"]` never raises in bot code.
AVAILABILITY_KEYS = ("available", "quantity", "price", "currency", "synced_at", "stale", "age_seconds", "source")


@dataclass
class _Entry:
    integration: Integration
    enabled: bool
    initialized: bool | None = None
    last_sync: datetime | None = None
    last_error: str | None = None


def _redactor(integration: Integration) -> Callable[[object], str]:
    """The integration's own redactor, else one over its secret-looking config values."""
    own = getattr(integration, "redact", None)
    if callable(own):
        return own
    config = getattr(integration, "config", None) or {}
    return Redactor(str(v) for k, v in config.items() if is_secret_key(k) and v)


class IntegrationManager:
    """Registry and orchestrator of the bot's integrations."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    # ---- registry -------------------------------------------------------------------------------
    def register(self, name: str, integration: Integration, enabled: bool = True) -> None:
        """Add (or replace) an integration under `name`; disabled ones are kept but never called."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"integration name must be a non-empty string, got {name!r}")
        for method in ("initialize", "sync_products", "create_order", "check_availability"):
            if not callable(getattr(integration, method, None)):
                raise TypeError(f"{type(integration).__name__} is not an Integration: it has no {method}()")
        if name in self._entries:
            logger.warning("integration %r registered again: replacing %r", name, self._entries[name].integration)
        if isinstance(integration, Integration) and not integration.name:
            integration.name = name
        self._entries[name] = _Entry(integration, bool(enabled))
        logger.info("registered integration %r (%s, %s)", name, type(integration).__name__,
                    "enabled" if enabled else "disabled")

    def unregister(self, name: str) -> Integration | None:
        entry = self._entries.pop(name, None)
        return entry.integration if entry else None

    def clear(self) -> None:
        """Forget every integration (a config reload, or a test starting afresh)."""
        self._entries.clear()

    def get(self, name: str) -> Integration | None:
        entry = self._entries.get(name)
        return entry.integration if entry else None

    def set_enabled(self, name: str, enabled: bool) -> bool:
        """Switch an integration on or off; False when no such integration is registered."""
        if name not in self._entries:
            return False
        self._entries[name].enabled = bool(enabled)
        return True

    @property
    def names(self) -> list[str]:
        return list(self._entries)

    def _enabled(self) -> dict[str, _Entry]:
        return {n: e for n, e in self._entries.items() if e.enabled}

    # ---- calling integrations safely -----------------------------------------------------------
    async def _call(self, name: str, entry: _Entry, method: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Await one integration call; an exception becomes a failed result (logged, masked)."""
        try:
            return await call()
        except Exception as exc:
            redact = _redactor(entry.integration)
            message = redact(f"{name}.{method}() raised {type(exc).__name__}: {exc}")
            logger.error("%s\n%s", message, redact("".join(traceback.format_exception(exc))))
            entry.last_error = message
            return failure(message)

    @staticmethod
    def _as_result(name: str, method: str, value: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            result = dict(value)
            result.setdefault("success", "error" not in result)
            if not result["success"]:
                result.setdefault("error", f"{name}.{method}() failed without saying why")
            return result
        return failure(f"{name}.{method}() returned {type(value).__name__}, not a result dict")

    # ---- the seed's API -------------------------------------------------------------------------
    async def initialize_all(self) -> dict[str, dict[str, Any]]:
        """Check every enabled integration: `{name: {"success": bool, "error": str (on failure)}}`."""

        async def one(name: str, entry: _Entry) -> dict[str, Any]:
            value = await self._call(name, entry, "initialize", entry.integration.initialize)
            if isinstance(value, dict):  # an exception turned into a result (or a dict-returning connector)
                result = self._as_result(name, "initialize", value)
                entry.initialized = result["success"]
                return result
            entry.initialized = bool(value)
            if entry.initialized:
                entry.last_error = None
                return {"success": True}
            error = getattr(entry.integration, "last_error", None) or f"{name}: connection check failed"
            entry.last_error = error
            return failure(error)

        results = await self._gather({n: one(n, e) for n, e in self._enabled().items()})
        ok = [n for n, r in results.items() if r["success"]]
        logger.info("initialized %d of %d integrations%s", len(ok), len(results),
                    "" if len(ok) == len(results) else f" (failed: {', '.join(n for n in results if n not in ok)})")
        return results

    async def sync_all(self) -> dict[str, dict[str, Any]]:
        """Sync products from every enabled integration: `{name: {"success", "products_synced", "errors"}}`."""

        async def one(name: str, entry: _Entry) -> dict[str, Any]:
            value = await self._call(name, entry, "sync_products", entry.integration.sync_products)
            result = self._as_result(name, "sync_products", value)
            result.setdefault("products_synced", 0)
            result.setdefault("errors", [] if result["success"] else [result["error"]])
            if result["success"]:
                entry.last_sync, entry.last_error = utcnow(), None
            else:
                entry.last_error = result["error"]
            return result

        return await self._gather({n: one(n, e) for n, e in self._enabled().items()})

    async def check_availability(self, sku: str) -> dict[str, dict[str, Any]]:
        """Ask every enabled integration that holds stock: `{name: {"available", "quantity", ...}}`."""

        async def one(name: str, entry: _Entry) -> dict[str, Any]:
            value = await self._call(name, entry, "check_availability",
                                     lambda: entry.integration.check_availability(sku))
            result = self._as_result(name, "check_availability", value)
            for key in AVAILABILITY_KEYS:
                result.setdefault(key, False if key == "available" else None)
            return result

        stockists = {n: e for n, e in self._enabled().items() if getattr(e.integration, "holds_stock", True)}
        if not stockists:
            logger.warning("check_availability(%r): no enabled integration holds stock", sku)
        return await self._gather({n: one(n, e) for n, e in stockists.items()})

    async def create_order(self, name: str, order_data: dict) -> dict[str, Any]:
        """Hand an order to one integration: `{"success": True, "order_id", "status": "queued"}`."""
        entry = self._entries.get(name)
        if entry is None:
            return failure(f"unknown integration {name!r} (registered: {', '.join(self._entries) or 'none'})")
        if not entry.enabled:
            return failure(f"integration {name!r} is disabled")
        value = await self._call(name, entry, "create_order", lambda: entry.integration.create_order(order_data))
        return self._as_result(name, "create_order", value)

    async def search_products(self, query: str, limit: int = 10) -> dict[str, Any]:
        """Search the catalogue: `{"success": True, "query", "products": [...]}`, best first."""
        return await self._routed_call("search_products", query, limit, prefer="1c",
                                       missing="register OneCIntegration")

    async def create_lead(self, lead_data: dict) -> dict[str, Any]:
        """Queue a lead for the CRM: `{"success": True, "lead_id", "status": "queued"}` (DESIGN.md)."""
        return await self._routed_call("create_lead", lead_data)

    async def log_activity(self, activity_data: dict) -> dict[str, Any]:
        """Queue an activity log entry for the CRM, in the same shape as `create_lead`."""
        return await self._routed_call("log_activity", activity_data)

    async def _routed_call(self, method: str, *args: Any, prefer: str = "bitrix24",
                           missing: str = "register Bitrix24Integration") -> dict[str, Any]:
        """Call `method` on the one enabled integration that has it (`prefer` wins among several)."""
        able = [(n, e) for n, e in self._enabled().items() if callable(getattr(e.integration, method, None))]
        if not able:
            return failure(f"no enabled integration takes {method} ({missing})")
        name, entry = next(((n, e) for n, e in able if n == prefer), able[0])
        value = await self._call(name, entry, method, lambda: getattr(entry.integration, method)(*args))
        return self._as_result(name, method, value)

    def get_status(self) -> dict[str, dict[str, Any]]:
        """Per integration: `enabled`, `initialized`, `last_sync`, `last_error`, `pending_outbox`, …"""
        status: dict[str, dict[str, Any]] = {}
        for name, entry in self._entries.items():
            info: dict[str, Any] = {"enabled": entry.enabled, "initialized": entry.initialized,
                                    "last_sync": iso_utc(entry.last_sync), "last_error": entry.last_error,
                                    "pending_outbox": None}
            status_fn = getattr(entry.integration, "status", None)
            try:
                extra = status_fn() if callable(status_fn) else {}
            except Exception as exc:
                extra = {"last_error": _redactor(entry.integration)(
                    f"status unavailable: {type(exc).__name__}: {exc}")}
                logger.warning("%s: %s", name, extra["last_error"])
            if isinstance(extra, dict):
                info.update({k: v for k, v in extra.items() if k != "enabled"})
                if extra.get("initialized") is None:
                    info["initialized"] = entry.initialized
                info["last_error"] = extra.get("last_error") or entry.last_error
            status[name] = info
        return status

    async def close_all(self) -> None:
        """Release every integration's connections (at bot shutdown)."""
        for name, entry in self._entries.items():
            close = getattr(entry.integration, "close", None)
            if callable(close):
                await self._call(name, entry, "close", close)

    @staticmethod
    async def _gather(calls: dict[str, Awaitable[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        values = await asyncio.gather(*calls.values())
        return dict(zip(calls, values, strict=True))


#: The process-wide manager the seed imports: `from integrations.manager import integration_manager`.
integration_manager = IntegrationManager()

__all__ = ["IntegrationManager", "integration_manager"]
