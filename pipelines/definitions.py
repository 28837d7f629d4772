"""The Dagster code location of ZETA Sync: `dagster … -m pipelines.definitions`."""

from __future__ import annotations

import os
import warnings

from dagster import BetaWarning, Definitions, EnvVar

from assets.catalogue.assets import CATALOGUE_ASSETS, CATALOGUE_CHECKS, CatalogueRulesResource
from pipelines.catalogue import catalogue_schedules, catalogue_sync_job, stock_refresh_job, with_freshness
from pipelines.crm_events.jobs import CRM_JOBS, CRM_SENSORS, crm_schedules
from pipelines.push import PUSH_JOBS, PUSH_SENSORS, push_resources
from resources.onec.resource import OneCResource
from resources.settings import load_settings
from resources.store.resource import StoreResource

# Dagster itself passes the beta `owners` parameter when it binds a sensor's resources.
warnings.filterwarnings("ignore", category=BetaWarning)


def build_definitions() -> Definitions:
    settings = load_settings()
    onec = settings.integrations.onec
    # Secrets reach Dagster as EnvVar references: the UI and run metadata show the name only.
    onec_resource = OneCResource.from_settings(onec, password=EnvVar("ONEC_PASSWORD"))
    store = StoreResource(database_url=EnvVar("ZETA_DATABASE_URL") if os.environ.get("ZETA_DATABASE_URL")
                          else settings.database.url)
    return Definitions(
        assets=with_freshness(CATALOGUE_ASSETS, settings.schedules),
        asset_checks=CATALOGUE_CHECKS,
        jobs=[catalogue_sync_job, stock_refresh_job, *PUSH_JOBS, *CRM_JOBS],
        schedules=[*catalogue_schedules(settings.schedules), *crm_schedules(settings.schedules)],
        sensors=[*PUSH_SENSORS, *CRM_SENSORS],
        resources={
            "onec": onec_resource,
            "store": store,
            "catalogue_rules": CatalogueRulesResource(max_active_drop=settings.catalogue.max_active_drop,
                                                      sample_size=settings.catalogue.sample_size),
            **push_resources(settings),
        },
    )


defs = build_definitions()
