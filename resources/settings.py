"""The integrations config (`config/integrations.yaml`): load, expand `${ENV}`, validate.

Secrets live only in the environment: the YAML names them as `${VAR}` and they are expanded at
load time, never written back or logged. `${VAR:-default}` gives non-secret defaults.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from resources.store.database import PROJECT_ROOT

DEFAULT_CONFIG_PATH = PROJECT_ROOT / "config" / "integrations.yaml"
M = TypeVar("M", bound=BaseModel)
_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """A config file is missing, malformed or has a bad value; the message names file and key."""


class StrictModel(BaseModel):
    """A config section: unknown keys are an error (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid")


class LiveAvailabilitySettings(StrictModel):
    enabled: bool = False
    ttl_seconds: float = Field(30.0, gt=0)
    timeout_seconds: float = Field(2.0, gt=0)
    breaker_fail_max: int = Field(3, ge=1)
    breaker_reset_seconds: float = Field(30.0, gt=0)


class OneCSettings(StrictModel):
    enabled: bool = True
    api_url: str = "http://127.0.0.1:8081/zeta"
    username: str = ""
    password: SecretStr = SecretStr("")
    mapping: str = "ut11"
    price_type: str = "Розничная"
    warehouses: list[str] = Field(default_factory=list)
    page_size: int = Field(1000, ge=1, le=100_000)
    concurrent_extracts: bool = True  # catalogue, prices and stock read side by side
    timeout_seconds: float = Field(30.0, gt=0)
    max_retries: int = Field(5, ge=0, le=20)
    server_timezone: str = "Asia/Almaty"
    live_availability: LiveAvailabilitySettings = Field(default_factory=LiveAvailabilitySettings)
    order_defaults: dict[str, Any] = Field(default_factory=dict)


class Bitrix24Settings(StrictModel):
    enabled: bool = True
    webhook_url: SecretStr = SecretStr("")
    mapping: str = "bitrix24"
    rate_per_second: float = Field(2.0, gt=0)
    burst: int = Field(50, ge=1)
    timeout_seconds: float = Field(75.0, gt=0)
    max_retries: int = Field(5, ge=0, le=20)


class IntegrationsSettings(BaseModel):
    """Known integrations are validated; other sections (the seed's `myservice:`) are kept as they are."""

    model_config = ConfigDict(extra="allow")
    onec: OneCSettings = Field(default_factory=OneCSettings)
    bitrix24: Bitrix24Settings = Field(default_factory=Bitrix24Settings)


class FreshnessWindow(StrictModel):
    """How old an asset's last materialization may get: a warning after `warn_minutes`, a failure
    after `fail_minutes` (shown as the asset's freshness in the Dagster UI)."""

    warn_minutes: int = Field(gt=0)
    fail_minutes: int = Field(gt=0)

    @model_validator(mode="after")
    def _warn_before_fail(self) -> FreshnessWindow:
        if self.warn_minutes >= self.fail_minutes:
            raise ValueError(f"warn_minutes ({self.warn_minutes}) must be below fail_minutes ({self.fail_minutes})")
        return self


class ScheduleSettings(StrictModel):
    timezone: str = "Asia/Almaty"
    catalogue_cron: str = "0 * * * *"
    stock_cron: str = "*/10 * * * *"
    crm_reconcile_cron: str = "*/15 * * * *"
    # Hourly catalogue: one missed run warns, two fail. Stock every 10 minutes: 20 / 60.
    catalogue_freshness: FreshnessWindow = FreshnessWindow(warn_minutes=90, fail_minutes=180)
    stock_freshness: FreshnessWindow = FreshnessWindow(warn_minutes=20, fail_minutes=60)

    @field_validator("catalogue_cron", "stock_cron", "crm_reconcile_cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"cron string must have 5 fields, got {value!r}")
        return value


class CatalogueSettings(StrictModel):
    max_active_drop: float = Field(0.2, ge=0, le=1)
    sample_size: int = Field(5, ge=0, le=100)


class DatabaseSettings(StrictModel):
    url: str = ""


class OutboxSettings(StrictModel):
    max_attempts: int = Field(8, ge=1)
    backoff_base_seconds: float = Field(30.0, gt=0)
    backoff_max_seconds: float = Field(3600.0, gt=0)
    dry_run: bool = False


class Settings(StrictModel):
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    schedules: ScheduleSettings = Field(default_factory=ScheduleSettings)
    catalogue: CatalogueSettings = Field(default_factory=CatalogueSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    integrations: IntegrationsSettings = Field(default_factory=IntegrationsSettings)
    source: str = Field("", exclude=True)


def expand_env(value: Any, environ: dict[str, str] | None = None) -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string of a parsed YAML tree."""
    env = os.environ if environ is None else environ
    if isinstance(value, str):
        return _ENV_PATTERN.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: expand_env(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env) for v in value]
    return value


def config_path_from_env() -> Path:
    path = Path(os.environ.get("ZETA_CONFIG") or DEFAULT_CONFIG_PATH)
    return path if path.is_absolute() else PROJECT_ROOT / path


def validate_config(model: type[M], data: dict[str, Any], path: Path) -> M:
    """`model` from `data` read from `path`; `ConfigError` naming the file and each bad key."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(".".join(str(p) for p in e["loc"]) + f": {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {details}") from None


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file whose top level is a mapping; `ConfigError` naming the file otherwise."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: {what} not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def read_config(path: str | Path | None = None, environ: dict[str, str] | None = None) -> tuple[Path, dict[str, Any]]:
    """(the config file, its content with `${ENV}` expanded); `ZETA_CONFIG` when no path is given."""
    cfg_path = Path(path) if path else config_path_from_env()
    return cfg_path, expand_env(read_yaml_mapping(cfg_path, "config file (set ZETA_CONFIG)"), environ)


def load_settings(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read and validate the integrations config; raise `ConfigError` naming file and key."""
    cfg_path, data = read_config(path, environ)
    settings = validate_config(Settings, data, cfg_path)
    settings.source = str(cfg_path)
    env = os.environ if environ is None else environ
    if env.get("ZETA_DATABASE_URL"):
        settings.database.url = env["ZETA_DATABASE_URL"]
    return settings
