"""Fault injection: the failures a Bitrix24 client meets in production, on demand.

`FaultConfig` is set at construction and changed at run time with `POST /_admin/faults` (JSON,
partial). Rate-based faults draw from one seeded RNG so a run is reproducible; `methods` limits
them to some REST methods. The interesting ones for idempotency tests commit the write first and
then hide the outcome: `lose_create_response_rate` (connection dropped after the response line,
or a reply slower than the client's timeout), `error_after_execute`, `html_batch_rate`, and an
interruption past `max_execution_seconds`.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

CREATE_METHODS = frozenset({
    "crm.lead.add", "crm.contact.add", "crm.deal.add", "crm.item.add", "crm.timeline.comment.add",
    "crm.activity.todo.add", "tasks.task.add",
})


@dataclass
class FaultConfig:
    """Switches and rates; all off by default (a healthy cloud portal over plain loopback HTTP)."""

    seed: int = 0
    # random server errors: "500" JSON INTERNAL_SERVER_ERROR, "502"/"504" HTML from the front layer
    error_rate: float = 0.0
    error_kinds: list[str] = field(default_factory=lambda: ["500", "502", "504"])
    error_after_execute: bool = False  # True: the call runs (and commits) before the error is sent
    truncated_json_rate: float = 0.0  # 200 with the JSON body cut in half (call executed)
    html_batch_rate: float = 0.0  # batch answers 200 text/html (commands executed)
    lose_create_response_rate: float = 0.0  # create commits, then the client never gets the reply
    lose_create_mode: Literal["drop", "timeout"] = "drop"
    lose_create_timeout_seconds: float = 65.0  # "timeout" mode: reply only after this long
    latency_seconds: float = 0.0  # real sleep added to every REST call
    latency_by_method: dict[str, float] = field(default_factory=dict)
    max_execution_seconds: float = 60.0  # longer calls are interrupted → 504 HTML (write kept)
    auth_error_status: int = 401  # status of OAuthException-style errors: 401 (SRC) or 403 (DOCS)
    overload: bool = False  # OVERLOAD_LIMIT «REST API is blocked due to overload.»
    expired: bool = False  # webhook expired/deactivated → INVALID_CREDENTIALS
    rest_unavailable: bool = False  # ACCESS_DENIED «REST is available only by subscription.»
    domain_moved_to: str | None = None  # e.g. "http://localhost:8082": other hosts get a redirect
    domain_moved_status: int = 302
    scopes: dict[str, list[str]] = field(default_factory=dict)  # "1/zetademo" → scopes override
    https_required: bool = False  # INVALID_REQUEST «Https required.» for plain HTTP
    methods: list[str] | None = None  # rate-based faults only for these methods (None = all)

    def update(self, changes: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        for name, value in changes.items():
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultInjector:
    """Holds the live FaultConfig and its seeded RNG."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.initial = FaultConfig(**(config or FaultConfig()).as_dict())
        self.config = config or FaultConfig()
        self._lock = threading.Lock()
        self._rng = random.Random(self.config.seed)

    def configure(self, changes: dict[str, Any], *, reset: bool = False) -> FaultConfig:
        with self._lock:
            if reset:
                self.config = FaultConfig(**self.initial.as_dict())
            self.config.update(changes)
            self._rng = random.Random(self.config.seed)
            return self.config

    def restore(self) -> None:
        self.configure({}, reset=True)

    def applies(self, method: str) -> bool:
        allowed = self.config.methods
        return allowed is None or method in allowed

    def roll(self, rate: float, method: str) -> bool:
        """One Bernoulli draw for a rate-based fault on this method."""
        if rate <= 0 or not self.applies(method):
            return False
        with self._lock:
            return self._rng.random() < rate

    def pick(self, choices: list[str]) -> str:
        with self._lock:
            return self._rng.choice(choices) if choices else "500"

    def latency_for(self, method: str) -> float:
        config = self.config
        return float(config.latency_seconds) + float(config.latency_by_method.get(method, 0.0))


def front_error_page(status: int) -> str:
    """The nginx page the cloud front layer serves on 502/504."""
    title = {502: "502 Bad Gateway", 503: "503 Service Temporarily Unavailable",
             504: "504 Gateway Time-out"}.get(status, f"{status} Error")
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
            "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


def php_error_page() -> str:
    """An HTML body instead of JSON, as seen on batch calls during portal trouble."""
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Битрикс24</title></head><body>"
            "<h1>Сервис временно недоступен</h1><p>Fatal error: Allowed memory size exhausted in "
            "/home/bitrix/www/bitrix/modules/rest/classes/general/rest.php</p></body></html>")
