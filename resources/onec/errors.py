"""Precise errors of the 1C OData client.

Every message names what failed and where (entity set, safe URL); none carries a password or
an Authorization header.
"""

from __future__ import annotations


class OneCError(Exception):
    """Base of every 1C client error."""

    def __init__(self, message: str, *, url: str = "", status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.url = url
        self.status = status
        self.code = code


class OneCAuthError(OneCError):
    """401: wrong user name or password, or no rights (internal code 20)."""


class OneCNotFoundError(OneCError):
    """404: OData is not published, or the object is not in the OData composition."""


class OneCODataError(OneCError):
    """1C answered with an `odata.error` envelope (a business error `-1`, a bad query, …)."""


class OneCBadResponse(OneCError):
    """The body is not OData JSON: an HTML page, truncated or invalid JSON, the wrong shape."""


class OneCTransientError(OneCError):
    """A server or network failure worth retrying (5xx, timeout, dropped connection)."""


class OneCConfigError(OneCError):
    """The mapping names something the 1C base does not have (entity set, price type, warehouse)."""
