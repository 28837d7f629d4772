"""What the catalogue sync does after the last page: candidate, checks, publish, final checkpoint.

    python -m benchmarks.catalogue_stages [--size 100000] [--repeat 3] [--top 8]

The fetch-bound part of `benchmarks.catalogue_sync` is noisy (the 1C simulator shares the two
cores); this one extracts the simulator's catalogue once into a staged SQLite file, then times
only the SQLite work that follows the fetch, on copies of that file: a first load (empty
`products`), a re-sync of the same extract over the published table (every row unchanged) and one
with 1 % of the products edited in the staged extract, `--repeat` times each, with the slowest SQL statements of the last round. Every
figure printed is measured in this run; compare the stages of one run with each other.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from assets.catalogue.sync import SyncOptions, map_check_publish, run_extracts
from benchmarks.catalogue_sync import PAGE, client_for, remove_sqlite_files, start_simulator
from resources.onec.profile import load_profile
from resources.store.database import Database

PROFILE = "ut11"


def stage_extract(size: int, path: Path) -> float:
    """Extract `size` simulated products into a new SQLite file; returns the extract's seconds."""
    password = secrets.token_urlsafe(12)
    db = Database(f"sqlite:///{path}")
    db.migrate()
    with start_simulator(size, password) as sim, client_for(sim.url, password) as client:
        started = time.perf_counter()
        with db.background_checkpoints():
            run_extracts(client, load_profile(PROFILE), db, SyncOptions(page_size=PAGE))
        seconds = time.perf_counter() - started
    db.dispose()
    return seconds


@contextmanager
def statement_timer(db: Database) -> Iterator[list[tuple[float, str]]]:
    """(seconds, statement) of every statement the writer runs inside the block."""
    timings: list[tuple[float, str]] = []

    def before(conn: Any, _cursor: Any, _statement: str, *_args: Any) -> None:
        conn.info["zeta_started"] = time.perf_counter()

    def after(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        timings.append((time.perf_counter() - conn.info.pop("zeta_started"), " ".join(statement.split())))

    event.listen(db.writer, "before_cursor_execute", before)
    event.listen(db.writer, "after_cursor_execute", after)
    try:
        yield timings
    finally:
        event.remove(db.writer, "before_cursor_execute", before)
        event.remove(db.writer, "after_cursor_execute", after)


def post_fetch(db: Database) -> dict[str, float]:
    """Candidate, checks and publish of the latest batches, as `run_catalogue_sync` runs them."""
    stages: dict[str, float] = {}
    with db.background_checkpoints():
        map_check_publish(db, load_profile(PROFILE), SyncOptions(max_active_drop=0.5, sample_size=0), stages)
        t3 = time.perf_counter()
    stages["final_checkpoint"] = time.perf_counter() - t3
    stages["total"] = sum(stages.values())
    return stages


def change_one_percent(db: Database) -> None:
    """Publish the staged extract, then edit it as 1C would have changed 1 % of the products
    since: a third of them renamed, a third repriced, a third with other stock."""
    post_fetch(db)
    with db.write() as conn:
        batches = dict(conn.execute(text(
            "SELECT kind, MAX(id) FROM extract_batches WHERE status = 'complete' GROUP BY kind")).all())
        picked = "SELECT ref FROM raw_catalogue WHERE batch_id = :cb AND rowid % 300 = {k}"
        params = {"cb": batches["catalogue"], "pb": batches["prices"], "sb": batches["stock"]}
        conn.execute(text("UPDATE raw_catalogue SET name = name || ' (новинка)', search_text = NULL "
                          f"WHERE batch_id = :cb AND ref IN ({picked.format(k=0)})"), params)
        conn.execute(text("UPDATE raw_prices SET price = price + 1 "
                          f"WHERE batch_id = :pb AND product IN ({picked.format(k=1)})"), params)
        conn.execute(text("UPDATE raw_stock_totals SET total = total + 1, detail = json_set(detail, '$.\"Новый склад\"', 1) "
                          f"WHERE batch_id = :sb AND product IN ({picked.format(k=2)})"), params)


def _copy(staged: Path, to: Path) -> Database:
    remove_sqlite_files(to)
    shutil.copyfile(staged, to)
    return Database(f"sqlite:///{to}")


def measure(staged: Path, work: Path, repeat: int, prepare: Callable[[Database], None] | None,
            ) -> tuple[list[dict[str, float]], list[tuple[float, str]]]:
    rounds: list[dict[str, float]] = []
    statements: list[tuple[float, str]] = []
    for _ in range(repeat):
        db = _copy(staged, work)
        if prepare is not None:
            prepare(db)
        with statement_timer(db) as timings:
            rounds.append(post_fetch(db))
        db.dispose()
        statements = timings  # the last round's
    return rounds, statements


def report(title: str, rounds: list[dict[str, float]], timings: list[tuple[float, str]], top: int) -> None:
    print(f"  {title}:")
    for stage in rounds[0]:
        values = [r[stage] for r in rounds]
        print(f"    {stage:<17} median {statistics.median(values):.3f}s  "
              f"({', '.join(f'{v:.3f}' for v in values)})")
    print(f"    slowest statements of the last round (of {len(timings)}):")
    for seconds, statement in sorted(timings, reverse=True)[:top]:
        print(f"      {seconds:.3f}s  {statement[:110]}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    tmp = Path(tempfile.mkdtemp(prefix="zeta-bench-"))
    try:
        staged = tmp / "staged.db"
        seconds = stage_extract(args.size, staged)
        print(f"catalogue stages after the fetch — {args.size:,} products staged once ({seconds:.2f}s of "
              f"extract), each stage timed {args.repeat}× on a copy")
        first, first_sql = measure(staged, tmp / "work.db", args.repeat, None)
        report("first load (empty products)", first, first_sql, args.top)
        resync, resync_sql = measure(staged, tmp / "work.db", args.repeat, post_fetch)
        report("re-sync of the same extract (every row unchanged)", resync, resync_sql, args.top)
        changed, changed_sql = measure(staged, tmp / "work.db", args.repeat, change_one_percent)
        report("re-sync with 1 % of the products changed (name, price or stock)", changed, changed_sql, args.top)
        base = statistics.median(r["total"] for r in first)
        print(f"  after the fetch, against the first load: unchanged re-sync "
              f"{statistics.median(r['total'] for r in resync) / base:.2f}, 1 % re-sync "
              f"{statistics.median(r['total'] for r in changed) / base:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
