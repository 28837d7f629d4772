"""Outgoing events (outgoing webhook): ONCRM<ENTITY>ADD/UPDATE/DELETE posted to a handler URL.

Like Bitrix's queue server [D events/index.md; C rest/lib/event/sender.php]: a form-encoded POST
per changed object carrying only its id, `ts` and `auth[…]` incl. the handler's
`application_token`; delivered from a background thread so the REST call is not slowed; **no
retry** when the handler fails. `wrong_token` sends a different token for negative tests.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any
from urllib.parse import urlencode

import httpx


@dataclass
class EventConfig:
    """Outgoing-webhook settings; change at run time with POST /_admin/events."""

    handler_url: str | None = None
    application_token: str = "zsimtoken0a1b2c3d4e5f6g7h8i9j0k1l"
    event_handler_id: str = "975"
    events: list[str] | None = None  # upper-case names to send; None = all CRM events
    wrong_token: bool = False
    timeout_seconds: float = 5.0
    domain: str = "zeta-demo.bitrix24.kz"
    member_id: str = "d897063e1ce7c5eb9f04b9751eef5915"

    def update(self, changes: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown event settings: {sorted(unknown)}")
        for name, value in changes.items():
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Delivery:
    """One attempted POST (kept for /_admin/events and test assertions)."""

    event: str
    id: int
    ts: int
    status: int | None = None
    error: str | None = None
    token_sent: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EventDispatcher:
    """Queue + worker thread that delivers events once each."""

    config: EventConfig = field(default_factory=EventConfig)
    wall_clock: Callable[[], float] = time.time
    deliveries: list[Delivery] = field(default_factory=list)
    _queue: queue.Queue[tuple[str, int, int] | None] = field(default_factory=queue.Queue)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def emit(self, event: str, entity_id: int) -> None:
        """Queue an event if a handler is configured and the event is enabled."""
        config = self.config
        if not config.handler_url:
            return
        name = event.upper()
        if config.events is not None and name not in {e.upper() for e in config.events}:
            return
        self._ensure_worker()
        self._queue.put((name, entity_id, int(self.wall_clock())))

    def payload(self, event: str, entity_id: int, ts: int) -> tuple[str, str]:
        """The form body Bitrix sends, and the token it carries."""
        config = self.config
        token = config.application_token if not config.wrong_token else "wrong" + config.application_token[5:]
        pairs = [
            ("event", event), ("event_handler_id", str(config.event_handler_id)),
            ("data[FIELDS][ID]", str(entity_id)), ("ts", str(ts)),
            ("auth[domain]", config.domain), ("auth[client_endpoint]", f"https://{config.domain}/rest/"),
            ("auth[server_endpoint]", "https://oauth.bitrix.info/rest/"), ("auth[member_id]", config.member_id),
            ("auth[application_token]", token),
        ]
        return urlencode(pairs), token

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="b24sim-events", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        with httpx.Client() as client:
            while True:
                item = self._queue.get()
                try:
                    if item is None:
                        return
                    self._deliver(client, *item)
                finally:
                    self._queue.task_done()

    def _deliver(self, client: httpx.Client, event: str, entity_id: int, ts: int) -> None:
        body, token = self.payload(event, entity_id, ts)
        record = Delivery(event=event, id=entity_id, ts=ts, token_sent=token)
        url = self.config.handler_url
        try:
            if not url:
                raise RuntimeError("handler URL was removed")
            response = client.post(url, content=body.encode(), timeout=self.config.timeout_seconds,
                                   headers={"Content-Type": "application/x-www-form-urlencoded",
                                            "User-Agent": "Bitrix24 Webhook Engine"})
            record.status = response.status_code
        except Exception as exc:  # no retry: the failure is only recorded
            record.error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.deliveries.append(record)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event was attempted; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {**self.config.as_dict(), "pending": self._queue.unfinished_tasks,
                    "deliveries": [d.as_dict() for d in self.deliveries]}

    def clear(self) -> None:
        with self._lock:
            self.deliveries.clear()

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=5)
