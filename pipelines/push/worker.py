"""The push run: claim due outbox rows chunk by chunk and deliver them to 1C and Bitrix24.

Plain code (no Dagster) so tests, the CLI (`python -m pipelines.push`) and the benchmark call it
directly; the `push_outbox` op is a thin wrapper.

Per chunk: the 1C step of every order runs in a small thread pool (1C has no request limit)
while the Bitrix24 look-ups and contact creates go out; the deals are created after the 1C step
so they carry the 1C order number. Then each row is finished:

* everything delivered → `done`;
* a retryable error (network, 5xx, rate limit after the client's own retries, an unknown create
  outcome) → `failed` with exponential backoff and jitter, or `dead` once `max_attempts` is spent;
* a permanent error (1C refused the document or its posting, Bitrix24 rejected the data) → `dead`
  at once, with the external system's message; a replay resumes from the stored ids;
* an activity log whose lead/deal is still on its way → given back untouched (`skipped`);
* a row whose lease was lost to another run → left alone (`skipped`).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from resources.bitrix24.client import Bitrix24Client
from resources.onec.orders import OneCOrders
from resources.store import outbox
from resources.store.database import Database

from .bitrix_step import BitrixPusher
from .mapping import Bitrix24Mapping
from .onec_step import onec_complete, order_request, push_order_to_onec
from .work import BITRIX, ONEC, Recorder, RowWork

logger = logging.getLogger("integrations.push")

OUTCOMES = ("done", "retried", "dead", "skipped", "dry_run")


@dataclass
class PushOptions:
    policy: outbox.RetryPolicy = field(default_factory=outbox.RetryPolicy)
    chunk_size: int = 500
    onec_threads: int = 8
    dry_run: bool = False
    max_rows: int | None = None
    post_orders: bool = True
    defer_seconds: float = 15.0
    check_portal: bool = True
    owner: str | None = None
    ignore_backoff: bool = False  # also take failed rows whose next attempt is not due yet


@dataclass
class PushReport:
    """Counts per outcome, and what happened to each row."""

    owner: str
    counts: Counter[str] = field(default_factory=Counter)
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    bitrix_requests: int = 0
    bitrix_commands: int = 0
    bitrix_rate_limited: int = 0

    def add(self, work: RowWork, outcome: str, *, error: str | None = None, detail: Any = None) -> None:
        self.counts[outcome] += 1
        entry: dict[str, Any] = {"id": work.id, "kind": work.kind, "outcome": outcome}
        if error:
            entry["error"] = error
        if detail is not None:
            entry["detail"] = detail
        self.rows.append(entry)

    def summary(self) -> dict[str, int]:
        return {k: int(self.counts.get(k, 0)) for k in OUTCOMES}


def push_kinds(onec_enabled: bool, bitrix_enabled: bool) -> list[str]:
    """Outbox kinds a run with these targets can deliver (leads and logs need Bitrix24)."""
    if not (onec_enabled or bitrix_enabled):
        return []
    return [outbox.ORDER] + ([outbox.LEAD, outbox.ACTIVITY] if bitrix_enabled else [])


def default_owner() -> str:
    return f"{socket.gethostname()[:24]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def push_outbox(db: Database, *, onec: OneCOrders | None, bitrix: Bitrix24Client | None,
                mapping: Bitrix24Mapping | None, options: PushOptions | None = None) -> PushReport:
    """Push everything due now; returns the per-outcome report. See the module docstring."""
    opts = options or PushOptions()
    owner = opts.owner or default_owner()
    report = PushReport(owner=owner)
    started = time.monotonic()
    run_start = outbox.utcnow()
    if onec is None and bitrix is None:
        raise ValueError("nothing to push to: both 1C and Bitrix24 are disabled")
    if bitrix is not None and mapping is None:
        raise ValueError("a Bitrix24 client needs the Bitrix24 mapping")
    kinds = push_kinds(onec is not None, bitrix is not None)
    recorder = Recorder(db, owner, opts.policy.lease_seconds)
    pusher = BitrixPusher(bitrix, mapping, recorder, onec_enabled=onec is not None,  # type: ignore[arg-type]
                          check_portal=opts.check_portal) if bitrix is not None else None
    if opts.dry_run:
        _dry_run(db, onec, pusher, kinds, opts, report)
        report.seconds = time.monotonic() - started
        return report
    stats_before = (bitrix.stats.requests, bitrix.stats.commands, bitrix.stats.rate_limited) if bitrix else (0, 0, 0)
    pool = ThreadPoolExecutor(max_workers=max(1, opts.onec_threads), thread_name_prefix="push-1c") if onec else None
    try:
        while opts.max_rows is None or len(report.rows) < opts.max_rows:
            limit = opts.chunk_size if opts.max_rows is None else min(opts.chunk_size, opts.max_rows - len(report.rows))
            rows = outbox.claim(db, owner, limit=limit, lease_seconds=opts.policy.lease_seconds, kinds=kinds,
                                backoff_ignored_before=run_start if opts.ignore_backoff else None)
            if not rows:
                break
            works = [RowWork(r) for r in rows]
            logger.info("push %s: claimed %d row(s) (%s)", owner, len(works),
                        ", ".join(f"{k}: {n}" for k, n in Counter(w.kind for w in works).items()))
            _push_chunk(works, onec, pusher, recorder, pool, opts)
            for w in works:
                _finish(db, owner, w, onec, pusher, opts, report)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    if bitrix is not None:
        report.bitrix_requests = bitrix.stats.requests - stats_before[0]
        report.bitrix_commands = bitrix.stats.commands - stats_before[1]
        report.bitrix_rate_limited = bitrix.stats.rate_limited - stats_before[2]
    report.seconds = time.monotonic() - started
    logger.info("push %s finished in %.1fs: %s", owner, report.seconds, report.summary())
    return report


def _push_chunk(works: list[RowWork], onec: OneCOrders | None, pusher: BitrixPusher | None, recorder: Recorder,
                pool: ThreadPoolExecutor | None, opts: PushOptions) -> None:
    futures: list[tuple[RowWork, Future[None]]] = []
    if onec is not None and pool is not None:
        futures = [(w, pool.submit(push_order_to_onec, onec, recorder, w, post=opts.post_orders))
                   for w in works if w.kind == outbox.ORDER]
    joined = False

    def join() -> None:
        nonlocal joined
        if joined:
            return
        joined = True
        for w, fut in futures:
            try:
                fut.result()
            except Exception as exc:  # a bug or an unexpected library error: retry the row later
                logger.exception("%s: unexpected error in the 1C step", w.id)
                w.fail(ONEC, f"unexpected error: {type(exc).__name__}: {exc}")

    try:
        if pusher is not None:
            pusher.push(works, before_entities=join)
    except Exception as exc:
        logger.exception("unexpected error in the Bitrix24 step")
        for w in works:
            w.fail(BITRIX, f"unexpected error: {type(exc).__name__}: {exc}")
    finally:
        join()


def _finish(db: Database, owner: str, w: RowWork, onec: OneCOrders | None, pusher: BitrixPusher | None,
            opts: PushOptions, report: PushReport) -> None:
    try:
        if w.lost:
            report.add(w, "skipped", error="lease lost to another run")
            return
        if w.deferred:
            outbox.release(db, owner, w.id, delay_seconds=opts.defer_seconds, note=w.deferred)
            report.add(w, "skipped", error=w.deferred)
            return
        if not w.errors:
            missing = []
            if w.kind == outbox.ORDER and onec is not None and not onec_complete(w, opts.post_orders):
                missing.append(f"{ONEC}: the order is not complete in 1C yet")
            if pusher is not None and not pusher.complete(w):
                missing.append(f"{BITRIX}: not every record is in Bitrix24 yet")
            if not missing:
                outbox.complete(db, owner, w.id)
                report.add(w, "done")
                return
            for text in missing:
                target, message = text.split(": ", 1)
                w.fail(target, message)
        status = outbox.fail(db, owner, w.id, w.error_text(), opts.policy, permanent=bool(w.permanent))
        outcome = "dead" if status == outbox.DEAD else "retried"
        (logger.error if outcome == "dead" else logger.warning)("%s %s: %s", w.id, outcome, w.error_text())
        report.add(w, outcome, error=w.error_text())
    except outbox.LeaseLost as exc:
        report.add(w, "skipped", error=str(exc))


def _dry_run(db: Database, onec: OneCOrders | None, pusher: BitrixPusher | None, kinds: list[str],
             opts: PushOptions, report: PushReport) -> None:
    """Log what would be sent for every due row; claim nothing, send nothing, change nothing."""
    rows = [r for r in outbox.list_due(db, limit=opts.max_rows or 10_000) if r.kind in kinds]
    for row in rows:
        work = RowWork(row)
        plan: dict[str, Any] = {}
        if row.kind == outbox.ORDER and onec is not None and not onec_complete(work, opts.post_orders):
            steps: list[Any] = []
            if not row.onec_ref_key:
                steps.append({"GET": f"{onec.section.entity_set}?$filter={onec.number_field} eq '{row.id}'"})
                steps.append({"POST (if not found)": onec.section.entity_set, "body": onec.build_body(order_request(work))})
            if opts.post_orders:
                steps.append({"POST": f"{onec.section.entity_set}(guid'{row.onec_ref_key or '<new Ref_Key>'}')/Post"})
            plan["1c"] = steps
        if pusher is not None:
            plan["bitrix24"] = pusher.describe(work)
        logger.info("dry run: %s %s would send %s", row.kind, row.id,
                    orjson.dumps(plan, option=orjson.OPT_INDENT_2).decode())
        report.add(work, "dry_run", detail=plan)
