"""Batch command strings in PHP bracket syntax, and packing commands into ≤ 50-command requests.

A `batch` command is a string `method?query` that the server splits with `parse_url` and
decodes with `parse_str` (reference §5): nested values become `fields[PHONE][0][VALUE]=…`, every
value is percent-encoded (`+` → `%2B`, `&` → `%26`, `#` → `%23`, UTF-8 for Cyrillic/Kazakh),
and `$result[key]` references are substituted *after* decoding, so they may only point to an
earlier command of the same request. `pack()` keeps such dependency groups in one request.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote

BATCH_LIMIT = 50
_REFERENCE = re.compile(r"\$(?:result|next|total|time|error)\[([^\]]+)\]", re.IGNORECASE)
_NUMERIC_KEY = re.compile(r"^\s*-?\d+\s*$")
_METHOD = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")


def check_method(method: str) -> str:
    """A REST method name, or ValueError: the name becomes part of the URL path."""
    if not isinstance(method, str) or not _METHOD.match(method):
        raise ValueError(f"not a Bitrix24 REST method name: {method!r}")
    return method


def check_key(key: Any) -> str:
    """Batch keys must be non-numeric strings: numeric keys turn PHP maps into JSON lists and
    brackets would break `$result[key]` references."""
    if not isinstance(key, str) or not key or _NUMERIC_KEY.match(key) or any(c in key for c in "[]$&=?# "):
        raise ValueError(f"batch command key must be a non-numeric string without []$&=?# or spaces: {key!r}")
    return key


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if value is True:
        return "1"
    if value is False:
        return "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Decimal):
        return format(value, "f")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _pairs(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _pairs(f"{prefix}[{k}]", v)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _pairs(f"{prefix}[{i}]", v)
    else:
        yield prefix, _scalar(value)


def php_query(params: Mapping[str, Any]) -> str:
    """`{"fields": {"PHONE": [{"VALUE": "+7…"}]}}` → `fields[PHONE][0][VALUE]=%2B7…`.

    Brackets in names stay literal (as in Bitrix's docs); names and values are otherwise
    percent-encoded as UTF-8. `$`, `[` and `]` stay literal in values so `$result[…]` is
    readable (PHP decodes them the same either way). Empty lists/maps produce nothing, like
    PHP's `http_build_query`; None is sent as an empty string; booleans as 1/0.
    """
    parts = []
    for key, value in params.items():
        for name, text in _pairs(str(key), value):
            parts.append(f"{quote(name, safe='[]')}={quote(text, safe='$[]')}")
    return "&".join(parts)


def batch_command(method: str, params: Mapping[str, Any] | None) -> str:
    """One `cmd` value: `method?query`."""
    check_method(method)
    query = php_query(params or {})
    return f"{method}?{query}" if query else method


def references(params: Any) -> set[str]:
    """Keys named by `$result[key]` (and `$next`, `$total`, …) anywhere in a command's values."""
    found: set[str] = set()
    if isinstance(params, Mapping):
        for k, v in params.items():
            found |= references(k) | references(v)
    elif isinstance(params, list | tuple):
        for v in params:
            found |= references(v)
    elif isinstance(params, str):
        found.update(m.group(1) for m in _REFERENCE.finditer(params))
    return found


def pack(keys: Sequence[str], deps: Mapping[str, set[str]], limit: int = BATCH_LIMIT) -> list[list[str]]:
    """Split ordered `keys` into runs of ≤ `limit`, never separating a command from the earlier
    commands it references (`deps[key]`, restricted to batch keys).

    Raises ValueError when a command references a later command (the server runs them in order)
    or when one dependency group is longer than `limit`.
    """
    index = {k: i for i, k in enumerate(keys)}
    anchor: list[int] = []
    for i, key in enumerate(keys):
        low = i
        for ref in deps.get(key, set()):
            j = index.get(ref)
            if j is None:
                continue
            if j >= i:
                raise ValueError(f"batch command {key!r} references {ref!r}, which does not run before it")
            low = min(low, anchor[j])
        anchor.append(low)
    n = len(keys)
    suffix_min = [n] * (n + 1)
    for i in range(n - 1, -1, -1):
        suffix_min[i] = min(anchor[i], suffix_min[i + 1])
    chunks: list[list[str]] = []
    start = 0
    while start < n:
        end = min(n, start + limit)
        if end < n:
            while end > start and suffix_min[end] < end:
                end -= 1
            if end == start:
                raise ValueError(f"a group of batch commands linked by $result[...] from {keys[start]!r} "
                                 f"is longer than {limit}; split it")
        chunks.append(list(keys[start:end]))
        start = end
    return chunks


__all__ = ["BATCH_LIMIT", "batch_command", "check_key", "check_method", "pack", "php_query", "references"]
