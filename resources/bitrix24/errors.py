"""Precise errors of the Bitrix24 REST client, classified by the `error` string.

Bitrix sends the same failure with different HTTP statuses depending on the layer and the
version (auth errors as 401 or 403, `OVERLOAD_LIMIT` as 401 or 503, CRM errors with an empty
`error` and only a description), so the class is chosen from the `error` string first, then
from `error_description` when `error` is empty, and the status only breaks ties for codes we do
not know (reference §3). Every message names the REST method and shows the webhook URL masked
(`https://portal/rest/1/***/`); none carries the webhook code.
"""

from __future__ import annotations

import logging
import re
from typing import Any

_REST_PATH = re.compile(r"(/rest/(?:api/)?\d+/)([^/?#]+)")


def mask_url(url: str) -> str:
    """Replace the webhook code in a `…/rest/<user>/<code>/…` URL with `***`."""
    return _REST_PATH.sub(r"\1***", url)


class MaskWebhookFilter(logging.Filter):
    """Masks webhook codes in log records of other libraries: httpx logs every request as
    `HTTP Request: POST <full URL>` at INFO, which would print the code."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "/rest/" in record.msg:
            record.msg = mask_url(record.msg)
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(mask_url(str(a)) if "/rest/" in str(a) else a
                                for a in record.args)
        return True


_HTTP_LOGGERS = ("httpx", "httpcore.http11", "httpcore.http2", "httpcore.connection", "httpcore.proxy")


def install_log_masking() -> None:
    """Attach `MaskWebhookFilter` once to the loggers of httpx/httpcore (idempotent)."""
    for name in _HTTP_LOGGERS:
        log = logging.getLogger(name)
        if not any(isinstance(f, MaskWebhookFilter) for f in log.filters):
            log.addFilter(MaskWebhookFilter())


class Bitrix24Error(Exception):
    """Base of every Bitrix24 client error.

    `error`/`description` are Bitrix's `error`/`error_description` (empty for transport
    failures), `status` the HTTP status (None for a per-command batch error or no response),
    `method` the REST method, `ambiguous` True when a write may have been committed although the
    client saw a failure, `partial` whatever completed before the failure (a `BatchResult`).
    """

    retryable: bool = False

    def __init__(self, message: str, *, error: str = "", description: str = "", status: int | None = None,
                 method: str = "", url: str = "", ambiguous: bool = False) -> None:
        super().__init__(message)
        self.error = error
        self.description = description
        self.status = status
        self.method = method
        self.url = url
        self.ambiguous = ambiguous
        self.partial: Any = None

    def __reduce__(self) -> tuple[Any, ...]:
        # keyword-only constructors do not survive the default pickling of exceptions
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[Bitrix24Error], args: tuple[Any, ...], state: dict[str, Any]) -> Bitrix24Error:
    exc = cls.__new__(cls)
    Exception.__init__(exc, *args)
    exc.__dict__.update(state)
    return exc


class RateLimited(Bitrix24Error):
    """503 `QUERY_LIMIT_EXCEEDED`: the portal's request bucket is full; nothing was executed."""

    retryable = True


