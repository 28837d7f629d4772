"""Request decoding the way PHP and Bitrix's REST server see it.

Clients get bitten by PHP semantics, not by HTTP: `+` in a form value is a space, `select[]`
appends, `fields[PHONE][0][VALUE]` nests, numeric keys become integers and sequential maps become
lists, a JSON body is only read on POST with `Content-Type: application/json` (and silently
dropped when it does not parse — SRC `CRestUtil::getRequestData`), and classic CRM methods look a
parameter up under several spellings. This module reproduces those rules in one place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, Literal
from urllib.parse import unquote_plus

import orjson

_INT_KEY = re.compile(r"^(0|-?[1-9][0-9]{0,17})$")


def php_key(key: Any) -> int | str:
    """PHP array key normalisation: decimal-integer strings become ints."""
    if isinstance(key, bool):
        return int(key)
    if isinstance(key, int):
        return key
    text = str(key)
    return int(text) if _INT_KEY.match(text) else text


def php_shape(value: Any) -> Any:
    """Give a value the shape PHP's json_encode would: maps keyed 0..n-1 become lists, empty → []."""
    if isinstance(value, Mapping):
        items = [(php_key(k), php_shape(v)) for k, v in value.items()]
        if not items:
            return []
        if all(k == i for i, (k, _) in enumerate(items)):
            return [v for _, v in items]
        return {str(k): v for k, v in items}
    if isinstance(value, list | tuple):
        return [php_shape(v) for v in value]
    return value


def as_map(value: Any) -> dict[Any, Any] | None:
    """View a PHP array (dict or list) as a dict; None for scalars."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list | tuple):
        return dict(enumerate(value))
    return None


def as_list(value: Any) -> list[Any] | None:
    """View a PHP array as its list of values; None for scalars."""
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list | tuple):
        return list(value)
    return None


def php_int(value: Any) -> int:
    """PHP intval(): leading integer prefix of strings, 0 when none, truncation of floats."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, dict | list | tuple):
        return 1 if value else 0
    match = re.match(r"\s*([+-]?\d+)", str(value))
    return int(match.group(1)) if match else 0


def php_truthy(value: Any) -> bool:
    """PHP truthiness: "0" and "" are false, "false" is true."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value not in ("", "0")
    if isinstance(value, dict | list | tuple):
        return bool(value)
    return True


def php_is_numeric(value: Any) -> bool:
    """PHP is_numeric() for scalars."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        return bool(re.match(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$", value))
    return False


def php_str(value: Any) -> str:
    """PHP string conversion of a scalar (floats without a trailing .0)."""
    if value is None or value is False:
        return ""
    if value is True:
        return "1"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- parse_str -------------------------------------------------------------------------------


def _assign(target: dict[Any, Any], path: list[str | None], value: Any) -> None:
    node = target
    for i, raw in enumerate(path):
        last = i == len(path) - 1
        if raw is None:  # "[]" appends with the next integer key
            int_keys = [k for k in node if isinstance(k, int)]
            key: int | str = max(int_keys) + 1 if int_keys else 0
        else:
            key = php_key(raw)
        if last:
            node[key] = value
            return
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child


def _split_name(name: str) -> tuple[str, list[str | None]] | None:
    """Split `a[b][]` into ("a", ["b", None]) with PHP's name mangling rules."""
    name = name.lstrip(" ")
    bracket = name.find("[")
    if bracket == -1:
        base, rest = name, ""
    elif name.find("]", bracket) == -1:  # "a[b" → "a_b", no nesting
        base, rest = name[:bracket] + "_" + name[bracket + 1 :], ""
    else:
        base, rest = name[:bracket], name[bracket:]
    base = base.replace(".", "_").replace(" ", "_")
    if not base:
        return None
    path: list[str | None] = []
    while rest.startswith("["):
        close = rest.find("]")
        if close == -1:
            break
        index = rest[1:close].lstrip(" \t\r\n")
        path.append(index if index != "" else None)
        rest = rest[close + 1 :]
    return base, path


def php_parse_str(query: str) -> dict[Any, Any]:
    """PHP parse_str(): `&`-separated pairs, `+` → space, bracket nesting, last value wins."""
    result: dict[Any, Any] = {}
    for pair in query.split("&"):
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition("=")
        name = unquote_plus(raw_name, errors="replace")
        value = unquote_plus(raw_value, errors="replace")
        split = _split_name(name)
        if split is None:
            continue
        base, path = split
        _assign(result, [base, *path], value)
    return result


