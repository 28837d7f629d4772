"""The two Bitrix24 limiters: the per-portal leaky bucket and the per-method operating limit.

Both read an injectable clock (seconds, `time.monotonic` by default) so tests advance time
instead of sleeping, and the operating limiter is fed *simulated* execution times
(`LimitConfig.operating_cost_seconds`) so a 480 s budget can be exhausted in milliseconds.

- Leaky bucket [D limits.md]: each request adds 1, the level drains at `drain_per_second`; a
  request that would lift the level above `burst` is refused (503 QUERY_LIMIT_EXCEEDED, no
  Retry-After) and not counted. A batch is one request.
- Operating limit [C loadlimiter.php]: per (webhook, method) execution seconds in 10 one-minute
  buckets, calls ≤ 0.1 s not counted; once the sum exceeds the limit the method is blocked
  (429 OPERATION_TIME_LIMIT) until buckets age out — or, with `operating_ban_seconds`, for a fixed
  ban (newer SRC: 300 s, buckets cleared). `operating_reset_at` is the oldest bucket's expiry or
  the ban's end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

BUCKET_SECONDS = 60
BUCKET_COUNT = 10


@dataclass
class LimitConfig:
    """Limiter settings; every field can be changed at run time via POST /_admin/limits."""

    burst: float = 50
    drain_per_second: float = 2.0
    bucket_enabled: bool = True
    operating_enabled: bool = True
    operating_limit_seconds: float = 480.0
    operating_ban_seconds: float | None = None
    operating_min_counted_seconds: float = 0.1
    operating_cost_seconds: dict[str, float] = field(default_factory=dict)  # method or "*" → seconds
    batch_accounting: Literal["nested", "batch"] = "nested"
    batch_weight: float = 0.5

    def update(self, changes: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown limit settings: {sorted(unknown)}")
        for name, value in changes.items():
            setattr(self, name, dict(value) if name == "operating_cost_seconds" else value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def cost_of(self, method: str) -> float | None:
        """Simulated execution seconds for a method, None to use the measured time."""
        costs = self.operating_cost_seconds
        value = costs.get(method, costs.get("*"))
        return None if value is None else float(value)


class LeakyBucket:
    """Request-rate limiter keyed by source address (one portal, several integrations)."""

    def __init__(self, config: LimitConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        self._levels: dict[str, tuple[float, float]] = {}

    def _drained(self, key: str, now: float) -> float:
        level, at = self._levels.get(key, (0.0, now))
        return max(0.0, level - max(0.0, now - at) * self.config.drain_per_second)

    def hit(self, key: str) -> bool:
        """Count one request; False when it must be refused."""
        if not self.config.bucket_enabled:
            return True
        with self._lock:
            now = self.clock()
            level = self._drained(key, now)
            if level + 1 > self.config.burst:
                self._levels[key] = (level, now)
                return False
            self._levels[key] = (level + 1, now)
            return True

    def levels(self) -> dict[str, float]:
        with self._lock:
            now = self.clock()
            return {k: round(self._drained(k, now), 3) for k in self._levels}

    def reset(self) -> None:
        with self._lock:
            self._levels.clear()


@dataclass
class _Usage:
    buckets: dict[int, list[float]] = field(default_factory=dict)  # bucket no → [seconds, expires_at]
    ban_until: float | None = None


class OperatingLimiter:
    """Per (webhook, method) accumulated execution time, see the module docstring."""

    def __init__(self, config: LimitConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        self._usage: dict[tuple[str, str], _Usage] = {}

    def _live(self, usage: _Usage, now: float) -> dict[int, list[float]]:
        current = int(now // BUCKET_SECONDS)
        for number in [n for n in usage.buckets if n <= current - BUCKET_COUNT]:
            del usage.buckets[number]
        return usage.buckets

    def blocked(self, webhook: str, method: str) -> bool:
        """LoadLimiter::is — True while banned or over the limit (may start a ban)."""
        if not self.config.operating_enabled:
            return False
        with self._lock:
            now = self.clock()
            usage = self._usage.get((webhook, method))
            if usage is None:
                return False
            if usage.ban_until is not None:
                if now < usage.ban_until:
                    return True
                usage.ban_until = None
            total = sum(b[0] for b in self._live(usage, now).values())
            if total > self.config.operating_limit_seconds:
                if self.config.operating_ban_seconds:
                    usage.ban_until = now + float(self.config.operating_ban_seconds)
                    usage.buckets.clear()
                return True
            return False

    def register(self, webhook: str, method: str, seconds: float) -> None:
        """Add one call's execution time (ignored at or below the minimal counted time)."""
        if not self.config.operating_enabled or seconds <= self.config.operating_min_counted_seconds:
            return
        with self._lock:
            now = self.clock()
            usage = self._usage.setdefault((webhook, method), _Usage())
            number = int(now // BUCKET_SECONDS)
            bucket = self._live(usage, now).setdefault(number, [0.0, now + BUCKET_SECONDS * BUCKET_COUNT])
            bucket[0] += seconds

    def operating(self, webhook: str, method: str) -> float:
        with self._lock:
            usage = self._usage.get((webhook, method))
            if usage is None:
                return 0.0
            return float(sum(b[0] for b in self._live(usage, self.clock()).values()))

    def reset_at(self, webhook: str, method: str) -> float | None:
        """Clock time when the oldest counted part expires (or the ban ends); None if nothing."""
        with self._lock:
            now = self.clock()
            usage = self._usage.get((webhook, method))
            if usage is None:
                return None
            if usage.ban_until is not None and usage.ban_until > now:
                return usage.ban_until
            live = self._live(usage, now)
            for number in sorted(live):
                if live[number][0] > 0:
                    return live[number][1]
            return None

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            now = self.clock()
            out: dict[str, dict[str, Any]] = {}
            for (webhook, method), usage in self._usage.items():
                live = self._live(usage, now)
                out[f"{webhook} {method}"] = {
                    "operating": round(sum(b[0] for b in live.values()), 4),
                    "banned_for_seconds": round(usage.ban_until - now, 3)
                    if usage.ban_until and usage.ban_until > now else None,
                }
            return out

    def reset(self) -> None:
        with self._lock:
            self._usage.clear()
