"""Bitrix24 REST client (incoming webhook): errors, throttle, batch encoding, client, Dagster resource."""

from resources.bitrix24.client import BatchResult, Bitrix24Client, Bitrix24Response, ClientStats
from resources.bitrix24.errors import (
    AuthError,
    Bitrix24Error,
    MethodNotFound,
    NotFound,
    OperationTimeLimit,
    PortalMoved,
    RateLimited,
    ServerError,
    TransportError,
    ValidationError,
)
from resources.bitrix24.throttle import Throttle

__all__ = [
    "AuthError", "BatchResult", "Bitrix24Client", "Bitrix24Error", "Bitrix24Response", "ClientStats",
    "MethodNotFound", "NotFound", "OperationTimeLimit", "PortalMoved", "RateLimited", "ServerError",
    "Throttle", "TransportError", "ValidationError",
]
