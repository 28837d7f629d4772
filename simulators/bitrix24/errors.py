"""REST errors as Bitrix reports them: an `error` code (often empty) plus a description.

Methods raise `RestError`; the app turns it into the error envelope (no `time` key). Auth-layer
errors leave `status` as None so the app can apply the configurable 401/403 switch.
"""

from __future__ import annotations

from typing import Any


class RestError(Exception):
    """A REST-level failure: `{"error": code, "error_description": description}`."""

    def __init__(self, code: str, description: str, status: int | None = 400, **extra: Any) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.status = status
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "error_description": self.description, **self.extra}


def crm_error(description: str) -> RestError:
    """Classic CRM methods throw RestException with an empty code and status 400."""
    return RestError("", description, 400)


def auth_error(code: str, description: str) -> RestError:
    """Errors raised through OAuthException: status decided by FaultConfig.auth_error_status."""
    return RestError(code, description, None)


METHOD_NOT_FOUND = ("ERROR_METHOD_NOT_FOUND", "Method not found!")
NOT_FOUND = "Not found"
ID_INVALID = "ID is not defined or invalid."
