"""Catalogue jobs and schedules; their cron strings come from `config/integrations.yaml`."""

from __future__ import annotations

from dagster import AssetSelection, DefaultScheduleStatus, ScheduleDefinition, define_asset_job

from assets.catalogue.assets import ONEC_STOCK_RAW, PRODUCTS, PRODUCTS_CANDIDATE
from resources.settings import ScheduleSettings

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
