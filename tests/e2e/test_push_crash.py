"""A push process killed mid-run (SIGKILL after some creates) and run again doubles nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from resources.store import outbox
from resources.store.database import PROJECT_ROOT
from tests.e2e.push_fixtures import (
    assert_delivered_exactly_once,
    drain,
    make_leads,
    make_orders,
    running_stack,
)

pytestmark = pytest.mark.e2e


def _start_push(stack, config, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.push", "--chunk-size", "40", "--lease-seconds", "2",
         "--log-level", "WARNING", *extra],
        cwd=PROJECT_ROOT, env={**os.environ, **stack.env(config)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_killed_push_process_then_rerun_doubles_nothing(tmp_path):
    # a slow portal (burst 12, 4 requests/s) so the run is still busy when it is killed
    with running_stack(tmp_path, bitrix_burst=12, bitrix_drain=4.0) as stack:
        orders = make_orders(stack, 120)
        leads, _ = make_leads(stack, 120)
        config = stack.write_config()
        stack.bitrix_faults(seed=2, lose_create_response_rate=0.05)
        proc = _start_push(stack, config)
        deadline = time.monotonic() + 120
        try:
            while True:
                counts = stack.bitrix_state()["counts"]
                if counts["deals"] + counts["leads"] >= 40 and len(stack.onec_documents()) >= 20:
                    break
                assert proc.poll() is None, f"the push ended before it was killed: {proc.communicate()}"
                assert time.monotonic() < deadline, "the push made no progress"
                time.sleep(0.05)
        finally:
            proc.kill()
            proc.wait(timeout=30)
        assert proc.returncode == -9
        killed_at = outbox.counts(stack.db)
        assert killed_at[outbox.IN_PROGRESS] > 0, f"nothing was in flight when the push was killed: {killed_at}"
        assert killed_at[outbox.DONE] < len(orders) + len(leads)
        before = stack.bitrix_state()["counts"]

        # the next runs take the killed run's rows over once its lease (2 s) has expired
        rerun = _start_push(stack, config)
        out, err = rerun.communicate(timeout=300)
        assert rerun.returncode == 0, err.decode()[-2000:]
        stack.bitrix_faults()
        drain(stack.push, stack.db, pause=0.3)
        assert_delivered_exactly_once(stack, orders, leads)
        after = stack.bitrix_state()["counts"]
        assert after["deals"] + after["leads"] > before["deals"] + before["leads"]
