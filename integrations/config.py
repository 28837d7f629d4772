"""Build the integrations from `config/integrations.yaml` and register them with the manager.

The seed's "Configuration Loading" example, done once here: the YAML is read, `${ENV}` secrets are
expanded from the environment (never stored in the file), validated, and every enabled connector
is constructed and registered. `ZETA_CONFIG` points at another file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from resources.settings import ConfigError, Settings, load_settings, read_config

from .bitrix24 import Bitrix24Integration
from .manager import IntegrationManager, integration_manager
from .onec import OneCIntegration

logger = logging.getLogger("integrations.manager")

#: The names the seed registers its connectors under.
ONEC_NAME = "1c"
BITRIX24_NAME = "bitrix24"


def load_integrations_config(path: str | Path | None = None) -> dict[str, Any]:
    """The config as a plain dict with `${ENV}` expanded: `config["integrations"]["onec"]["api_url"]`.

    Raises `ConfigError` (naming the file) when the file is missing or not valid YAML.
    """
    return read_config(path)[1]


def setup_from_config(path: str | Path | None = None, *, manager: IntegrationManager | None = None,
                      settings: Settings | None = None) -> dict[str, dict[str, Any]]:
    """Construct and register 1C and Bitrix24 as the config says; answers per connector.

    `{"1c": {"success": True, "enabled": True}, "bitrix24": {"success": False, "error": ...}}` —
    a bad config file is a failed answer too, not an exception.
    """
    target = manager or integration_manager
    try:
        cfg = settings or load_settings(path)
    except ConfigError as exc:
        logger.error("integrations config not loaded: %s", exc)
        return {"config": {"success": False, "error": str(exc)}}
    onec_cfg, b24_cfg = cfg.integrations.onec, cfg.integrations.bitrix24
    results: dict[str, dict[str, Any]] = {}
    onec = OneCIntegration(onec_cfg.api_url, onec_cfg.username, onec_cfg.password, settings=cfg)
    target.register(ONEC_NAME, onec, enabled=onec_cfg.enabled)
    results[ONEC_NAME] = {"success": True, "enabled": onec_cfg.enabled}
    if onec_cfg.enabled and not onec_cfg.password.get_secret_value():
        logger.warning("1C password is empty: set ONEC_PASSWORD if the 1C user has one")
    bitrix = Bitrix24Integration(b24_cfg.webhook_url, settings=cfg)
    target.register(BITRIX24_NAME, bitrix, enabled=b24_cfg.enabled)
    results[BITRIX24_NAME] = {"success": True, "enabled": b24_cfg.enabled}
    if b24_cfg.enabled and not b24_cfg.webhook_url.get_secret_value():
        message = "BITRIX24_WEBHOOK_URL is not set: leads are queued but cannot be delivered"
        logger.warning("%s", message)
        results[BITRIX24_NAME]["warning"] = message
    return results
