"""Dagster assets of the catalogue sync: thin wrappers over extract / candidate / publish.

    onec_catalogue_raw ─┐
    onec_prices_raw ────┼─> products_candidate ──(blocking checks)──> products
    onec_stock_raw ─────┘
"""


from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    ConfigurableResource,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from sqlalchemy import Connection

from resources.onec.resource import OneCResource
from resources.store.resource import StoreResource
from resources.store.search.document import search_text

from .candidate import build_candidate
from .checks import (
    CHECK_NO_NEGATIVE_PRICES,
    CHECK_SHRINK_GUARD,
    CHECK_UNIQUE_SKUS,
    CheckOutcome,
    check_no_negative_prices,
    check_shrink_guard,
    check_unique_skus,
)
from .extract import ExtractResult, extract_catalogue, extract_prices, extract_stock
from .publish import publish_candidate
from .staging import latest_batch

GROUP = "catalogue"
ONEC_CATALOGUE_RAW = AssetKey("onec_catalogue_raw")
ONEC_PRICES_RAW = AssetKey("onec_prices_raw")
ONEC_STOCK_RAW = AssetKey("onec_stock_raw")
PRODUCTS_CANDIDATE = AssetKey("products_candidate")
PRODUCTS = AssetKey("products")


class CatalogueRulesResource(ConfigurableResource):
    """Publishing rules from `config/integrations.yaml` → `catalogue`."""

    max_active_drop: float = 0.2
    sample_size: int = 5


def _extract_metadata(result: ExtractResult) -> dict[str, Any]:
    return {"batch_id": result.batch_id, "rows": result.rows, "pages": result.pages,
            "duration_s": round(result.seconds, 3), **{k: MetadataValue.text(str(v)) for k, v in result.note.items()}}


@asset(key=ONEC_CATALOGUE_RAW, group_name=GROUP, kinds={"python", "sql"},
       description="1C products (non-folders), groups and units, staged page by page.")
def onec_catalogue_raw(context: AssetExecutionContext, onec: OneCResource, store: StoreResource) -> MaterializeResult:
    with onec.client() as client, store.database().background_checkpoints():
        result = extract_catalogue(client, onec.profile(), store.database(), onec.page_size)
    return MaterializeResult(metadata=_extract_metadata(result))


@asset(key=ONEC_PRICES_RAW, group_name=GROUP, kinds={"python", "sql"},
       description="Current prices of the configured price type (SliceLast as of now).")
def onec_prices_raw(context: AssetExecutionContext, onec: OneCResource, store: StoreResource) -> MaterializeResult:
    with onec.client() as client, store.database().background_checkpoints():
        result = extract_prices(client, onec.profile(), store.database(), onec.price_type, onec.page_size)
    return MaterializeResult(metadata=_extract_metadata(result))


@asset(key=ONEC_STOCK_RAW, group_name=GROUP, kinds={"python", "sql"},
       description="Balances on the configured warehouses (Balance as of now); absent rows mean zero.")
def onec_stock_raw(context: AssetExecutionContext, onec: OneCResource, store: StoreResource) -> MaterializeResult:
    with onec.client() as client, store.database().background_checkpoints():
        result = extract_stock(client, onec.profile(), store.database(), onec.warehouses, onec.page_size)
    return MaterializeResult(metadata=_extract_metadata(result))


@asset(key=PRODUCTS_CANDIDATE, group_name=GROUP, kinds={"python", "sql"},
       deps=[ONEC_CATALOGUE_RAW, ONEC_PRICES_RAW, ONEC_STOCK_RAW],
       description="The mapped next version of `products`, checked before it is published.")
def products_candidate(context: AssetExecutionContext, onec: OneCResource, store: StoreResource) -> MaterializeResult:
    with store.database().background_checkpoints():
        result = build_candidate(store.database(), onec.profile(), search_text=search_text)
    meta = asdict(result)
    collisions = meta.pop("sku_collisions")
    return MaterializeResult(metadata={
        **{k: v for k, v in meta.items() if k != "batches"},
        "batches": MetadataValue.json(result.batches),
        "sku_collisions_sample": MetadataValue.json(collisions),
    })


def _latest_candidate(store: StoreResource) -> int:
    with store.database().read() as conn:
        return latest_batch(conn, "candidate").id


def _check_result(outcome: CheckOutcome) -> AssetCheckResult:
    return AssetCheckResult(passed=outcome.passed, severity=AssetCheckSeverity.ERROR,
                            description=outcome.description,
                            metadata={k: MetadataValue.json(v) if isinstance(v, list | dict) else v
                                      for k, v in outcome.metadata.items()})


def _check_latest_candidate(store: StoreResource, check: Callable[[Connection, int], CheckOutcome]) -> AssetCheckResult:
    """Run `check` on the latest candidate, reading the candidate id and its rows in one snapshot."""
    with store.database().read() as conn:
        return _check_result(check(conn, latest_batch(conn, "candidate").id))


@asset_check(asset=PRODUCTS_CANDIDATE, name=CHECK_UNIQUE_SKUS, blocking=True,
             description="Every SKU occurs once in the candidate.")
def unique_skus(store: StoreResource) -> AssetCheckResult:
    return _check_latest_candidate(store, check_unique_skus)


@asset_check(asset=PRODUCTS_CANDIDATE, name=CHECK_NO_NEGATIVE_PRICES, blocking=True,
             description="No product has a negative price.")
def no_negative_prices(store: StoreResource) -> AssetCheckResult:
    return _check_latest_candidate(store, check_no_negative_prices)


@asset_check(asset=PRODUCTS_CANDIDATE, name=CHECK_SHRINK_GUARD, blocking=True,
             description="The active catalogue does not drop by more than catalogue.max_active_drop.")
def shrink_guard(store: StoreResource, catalogue_rules: CatalogueRulesResource) -> AssetCheckResult:
    return _check_latest_candidate(
        store, lambda conn, candidate_id: check_shrink_guard(conn, candidate_id, catalogue_rules.max_active_drop))


@asset(key=PRODUCTS, group_name=GROUP, kinds={"python", "sql"}, deps=[PRODUCTS_CANDIDATE],
       description="The bot's `products` and `product_stock` tables, replaced in one transaction.")
def products(context: AssetExecutionContext, store: StoreResource,
             catalogue_rules: CatalogueRulesResource) -> MaterializeResult:
    with store.database().background_checkpoints():
        result = publish_candidate(store.database(), _latest_candidate(store),
                                   max_active_drop=catalogue_rules.max_active_drop,
                                   sample_size=catalogue_rules.sample_size)
    return MaterializeResult(metadata={
        "inserted": result.inserted, "updated": result.updated, "deactivated": result.deactivated,
        "unchanged": result.unchanged, "rows_written": result.rows_written, "active": result.active,
        "total": result.total, "duration_s": round(result.seconds, 3),
        "synced_at": MetadataValue.text(result.synced_at.isoformat() if result.synced_at else ""),
        "sample": MetadataValue.md(_sample_table(result.sample)),
    })


def _sample_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "_no changed rows_"
    head = "| sku | name | price | currency | stock | active |\n|---|---|---|---|---|---|\n"
    return head + "\n".join(
        f"| {r['sku']} | {r['name']} | {r['price']} | {r['currency']} | {r['stock']} | {bool(r['is_active'])} |"
        for r in rows)


CATALOGUE_ASSETS = [onec_catalogue_raw, onec_prices_raw, onec_stock_raw, products_candidate, products]
CATALOGUE_CHECKS = [unique_skus, no_negative_prices, shrink_guard]
