"""Small helpers that give every answer the seed's shape: `{"success": bool, "error": str, ...}`.

Answers are plain JSON-friendly dicts (ISO-8601 UTC strings, ints for whole numbers) so a bot can
log them, send them to a chat or serialise them without conversion.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from resources.store.database import utcnow


def failure(error: str, **fields: Any) -> dict[str, Any]:
    """A failed answer; `error` says what failed and where."""
    return {"success": False, "error": error, **fields}


def iso_utc(value: datetime | None) -> str | None:
    """A store timestamp (naive UTC) as ISO-8601 with an explicit `+00:00`."""
    if value is None:
        return None
    if isinstance(value, str):  # some drivers hand back text
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def age_seconds(value: datetime | None, now: datetime | None = None) -> float | None:
    """Seconds since a naive-UTC timestamp, never negative."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return round(max(0.0, ((now or utcnow()) - value).total_seconds()), 3)


def plain_number(value: float | int | None) -> float | int | None:
    """45000.0 → 45000 so the bot prints "45000 KZT", not "45000.0 KZT"; fractions stay floats."""
    if value is None:
        return None
    number = float(value)
    return int(number) if number.is_integer() else number
