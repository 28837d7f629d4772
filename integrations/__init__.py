"""The bot-facing integration API the seed README documents.

`Integration` is the interface every connector implements (1C, Bitrix24, or a new one added the
way the seed's "How to add new integration" shows); `integrations.manager.integration_manager`
orchestrates them. Every public method answers a structured dict
`{"success": bool, "error": str (on failure), ...}` instead of raising for expected failures.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any

from .secrets import is_secret_key


class Integration(ABC):
    """One external system the bot talks to.

    Subclasses implement the four coroutines below. The base keeps keyword config (so a subclass
    that defines only the four methods can still be built as `MyService(api_url=..., api_key=...)`),
    a logger named `integrations.<name>`, and a repr that never shows secret-looking values.
    """

    #: Set by `IntegrationManager.register` when empty; names the logger and the status entry.
    name: str = ""
    #: Whether `check_availability` means anything here (the manager only asks those that do).
    holds_stock: bool = True

    def __init__(self, **config: Any) -> None:
        self.config: dict[str, Any] = dict(config)
        self.last_error: str | None = None

    @property
    def logger(self) -> logging.Logger:
        return logging.getLogger(f"integrations.{self.name or type(self).__name__.lower()}")

    @abstractmethod
    async def initialize(self) -> bool:
        """Check the connection and configuration; True when the integration is usable."""

    @abstractmethod
    async def sync_products(self) -> dict:
        """Pull products into the local catalogue: `{"success", "products_synced", "errors", ...}`."""

    @abstractmethod
    async def create_order(self, order_data: dict) -> dict:
        """Accept an order: `{"success": True, "order_id": ..., ...}` or `{"success": False, "error": ...}`."""

    @abstractmethod
    async def check_availability(self, sku: str) -> dict:
        """Stock and price of one SKU: `{"success", "available", "quantity", "price", ...}`."""

    def status(self) -> dict[str, Any]:
        """Extra status fields for `integration_manager.get_status()`; override to report more."""
        return {}

    async def close(self) -> None:
        """Release connections; the default has nothing to release."""
        return None

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={'***' if is_secret_key(k) else v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({shown})"


__all__ = ["Integration"]