class OperationTimeLimit(Bitrix24Error):
    """429 `OPERATION_TIME_LIMIT`: this method used up its execution-time budget; nothing ran.

    `reset_at` is the Unix time after which the method may be called again (the last
    `operating_reset_at` seen for it, or the client's fallback pause).
    """

    retryable = True

    def __init__(self, message: str, *, reset_at: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.reset_at = reset_at


class AuthError(Bitrix24Error):
    """The webhook cannot do this: bad/expired credentials, missing scope, REST blocked or not
    on the plan, no access to the record. Retrying never helps; a person must fix the webhook."""


class NotFound(Bitrix24Error):
    """The record (`"" + "Not found"`, `NOT_FOUND`, `OWNER_NOT_FOUND`) or the method does not exist."""


class MethodNotFound(NotFound):
    """`ERROR_METHOD_NOT_FOUND`: unknown method, a v3-only method, or a malformed webhook path."""


class ValidationError(Bitrix24Error):
    """The request is wrong: missing/invalid fields or arguments (`ERROR_CORE`, `ERROR_ARGUMENT`,
    `100`, «ID is not defined or invalid.», batch misuse). Fix the data, do not retry."""


class TransportError(Bitrix24Error):
    """No usable answer: timeout, dropped connection, HTML or truncated JSON.

    With `ambiguous=True` the request was a write that may have been committed: look the record
    up before creating it again. `retryable` is False for an HTML 4xx page (a wrong URL), which
    no retry will fix.
    """

    retryable = True

    def __init__(self, message: str, *, retryable: bool = True, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retryable = retryable


class ServerError(TransportError):
    """5xx from Bitrix or its front layer (`INTERNAL_SERVER_ERROR`, 502/504 pages, …)."""


class PortalMoved(Bitrix24Error):
    """301/302 that could not be followed safely; `new_base` is the masked new webhook base."""

    def __init__(self, message: str, *, new_base: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.new_base = new_base


_AUTH_CODES = {
    "NO_AUTH_FOUND", "INVALID_CREDENTIALS", "INSUFFICIENT_SCOPE", "EXPIRED_TOKEN", "INVALID_TOKEN",
    "ACCESS_DENIED", "OVERLOAD_LIMIT", "USER_ACCESS_ERROR", "INVALID_REQUEST", "PORTAL_DELETED",
    "ALLOWED_ONLY_INTRANET_USER", "WRONG_AUTH_TYPE", "AUTHORIZATION_ERROR",
}
_NOT_FOUND_CODES = {"NOT_FOUND", "OWNER_NOT_FOUND", "ERROR_NOT_FOUND"}
_VALIDATION_CODES = {
    "ERROR_CORE", "ERROR_ARGUMENT", "100", "INVALID_ARG_VALUE", "WRONG_DATETIME_FORMAT",
    "CRM_FIELD_ERROR_VALUE_NOT_VALID", "ERROR_BATCH_LENGTH_EXCEEDED", "ERROR_BATCH_METHOD_NOT_ALLOWED",
    "WRONG_ENCODING", "ERROR_REQUIRED_PARAMETERS_MISSING", "INVALID_ARGUMENT", "ERROR_WRONG_HANDLER_URL",
}
_SERVER_CODES = {"INTERNAL_SERVER_ERROR", "ERROR_UNEXPECTED_ANSWER", "ERROR_UNEXPECTED"}

_HINTS: dict[type[Bitrix24Error], str] = {
    RateLimited: "the portal's request limit (2 req/s, burst 50 per IP) is exhausted",
    OperationTimeLimit: "this method's execution-time budget is used up; other methods still work",
    AuthError: "check the webhook in BITRIX24_WEBHOOK_URL: user, code, scopes, expiry and the plan",
    MethodNotFound: "unknown method, a REST 3.0-only method or a malformed webhook path",
}


def _error_class(error: str, description: str, status: int | None) -> type[Bitrix24Error]:
    code = error.strip().upper()
    if code == "QUERY_LIMIT_EXCEEDED":
        return RateLimited
    if code == "OPERATION_TIME_LIMIT":
        return OperationTimeLimit
    if code in _AUTH_CODES:
        return AuthError
    if code == "ERROR_METHOD_NOT_FOUND":
        return MethodNotFound
    if code in _NOT_FOUND_CODES:
        return NotFound
    if code in _VALIDATION_CODES:
        return ValidationError
    if code in _SERVER_CODES:
        return ServerError
    if not code:
        text = description.strip().lower()
        if "not found" in text:
            return MethodNotFound if text.startswith("method not found") else NotFound
        if "access denied" in text or "permission" in text:
            return AuthError
        if status is not None and status >= 500:
            return ServerError
        return ValidationError
    # An unknown code: the status is the only hint left.
    if status in (401, 403):
        return AuthError
    if status == 404:
        return NotFound
    if status is not None and status >= 500:
        return ServerError
    return Bitrix24Error


def classify(error: Any, description: Any, *, status: int | None, method: str, url: str = "",
             ambiguous: bool = False) -> Bitrix24Error:
    """Build the precise exception for an `{"error", "error_description"}` pair.

    `url` must already be masked. `ambiguous` is kept only for server errors of a write (a
    rejected call — auth, validation, limits — ran nothing).
    """
    err = "" if error is None else str(error)
    desc = "" if description is None else str(description)
    cls = _error_class(err, desc, status)
    shown = re.sub(r"(<br\s*/?>\s*)+$", "", desc).strip()
    where = f" at {url}" if url else ""
    http = f"HTTP {status}" if status is not None else "in batch"
    message = f"Bitrix24 {method} failed: {err or '(no code)'}: {shown or '(no description)'} ({http}){where}"
    hint = _HINTS.get(cls)
    if hint:
        message += f" — {hint}"
    is_ambiguous = ambiguous and issubclass(cls, ServerError)
    if is_ambiguous:
        message += " — outcome unknown: the write may have been committed; look it up before re-creating"
    return cls(message, error=err, description=desc, status=status, method=method, url=url,
               ambiguous=is_ambiguous)


__all__ = [
    "AuthError", "Bitrix24Error", "MethodNotFound", "NotFound", "OperationTimeLimit", "PortalMoved",
    "MaskWebhookFilter", "RateLimited", "ServerError", "TransportError", "ValidationError", "classify",
    "install_log_masking", "mask_url",
]
