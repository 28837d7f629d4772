"""Keep secrets out of answers, logs and reprs.

The 1C password and the Bitrix24 webhook (whose path *is* the credential) must never appear in
an error message, even when a lower layer (httpx, a proxy page) echoes a URL back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
_SECRET_KEY = re.compile(r"pass|secret|token|key|webhook|auth", re.IGNORECASE)
_MIN_SECRET_LENGTH = 4  # shorter values would mangle ordinary text; no client echoes passwords anyway
_WEBHOOK = re.compile(r"^(?P<head>https?://[^/]+/rest/\d+/)(?P<code>[^/]+)(?P<tail>/?.*)$")


def is_secret_key(name: str) -> bool:
    """A config key whose value must never be shown (`password`, `api_key`, `webhook_url`, …)."""
    return bool(_SECRET_KEY.search(name))


def mask_webhook(url: str) -> str:
    """`https://portal/rest/1/abc123/` → `https://portal/rest/1/***/` (portal and user stay visible)."""
    match = _WEBHOOK.match(url.strip())
    if not match:
        return MASK if url else ""
    return f"{match['head']}{MASK}{match['tail'] or '/'}"


def webhook_secrets(url: str) -> list[str]:
    """What to redact for a webhook URL: the URL itself and its code segment."""
    match = _WEBHOOK.match(url.strip())
    return [url.strip(), url.strip().rstrip("/"), match["code"]] if match else [url.strip()]


class Redactor:
    """Replaces every known secret value in a text with `***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH}
        self._secrets = sorted(values, key=len, reverse=True)  # longest first: a URL before its code

    def __call__(self, text: object) -> str:
        out = str(text)
        for secret in self._secrets:
            out = out.replace(secret, MASK)
        return out
