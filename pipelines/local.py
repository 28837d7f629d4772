"""`make demo` and `make ui`: the simulators on loopback plus Dagster on the local instance.

    python -m pipelines.local demo   # materialize every asset once, print a summary
    python -m pipelines.local ui     # Dagster webserver + daemon with the simulators running
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from sqlalchemy import text

from pipelines.crm_events.receiver import EVENTS_PATH
from resources.store.database import PROJECT_ROOT, get_database
from simulators.serving import ProcessServer, free_port

ONEC_USER = "Администратор"


def _port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_port()


def _dagster_home() -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / "var" / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(PROJECT_ROOT / "config" / "dagster.yaml", home / "dagster.yaml")
    return home


def _start_simulators(size: int) -> tuple[list[ProcessServer], dict[str, str]]:
    """Both simulators with a fresh random 1C password, and the env that points ZETA at them."""
    password = secrets.token_urlsafe(12)
    env = {"ONEC_PASSWORD": password}
    onec = ProcessServer("simulators.onec", ["--size", str(size), "--user", ONEC_USER],
                         port=_port(8081), env=env).start()
    servers = [onec]
    env.update(ONEC_BASE_URL=f"{onec.url}/zeta", ONEC_USERNAME=ONEC_USER)
    # The seed README's examples use SKU ART001 at 45 000 KZT: give the demo base that product.
    httpx.post(f"{onec.url}/_admin/mutate", timeout=30, json={"ops": [
        {"op": "set_article", "index": 0, "article": "ART001"},
        {"op": "mark_deleted", "index": 0, "flag": False},
        {"op": "set_price", "index": 0, "price_type": "Розничная", "value": 45000},
        {"op": "set_stock", "index": 0, "warehouse": 0, "qty": 4},
        {"op": "set_stock", "index": 0, "warehouse": 1, "qty": 2},
        {"op": "set_stock", "index": 0, "warehouse": 2, "qty": 1},
    ]}).raise_for_status()
    try:
        b24 = ProcessServer("simulators.bitrix24", [], port=_port(8082)).start()
        servers.append(b24)
        env["BITRIX24_WEBHOOK_URL"] = f"{b24.url}/rest/1/zetademo/"
    except Exception as exc:  # the catalogue demo does not need Bitrix24
        print(f"Bitrix24 simulator not started: {exc}")
    return servers, env


def _start_event_receiver(servers: list[ProcessServer], env: dict[str, str]) -> None:
    """The CRM event receiver, with the Bitrix24 simulator's outgoing webhook pointed at it, so
    stage changes made in the simulator reach `crm_events_sensor` in the UI."""
    b24 = next((s for s in servers if s.module == "simulators.bitrix24"), None)
    if b24 is None:
        return
    token = secrets.token_urlsafe(24)
    try:
        receiver = ProcessServer("pipelines.crm_events", [], port=_port(8090),
                                 env={**env, "BITRIX24_EVENT_TOKEN": token}).start()
    except Exception as exc:  # the rest of the UI works without it
        print(f"CRM event receiver not started: {exc}")
        return
    servers.append(receiver)
    try:
        httpx.post(f"{b24.url}/_admin/events", timeout=10, json={
            "handler_url": f"{receiver.url}{EVENTS_PATH}", "application_token": token}).raise_for_status()
    except httpx.HTTPError as exc:
        print(f"Bitrix24 simulator's outgoing webhook not set: {exc}")


def _summary() -> None:
    db = get_database()
    with db.read() as conn:
        total, active, in_stock = conn.execute(text(
            "SELECT COUNT(*), SUM(CASE WHEN is_active THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN is_active AND stock > 0 THEN 1 ELSE 0 END) FROM products")).one()
        sample = conn.execute(text(
            "SELECT sku, name, price, currency, stock FROM products WHERE sku = 'ART001'")).one_or_none()
        warehouses = conn.execute(text(
            "SELECT warehouse, quantity FROM product_stock WHERE sku = :s ORDER BY warehouse"),
            {"s": sample.sku if sample else ""}).all()
    print("\nZETA Sync demo — catalogue synced into", db.safe_url)
    print(f"  products synced: {total}   active: {active or 0}   in stock: {in_stock or 0}")
    if sample:
        print(f"  lookup {sample.sku!r}: {sample.name} — {sample.price:,.0f} {sample.currency}, stock {sample.stock:g}")
        for wh, qty in warehouses:
            print(f"      {wh}: {qty:g}")


def demo(size: int) -> int:
    home = _dagster_home()
    servers, env = _start_simulators(size)
    try:
        cmd = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "pipelines.definitions",
               "--select", "*"]
        print("$ dagster asset materialize -m pipelines.definitions --select '*'")
        proc = subprocess.run(cmd, env={**os.environ, **env, "DAGSTER_HOME": str(home)}, cwd=PROJECT_ROOT)
        if proc.returncode != 0:
            print(f"materialization failed with exit code {proc.returncode}")
            return proc.returncode
        _summary()
        return 0
    finally:
        for server in servers:
            server.stop()


def ui(size: int, port: int) -> int:
    home = _dagster_home()
    servers, env = _start_simulators(size)
    _start_event_receiver(servers, env)
    print(f"simulators and the CRM event receiver: {', '.join(s.url for s in servers)}; Dagster UI on http://127.0.0.1:{port}")
    cmd = [sys.executable, "-m", "dagster", "dev", "-m", "pipelines.definitions", "-p", str(port)]

    def _default_sigint() -> None:  # dagster dev must see Ctrl-C even when started from a script
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen(cmd, env={**os.environ, **env, "DAGSTER_HOME": str(home)}, cwd=PROJECT_ROOT,
                            preexec_fn=_default_sigint)

    def _terminate(_signum: int, _frame: object) -> None:  # `kill`/`timeout` stop it like Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        return proc.wait(timeout=30)
    finally:
        for server in servers:
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["demo", "ui"])
    parser.add_argument("--size", type=int, default=2000, help="products in the 1C simulator")
    parser.add_argument("--port", type=int, default=3000, help="Dagster UI port")
    args = parser.parse_args()
    return demo(args.size) if args.command == "demo" else ui(args.size, args.port)


if __name__ == "__main__":
    raise SystemExit(main())
