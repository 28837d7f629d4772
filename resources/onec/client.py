"""HTTP client of the 1C standard OData interface (OData v3, JSON).

What a robust client must do (reference/onec.md §7): always ask for JSON and verify it, Basic
auth in UTF-8, page with `$orderby` + `$top`/`$skip` until a short page, retry idempotent reads
on 5xx/timeouts/dropped connections with exponential backoff and full jitter, and turn every
failure into a precise error that names the object and never the password.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote
from zoneinfo import ZoneInfo

import httpx
import orjson
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from resources.onec.errors import (
    OneCAuthError,
    OneCBadResponse,
    OneCConfigError,
    OneCError,
    OneCNotFoundError,
    OneCODataError,
    OneCTransientError,
)

logger = logging.getLogger("integrations.onec")

ODATA_SUFFIX = "/odata/standard.odata"
ZERO_GUID = "00000000-0000-0000-0000-000000000000"
EMPTY_DATE = "0001-01-01T00:00:00"
_RETRY_STATUSES = {500, 502, 503, 504}


def odata_root(base_url: str) -> str:
    """`ONEC_BASE_URL` → `…/odata/standard.odata/`; a URL ending in `/hs` or already in
    `/odata/standard.odata` is accepted too (the seed shows an `/hs` URL)."""
    url = base_url.strip().rstrip("/")
    if url.endswith(ODATA_SUFFIX):
        url = url[: -len(ODATA_SUFFIX)]
    elif url.endswith("/hs"):
        url = url[: -len("/hs")]
    if not url.startswith(("http://", "https://")):
        raise OneCConfigError(f"1C base URL must start with http:// or https://, got {base_url!r}")
    return url + ODATA_SUFFIX + "/"


def empty_to_none(value: Any) -> Any:
    """1C sentinels to None: the zero GUID, the empty date and the empty string."""
    if value in (ZERO_GUID, EMPTY_DATE, ""):
        return None
    return value


def guid_literal(value: str) -> str:
    return f"guid'{value}'"


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter: wait U(0, min(cap, base·2^n))."""

    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 20.0


