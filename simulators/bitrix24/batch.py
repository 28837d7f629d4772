"""`batch`: up to 50 commands in one HTTP request, with `$result[...]` references.

A port of `CRestProvider::methodsBatch` and `CRestUtil::ParseBatchQuery` (SRC rest module):
- `cmd`/`halt` keys in any case; `halt` uses PHP truthiness ("0" false, "false" true);
- every entry counts toward the 50, but non-string entries are skipped silently; entries past 50
  get ERROR_BATCH_LENGTH_EXCEEDED; `batch`/`upload`/`download` → ERROR_BATCH_METHOD_NOT_ALLOWED;
- each command is split like PHP parse_url (a `#` starts a fragment and is cut off!) and its query
  decoded with parse_str (`+` → space);
- references `$result[key][FIELD]…` (also `$next`, `$total`, `$time`, `$error`): a value that is
  exactly one reference takes the referenced value (arrays included); inside a longer string the
  match runs to the next whitespace and is replaced only by a string/number; a missing key stops
  the walk where it is;
- errors go to `result_error`, successes to `result`/`result_total`/`result_next`/`result_time`;
  empty maps serialise as `[]`; the HTTP status stays 200.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from simulators.bitrix24.params import (
    Params,
    as_map,
    php_finalize,
    php_is_numeric,
    php_key,
    php_parse_str,
    php_str,
    php_truthy,
)

MAX_COMMANDS = 50
_SECTIONS = ("result", "next", "total", "time", "error")
_REFERENCE = re.compile(r"\$(" + "|".join(_SECTIONS) + r")(\S*)", re.IGNORECASE)
_PATH_KEY = re.compile(r"\[([^\]]+)\]")

SubCall = Callable[[str, dict[Any, Any]], dict[str, Any]]


def php_parse_url(command: str) -> tuple[str, str]:
    """The `path` and `query` parse_url() would give for `method?query#fragment`."""
    without_fragment = command.split("#", 1)[0]
    path, _, query = without_fragment.partition("?")
    return path, query


def _isset(container: Any, key: str) -> tuple[bool, Any]:
    if isinstance(container, dict):
        for candidate in (php_key(key), key):
            if candidate in container and container[candidate] is not None:
                return True, container[candidate]
        return False, None
    if isinstance(container, list):
        index = php_key(key)
        if isinstance(index, int) and 0 <= index < len(container) and container[index] is not None:
            return True, container[index]
    return False, None


def substitute(value: str, sections: dict[str, Any]) -> Any:
    """CRestUtil::processBatchElement for one scalar parameter value."""
    for match in list(_REFERENCE.finditer(value)):
        keys = _PATH_KEY.findall(match.group(2))
        if not keys:
            continue
        current: Any = sections.get(match.group(1))  # PHP looks up the name as written
        for key in keys:
            found, child = _isset(current, key)
            if not found:
                break
            current = child
        if match.group(0) == value:
            return current
        if php_is_numeric(current) and not isinstance(current, str):
            current = php_str(current)
        if not isinstance(current, str):
            continue
        value = value.replace(match.group(0), current)
    return value


def _substitute_tree(params: Any, sections: dict[str, Any]) -> Any:
    if isinstance(params, dict):
        return {k: _substitute_tree(v, sections) for k, v in params.items()}
    if isinstance(params, list):
        return [_substitute_tree(v, sections) for v in params]
    if isinstance(params, str):
        return substitute(params, sections)
    return params


def parse_batch_query(query: str, sections: dict[str, Any]) -> dict[Any, Any]:
    """CRestUtil::ParseBatchQuery: parse_str, then reference substitution."""
    if not query:
        return {}
    return _substitute_tree(php_finalize(php_parse_str(query)), sections)


def run_batch(params: Params, call: SubCall) -> dict[str, Any]:
    """Run the commands through `call(method, params)`; returns the five result maps."""
    halt = php_truthy(params.array("halt"))
    sections: dict[str, dict[Any, Any]] = {name: {} for name in _SECTIONS}
    commands = as_map(params.array("cmd")) or {}
    count = 0
    for raw_key, command in commands.items():
        key = php_key(raw_key)
        if count < MAX_COMMANDS:
            count += 1
            if not isinstance(command, str):
                continue
            method, query = php_parse_url(command)
            sub_params = parse_batch_query(query, sections)
            if method in ("batch", "upload", "download"):
                outcome: dict[str, Any] = {"error": "ERROR_BATCH_METHOD_NOT_ALLOWED",
                                           "error_description": "Method is not allowed for batch usage"}
            else:
                outcome = call(method, sub_params)
        else:
            count += 1
            outcome = {"error": "ERROR_BATCH_LENGTH_EXCEEDED", "error_description": "Max batch length exceeded"}
        if "error" in outcome:
            sections["error"][key] = {"error": outcome["error"], "error_description": outcome["error_description"]}
            if halt:
                break
            continue
        for name in ("result", "next", "total", "time"):
            if name in outcome and outcome[name] is not None:
                sections[name][key] = outcome[name]
    return {
        "result": sections["result"], "result_error": sections["error"], "result_total": sections["total"],
        "result_next": sections["next"], "result_time": sections["time"],
    }
