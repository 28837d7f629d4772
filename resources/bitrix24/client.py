"""HTTP client of the Bitrix24 REST API through an incoming webhook.

What a robust client must do (reference §11): POST a JSON body to `<base><method>.json`, never
follow redirects blindly (re-POST the same body once to the new portal address), treat any body
with an `error` key as an error and classify it by the string, keep itself under the portal's
request and execution-time limits, retry only what is safe to retry, and never show the webhook
code. Creates are not idempotent in Bitrix24: a write that failed ambiguously (timeout, dropped
connection, 5xx, broken JSON) is raised with `ambiguous=True`, never resent, so the caller can
look the record up first (§9).
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import KW_ONLY, dataclass, field
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx
import orjson
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from resources.bitrix24.encoding import (
    BATCH_LIMIT,
    batch_command,
    check_key,
    check_method,
    pack,
    references,
)
from resources.bitrix24.errors import (
    Bitrix24Error,
    OperationTimeLimit,
    PortalMoved,
    RateLimited,
    ServerError,
    TransportError,
    classify,
    install_log_masking,
    mask_url,
)
from resources.bitrix24.throttle import HEADROOM, Throttle

logger = logging.getLogger("integrations.bitrix24")

PAGE_SIZE = 50  # IRestService::LIST_LIMIT
_BASE = re.compile(r"^(https?://[^/?#]+)(/rest/(?:api/)?\d+/[^/?#]+/)")
_REDIRECTS = {301, 302, 303, 307, 308}

# Reads: safe to resend after a transport failure. Anything not recognised is a write.
_READ_SUFFIXES = ("list", "get", "fields", "findbycomm", "getlist", "search", "count")
_READ_METHODS = {
    "user.get", "user.current", "user.search", "crm.status.list", "crm.category.list", "profile", "methods",
    "method.get", "scope", "app.info", "server.time", "crm.duplicate.findbycomm", "crm.enum.fields",
    "crm.timeline.icon.list",
}
# Named like reads but change state: `event.offline.get` removes events unless clear=0.
_WRITE_METHODS = {"event.offline.get", "batch"}
# Top-level parameter names classic CRM/task methods accept in any case; sent lowercase
# (`crm.timeline.comment.add` accepts only lowercase `fields`).
_LOWER_KEYS = {"FIELDS", "FILTER", "SELECT", "ORDER", "ID", "PARAMS", "START", "ROWS"}


def is_read(method: str) -> bool:
    """True when `method` only reads, so a failed call may be resent without side effects."""
    name = method.lower()
    if name in _WRITE_METHODS:
        return False
    return name in _READ_METHODS or name.rsplit(".", 1)[-1] in _READ_SUFFIXES


def as_int(value: Any) -> int | None:
    """Classic list rows carry numbers as strings (`"ID": "17"`); ids as ints, None if not one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return None


def phone_variants(phone: str) -> list[str]:
    """The same number in the formats people store it in (Bitrix's matching is not documented):
    `+77771234567`, `87771234567`, `77771234567`, and the text as given."""
    text = str(phone).strip()
    digits = re.sub(r"\D", "", text)
    variants = [text] if text else []
    if len(digits) == 11 and digits[0] in "78":
        national = digits[1:]
    elif len(digits) == 10:
        national = digits
    else:
        national = ""
    if national:
        variants += [f"+7{national}", f"8{national}", f"7{national}"]
    elif digits:
        variants += [f"+{digits}", digits]
    return list(dict.fromkeys(v for v in variants if v))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"cannot send {type(value).__name__} to Bitrix24")