@dataclass
class OneCClient:
    """A pooled, retrying OData client for one 1C infobase publication."""

    base_url: str
    username: str
    password: str = field(repr=False)
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    prefetch: int = 3
    server_timezone: str = "Asia/Almaty"
    transport: httpx.BaseTransport | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.root = odata_root(self.base_url)
        self._http = httpx.Client(
            base_url=self.root,
            auth=httpx.BasicAuth(self.username, self.password),  # httpx encodes str as UTF-8
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
            headers={"Accept": "application/json", "User-Agent": "zeta-sync/0.1"},
            # room for three concurrent extracts, each with `prefetch` pages in flight
            limits=httpx.Limits(max_connections=max(4, 3 * (self.prefetch + 1)),
                                max_keepalive_connections=max(8, 3 * (self.prefetch + 1))),
            follow_redirects=False,
            transport=self.transport,
        )
        self.retries_done = 0

    # ---- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OneCClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- low level -------------------------------------------------------------------------
    def _url_for_errors(self, path: str) -> str:
        return self.root + path

    def _raise_for(self, response: httpx.Response, what: str) -> None:
        """Raise the precise error for a failed response.

        5xx answers are transient; so is a 500 with code -1 on a GET (reads are idempotent and a -1
        on a read is typically a lock or DBMS hiccup). A -1 on a write is a business error.
        """
        status = response.status_code
        url = unquote(str(response.request.url))
        body = _parse_odata_error(response)
        if status == 401:
            detail = f" ({body[1]})" if body else ""
            raise OneCAuthError(
                f"1C rejected the credentials of user {self.username!r} (HTTP 401) for {what}{detail}: "
                "check ONEC_USERNAME / ONEC_PASSWORD and the user's rights",
                url=url, status=status, code=body[0] if body else None,
            )
        if status == 404:
            if body:
                raise OneCNotFoundError(
                    f"1C: {what} not found (HTTP 404, code {body[0]}: {body[1]}): is the object in the OData "
                    "composition (УстановитьСоставСтандартногоИнтерфейсаOData) and the name right for this "
                    "configuration?", url=url, status=status, code=body[0],
                )
            raise OneCNotFoundError(
                f"1C: {what} answered HTTP 404 without an OData body: OData is not published at {self.root} "
                "(default.vrd needs <standardOdata enable=\"true\"/>), the URL is too long, or the object is "
                "not in the OData composition", url=url, status=status,
            )
        if body:
            code, message = body
            if status in _RETRY_STATUSES and (code != "-1" or response.request.method == "GET"):
                raise OneCTransientError(
                    f"1C: {what} failed with HTTP {status}, code {code}: {message}", url=url, status=status, code=code
                )
            raise OneCODataError(f"1C: {what} failed with HTTP {status}, code {code}: {message}",
                                 url=url, status=status, code=code)
        if status in _RETRY_STATUSES:
            raise OneCTransientError(f"1C: {what} failed with HTTP {status} ({_content_type(response)})",
                                     url=url, status=status)
        raise OneCBadResponse(f"1C: {what} answered HTTP {status} ({_content_type(response)}) at {url}",
                              url=url, status=status)

    def _request_once(self, method: str, path: str, what: str, *, params: dict[str, str] | None = None,
                      json_body: Any = None) -> Any:
        query = {"$format": "json", **(params or {})}
        try:
            response = self._http.request(
                method, path, params=query,
                content=orjson.dumps(json_body) if json_body is not None else None,
                headers={"Content-Type": "application/json"} if json_body is not None else None,
            )
        except httpx.TimeoutException as exc:
            raise OneCTransientError(f"1C: {what} timed out after {self.timeout:.0f}s ({type(exc).__name__})",
                                     url=self._url_for_errors(path)) from None
        except httpx.TransportError as exc:
            raise OneCTransientError(f"1C: {what} failed on the network: {type(exc).__name__}: {exc}",
                                     url=self._url_for_errors(path)) from None
        if response.status_code >= 400 or response.status_code in (301, 302, 303, 307, 308):
            self._raise_for(response, what)
        if response.status_code == 204 or not response.content:
            return None
        ctype = _content_type(response)
        if "json" not in ctype:
            raise OneCBadResponse(
                f"1C: {what} answered {ctype or 'no content type'} instead of JSON (HTTP {response.status_code}) "
                f"at {unquote(str(response.request.url))}: a login page, a proxy error page or OData without JSON "
                "support", url=unquote(str(response.request.url)), status=response.status_code,
            )
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise OneCTransientError(
                f"1C: {what} returned broken JSON ({exc}) at {unquote(str(response.request.url))}",
                url=unquote(str(response.request.url)), status=response.status_code,
            ) from None

    def _retrying(self, what: str) -> Retrying:
        def _log(state: RetryCallState) -> None:
            self.retries_done += 1
            exc = state.outcome.exception() if state.outcome else None
            logger.warning("retrying %s after attempt %d: %s", what, state.attempt_number, exc)

        return Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, OneCTransientError)),
            wait=wait_random_exponential(multiplier=self.retry.backoff_base, max=self.retry.backoff_max),
            stop=stop_after_attempt(self.retry.max_retries + 1),
            before_sleep=_log,
            reraise=True,
        )

    def get(self, path: str, what: str, params: dict[str, str] | None = None) -> Any:
        """An idempotent GET, retried on transient failures."""
        for attempt in self._retrying(what):
            with attempt:
                return self._request_once("GET", path, what, params=params)
        raise AssertionError("unreachable")  # pragma: no cover

    def send(self, method: str, path: str, what: str, body: Any = None,
             params: dict[str, str] | None = None) -> Any:
        """A write (POST/PATCH/DELETE): never retried here; the caller looks up before re-creating."""
        return self._request_once(method, path, what, params=params, json_body=body)

    # ---- OData operations -------------------------------------------------------------------
    def service_entity_sets(self) -> set[str]:
        """Names in the service document: what this user can reach through OData."""
        doc = self.get("", "the OData service document")
        if not isinstance(doc, dict) or not isinstance(doc.get("value"), list):
            raise OneCBadResponse(f"1C: the service document at {self.root} has no 'value' list", url=self.root)
        return {item.get("name") or item.get("url") for item in doc["value"]}

    def check_entity_sets(self, names: list[str]) -> None:
        """Fail with a configuration error naming each configured set the base does not publish."""
        published = self.service_entity_sets()
        missing = [n for n in names if n not in published]
        if missing:
            raise OneCConfigError(
                f"1C at {self.root} does not publish {', '.join(missing)} through OData: add them to the OData "
                "composition or pick the mapping profile of this configuration (config/mappings/)",
                url=self.root,
            )

    def list_page(self, entity_set: str, *, select: list[str] | None = None, filter_: str | None = None,
                  orderby: str | None = "Ref_Key", top: int | None = None, skip: int = 0,
                  extra: dict[str, str] | None = None, path: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, str] = {}
        if select:
            params["$select"] = ",".join(select)
        if filter_:
            params["$filter"] = filter_
        if orderby:
            params["$orderby"] = orderby
        if top is not None:
            params["$top"] = str(top)
            params["$skip"] = str(skip)
        params.update(extra or {})
        what = f"{entity_set} (skip {skip})" if top is not None else entity_set
        data = self.get(quote(path or entity_set, safe="/()=',"), what, params)
        if not isinstance(data, dict) or not isinstance(data.get("value"), list):
            raise OneCBadResponse(f"1C: {what} answered JSON without a 'value' list", url=self.root + entity_set)
        return data["value"]

    def iter_pages(self, entity_set: str, *, page_size: int, select: list[str] | None = None,
                   filter_: str | None = None, orderby: str = "Ref_Key", path: str | None = None,
                   extra: dict[str, str] | None = None) -> Iterator[list[dict[str, Any]]]:
        """Every page of a stable order, `prefetch` requests in flight, until a short page.

        Later pages are requested speculatively while earlier ones are consumed; requests past
        the end just come back empty. No `$inlinecount`, no server page size is trusted.
        """

        def fetch(k: int) -> list[dict[str, Any]]:
            return self.list_page(entity_set, select=select, filter_=filter_, orderby=orderby, top=page_size,
                                  skip=k * page_size, path=path, extra=extra)

        depth = max(1, self.prefetch)
        with ThreadPoolExecutor(max_workers=depth, thread_name_prefix="onec-page") as pool:
            inflight: list[Future[list[dict[str, Any]]]] = [pool.submit(fetch, k) for k in range(depth)]
            next_k = depth
            try:
                while inflight:
                    page = inflight.pop(0).result()
                    if page:
                        yield page
                    if len(page) < page_size:
                        break
                    inflight.append(pool.submit(fetch, next_k))
                    next_k += 1
            finally:
                for fut in inflight:
                    fut.cancel()

    def server_time(self) -> str:
        """Current time in the 1C server's time zone, naive ISO (how 1C writes its dates)."""
        return datetime.now(ZoneInfo(self.server_timezone)).replace(tzinfo=None, microsecond=0).isoformat()

    def server_now(self) -> str:
        """Current time in the 1C server's time zone as an OData datetime literal."""
        return f"datetime'{self.server_time()}'"

    def virtual_table_path(self, register: str, function: str, **params: str) -> str:
        """`Register/Function(Param=value,…)` — the parenthesised form of DOC §17.4.9."""
        args = ",".join(f"{k}={v}" for k, v in params.items())
        return f"{register}/{function}({args})"


def _content_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


def _parse_odata_error(response: httpx.Response) -> tuple[str, str] | None:
    """(`code`, message) of an `odata.error` body, or None when the body is something else."""
    if "json" not in _content_type(response):
        return None
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    err = body.get("odata.error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return None
    message = err.get("message")
    text = message.get("value") if isinstance(message, dict) else str(message or "")
    return str(err.get("code", "")), str(text)


__all__ = ["OneCClient", "OneCError", "RetryPolicy", "empty_to_none", "guid_literal", "odata_root"]
