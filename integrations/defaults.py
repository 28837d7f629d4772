"""Where a connector's settings come from when its constructor leaves them out.

Precedence: constructor argument, then the environment (`ZETA_DATABASE_URL`), then
`config/integrations.yaml` (or `ZETA_CONFIG`), then built-in defaults — so the seed's
three-argument `OneCIntegration(api_url, username, password)` still gets the full configuration.
"""

from __future__ import annotations

import logging
import os

from resources.settings import ConfigError, Settings, load_settings
from resources.store.database import Database, get_database


def settings_or_defaults(settings: Settings | None, logger_name: str) -> Settings:
    """The given settings, else the config file, else defaults (with a warning naming the problem)."""
    if settings is not None:
        return settings
    try:
        return load_settings()
    except ConfigError as exc:
        logging.getLogger(logger_name).warning("using built-in defaults: %s", exc)
        return Settings()


def open_database(explicit_url: str | None, configured_url: str | None) -> Database:
    """The shared, migrated store for the first URL given: argument, `ZETA_DATABASE_URL`, config."""
    return get_database(explicit_url or os.environ.get("ZETA_DATABASE_URL") or configured_url or None)
