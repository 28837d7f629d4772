"""Run the 1C OData simulator: `python -m simulators.onec --port 8081 [--size 2000] …`."""

from __future__ import annotations

import argparse
import json
import os

import uvicorn

from simulators.onec.app import create_app
from simulators.onec.dataset import Dataset
from simulators.onec.faults import FaultConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulators.onec", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--size", type=int, default=2000, help="number of products")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--configuration", default="ut11", choices=["ut11", "ut114", "unf"])
    parser.add_argument("--base", default="zeta", help="publication name: /<base>/odata/standard.odata")
    parser.add_argument("--user", default="Администратор")
    parser.add_argument("--password", default=os.environ.get("ONEC_PASSWORD") or "zeta-demo")
    parser.add_argument("--timezone", default="Asia/Almaty", help="server time zone (dates are naive local)")
    parser.add_argument("--url-limit", type=int, default=2048, help="max query-string bytes (IIS) / request line")
    parser.add_argument("--url-limit-mode", default="iis", choices=["iis", "apache"])
    parser.add_argument("--path-limit", type=int, default=4096, help="max raw path bytes (IIS maxUrl)")
    parser.add_argument("--faults", default=None, help='FaultConfig as JSON, e.g. \'{"error_rate": 0.05}\'')
    args = parser.parse_args(argv)

    faults = FaultConfig.model_validate(json.loads(args.faults)) if args.faults else None
    dataset = Dataset(size=args.size, seed=args.seed, timezone=args.timezone)
    app = create_app(dataset, base=args.base, configuration=args.configuration, users={args.user: args.password},
                     faults=faults, url_limit=args.url_limit, url_limit_mode=args.url_limit_mode,
                     path_limit=args.path_limit)
    print(f"1C OData simulator ({args.configuration}, {args.size} products): "
          f"http://{args.host}:{args.port}/{args.base}/odata/standard.odata/  user {args.user!r}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, lifespan="off")


if __name__ == "__main__":
    main()
