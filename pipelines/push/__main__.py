"""`python -m pipelines.push`: one push run of the outbox outside Dagster (ops, tests, benchmarks).

Configured like Dagster runs: `ZETA_CONFIG` (default config/integrations.yaml), `ZETA_DATABASE_URL`,
`ONEC_*`, `BITRIX24_WEBHOOK_URL`. Prints the outcome counts as one JSON line.

    python -m pipelines.push                      # push everything due now
    python -m pipelines.push --dry-run            # log what would be sent; send and change nothing
    python -m pipelines.push --replay-dead all    # dead rows back to pending (then push)
"""

from __future__ import annotations

import argparse
import logging
import sys

import orjson

from resources.settings import load_settings
from resources.store import outbox
from resources.store.database import get_database

from .runtime import push_from_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.push", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="integrations config (default: ZETA_CONFIG or config/integrations.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="log what would be sent; send and change nothing")
    parser.add_argument("--max-rows", type=int, default=None)
    parser.add_argument("--retry-now", action="store_true", help="also push failed rows still in their backoff")
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--lease-seconds", type=float, default=None)
    parser.add_argument("--owner", default=None, help="claim owner name (default host:pid:random)")
    parser.add_argument("--replay-dead", nargs="*", metavar="ID", help="replay dead rows first ('all' or ids)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(args.config)
    db = get_database(settings.database.url or None)
    if args.replay_dead is not None:
        ids = None if args.replay_dead in ([], ["all"]) else args.replay_dead
        replayed = outbox.replay_dead(db, ids)
        logging.getLogger("integrations.push").info("replayed %d dead row(s): %s", len(replayed), ", ".join(replayed))
    overrides = {k: v for k, v in (("chunk_size", args.chunk_size), ("lease_seconds", args.lease_seconds))
                 if v is not None}
    report = push_from_settings(db, settings, dry_run=args.dry_run or None, owner=args.owner,
                                max_rows=args.max_rows, ignore_backoff=args.retry_now, **overrides)
    sys.stdout.write(orjson.dumps({**report.summary(), "seconds": round(report.seconds, 3),
                                   "bitrix24_requests": report.bitrix_requests}).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
