"""`Bitrix24Integration`: the seed's Bitrix24 CRM connector (leads, deals, activity logging).

The bot never waits for Bitrix24: leads, orders (as deals) and activity logs are validated and put
into the outbox, and the Dagster push job delivers them exactly once. This class checks the
webhook (`initialize()`), queues work, and reports the backlog. The webhook URL is the credential
itself, so it is masked everywhere it could surface.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy.exc import SQLAlchemyError

from resources.bitrix24.client import Bitrix24Client
from resources.bitrix24.errors import Bitrix24Error
from resources.settings import Bitrix24Settings, Settings, expand_env
from resources.store.database import Database

from . import Integration, intake
from .backlog import outbox_backlog
from .defaults import open_database, settings_or_defaults
from .results import failure
from .secrets import Redactor, mask_webhook, webhook_secrets

INIT_MAX_RETRIES = 1  # a connection check should answer in seconds, not ride out a long outage


class Bitrix24Integration(Integration):
    """Bitrix24 through an incoming webhook (the seed's `bitrix24.py`)."""

    holds_stock = False

    def __init__(self, webhook_url: str | SecretStr | None = None, *, timeout_seconds: float | None = None,
                 rate_per_second: float | None = None, burst: int | None = None,
                 database_url: str | None = None, settings: Settings | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        cfg = settings_or_defaults(settings, "integrations.bitrix24")
        base: Bitrix24Settings = cfg.integrations.bitrix24
        if isinstance(webhook_url, SecretStr):
            url = webhook_url.get_secret_value()
        else:
            url = expand_env(webhook_url) if webhook_url else base.webhook_url.get_secret_value()
        self._webhook = SecretStr(url.strip())
        self.portal = mask_webhook(url)
        self.timeout_seconds = timeout_seconds or base.timeout_seconds
        self.rate_per_second = rate_per_second or base.rate_per_second
        self.burst = burst or base.burst
        self._database_url = database_url
        self._config_database_url = cfg.database.url
        self._transport = transport
        super().__init__(webhook_url=self.portal, rate_per_second=self.rate_per_second)
        self.name = "bitrix24"
        self.redact = Redactor(webhook_secrets(url))
        self.initialized: bool | None = None
        self.user: dict[str, Any] | None = None
        self._db: Database | None = None

    def __repr__(self) -> str:
        return f"Bitrix24Integration(webhook_url={self.portal!r})"

    def database(self) -> Database:
        """The store: constructor `database_url`, else `ZETA_DATABASE_URL`, else the config's URL."""
        if self._db is None:
            self._db = open_database(self._database_url, self._config_database_url)
        return self._db

    def _failed(self, what: str, detail: object) -> str:
        message = self.redact(f"{what}: {detail}")
        self.last_error = message
        self.logger.error("%s", message)
        return message

    # ---- the seed's four methods ----------------------------------------------------------------
    async def initialize(self) -> bool:
        """Call `user.current` through the webhook: proves the URL, the code and the REST access."""
        ok = await asyncio.to_thread(self._initialize_blocking)
        self.initialized = ok
        return ok

    def _initialize_blocking(self) -> bool:
        if not self._webhook.get_secret_value():
            self._failed("Bitrix24 connection check failed", "no webhook URL (set BITRIX24_WEBHOOK_URL)")
            return False
        self.logger.info("checking Bitrix24 webhook %s", self.portal)
        try:
            with Bitrix24Client(self._webhook.get_secret_value(), timeout=self.timeout_seconds,
                                rate_per_second=self.rate_per_second, burst=self.burst,
                                max_retries=INIT_MAX_RETRIES, transport=self._transport) as client:
                user = client.call("user.current").result
            self.database()
        except (Bitrix24Error, ValueError, SQLAlchemyError, OSError) as exc:
            self._failed("Bitrix24 connection check failed", exc)
            return False
        self.user = {k: user.get(k) for k in ("ID", "NAME", "LAST_NAME")} if isinstance(user, dict) else None
        self.last_error = None
        self.logger.info("Bitrix24 connection OK (%s, user %s)", self.portal, (self.user or {}).get("ID"))
        return True

    async def sync_products(self) -> dict[str, Any]:
        """Nothing to pull: the catalogue comes from 1C. Answers success with zero products."""
        return {"success": True, "products_synced": 0, "errors": [],
                "note": "Bitrix24 is not a product source; the catalogue comes from 1C"}

    async def create_order(self, order_data: dict) -> dict[str, Any]:
        """Queue the order; the push job creates the 1C order and the Bitrix24 deal from one row."""
        return await self._submit("submit_order", order_data, "order")

    async def check_availability(self, sku: str) -> dict[str, Any]:
        """Bitrix24 keeps no stock; the manager does not ask it (`holds_stock = False`)."""
        return failure("Bitrix24 does not hold stock: ask the 1C integration", sku=sku, available=False)

    # ---- CRM extras -----------------------------------------------------------------------------
    async def create_lead(self, lead_data: dict) -> dict[str, Any]:
        """Queue a lead: `{"success": True, "lead_id", "status": "queued"}` or `{"success": False, "error"}`."""
        return await self._submit("submit_lead", lead_data, "lead")

    async def log_activity(self, activity_data: dict) -> dict[str, Any]:
        """Queue an activity log entry on a conversation (timeline comment / task in Bitrix24)."""
        return await self._submit("log_activity", activity_data, "activity")

    async def _submit(self, function: str, data: dict, what: str) -> dict[str, Any]:
        try:
            result = await asyncio.to_thread(getattr(intake, function), self.database(), data)
        except (SQLAlchemyError, OSError) as exc:
            return failure(self._failed(f"{what} could not be queued (database)", exc))
        if result.get("success"):
            self.logger.info("%s queued: %s", what, {k: v for k, v in result.items() if k.endswith("_id")})
        else:
            self.logger.warning("%s rejected: %s", what, result.get("error"))
        return result

    # ---- status ---------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        backlog = outbox_backlog(self.database(), ["order", "lead", "activity"])
        return {"initialized": self.initialized, "portal": self.portal, "last_sync": None,
                "last_error": self.last_error, "pending_outbox": backlog["pending"],
                "dead_outbox": backlog["dead"]}
