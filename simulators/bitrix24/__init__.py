"""Bitrix24 REST (incoming webhook) simulator for tests, the demo and benchmarks.

`create_app()` builds the ASGI app; `python -m simulators.bitrix24` serves it. The behaviour
follows /work/shared/reference/bitrix24.md §10 (envelopes, limits, batch, quirks, faults, events).
"""

from simulators.bitrix24.app import BitrixSimulator, create_app
from simulators.bitrix24.faults import FaultConfig
from simulators.bitrix24.limits import LimitConfig
from simulators.bitrix24.store import CrmStore

__all__ = ["BitrixSimulator", "CrmStore", "FaultConfig", "LimitConfig", "create_app"]
