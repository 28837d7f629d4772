"""The ASGI app: URL routing, webhook auth, envelopes, limiters, faults and admin endpoints.

Request path, in the order the real stack applies it:
1. front layer — domain-move redirect, leaky bucket (503), random 502/504 pages;
2. `/rest/<user_id>/<code>/<method>[.json]` parsing (no numeric user id → «Method not found!»);
3. method lookup (404 before any auth check, as in `CRestServer::process`);
4. webhook auth (`APAuth\\Auth`): https → credentials → scope → hold (OVERLOAD_LIMIT) → plan;
5. operating limit (429) and execution, with optional latency, 60 s interruption, simulated cost;
6. envelope `{"result", ["total", "next"], "time"}` or `{"error", "error_description"}`,
   shaped like PHP's json_encode (empty maps → `[]`), then output faults.
Admin endpoints under `/_admin/` need no auth and are not rate limited.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import orjson
from starlette.requests import Request

from simulators.bitrix24.batch import php_parse_url, run_batch
from simulators.bitrix24.errors import METHOD_NOT_FOUND, RestError, auth_error
from simulators.bitrix24.events import EventConfig, EventDispatcher
from simulators.bitrix24.faults import (
    CREATE_METHODS,
    FaultConfig,
    FaultInjector,
    front_error_page,
    php_error_page,
)
from simulators.bitrix24.limits import LeakyBucket, LimitConfig, OperatingLimiter
from simulators.bitrix24.methods import REGISTRY, CallContext, MethodSpec, Reply
from simulators.bitrix24.params import Params, as_list, decode_request, php_int, php_shape
from simulators.bitrix24.store import CrmStore
from simulators.serving import DropConnection, hide_drop_tracebacks

DEFAULT_WEBHOOKS: dict[tuple[int, str], dict[str, Any]] = {(1, "zetademo"): {"scopes": ["crm", "task", "user"]}}
SCOPE_ALTERNATIVES = {"user": {"user", "user_brief", "user_basic"}}
BATCH_SPEC = MethodSpec("batch", "", lambda ctx, p: Reply(None), params="anycase")
JSON_TYPE = "application/json; charset=utf-8"
HTML_TYPE = "text/html; charset=UTF-8"


@dataclass
class Webhook:
    """An incoming webhook: `/rest/<user_id>/<code>/`."""

    user_id: int
    code: str
    scopes: list[str]
    expires_at: float | None = None

    @property
    def key(self) -> str:
        return f"{self.user_id}/{self.code}"

    def as_dict(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "code": self.code, "scopes": list(self.scopes),
                "expires_at": self.expires_at, "base": f"/rest/{self.user_id}/{self.code}/"}


@dataclass
class HttpReply:
    """What to send: status, body, type; `drop` cuts the connection after the head."""

    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    delay: float = 0.0


@dataclass
class Stats:
    """Counters for /_admin/stats."""

    requests: int = 0
    rate_limited_503: int = 0
    operation_limited_429: int = 0
    operation_limited_in_batch: int = 0
    redirects: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    methods: Counter[str] = field(default_factory=Counter)
    batch_commands: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "rate_limited_503": self.rate_limited_503,
                "operation_limited_429": self.operation_limited_429,
                "operation_limited_in_batch": self.operation_limited_in_batch, "redirects": self.redirects,
                "by_status": dict(self.by_status), "methods": dict(self.methods),
                "batch_commands": dict(self.batch_commands), "faults": dict(self.faults)}


@dataclass
class Outcome:
    """One executed call in PHP result form, plus its (simulated or measured) execution time."""

    payload: dict[str, Any]
    processing: float


def dumps(payload: Any) -> bytes:
    return orjson.dumps(php_shape(payload))


def _parse_webhooks(raw: Mapping[Any, Mapping[str, Any]] | list[dict[str, Any]]) -> dict[str, Webhook]:
    hooks: dict[str, Webhook] = {}
    items: list[tuple[Any, Mapping[str, Any]]]
    items = [(None, h) for h in raw] if isinstance(raw, list) else list(raw.items())
    for key, spec in items:
        if key is None:
            user_id, code = int(spec["user_id"]), str(spec["code"])
        elif isinstance(key, str):
            uid, code = key.split("/", 1)
            user_id = int(uid)
        else:
            user_id, code = int(key[0]), str(key[1])
        hook = Webhook(user_id, code, list(spec.get("scopes", ["crm", "task", "user"])), spec.get("expires_at"))
        hooks[hook.key] = hook
    return hooks


class BitrixSimulator:
    """The ASGI application; attributes are public so in-process tests can poke the state."""

    def __init__(self, store: CrmStore | None = None, *,
                 webhooks: Mapping[Any, Mapping[str, Any]] | list[dict[str, Any]] | None = None,
                 rate_limit: tuple[float, float] = (50, 2.0), limits: LimitConfig | None = None,
                 faults: FaultConfig | None = None, events: EventConfig | None = None,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time,
                 portal_domain: str = "zeta-demo.bitrix24.kz", tz_offset_hours: float = 5.0) -> None:
        self.clock = clock
        self.wall_clock = wall_clock
        self.tz = timezone(timedelta(hours=tz_offset_hours))
        self.store = store or CrmStore(now=wall_clock, tz_offset_hours=tz_offset_hours)
        self.webhooks = _parse_webhooks(webhooks if webhooks is not None else DEFAULT_WEBHOOKS)
        self._initial_webhooks = copy.deepcopy(self.webhooks)
        if limits is None:
            limits = LimitConfig(burst=rate_limit[0], drain_per_second=rate_limit[1])
        self.limits = limits
        self._initial_limits = LimitConfig(**copy.deepcopy(limits.as_dict()))
        self.bucket = LeakyBucket(self.limits, clock)
        self.operating = OperatingLimiter(self.limits, clock)
        self.faults = FaultInjector(faults)
        self.events = EventDispatcher(events or EventConfig(domain=portal_domain), wall_clock)
        self._initial_events = EventConfig(**self.events.config.as_dict())
        self.portal_domain = portal_domain
        self.stats = Stats()
        hide_drop_tracebacks()

    # --- ASGI ----------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.events.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        path: str = scope["path"]
        if path.startswith("/_admin"):
            reply = await self._admin(request)
        elif path.startswith("/rest/"):
            reply = await self._rest(request)
        else:
            reply = HttpReply(404, b"<html><body><h1>404 Not Found</h1></body></html>", HTML_TYPE)
        await self._send(reply, send)

    async def _send(self, reply: HttpReply, send: Callable[..., Any]) -> None:
        if reply.delay > 0:
            await asyncio.sleep(reply.delay)
        headers = [(b"content-type", reply.content_type.encode()), (b"content-length", str(len(reply.body)).encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        if reply.drop:
            raise DropConnection("simulated loss of the response after the write was committed")
        await send({"type": "http.response.body", "body": reply.body})

    # --- REST ----------------------------------------------------------------------------------

    def _error(self, error: RestError) -> HttpReply:
        status = error.status if error.status is not None else int(self.faults.config.auth_error_status)
        return HttpReply(status, dumps(error.body()))

    async def _rest(self, request: Request) -> HttpReply:
        reply = await self._rest_inner(request)
        self.stats.by_status[str(reply.status)] += 1
        return reply

    def _redirect(self, request: Request) -> HttpReply | None:
        moved_to = self.faults.config.domain_moved_to
        if not moved_to:
            return None
        target = urlsplit(moved_to if "//" in moved_to else f"https://{moved_to}")
        if request.headers.get("host", "").lower() == target.netloc.lower():
            return None
        location = f"{target.scheme}://{target.netloc}{target.path.rstrip('/')}{request.url.path}"
        if request.url.query:
            location += f"?{request.url.query}"
        self.stats.redirects += 1
        status = int(self.faults.config.domain_moved_status)
        return HttpReply(status, b"", HTML_TYPE, {"Location": location})

    def _authenticate(self, request: Request, user_id: str | None, code: str | None, spec: MethodSpec) -> Webhook:
        config = self.faults.config
        if user_id is None or code is None:
            raise auth_error("NO_AUTH_FOUND", "Wrong authorization data")
        forwarded = request.headers.get("x-forwarded-proto", "").lower()
        if config.https_required and request.url.scheme != "https" and forwarded != "https":
            raise RestError("INVALID_REQUEST", "Https required.", 400)
        hook = self.webhooks.get(f"{int(user_id)}/{code}")
        expired = hook is not None and (config.expired or (
            hook.expires_at is not None and self.wall_clock() > float(hook.expires_at)))
        if hook is None or expired or int(user_id) not in self.store.users:
            raise auth_error("INVALID_CREDENTIALS", "Invalid request credentials")
        if not self._scope_ok(hook, spec):
            raise auth_error("insufficient_scope",
                             "The request requires higher privileges than provided by the webhook token")
        if config.overload:
            raise auth_error("OVERLOAD_LIMIT", "REST API is blocked due to overload.")
        if config.rest_unavailable:
            raise auth_error("ACCESS_DENIED", "REST is available only by subscription.")
        return hook

    def _scope_ok(self, hook: Webhook, spec: MethodSpec) -> bool:
        """The webhook's scopes (as the fault config may override them) allow the method."""
        scopes = set(self.faults.config.scopes.get(hook.key, hook.scopes))
        return not spec.scope or bool(SCOPE_ALTERNATIVES.get(spec.scope, {spec.scope}) & scopes)

    def _fault_reply(self, kind: str) -> HttpReply:
        self.stats.faults[f"error_{kind}"] += 1
        if kind in ("502", "503", "504"):
            return HttpReply(int(kind), front_error_page(int(kind)).encode(), HTML_TYPE)
        return HttpReply(500, dumps({"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"}))

    async def _rest_inner(self, request: Request) -> HttpReply:
        started_wall = self.wall_clock()
        started_perf = time.perf_counter()
        self.stats.requests += 1
        redirect = self._redirect(request)
        if redirect is not None:
            return redirect
        client = request.client.host if request.client else "unknown"
        if not self.bucket.hit(client):
            self.stats.rate_limited_503 += 1
            return HttpReply(503, dumps({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}))

        segments = request.url.path[len("/rest/"):].split("/")
        if len(segments) == 3 and segments[0].isdigit():
            user_id, code, raw_method = segments
        elif len(segments) == 1:
            user_id = code = None
            raw_method = segments[0]
        else:
            return self._error(RestError(*METHOD_NOT_FOUND, 404))
        method = raw_method.lower()
        for suffix in (".json", ".xml"):
            if method.endswith(suffix):
                method = method[: -len(suffix)]
        spec = BATCH_SPEC if method == "batch" else REGISTRY.get(method)
        if spec is None:
            return self._error(RestError(*METHOD_NOT_FOUND, 404))
        self.stats.methods[method] += 1
        try:
            hook = self._authenticate(request, user_id, code, spec)
        except RestError as exc:
            return self._error(exc)

        body = await request.body()
        params = decode_request(request.method, request.headers.get("content-type"), request.url.query.encode(), body)
        params = params if isinstance(params, dict) else dict(enumerate(params))
        config = self.faults.config
        error_kind = self.faults.pick(config.error_kinds) if self.faults.roll(config.error_rate, method) else None
        if error_kind and not config.error_after_execute:
            return self._fault_reply(error_kind)

        latency = self.faults.latency_for(method)
        slept = 0.0
        if latency > 0:
            slept = min(latency, float(config.max_execution_seconds))
            await asyncio.sleep(slept)
        try:
            outcome = self._invoke(hook, spec, params, started_wall, started_perf, extra_seconds=slept)
        except RestError as exc:
            if exc.code == "OPERATION_TIME_LIMIT":
                self.stats.operation_limited_429 += 1
            return self._error(exc)
        if latency > config.max_execution_seconds or outcome.processing > config.max_execution_seconds:
            self.stats.faults["interrupted"] += 1
            return HttpReply(504, front_error_page(504).encode(), HTML_TYPE)
        if error_kind:
            return self._fault_reply(error_kind)
        payload = dumps(outcome.payload)
        headers = {"X-Bitrix-Rest-Time": f"{outcome.processing:.10f}"}
        if method == "batch" and self.faults.roll(config.html_batch_rate, method):
            self.stats.faults["html_batch"] += 1
            return HttpReply(200, php_error_page().encode(), HTML_TYPE)
        if self._creates(spec, params) and self.faults.roll(config.lose_create_response_rate, method):
            self.stats.faults[f"lost_create_{config.lose_create_mode}"] += 1
            if config.lose_create_mode == "drop":
                return HttpReply(200, payload, headers=headers, drop=True)
            return HttpReply(200, payload, headers=headers, delay=float(config.lose_create_timeout_seconds))
        if self.faults.roll(config.truncated_json_rate, method):
            self.stats.faults["truncated_json"] += 1
            return HttpReply(200, payload[: max(1, len(payload) // 2)], headers=headers)
        return HttpReply(200, payload, headers=headers)

    def _creates(self, spec: MethodSpec, params: dict[Any, Any]) -> bool:
        if spec.creates:
            return True
        if spec.name != "batch":
            return False
        commands = Params(params, "anycase").array("cmd")
        return any(isinstance(c, str) and php_parse_url(c)[0].strip().lower() in CREATE_METHODS
                   for c in as_list(commands) or [])

    # --- execution (shared by top-level calls and batch commands) ------------------------------

    def _iso(self, ts: float) -> str:
        return datetime.fromtimestamp(ts, tz=self.tz).replace(microsecond=0).isoformat()

    def _time_block(self, hook: Webhook, account: str, started_wall: float, started_perf: float,
                    processing: float) -> dict[str, Any]:
        """`time` as appendDebugInfo builds it; `account` is the limiter key the call is billed to."""
        duration = max(time.perf_counter() - started_perf, processing)
        finish = started_wall + duration
        block: dict[str, Any] = {"start": started_wall, "finish": finish, "duration": duration,
                                 "processing": processing, "date_start": self._iso(started_wall),
                                 "date_finish": self._iso(finish)}
        if self.limits.operating_enabled:
            reset = self.operating.reset_at(hook.key, account)
            if reset is not None:
                block["operating_reset_at"] = int(self.wall_clock() + (reset - self.clock()))
            block["operating"] = self.operating.operating(hook.key, account)
        return block

    def _invoke(self, hook: Webhook, spec: MethodSpec, params: dict[Any, Any], started_wall: float,
                started_perf: float, *, extra_seconds: float = 0.0, nested: bool = False) -> Outcome:
        """Limiter check, the handler, operating registration and the `time` block."""
        if self.operating.blocked(hook.key, spec.name):
            raise RestError("OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.", 429)
        start = php_int(params.pop("start")) if params.get("start") is not None else 0
        t0 = time.perf_counter()
        nested_costs: list[float] = []
        if spec.name == "batch":
            def sub_call(method: str, sub_params: dict[Any, Any]) -> dict[str, Any]:
                outcome = self._nested(hook, method, sub_params)
                nested_costs.append(outcome.processing)
                return outcome.payload

            reply = Reply(run_batch(Params(params, "anycase"), sub_call))
        else:
            ctx = CallContext(self.store, hook.user_id, start, self.events.emit)
            reply = spec.handler(ctx, Params(params, spec.params))
        measured = time.perf_counter() - t0 + extra_seconds
        simulated = self.limits.cost_of(spec.name)
        processing = simulated if simulated is not None else max(measured, sum(nested_costs))
        if spec.name == "batch":
            if self.limits.batch_accounting == "batch":
                self.operating.register(hook.key, "batch", processing * self.limits.batch_weight)
        elif not (nested and self.limits.batch_accounting == "batch"):
            self.operating.register(hook.key, spec.name, processing)
        payload: dict[str, Any] = {"result": reply.result}
        if reply.next is not None:
            payload["next"] = int(reply.next)
        if reply.total is not None:
            payload["total"] = int(reply.total)
        account = "batch" if nested and self.limits.batch_accounting == "batch" else spec.name
        payload["time"] = self._time_block(hook, account, started_wall, started_perf, processing)
        return Outcome(payload, processing)

    def _nested(self, hook: Webhook, raw_method: str, params: dict[Any, Any]) -> Outcome:
        """One batch command: lowercase name first, then as written; errors become payloads."""
        started_wall, started_perf = self.wall_clock(), time.perf_counter()
        spec = None
        for name in (raw_method.lower(), raw_method):
            name = name[:-5] if name.endswith(".json") else name
            spec = REGISTRY.get(name)
            if spec is not None:
                break
        self.stats.batch_commands[spec.name if spec else raw_method] += 1
        if spec is None:
            return Outcome({"error": METHOD_NOT_FOUND[0], "error_description": METHOD_NOT_FOUND[1]}, 0.0)
        if not self._scope_ok(hook, spec):
            return Outcome({"error": "insufficient_scope", "error_description":
                            "The request requires higher privileges than provided by the webhook token"}, 0.0)
        try:
            return self._invoke(hook, spec, params, started_wall, started_perf, nested=True)
        except RestError as exc:
            if exc.code == "OPERATION_TIME_LIMIT":
                self.stats.operation_limited_in_batch += 1
            return Outcome(exc.body(), 0.0)

    # --- admin ---------------------------------------------------------------------------------

    async def _admin(self, request: Request) -> HttpReply:
        name = request.url.path[len("/_admin"):].strip("/")
        body: dict[str, Any] = {}
        if request.method == "POST":
            raw = await request.body()
            try:
                body = orjson.loads(raw) if raw.strip() else {}
            except orjson.JSONDecodeError:
                return HttpReply(400, orjson.dumps({"error": "body must be JSON"}))
            if not isinstance(body, dict):
                return HttpReply(400, orjson.dumps({"error": "body must be a JSON object"}))
        try:
            result = self._admin_action(name, request.method, body, dict(request.query_params))
        except (ValueError, TypeError, KeyError) as exc:
            return HttpReply(400, orjson.dumps({"error": str(exc)}))
        if result is None:
            return HttpReply(404, orjson.dumps({"error": f"unknown admin endpoint {name!r}"}))
        return HttpReply(200, orjson.dumps(result, option=orjson.OPT_NON_STR_KEYS))

    def _admin_action(self, name: str, method: str, body: dict[str, Any], query: dict[str, str]) -> Any:
        post = method == "POST"
        if name == "health":
            return {"status": "ok", "simulator": "bitrix24", "portal": self.portal_domain,
                    "webhooks": [h.as_dict()["base"] for h in self.webhooks.values()]}
        if name == "faults":
            if post:
                reset = bool(body.pop("reset", False))
                self.faults.configure(body, reset=reset)
            return self.faults.config.as_dict()
        if name == "limits":
            if post:
                reset_counters = bool(body.pop("reset_counters", False))
                self.limits.update(body)
                if reset_counters:
                    self.bucket.reset()
                    self.operating.reset()
            return {**self.limits.as_dict(), "bucket_levels": self.bucket.levels(),
                    "operating": self.operating.snapshot()}
        if name == "state":
            snapshot = self.store.snapshot()
            kind = query.get("kind")
            return {"counts": snapshot["counts"], kind: snapshot[kind]} if kind in snapshot else snapshot
        if name == "stats":
            return self.stats.as_dict()
        if name == "events":
            if post:
                if body.pop("clear", False):
                    self.events.clear()
                self.events.config.update(body)
            return self.events.snapshot()
        if name == "webhooks":
            if post:
                self.webhooks = _parse_webhooks(body["webhooks"])
            return {"webhooks": [h.as_dict() for h in self.webhooks.values()]}
        if name == "reset" and post:
            self.reset(config=bool(body.get("config", True)))
            return {"status": "reset"}
        return None

    def reset(self, *, config: bool = True) -> None:
        """Fresh store, counters and event log; with `config` also the initial faults/limits/events."""
        self.store.reset()
        self.bucket.reset()
        self.operating.reset()
        self.stats = Stats()
        self.events.clear()
        if config:
            self.faults.restore()
            self.limits.update(copy.deepcopy(self._initial_limits.as_dict()))
            self.events.config.update(self._initial_events.as_dict())
            self.webhooks = copy.deepcopy(self._initial_webhooks)


def create_app(store: CrmStore | None = None, *,
               webhooks: Mapping[Any, Mapping[str, Any]] | list[dict[str, Any]] | None = None,
               rate_limit: tuple[float, float] = (50, 2.0), limits: LimitConfig | None = None,
               faults: FaultConfig | None = None, events: EventConfig | None = None,
               clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time,
               portal_domain: str = "zeta-demo.bitrix24.kz", tz_offset_hours: float = 5.0) -> BitrixSimulator:
    """Build the simulator app. `rate_limit=(burst, drain/s)` applies when `limits` is not given."""
    return BitrixSimulator(store, webhooks=webhooks, rate_limit=rate_limit, limits=limits, faults=faults,
                           events=events, clock=clock, wall_clock=wall_clock, portal_domain=portal_domain,
                           tz_offset_hours=tz_offset_hours)
