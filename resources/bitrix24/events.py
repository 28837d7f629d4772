"""Bitrix24 outgoing-webhook events: parse one call and verify its application token.

Reference §8: Bitrix24 POSTs `application/x-www-form-urlencoded` with PHP bracket keys —
`event=ONCRMDEALUPDATE&data[FIELDS][ID]=662&ts=1724140800&auth[application_token]=…` — carrying
only the object's id, and never resends a call that failed. So the receiver must answer fast and
store the event; the object itself is fetched later (`pipelines/crm_events`).
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

__all__ = ["MAX_BODY_BYTES", "CrmEvent", "EventRejected", "parse_event"]

MAX_BODY_BYTES = 16 * 1024  # a real call is under 1 KB
MAX_ID = 2**31 - 1  # CRM ids are INT columns
MAX_TS = 2**40  # seconds: far beyond any real call, well inside BIGINT
_CRM_EVENT = re.compile(r"ONCRM(LEAD|DEAL|CONTACT)(ADD|UPDATE|DELETE)")
_TOKEN_KEY = "auth[application_token]"
_ID_KEY = "data[FIELDS][ID]"


@dataclass(frozen=True)
class CrmEvent:
    """One CRM change: which object, what happened to it, and Bitrix24's timestamp of the call."""

    event: str  # upper case, e.g. ONCRMDEALUPDATE
    entity: str  # lead | deal | contact
    action: str  # add | update | delete
    entity_id: int
    ts: int


class EventRejected(ValueError):
    """The call is not a valid event for this receiver; `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _bounded_int(fields: dict[str, str], key: str, low: int, high: int) -> int:
    raw = fields.get(key, "").strip()
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and low <= int(raw) <= high):
        raise EventRejected(400, f"{key}: expected an integer from {low} to {high}, got {raw[:40]!r}")
    return int(raw)


def parse_event(body: bytes, expected_token: str) -> CrmEvent:
    """The event in a form-encoded body, after a constant-time check of its application token.

    The token is checked before anything else is looked at, so an unauthenticated caller learns
    nothing about what the receiver accepts. Errors name the field, never the token."""
    if not expected_token:
        raise EventRejected(503, "the receiver has no application token configured (BITRIX24_EVENT_TOKEN)")
    if len(body) > MAX_BODY_BYTES:
        raise EventRejected(413, f"body of {len(body)} bytes is over {MAX_BODY_BYTES}")
    try:
        fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError) as exc:
        raise EventRejected(400, f"body is not UTF-8 form data: {type(exc).__name__}") from None
    token = fields.get(_TOKEN_KEY, "")
    if not hmac.compare_digest(token.encode("utf-8"), expected_token.encode("utf-8")):
        raise EventRejected(401, f"{_TOKEN_KEY}: missing or not this handler's token")
    event = fields.get("event", "").strip().upper()
    match = _CRM_EVENT.fullmatch(event)
    if not match:
        raise EventRejected(400, f"event: {event[:64]!r} is not a CRM lead, deal or contact event")
    return CrmEvent(event=event, entity=match.group(1).lower(), action=match.group(2).lower(),
                    entity_id=_bounded_int(fields, _ID_KEY, 1, MAX_ID), ts=_bounded_int(fields, "ts", 0, MAX_TS))