def _normalise(method: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Lowercase the standard top-level keys for `crm.*`/`tasks.*` (`crm.timeline.comment.add`
    accepts only lowercase `fields`); other families are left exactly as given."""
    out = dict(params or {})
    if method.lower().startswith(("crm.", "tasks.")):
        for key in list(out):
            if isinstance(key, str) and key in _LOWER_KEYS and key.lower() not in out:
                out[key.lower()] = out.pop(key)
    return out


def _as_map(value: Any) -> dict[str, Any]:
    """PHP arrays come back as `{}` or, when empty or list-like, as `[]`."""
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}


def contact_ids(result: Any) -> list[int]:
    """Contact ids of a `crm.duplicate.findbycomm` answer, ascending."""
    contacts = result.get("CONTACT", []) if isinstance(result, dict) else []
    return sorted(i for i in (as_int(c) for c in _as_map(contacts).values()) if i is not None)


@dataclass(frozen=True)
class Bitrix24Response:
    """One successful call: `result`, list paging (`total`, `next`) and the `time` block."""

    result: Any
    total: int | None = None
    next: int | None = None
    time: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchResult:
    """The merged outcome of one logical batch (possibly several requests).

    `result` holds successful commands, `errors` failed ones (classified per command),
    `not_run` the commands a `halt` skipped; `requests` is how many HTTP requests it took.
    """

    keys: list[str]
    result: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, Bitrix24Error] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    next: dict[str, int] = field(default_factory=dict)
    time: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: int = 0

    @property
    def not_run(self) -> list[str]:
        return [k for k in self.keys if k not in self.result and k not in self.errors]

    @property
    def ok(self) -> bool:
        return not self.errors and not self.not_run

    def raise_first(self) -> None:
        """Raise the first failed command's error (in command order), if any."""
        for key in self.keys:
            if key in self.errors:
                raise self.errors[key]


@dataclass
class ClientStats:
    """Counters for benchmarks and diagnostics; updated under the client's lock."""

    requests: int = 0  # HTTP requests sent (a batch is one)
    commands: int = 0  # REST commands carried by those requests
    http_503: int = 0
    http_429: int = 0
    rate_limited: int = 0  # QUERY_LIMIT_EXCEEDED answers
    retries: int = 0
    redirects: int = 0
    transport_errors: int = 0


@dataclass
class Bitrix24Client:
    """A throttled, retrying client for one portal's incoming webhook."""

    webhook_url: str = field(repr=False)
    _: KW_ONLY
    timeout: float = 75.0
    rate_per_second: float = 2.0
    burst: int = 50
    max_retries: int = 5
    transport: httpx.BaseTransport | None = field(default=None, repr=False)
    clock: Callable[[], float] = field(default=time.time, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    headroom: int = HEADROOM
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    operating_limit: float = 420.0  # strictest published figure (server default; docs say 480)
    throttle: Throttle | None = field(default=None, repr=False)
    rng: random.Random = field(default_factory=random.Random, repr=False)
    user_agent: str = "zeta-sync/0.1"

    def __post_init__(self) -> None:
        url = (self.webhook_url or "").strip()
        if not url.endswith("/"):
            url += "/"
        match = _BASE.match(url)
        if not match or match.end() != len(url):
            parts = urlsplit(url)  # a malformed URL cannot be masked reliably: show the host only
            raise ValueError(f"BITRIX24_WEBHOOK_URL must look like https://portal/rest/<user_id>/<code>/, "
                             f"got {parts.scheme or '?'}://{parts.hostname or '?'}/… (path hidden)")
        self._base = url
        self._secret = match.group(2).rstrip("/").rsplit("/", 1)[-1]
        if self.throttle is None:
            self.throttle = Throttle.for_portal(self.rate_per_second, self.burst, self.headroom,
                                                operating_limit=self.operating_limit, clock=self.clock,
                                                sleep=self.sleep)
        install_log_masking()
        self.stats = ClientStats()
        self._lock = threading.Lock()
        self._http = httpx.Client(
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
            headers={"Accept": "application/json", "Content-Type": "application/json",
                     "User-Agent": self.user_agent},
            follow_redirects=False,
            transport=self.transport,
        )

    # ---- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Bitrix24Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        """The masked webhook base currently in use (changes after a portal move)."""
        return mask_url(self._base)

    def _scrub(self, text: str) -> str:
        return mask_url(text).replace(self._secret, "***") if self._secret else mask_url(text)

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    # ---- one HTTP exchange -----------------------------------------------------------------
    def _send(self, url: str, body: bytes, method: str, write: bool, commands: int) -> httpx.Response:
        self._count(requests=1, commands=commands)
        try:
            response = self._http.post(url, content=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached the server: safe to resend even a write.
            self._count(transport_errors=1)
            raise TransportError(
                f"Bitrix24 {method} failed: could not connect ({type(exc).__name__}: {self._scrub(str(exc))}) "
                f"at {mask_url(url)}", method=method, url=mask_url(url)) from None
        except httpx.TransportError as exc:
            self._count(transport_errors=1)
            kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "lost the connection"
            message = (f"Bitrix24 {method} failed: {kind} ({type(exc).__name__}: {self._scrub(str(exc))}) "
                       f"at {mask_url(url)}")
            if write:
                message += " — outcome unknown: the write may have been committed; look it up before re-creating"
            raise TransportError(message, method=method, url=mask_url(url), ambiguous=write) from None
        if response.status_code == 503:
            self._count(http_503=1)
        elif response.status_code == 429:
            self._count(http_429=1)
        return response

    def _follow(self, response: httpx.Response, method: str) -> str:
        """New webhook base from a 301/302 `Location`, or PortalMoved when it is not safe to use."""
        location = response.headers.get("location", "")
        old = _BASE.match(self._base)
        new = _BASE.match(urljoin(str(response.request.url), location)) if location else None
        masked_new = mask_url(new.group(0)) if new else mask_url(self._scrub(location))
        if old is None or new is None or new.group(2) != old.group(2) or (
                old.group(1).startswith("https:") and not new.group(1).startswith("https:")):
            raise PortalMoved(
                f"Bitrix24 {method}: HTTP {response.status_code} to {masked_new or '(no Location)'} is not the same "
                f"webhook on another address; update BITRIX24_WEBHOOK_URL", status=response.status_code,
                method=method, url=mask_url(self._base), new_base=masked_new)
        new_base = new.group(0)
        logger.warning("Bitrix24 portal moved: %s -> %s (HTTP %d on %s); using the new address, update "
                       "BITRIX24_WEBHOOK_URL", mask_url(self._base), mask_url(new_base),
                       response.status_code, method)
        with self._lock:
            self._base = new_base
            self.stats.redirects += 1
        return new_base

    def _post(self, method: str, payload: bytes, write: bool, commands: int, gates: list[str]) -> Bitrix24Response:
        """One attempt: throttle, POST, follow one portal move, parse."""
        assert self.throttle is not None
        self.throttle.acquire(gates)
        url = f"{self._base}{method}.json"
        response = self._send(url, payload, method, write, commands)
        if response.status_code in _REDIRECTS:
            url = f"{self._follow(response, method)}{method}.json"
            self.throttle.acquire(gates)
            response = self._send(url, payload, method, write, commands)
            if response.status_code in _REDIRECTS:
                raise PortalMoved(f"Bitrix24 {method}: the new address redirected again (HTTP "
                                  f"{response.status_code}); update BITRIX24_WEBHOOK_URL",
                                  status=response.status_code, method=method, url=mask_url(url),
                                  new_base=self._scrub(response.headers.get("location", "")))
        return self._parse(response, method, write)

    def _parse(self, response: httpx.Response, method: str, write: bool) -> Bitrix24Response:
        status = response.status_code
        url = mask_url(str(response.request.url))
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict) and "error" in body:
            err = body.get("error")
            if isinstance(err, dict):  # REST 3.0 shape
                code, desc = err.get("code"), err.get("message")
            else:
                code, desc = err, body.get("error_description")
            exc = classify(code, self._scrub(str(desc or "")), status=status, method=method, url=url,
                           ambiguous=write)
            self._on_error(exc)
            raise exc
        if isinstance(body, dict) and "result" in body and status < 400:
            time_info = body.get("time") if isinstance(body.get("time"), dict) else {}
            assert self.throttle is not None
            self.throttle.observe(method, time_info)
            return Bitrix24Response(result=body["result"], total=as_int(body.get("total")),
                                    next=as_int(body.get("next")), time=time_info)
        ctype = response.headers.get("content-type", "").split(";")[0].strip() or "no content type"
        what = "an unexpected JSON body" if body is not None else f"a non-JSON body ({ctype}, {len(response.content)} bytes)"
        message = f"Bitrix24 {method} failed: HTTP {status} with {what} at {url}"
        if write:
            message += " — outcome unknown: the write may have been committed; look it up before re-creating"
        if status >= 500:
            raise ServerError(message, status=status, method=method, url=url, ambiguous=write)
        # An HTML 4xx page (wrong host, proxy) will not improve with retries.
        raise TransportError(message, status=status, method=method, url=url, ambiguous=write,
                             retryable=status < 400 or status in (408, 425, 429))

    def _on_error(self, exc: Bitrix24Error) -> None:
        assert self.throttle is not None
        if isinstance(exc, RateLimited):
            self._count(rate_limited=1)
            self.throttle.penalize()
        elif isinstance(exc, OperationTimeLimit):
            exc.reset_at = self.throttle.block(exc.method)

    # ---- retries ---------------------------------------------------------------------------
    def _should_retry(self, exc: BaseException, read: bool) -> bool:
        if isinstance(exc, RateLimited | OperationTimeLimit):
            return True  # refused before running anything
        if isinstance(exc, TransportError):
            return exc.retryable and (read or not exc.ambiguous)
        return False

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, OperationTimeLimit):
            return 0.0  # the throttle holds this method until its reset
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (state.attempt_number - 1))
        return self.rng.uniform(0, ceiling)  # full jitter

    def _with_retries(self, what: str, attempt: Callable[[], Bitrix24Response], read: bool) -> Bitrix24Response:
        def before_sleep(state: RetryCallState) -> None:
            self._count(retries=1)
            exc = state.outcome.exception() if state.outcome else None
            # limits are expected flow control; anything else is worth a warning
            level = logging.INFO if isinstance(exc, RateLimited | OperationTimeLimit) else logging.WARNING
            logger.log(level, "Bitrix24 retrying %s after attempt %d: %s", what, state.attempt_number, exc)

        retrying = Retrying(
            retry=retry_if_exception(lambda e: self._should_retry(e, read)),
            wait=self._wait,
            stop=stop_after_attempt(self.max_retries + 1),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(attempt)

    # ---- public API ------------------------------------------------------------------------
    def call(self, method: str, params: Mapping[str, Any] | None = None, *,
             idempotent: bool | None = None) -> Bitrix24Response:
        """Call one REST method.

        Reads are retried on transport failures and 5xx; writes are not (raised with
        `ambiguous=True`) unless `idempotent=True` says resending is harmless (e.g. a
        `productrows.set`). Rate and time limits are retried for every method.
        """
        check_method(method)
        write = not is_read(method) or idempotent is False
        resend_ok = not write if idempotent is None else idempotent
        payload = orjson.dumps(_normalise(method, params), default=_json_default,
                               option=orjson.OPT_NON_STR_KEYS)
        return self._with_retries(method, lambda: self._post(method, payload, write, 1, [method]), resend_ok)

    def batch(self, commands: Mapping[str, tuple[str, Mapping[str, Any] | None]], halt: bool = True) -> BatchResult:
        """Run `{key: (method, params)}` through `batch`, ≤ 50 commands per request, in order.

        `$result[key]` (and `$next`/`$total`) may only reference an earlier command; such a
        dependency group is kept within one request (a group over 50 raises ValueError). With
        `halt`, the first failing command stops the rest, including later requests. A request
        of reads only is retried as a whole; one with writes is raised `ambiguous` on a
        transport failure, with `partial` holding what earlier requests completed.
        """
        keys = [check_key(k) for k in commands]
        items = {k: (check_method(commands[k][0]), _normalise(commands[k][0], commands[k][1])) for k in keys}
        deps = {k: references(p) for k, (_, p) in items.items()}
        out = BatchResult(keys=keys)
        for chunk in pack(keys, deps, BATCH_LIMIT):
            if halt and out.errors:
                break
            cmd = {k: batch_command(*items[k]) for k in chunk}
            methods = [items[k][0] for k in chunk]
            read = all(is_read(m) for m in methods)
            payload = orjson.dumps({"halt": 1 if halt else 0, "cmd": cmd})
            gates = ["batch", *dict.fromkeys(methods)]
            try:
                response = self._with_retries(
                    f"batch of {len(chunk)}",
                    lambda p=payload, g=gates, n=len(chunk), r=read: self._post("batch", p, not r, n, g),
                    read)
                if not isinstance(response.result, dict):
                    raise ServerError(
                        f"Bitrix24 batch failed: the reply has no result map (got {type(response.result).__name__})"
                        + (" — outcome unknown: the writes may have been committed" if not read else ""),
                        method="batch", url=self.base_url, ambiguous=not read)
            except Bitrix24Error as exc:
                exc.partial = out
                raise
            out.requests += 1
            self._merge(out, chunk, items, response)
        return out

    def _merge(self, out: BatchResult, chunk: list[str], items: Mapping[str, tuple[str, Any]],
               response: Bitrix24Response) -> None:
        assert self.throttle is not None
        body = response.result
        results = _as_map(body.get("result"))
        errors = _as_map(body.get("result_error"))
        totals = _as_map(body.get("result_total"))
        nexts = _as_map(body.get("result_next"))
        times = _as_map(body.get("result_time"))
        for key in chunk:
            method = items[key][0]
            if key in times and isinstance(times[key], dict):
                out.time[key] = times[key]
                self.throttle.observe(method, times[key])
            if key in errors:
                raw = errors[key] if isinstance(errors[key], dict) else {"error": "", "error_description": str(errors[key])}
                exc = classify(raw.get("error"), self._scrub(str(raw.get("error_description") or "")), status=None,
                               method=method, url=mask_url(self._base))
                self._on_error(exc)
                out.errors[key] = exc
            elif key in results:
                out.result[key] = results[key]
            if (t := as_int(totals.get(key))) is not None:
                out.total[key] = t
            if (n := as_int(nexts.get(key))) is not None:
                out.next[key] = n

    # ---- helpers for the push code ---------------------------------------------------------
    def iter_all(self, method: str, filter: Mapping[str, Any] | None = None,
                 select: Iterable[str] | None = None, order: Mapping[str, str] | None = None, *,
                 params: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every row of a list method by the fast full scan: `order ID ASC`, `filter >ID`,
        `start=-1` (no counting), until a page shorter than 50. `total` is never trusted.

        Works for classic `crm.*.list` (rows in `result`, key `ID`) and `crm.item.list` (rows in
        `result.items`, key `id`; pass `params={"entityTypeId": …}`). Row ids come back as ints.
        """
        id_key = "id" if method.lower().startswith("crm.item.") else "ID"
        if order and [(k.upper(), str(v).upper()) for k, v in order.items()] != [("ID", "ASC")]:
            raise ValueError("the fast full scan needs order ID ASC; use call() for other orders")
        flt = dict(filter or {})
        last = as_int(flt.pop(f">{id_key}", None)) or 0
        fields = list(dict.fromkeys([*select, id_key])) if select else None
        while True:
            query: dict[str, Any] = {**(params or {}), "order": {id_key: "ASC"},
                                     "filter": {**flt, f">{id_key}": last}, "start": -1}
            if fields:
                query["select"] = fields
            rows = _rows(self.call(method, query).result)
            for row in rows:
                rid = as_int(row.get(id_key)) if isinstance(row, dict) else None
                if rid is not None:
                    row[id_key] = rid
                    last = max(last, rid)
                yield row
            if len(rows) < PAGE_SIZE:
                return

    def list_all(self, method: str, filter: Mapping[str, Any] | None = None,
                 select: Iterable[str] | None = None, order: Mapping[str, str] | None = None, *,
                 params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """`iter_all` as a list."""
        return list(self.iter_all(method, filter, select, order, params=params))

    def find_by_origin(self, entity: Literal["lead", "deal", "contact"], originator_id: str,
                       origin_id: str) -> int | None:
        """Id of the lead/deal/contact created from (`originator_id`, `origin_id`), or None.

        The lookup of lookup-before-create (§9). Rows are re-checked for an exact match in case
        the portal's filter is looser than equality; with duplicates the oldest id wins.
        """
        if entity not in ("lead", "deal", "contact"):
            raise ValueError(f"find_by_origin supports lead, deal and contact, not {entity!r}")
        response = self.call(f"crm.{entity}.list", {
            "filter": {"ORIGINATOR_ID": str(originator_id), "ORIGIN_ID": str(origin_id)},
            "select": ["ID", "ORIGINATOR_ID", "ORIGIN_ID"], "order": {"ID": "ASC"}, "start": -1,
        })
        ids = sorted(
            rid for row in _rows(response.result) if isinstance(row, dict)
            and (rid := as_int(row.get("ID"))) is not None
            and str(row.get("ORIGINATOR_ID", originator_id)) == str(originator_id)
            and str(row.get("ORIGIN_ID", origin_id)) == str(origin_id)
        )
        if len(ids) > 1:
            logger.warning("Bitrix24 has %d %ss for %s/%s (ids %s); using %d", len(ids), entity, originator_id,
                           origin_id, ids, ids[0])
        return ids[0] if ids else None

    def find_contacts_by_phone(self, phones: Iterable[str]) -> list[int]:
        """Contact ids matching any of `phones` in any common format, ascending.

        `crm.duplicate.findbycomm` takes ≤ 20 string values; several formats of each number are
        sent because how the portal normalises numbers is not documented.
        """
        values = list(dict.fromkeys(v for p in phones if p for v in phone_variants(p)))
        found: set[int] = set()
        for start in range(0, len(values), 20):
            response = self.call("crm.duplicate.findbycomm", {
                "type": "PHONE", "values": values[start:start + 20], "entity_type": "CONTACT"})
            found.update(contact_ids(response.result))
        return sorted(found)


def _rows(result: Any) -> list[Any]:
    """List rows from `result` (classic), `result.items` (`crm.item.list`) or `result.tasks`."""
    if isinstance(result, list):
        return result
    if isinstance(result, dict):
        for key in ("items", "tasks", "categories"):
            if isinstance(result.get(key), list):
                return result[key]
        return list(result.values()) if all(isinstance(v, dict) for v in result.values()) else []
    return []


__all__ = [
    "BatchResult", "Bitrix24Client", "Bitrix24Response", "ClientStats", "as_int", "is_read", "phone_variants",
]
