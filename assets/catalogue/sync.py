"""The whole catalogue sync as one plain call: extract → candidate → checks → publish.

The Dagster assets run the same steps one by one; `integration_manager.sync_all()` and the
benchmark call this.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from resources.onec.client import OneCClient
from resources.onec.profile import MappingProfile
from resources.store.database import Database
from resources.store.search.document import search_text

from .candidate import CandidateResult, build_candidate
from .checks import CheckOutcome, check_no_negative_prices, check_shrink_guard, check_unique_skus
from .extract import ExtractResult, extract_catalogue, extract_prices, extract_stock
from .publish import PublishResult, publish_candidate


class CandidateCheckError(RuntimeError):
    """A blocking check failed; nothing was published."""


@dataclass
class SyncOptions:
    price_type: str = "Розничная"
    warehouses: tuple[str, ...] = ()
    page_size: int = 1000
    max_active_drop: float = 0.2
    sample_size: int = 5
    # The three extracts read independent 1C objects: fetched side by side they keep the 1C server
    # busy while this process maps and stages pages (Dagster's multiprocess executor does the same
    # with the three raw assets). False = one after another.
    concurrent_extracts: bool = True


@dataclass
class SyncResult:
    extracts: dict[str, ExtractResult]
    candidate: CandidateResult
    checks: list[CheckOutcome]
    publish: PublishResult
    stage_seconds: dict[str, float] = field(default_factory=dict)  # wall time of each stage


def run_candidate_checks(db: Database, candidate_id: int, max_active_drop: float) -> list[CheckOutcome]:
    with db.read() as conn:
        return [check_unique_skus(conn, candidate_id), check_no_negative_prices(conn, candidate_id),
                check_shrink_guard(conn, candidate_id, max_active_drop)]


def run_extracts(client: OneCClient, profile: MappingProfile, db: Database,
                 options: SyncOptions) -> dict[str, ExtractResult]:
    """Catalogue, prices and stock into staging batches, side by side unless told otherwise.

    Each extract stages its own batch and fails alone; the first error is raised once all three
    have stopped, so no thread is left writing behind the caller's back."""
    steps: dict[str, Callable[[], ExtractResult]] = {
        "catalogue": lambda: extract_catalogue(client, profile, db, options.page_size),
        "prices": lambda: extract_prices(client, profile, db, options.price_type, options.page_size),
        "stock": lambda: extract_stock(client, profile, db, list(options.warehouses), options.page_size),
    }
    if not options.concurrent_extracts:
        return {kind: step() for kind, step in steps.items()}
    with ThreadPoolExecutor(max_workers=len(steps), thread_name_prefix="onec-extract") as pool:
        futures = {kind: pool.submit(step) for kind, step in steps.items()}
        errors = [f.exception() for f in futures.values()]  # waits for every extract
    for error in errors:
        if error is not None:
            raise error
    return {kind: f.result() for kind, f in futures.items()}


def map_check_publish(db: Database, profile: MappingProfile, options: SyncOptions,
                      stages: dict[str, float]) -> tuple[CandidateResult, list[CheckOutcome], PublishResult]:
    """Everything after the extracts: candidate from the latest batches, blocking checks, publish.
    The wall time of each step goes into `stages`."""
    t0 = time.perf_counter()
    candidate = build_candidate(db, profile, search_text=search_text)
    t1 = time.perf_counter()
    checks = run_candidate_checks(db, candidate.candidate_id, options.max_active_drop)
    stages.update(candidate=t1 - t0, checks=time.perf_counter() - t1)
    failed = [c for c in checks if not c.passed]
    if failed:
        raise CandidateCheckError("; ".join(c.description for c in failed))
    publish = publish_candidate(db, candidate.candidate_id, max_active_drop=options.max_active_drop,
                                sample_size=options.sample_size)
    stages["publish"] = publish.seconds
    return candidate, checks, publish


def run_catalogue_sync(client: OneCClient, profile: MappingProfile, db: Database,
                       options: SyncOptions) -> SyncResult:
    stages: dict[str, float] = {}
    with db.background_checkpoints():
        t0 = time.perf_counter()
        extracts = run_extracts(client, profile, db, options)
        stages["extract"] = time.perf_counter() - t0
        candidate, checks, publish = map_check_publish(db, profile, options, stages)
        t3 = time.perf_counter()
    stages["final_checkpoint"] = time.perf_counter() - t3  # the WAL the publish left, counted here
    return SyncResult(extracts, candidate, checks, publish, stages)
