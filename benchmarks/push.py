"""Benchmark of the outbox push: 1,000 orders and 1,000 leads into the simulators at the real
Bitrix24 limit (burst 50, 2 requests/s), simulators in their own processes.

Measures the wall time of the push (claim → 1C → Bitrix24 → done) and compares it with
- the rate-limit floor: the fewest requests that carry the commands the push needs (look-ups and
  creates, ≤ 50 per `batch`), minus the initial burst allowance, divided by the rate;
- one call per command: the same commands sent one request each, minus the burst, by the rate.
Target: wall ≤ 1.2 × floor with no rate-limit error surfacing as a failure. Prints only figures
measured in this run. Exit status 1 if a row is not delivered or the target is missed.

    .venv/bin/python -m benchmarks.push [--scale 1.0] [--orders 1000] [--leads 1000] [--burst 50] [--rate 2]
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import select

from assets.catalogue.sync import SyncOptions, run_catalogue_sync
from integrations.intake import submit_lead, submit_order
from pipelines.push.mapping import load_bitrix24_mapping
from pipelines.push.worker import PushOptions, push_outbox
from resources.bitrix24.client import Bitrix24Client
from resources.onec.client import OneCClient
from resources.onec.orders import OneCOrders
from resources.onec.profile import load_profile
from resources.store import outbox
from resources.store.database import get_database
from resources.store.schema import products
from simulators.serving import ProcessServer

BATCH = 50
TARGET = 1.2
ONEC_USER, ONEC_PASSWORD = "Администратор", "bench-пароль"


def _enqueue(db, catalogue: list[dict], orders: int, leads: int, rng: random.Random) -> float:
    started = time.perf_counter()
    for i in range(orders):
        picked = rng.sample(catalogue, rng.randint(1, 3))
        lines = [{"sku": p["sku"], "quantity": rng.randint(1, 3), "price": p["price"]} for p in picked]
        answer = submit_order(db, {"customer": {"name": "Покупатель Бенчмарка", "phone": f"+7777{i:07d}"},
                                   "products": lines, "delivery": {"address": f"Алматы, ул. Абая {i}"},
                                   "order_id": f"bench-{i}"})
        assert answer["success"], answer
    for i in range(leads):
        answer = submit_lead(db, {"customer": {"name": "Клиент Бенчмарка", "phone": f"+7701{i:07d}"},
                                  "source": "telegram", "conversation_id": f"bench-conv-{i}",
                                  "comment": "Интересуется товаром"})
        assert answer["success"], answer
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.push", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--leads", type=int, default=1000)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply --orders and --leads (e.g. 0.2)")
    parser.add_argument("--burst", type=int, default=50, help="portal bucket threshold X")
    parser.add_argument("--rate", type=float, default=2.0, help="portal drain Y, requests per second")
    parser.add_argument("--products", type=int, default=2000, help="products in the 1C simulator")
    parser.add_argument("--chunk-size", type=int, default=500)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    n_orders, n_leads = round(args.orders * args.scale), round(args.leads * args.scale)

    onec_sim = ProcessServer("simulators.onec", ["--size", str(args.products), "--user", ONEC_USER,
                                                 "--password", ONEC_PASSWORD])
    bitrix_sim = ProcessServer("simulators.bitrix24", ["--burst", str(args.burst), "--drain", str(args.rate)])
    with tempfile.TemporaryDirectory() as tmp, onec_sim, bitrix_sim:
        db = get_database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        onec_client = OneCClient(f"{onec_sim.url}/zeta", ONEC_USER, ONEC_PASSWORD)
        profile = load_profile("ut11")
        run_catalogue_sync(onec_client, profile, db, SyncOptions())
        with db.read() as conn:
            catalogue = [dict(r) for r in conn.execute(
                select(products.c.sku, products.c.price)
                .where(products.c.is_active.is_(True), products.c.price > 0).order_by(products.c.sku)).mappings()]
        enqueue_s = _enqueue(db, catalogue, n_orders, n_leads, random.Random(1))

        # production settings: the client's own bucket stays 10 below the portal's threshold
        bitrix = Bitrix24Client(f"{bitrix_sim.url}/rest/1/zetademo/", rate_per_second=args.rate, burst=args.burst)
        assert profile.orders is not None
        orders = OneCOrders(onec_client, profile.orders, {})
        mapping = load_bitrix24_mapping()
        totals: Counter[str] = Counter()
        problems: Counter[str] = Counter()
        started = time.perf_counter()
        runs = 0
        while runs < 5:
            runs += 1
            report = push_outbox(db, onec=orders, bitrix=bitrix, mapping=mapping,
                                 options=PushOptions(chunk_size=args.chunk_size))
            totals.update(report.summary())
            problems.update(r["error"][:240] for r in report.rows if r.get("error"))
            if outbox.counts(db)[outbox.DONE] == n_orders + n_leads or not report.rows:
                break
        wall = time.perf_counter() - started
        counts = outbox.counts(db)
        sim_stats = httpx.get(f"{bitrix_sim.url}/_admin/stats").json()
        onec_stats = httpx.get(f"{onec_sim.url}/_admin/stats").json()
        state = httpx.get(f"{bitrix_sim.url}/_admin/state").json()["counts"]
        docs = httpx.get(f"{onec_sim.url}/_admin/stats").json()["documents"]
        bitrix.close()
        onec_client.close()

    commands, requests = bitrix.stats.commands, bitrix.stats.requests
    fewest = math.ceil(commands / BATCH)
    floor = max(0, fewest - args.burst) / args.rate
    per_command = max(0, commands - args.burst) / args.rate
    delivered = counts[outbox.DONE] == n_orders + n_leads
    ratio = wall / floor if floor else float("inf")
    print(f"push benchmark: {n_orders} orders + {n_leads} leads, portal limit burst {args.burst} / {args.rate:g} req/s, "
          f"simulators in subprocesses")
    print(f"  enqueue through the bot intake: {enqueue_s:.1f} s ({(n_orders + n_leads) / enqueue_s:.0f} rows/s)")
    print(f"  push wall time: {wall:.1f} s in {runs} run(s); outcomes {dict(totals)}; outbox {counts}")
    print(f"  Bitrix24: {commands} commands in {requests} requests ({commands / max(1, requests):.1f} per request); "
          f"503 QUERY_LIMIT_EXCEEDED seen by the client {bitrix.stats.rate_limited}, "
          f"by the simulator {sim_stats.get('rate_limited_503')}; records {state}")
    print(f"  1C: {onec_stats['total']} requests in all (catalogue sync included), {docs} order documents")
    verdict = f"wall/floor = {ratio:.2f} (target <= {TARGET})" if floor else "all within the burst: no floor to compare"
    print(f"  rate-limit floor: ceil({commands}/{BATCH}) = {fewest} requests, minus burst {args.burst}, "
          f"at {args.rate:g}/s = {floor:.1f} s -> {verdict}")
    print(f"  one call per command: ({commands} - {args.burst}) / {args.rate:g} = {per_command:.0f} s "
          f"-> wall is {wall / per_command * 100 if per_command else 0:.1f} % of it ({per_command / wall:.0f}x faster)")
    for message, n in problems.most_common(5):
        print(f"  failed attempt x{n}: {message}")
    rate_limit_failures = sum(n for m, n in problems.items() if "QUERY_LIMIT_EXCEEDED" in m or "OPERATION_TIME_LIMIT" in m)
    print(f"  failed attempts (retried later, then delivered): {sum(problems.values())}, "
          f"of them rate-limit errors: {rate_limit_failures}")
    ok = delivered and (ratio <= TARGET or not floor) and rate_limit_failures == 0 and totals.get("dead", 0) == 0
    print(f"  result: {'PASS' if ok else 'FAIL'}" + ("" if delivered else " (not every row delivered)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
