"""Catalogue sync benchmark: end to end against the fetch-only floor, a 1 % re-sync, 1M peak RSS.

    python -m benchmarks.catalogue_sync [--size 100000] [--repeat 3] [--big 1000000] [--skip-big]

The 1C simulator runs in its own process (`ProcessServer`). Every figure printed is measured in
this run; ratios compare timings of the same run, so a noisy machine shifts both sides.

* floor      — fetch and JSON-parse exactly the pages the sync reads (same client, page size and
               prefetch), no mapping and no database; timed one section after another and the
               three sections side by side (as the sync fetches them), and the lower is the floor.
* end to end — `run_catalogue_sync` (the same steps the Dagster assets run) into a fresh SQLite DB,
               `--repeat` times; each first load is held to the floor measured just before and
               just after it, every ratio is printed and the median is the headline.
* re-sync    — 1 % of products changed in 1C (price, stock or name), synced again: rows written.
* peak RSS   — a child process syncs 1M products; its `ru_maxrss` is the figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from assets.catalogue.extract import (
    group_pages,
    price_pages,
    product_pages,
    reference_pages,
    resolve_price_type,
    stock_pages,
)
from assets.catalogue.sync import SyncOptions, SyncResult, run_catalogue_sync
from resources.onec.client import OneCClient
from resources.onec.profile import MappingProfile, load_profile
from resources.store.database import Database
from simulators.serving import ProcessServer

USER = "Администратор"
PAGE = 1000


def client_for(url: str, password: str) -> OneCClient:
    return OneCClient(f"{url}/zeta", USER, password, timeout=120)


def _pages(pages: Iterator[list[dict[str, Any]]]) -> int:
    return sum(len(page) for page in pages)


def _floor_catalogue(client: OneCClient, profile: MappingProfile) -> int:
    client.check_entity_sets(profile.entity_sets())
    return (_pages(group_pages(client, profile, PAGE)) + _pages(reference_pages(client, profile.units, PAGE))
            + _pages(product_pages(client, profile, PAGE)))


def _floor_prices(client: OneCClient, profile: MappingProfile) -> int:
    rows = _pages(reference_pages(client, profile.currencies, PAGE))
    ptype = resolve_price_type(client, profile, SyncOptions().price_type, PAGE)
    return rows + _pages(price_pages(client, profile, ptype["ref"], PAGE))


def _floor_stock(client: OneCClient, profile: MappingProfile) -> int:
    return _pages(reference_pages(client, profile.warehouses, PAGE)) + _pages(stock_pages(client, profile, PAGE))


def fetch_floor(url: str, password: str, *, concurrent: bool = False) -> tuple[float, int]:
    """Fetch + parse the same pages as a sync, no mapping, no database; returns (seconds, rows).

    `concurrent` fetches the three sections side by side, as the sync does."""
    sections = (_floor_catalogue, _floor_prices, _floor_stock)
    profile = load_profile("ut11")
    started = time.perf_counter()
    with client_for(url, password) as client:
        if concurrent:
            with ThreadPoolExecutor(max_workers=len(sections)) as pool:
                rows = sum(pool.map(lambda section: section(client, profile), sections))
        else:
            rows = sum(section(client, profile) for section in sections)
    return time.perf_counter() - started, rows


def best_floor(url: str, password: str) -> tuple[float, int]:
    """The lower of the sequential and the concurrent fetch: the floor the sync is held to."""
    return min(fetch_floor(url, password), fetch_floor(url, password, concurrent=True))


def sync(url: str, password: str, db_url: str):
    db = Database(db_url)
    db.migrate()
    started = time.perf_counter()
    with client_for(url, password) as client:
        result = run_catalogue_sync(client, load_profile("ut11"), db,
                                    SyncOptions(page_size=PAGE, max_active_drop=0.5, sample_size=0))
    elapsed = time.perf_counter() - started
    db.dispose()
    return elapsed, result


def rss_child(url: str, password: str, db_url: str) -> None:
    elapsed, result = sync(url, password, db_url)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": elapsed, "products": result.publish.total, "peak_rss_mb": peak_kb / 1024}))


def start_simulator(size: int, password: str) -> ProcessServer:
    return ProcessServer("simulators.onec", ["--size", str(size), "--user", USER],
                         env={"ONEC_PASSWORD": password}).start(timeout=600)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="first loads to time (each between two floors)")
    parser.add_argument("--rss-child", nargs=3, metavar=("URL", "PASSWORD_ENV", "DB_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.rss_child:
        url, pw_env, db_url = args.rss_child
        rss_child(url, os.environ[pw_env], db_url)
        return 0

    password = secrets.token_urlsafe(12)
    tmp = Path(tempfile.mkdtemp(prefix="zeta-bench-"))
    try:
        return _run(args, password, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # ~2.7 GB at 1M products: left behind, it slowed later runs' I/O


def remove_sqlite_files(path: Path) -> None:
    """A benchmark database with its WAL and shared-memory files."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _stage_line(result: SyncResult) -> str:
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in result.stage_seconds.items())
    extracts = ", ".join(f"{k} {v.seconds:.2f}s" for k, v in result.extracts.items())
    return f"    stages: {stages} (extracts side by side: {extracts})"


