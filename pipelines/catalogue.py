"""Catalogue jobs, schedules and freshness policies; their crons and windows come from
`config/integrations.yaml`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from dagster import (
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    DefaultScheduleStatus,
    FreshnessPolicy,
    ScheduleDefinition,
    define_asset_job,
    map_asset_specs,
)

from assets.catalogue.assets import (
    ONEC_CATALOGUE_RAW,
    ONEC_PRICES_RAW,
    ONEC_STOCK_RAW,
    PRODUCTS,
    PRODUCTS_CANDIDATE,
)
from resources.settings import FreshnessWindow, ScheduleSettings

# Only the hourly job refreshes these two; the 10-minute stock job refreshes every other asset.
HOURLY_ASSETS = frozenset({ONEC_CATALOGUE_RAW, ONEC_PRICES_RAW})

catalogue_sync_job = define_asset_job(
    "catalogue_sync", selection=AssetSelection.groups("catalogue"),
    description="Full 1C catalogue, prices and stock into `products`.",
)
stock_refresh_job = define_asset_job(
    "stock_refresh", selection=AssetSelection.assets(ONEC_STOCK_RAW, PRODUCTS_CANDIDATE, PRODUCTS),
    description="Fresh 1C stock re-mapped against the last complete catalogue and prices.",
)


def catalogue_schedules(s: ScheduleSettings) -> list[ScheduleDefinition]:
    return [
        ScheduleDefinition(name="catalogue_hourly", job=catalogue_sync_job, cron_schedule=s.catalogue_cron,
                           execution_timezone=s.timezone, default_status=DefaultScheduleStatus.RUNNING),
        ScheduleDefinition(name="stock_every_10_minutes", job=stock_refresh_job, cron_schedule=s.stock_cron,
                           execution_timezone=s.timezone, default_status=DefaultScheduleStatus.RUNNING),
    ]


def _policy(window: FreshnessWindow) -> FreshnessPolicy:
    return FreshnessPolicy.time_window(fail_window=timedelta(minutes=window.fail_minutes),
                                       warn_window=timedelta(minutes=window.warn_minutes))


def with_freshness(assets: Sequence[AssetsDefinition], s: ScheduleSettings) -> list[AssetsDefinition]:
    """The catalogue assets, each with the freshness policy of the job that refreshes it: the UI
    turns an asset yellow, then red, when its schedule stops delivering."""
    hourly, ten_minutes = _policy(s.catalogue_freshness), _policy(s.stock_freshness)

    def attach(spec: AssetSpec) -> AssetSpec:
        return spec.replace_attributes(freshness_policy=hourly if spec.key in HOURLY_ASSETS else ten_minutes)

    return list(map_asset_specs(attach, assets))
