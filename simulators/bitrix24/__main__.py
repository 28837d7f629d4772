"""`python -m simulators.bitrix24 --port 8082`: serve the simulator and print the webhook URL.

Try it with:
    curl -X POST -H 'Content-Type: application/json' -d '{"fields":{"TITLE":"Тест"}}' \\
         http://127.0.0.1:8082/rest/1/zetademo/crm.lead.add.json
"""

from __future__ import annotations

import argparse
import sys

import orjson
import uvicorn

from simulators.bitrix24.app import create_app
from simulators.bitrix24.faults import FaultConfig
from simulators.bitrix24.limits import LimitConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simulators.bitrix24", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--burst", type=float, default=50, help="leaky-bucket threshold X (Enterprise: 250)")
    parser.add_argument("--drain", type=float, default=2.0, help="leaky-bucket drain Y per second (Enterprise: 5)")
    parser.add_argument("--operating-limit", type=float, default=480.0, help="seconds per method per 10 min")
    parser.add_argument("--operating-ban", type=float, default=None, help="fixed ban seconds once exceeded (300)")
    parser.add_argument("--user-id", type=int, default=1)
    parser.add_argument("--code", default="zetademo")
    parser.add_argument("--scopes", default="crm,task,user", help="comma-separated webhook scopes")
    parser.add_argument("--domain", default="zeta-demo.bitrix24.kz", help="portal domain reported in events")
    parser.add_argument("--faults", default=None, help='initial FaultConfig as JSON, e.g. \'{"error_rate": 0.1}\'')
    parser.add_argument("--log-level", default="warning")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    faults = FaultConfig(**orjson.loads(args.faults)) if args.faults else FaultConfig()
    limits = LimitConfig(burst=args.burst, drain_per_second=args.drain, operating_limit_seconds=args.operating_limit,
                         operating_ban_seconds=args.operating_ban)
    app = create_app(webhooks={(args.user_id, args.code): {"scopes": [s for s in args.scopes.split(",") if s]}},
                     limits=limits, faults=faults, portal_domain=args.domain)
    print(f"Bitrix24 simulator: webhook http://{args.host}:{args.port}/rest/{args.user_id}/{args.code}/ "
          f"(admin: http://{args.host}:{args.port}/_admin/health)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, lifespan="off", access_log=False)


if __name__ == "__main__":
    main(sys.argv[1:])