def parse_pairs(pairs: Iterable[tuple[str, str]]) -> dict[Any, Any]:
    """Already-decoded (name, value) pairs (multipart fields) with bracket names."""
    result: dict[Any, Any] = {}
    for name, value in pairs:
        split = _split_name(name)
        if split is not None:
            base, path = split
            _assign(result, [base, *path], value)
    return result


def _multipart_pairs(content_type: str, body: bytes) -> list[tuple[str, str]]:
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    pairs: list[tuple[str, str]] = []
    if not message.is_multipart():
        return pairs
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name or part.get_filename():
            continue
        payload = part.get_payload(decode=True) or b""
        pairs.append((str(name), payload.decode("utf-8", errors="replace")))
    return pairs


def decode_request(http_method: str, content_type: str | None, query_string: bytes, body: bytes) -> dict[Any, Any]:
    """Merge query-string and body parameters like `CRestUtil::getRequestData` does."""
    params = php_parse_str(query_string.decode("utf-8", errors="replace"))
    if http_method.upper() != "POST":
        return php_finalize(params)  # a body on GET (JSON or not) is ignored
    media = (content_type or "").split(";", 1)[0].strip().lower()
    posted: Any
    if media == "application/json":
        try:
            posted = orjson.loads(body.strip() or b"{}")
        except orjson.JSONDecodeError:
            posted = {}  # Json::decode failure → empty post data, no error
    elif media == "multipart/form-data":
        posted = parse_pairs(_multipart_pairs(content_type or "", body))
    else:
        posted = php_parse_str(body.decode("utf-8", errors="replace").strip())
    posted_map = as_map(posted) or {}
    params.update({php_key(k): v for k, v in posted_map.items()})
    return php_finalize(params)


def php_finalize(value: Any) -> Any:
    """Normalise keys and turn sequential maps into lists, recursively (PHP array semantics)."""
    if isinstance(value, Mapping):
        items = [(php_key(k), php_finalize(v)) for k, v in value.items()]
        if items and all(k == i for i, (k, _) in enumerate(items)):
            return [v for _, v in items]
        return dict(items)
    if isinstance(value, list | tuple):
        return [php_finalize(v) for v in value]
    return value


# --- parameter-name resolution -----------------------------------------------------------------

Resolution = Literal["classic", "exact", "anycase"]


class Params:
    """Top-level request parameters with the lookup rules of the method family.

    - "classic" (CCrmRestHelper): arrays UPPER → lower → Capitalized → arCapitalized;
      scalars lower → UPPER → Capitalized; entity id `ID` then `id`.
    - "exact" (Engine controllers: crm.item.*, crm.timeline.*, crm.activity.todo.*, tasks.task.*):
      only the declared name, so `FIELDS` is not `fields`.
    - "anycase" (user.get, batch: array_change_key_case).
    """

    def __init__(self, data: Mapping[Any, Any], mode: Resolution = "classic") -> None:
        self.data: dict[Any, Any] = dict(data)
        self.mode = mode
        self._upper = {str(k).upper(): v for k, v in self.data.items()} if mode == "anycase" else {}

    def _first(self, names: Iterable[str]) -> Any:
        for name in names:
            value = self.data.get(name)
            if value is not None:
                return value
        return None

    def array(self, name: str) -> Any:
        """A structured parameter (fields, filter, order, select, values)."""
        if self.mode == "exact":
            return self.data.get(name)
        if self.mode == "anycase":
            return self._upper.get(name.upper())
        cap = name.lower().capitalize()
        return self._first([name.upper(), name.lower(), cap, "ar" + cap])

    def scalar(self, name: str) -> Any:
        """A scalar parameter (type, id, entity_type)."""
        if self.mode == "exact":
            return self.data.get(name)
        if self.mode == "anycase":
            return self._upper.get(name.upper())
        return self._first([name.lower(), name.upper(), name.lower().capitalize()])

    def multipart(self, *parts: str) -> Any:
        """CCrmRestProxyBase::resolveMultiPartParam: ENTITY_TYPE, entity_type, EntityType, arEntityType."""
        upper = "_".join(parts).upper()
        hungary = "".join(p.capitalize() for p in parts)
        return self._first([upper, upper.lower(), hungary, "ar" + hungary])

    def entity_id(self) -> int:
        """CCrmRestProxyBase::resolveEntityID: `ID` then `id`, intval."""
        if self.mode == "exact":
            return php_int(self.data.get("id"))
        value = self._first(["ID", "id"])
        return php_int(value)

    def get(self, name: str, default: Any = None) -> Any:
        value = self.data.get(name)
        return default if value is None else value