def _floors(url: str, password: str) -> tuple[float, float]:
    """(sequential, concurrent) fetch-only timings, taken back to back."""
    return fetch_floor(url, password)[0], fetch_floor(url, password, concurrent=True)[0]


def _run(args: argparse.Namespace, password: str, tmp: Path) -> int:
    print(f"catalogue sync benchmark — {args.size:,} products, page size {PAGE}, simulator in a subprocess, "
          f"{args.repeat} first load(s) each between two floor measurements")
    with start_simulator(args.size, password) as sim:
        cpu_before = _cpu_seconds()
        floor_cpu_wall, rows = fetch_floor(sim.url, password)  # also warms the simulator's caches
        floor_cpu = _cpu_seconds() - cpu_before
        before = _floors(sim.url, password)
        ratios = []
        for i in range(1, args.repeat + 1):
            cpu_before = _cpu_seconds()
            e2e, result = sync(sim.url, password, f"sqlite:///{tmp / f'first-{i}.db'}")
            e2e_cpu = _cpu_seconds() - cpu_before
            after = _floors(sim.url, password)
            # The floor of this load: the lower of the sequential and the concurrent fetch, each the
            # mean of the measurement just before and the one just after the load.
            floor = min(statistics.mean([before[0], after[0]]), statistics.mean([before[1], after[1]]))
            ratios.append(e2e / floor)
            products = result.publish.total
            print(f"  first load {i}: floor (fetch + parse {rows:,} rows) sequential {before[0]:.2f}s / "
                  f"{after[0]:.2f}s, concurrent {before[1]:.2f}s / {after[1]:.2f}s → {floor:.2f}s, "
                  f"{products / floor:,.0f} products/s")
            print(f"    end to end into SQLite {e2e:.2f}s → {products / e2e:,.0f} products/s; "
                  f"ratio end to end / floor {e2e / floor:.2f}×")
            print(_stage_line(result))
            print(f"    this process's CPU: {e2e_cpu:.2f}s during the sync, {e2e_cpu / floor:.2f}× the floor "
                  f"({os.cpu_count()} cores; the simulator keeps one busy while it serves)")
            before = after
            if i < args.repeat:
                remove_sqlite_files(tmp / f"first-{i}.db")
        print(f"  this process's CPU during a floor fetch: {floor_cpu:.2f}s of {floor_cpu_wall:.2f}s wall "
              f"(the rest of the fetch is the 1C side)")
        listed = ", ".join(f"{r:.2f}×" for r in ratios)
        print(f"  ratio end to end / floor over {len(ratios)} first load(s): {listed}; "
              f"median {statistics.median(ratios):.2f}×  (target ≤ 1.5×)")

        changed = httpx.post(f"{sim.url}/_admin/mutate", json={"op": "change_fraction", "share": 0.01, "seed": 5},
                             timeout=60).json()["results"][0]
        n_changed = sum(len(v) for v in changed.values())
        floor_c, _ = best_floor(sim.url, password)
        resync, result2 = sync(sim.url, password, f"sqlite:///{tmp / f'first-{args.repeat}.db'}")
        p = result2.publish
        print(f"  re-sync after {n_changed:,} products changed in 1C (1 %): {resync:.2f}s, "
              f"ratio to floor {resync / floor_c:.2f}×")
        print(_stage_line(result2))
        print(f"    rows written: {p.rows_written:,} (inserted {p.inserted}, updated {p.updated}, "
              f"deactivated {p.deactivated}); unchanged rows left alone: {p.unchanged:,}")
        print(f"    written / changed in 1C: {p.rows_written / max(n_changed, 1):.2f}")

    if not args.skip_big:
        print(f"peak RSS of a sync of {args.big:,} products (sync process only):")
        with start_simulator(args.big, password) as sim:
            env = {**os.environ, "ZETA_BENCH_PW": password}
            out = subprocess.run([sys.executable, "-m", "benchmarks.catalogue_sync", "--rss-child", sim.url,
                                  "ZETA_BENCH_PW", f"sqlite:///{tmp / 'big.db'}"], env=env, capture_output=True,
                                 text=True, check=True)
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  {figures['products']:,} products in {figures['seconds']:.0f}s, "
                  f"peak RSS {figures['peak_rss_mb']:.0f} MB (target < 500 MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
