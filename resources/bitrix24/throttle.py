"""Client-side limits for one Bitrix24 portal: a request leaky bucket and per-method time budgets.

The portal counts every HTTP request in a leaky bucket (2/s drain, refuse above 50, keyed by
source IP) and, separately, the execution time of each method over ten minutes (reference §4).
Hitting either costs a refused call and a back-off, so the client keeps itself under both:

* requests pass a GCRA leaky bucket with the server's drain rate and a smaller capacity
  (`burst`), so the server's counter never reaches its threshold even after a burst;
* every response's `time.operating` / `operating_reset_at` (top level and each batch
  `result_time`) is recorded per method; a method above `slow_ratio` of `operating_limit` is
  delayed, and a method that got `OPERATION_TIME_LIMIT` is paused until its reset while other
  methods keep going.

Thread-safe: waits are reserved under a lock and slept outside it. Clock and sleep are
injectable so tests advance virtual time instead of waiting. The clock must be Unix time
because `operating_reset_at` is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

FALLBACK_PAUSE = 60.0  # first pause after OPERATION_TIME_LIMIT when no reset time is known
MAX_FALLBACK_PAUSE = 300.0  # the fixed ban some portals apply
MAX_RESET_WAIT = 600.0  # the window is ten minutes: a reset further away is not believed
RESET_MARGIN = 1.0  # seconds added after a reset time (clock skew, bucket granularity)
HEADROOM = 10  # the client's bucket is the portal's `burst` less this: the server never sees a full bucket


@dataclass
class MethodBudget:
    """What the server last told us about one method's execution-time budget."""

    operating: float = 0.0
    reset_at: float | None = None
    observed_at: float = 0.0
    blocked_until: float = 0.0
    slow_until: float = 0.0
    strikes: int = 0  # consecutive OPERATION_TIME_LIMIT without a known reset time


class Throttle:
    """Leaky bucket for requests plus per-method operating-time gates for one portal."""

    def __init__(self, rate_per_second: float = 2.0, burst: int = 40, *,
                 operating_limit: float = 420.0, slow_ratio: float = 0.8, safety_margin: float = 5.0,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("rate_per_second must be > 0 and burst >= 1")
        self.rate_per_second = rate_per_second
        self.burst = burst
        self.operating_limit = operating_limit
        self.slow_ratio = slow_ratio
        self.safety_margin = safety_margin
        self.clock = clock
        self.sleep = sleep
        self._interval = 1.0 / rate_per_second
        self._tolerance = (burst - 1) * self._interval
        self._tat = 0.0  # theoretical arrival time of the next request (GCRA)
        self._lock = threading.Lock()
        self._methods: dict[str, MethodBudget] = {}

    @classmethod
    def for_portal(cls, rate_per_second: float, burst: int, headroom: int = HEADROOM, **kw: Any) -> Throttle:
        """The throttle for a portal whose bucket refuses above `burst`: `headroom` requests below it."""
        return cls(rate_per_second, max(1, burst - headroom), **kw)

    # ---- request bucket ------------------------------------------------------------------------
    def _reserve_slot(self) -> float:
        with self._lock:
            now = self.clock()
            tat = max(self._tat, now)
            allowed_at = tat - self._tolerance
            self._tat = tat + self._interval
            return max(0.0, allowed_at - now)

    def penalize(self) -> None:
        """The server refused with QUERY_LIMIT_EXCEEDED: someone else shares the IP's budget,
        so act as if our bucket were full and let it drain before the next request."""
        with self._lock:
            now = self.clock()
            self._tat = max(self._tat, now + self._tolerance + self._interval)

    # ---- method budgets -----------------------------------------------------------------------
    def _budget(self, method: str) -> MethodBudget:
        key = method.lower()
        budget = self._methods.get(key)
        if budget is None:
            budget = self._methods[key] = MethodBudget()
        return budget

    def budget(self, method: str) -> MethodBudget:
        """A copy of the recorded budget of `method` (for tests and diagnostics)."""
        with self._lock:
            b = self._budget(method)
            return MethodBudget(b.operating, b.reset_at, b.observed_at, b.blocked_until, b.slow_until, b.strikes)

    def observe(self, method: str, time_info: Mapping[str, Any] | None) -> None:
        """Record `time.operating` / `operating_reset_at` of a successful response of `method`."""
        if not isinstance(time_info, Mapping):
            return
        operating = _as_float(time_info.get("operating"))
        reset_at = _as_float(time_info.get("operating_reset_at"))
        if operating is None and reset_at is None:
            return
        with self._lock:
            now = self.clock()
            b = self._budget(method)
            b.observed_at = now
            b.strikes = 0
            if operating is not None:
                b.operating = operating
            if reset_at is not None:
                b.reset_at = min(reset_at, now + MAX_RESET_WAIT)
            b.slow_until = now + self._slow_delay(b, now)

    def _slow_delay(self, b: MethodBudget, now: float) -> float:
        """Delay before the next call of a method whose budget is nearly used up."""
        limit = self.operating_limit
        threshold = self.slow_ratio * limit
        if b.operating < threshold or limit <= 0:
            return 0.0
        to_reset = (b.reset_at - now + RESET_MARGIN) if b.reset_at and b.reset_at > now else FALLBACK_PAUSE
        if b.operating >= limit - self.safety_margin:
            return to_reset
        share = (b.operating - threshold) / max(limit - self.safety_margin - threshold, 1e-9)
        return min(to_reset, share * to_reset)

    def block(self, method: str, reset_at: float | None = None) -> float:
        """`method` got OPERATION_TIME_LIMIT: pause it until its reset; return that Unix time.

        The reset is the one given, else the last `operating_reset_at` seen for the method if
        still ahead, else 60 s doubling per consecutive refusal up to 300 s (the fixed ban).
        """
        with self._lock:
            now = self.clock()
            b = self._budget(method)
            known = reset_at if reset_at is not None else b.reset_at
            if known is not None and now < known <= now + MAX_RESET_WAIT:
                until = known + RESET_MARGIN
                b.strikes = 0
            else:
                until = now + min(MAX_FALLBACK_PAUSE, FALLBACK_PAUSE * 2 ** b.strikes)
                b.strikes += 1
            b.blocked_until = max(b.blocked_until, until)
            return b.blocked_until

    def method_wait(self, methods: Iterable[str]) -> float:
        """Seconds until every method in `methods` may be called."""
        with self._lock:
            now = self.clock()
            gate = 0.0
            for m in methods:
                b = self._methods.get(m.lower())
                if b is not None:
                    gate = max(gate, b.blocked_until - now, b.slow_until - now)
            return max(0.0, gate)

    # ---- the one entry point -------------------------------------------------------------------
    def acquire(self, methods: Iterable[str] = ()) -> float:
        """Block until the methods' gates are open and a request slot is free; return seconds waited.

        The gates are waited first so a paused method does not hold a request slot meanwhile.
        """
        names = list(methods)
        waited = 0.0
        while True:
            gate = self.method_wait(names)
            if gate <= 0:
                break
            self.sleep(gate)
            waited += gate
        delay = self._reserve_slot()
        if delay > 0:
            self.sleep(delay)
            waited += delay
        return waited


def _as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


__all__ = ["MethodBudget", "Throttle"]
