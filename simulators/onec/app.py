"""HTTP face of the simulator: a 1C standard.odata publication plus an admin API.

`create_app()` returns a Starlette app. Everything under `/<base>/odata/standard.odata/` behaves
like 1C behind IIS (onec.md §6): Basic auth with UTF-8 credentials, atom-xml unless JSON is asked
for, HTML 404 for over-long query strings, virtual tables, writes, and the faults of
`FaultConfig`. `/_admin/*` (no auth) lets tests and benchmarks in other processes inspect and
change the base.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import re
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from simulators.onec import render, vtables
from simulators.onec.dataset import Dataset
from simulators.onec.engine import QueryEngine
from simulators.onec.errors import ODataError, not_found_entity, not_found_set
from simulators.onec.faults import FaultConfig, FaultState
from simulators.onec.profiles import profile
from simulators.onec.query import MISSING, Composite, Select, parse_filter, parse_int, parse_select
from simulators.onec.tables import Registry, Table
from simulators.onec.writes import Writer
from simulators.serving import DropConnection

DEFAULT_USERS = {"Администратор": "zeta-demo"}


# ------------------------------------------------------------------------------------ parsing


def split_path(path: str) -> list[str]:
    """Split at `/` outside parentheses (a Condition may contain `Валюта/Код`)."""
    out, depth, start = [], 0, 0
    for pos, ch in enumerate(path):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == "/" and depth == 0:
            out.append(path[start:pos])
            start = pos + 1
    out.append(path[start:])
    return [s for s in out if s != ""]


_SEGMENT = re.compile(r"([^()]+)(?:\((.*)\))?", re.S)


def parse_segment(seg: str) -> tuple[str, str | None]:
    m = _SEGMENT.fullmatch(seg)
    if not m:
        raise ODataError(400, "6", f"Неверный сегмент URL: '{seg}'")
    return m.group(1), m.group(2)


def _decode(raw: bytes) -> str:
    """Percent-decode at byte level, then UTF-8 (`+` is a space, as form encoding has it)."""
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8", errors="replace")


def parse_query(raw: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in raw.split(b"&"):
        if part:
            key, _, value = part.partition(b"=")
            out[_decode(key)] = _decode(value)
    return out


def negotiate(params: dict[str, str], headers: Any) -> tuple[bool, str]:
    """(JSON?, metadata level): JSON only when asked for by $format or Accept."""

    def level(text: str) -> str:
        m = re.search(r"odata=(\w+)", text)
        return m.group(1) if m and m.group(1) in ("nometadata", "minimalmetadata", "fullmetadata") else (
            "minimalmetadata")

    fmt = params.get("$format")
    if fmt is not None:
        low = fmt.strip().lower()
        if low == "json" or low.startswith("application/json"):
            return True, level(low)
        if low in ("atom", "xml") or low.startswith(("application/atom", "application/xml")):
            return False, ""
        raise ODataError(406, "3", f"Запрошенное представление не поддерживается: {fmt}")
    accept = (headers.get("accept") or "").lower()
    if "application/json" in accept:
        return True, level(accept)
    return False, ""


@dataclass
class Reply:
    """What the processing step answers, plus facts the fault layer needs."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    created: bool = False


@dataclass
class Stats:
    """Request counters for /_admin/stats."""

    by_set: dict[str, Counter[str]] = field(default_factory=dict)
    by_method: Counter[str] = field(default_factory=Counter)
    total: int = 0
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))

    def record(self, method: str, entity_set: str, status: int | str, url: str) -> None:
        self.total += 1
        self.by_method[method] += 1
        self.by_set.setdefault(entity_set, Counter())[str(status)] += 1
        self.recent.append({"method": method, "set": entity_set, "status": status, "url": url})


# ------------------------------------------------------------------------------------ simulator


class OneCSimulator:
    """The OData publication as an ASGI callable; state shared with the admin routes."""

    def __init__(self, dataset: Dataset | None, *, base: str, configuration: str, users: dict[str, str],
                 faults: FaultConfig | None, url_limit: int, url_limit_mode: str, path_limit: int,
                 enforce_if_match: bool) -> None:
        self.ds = dataset or Dataset()
        self.configuration = configuration
        self.profile = profile(configuration)
        self.registry = Registry(self.ds, self.profile)
        self.engine = QueryEngine(self.registry)
        self.writer = Writer(self.ds, self.registry, self.profile)
        self.faults = FaultState(faults)
        self.stats = Stats()
        self.users = dict(users)
        self.base = base
        self.root = f"/{base}/odata/standard.odata"
        self.url_limit = url_limit
        self.path_limit = path_limit
        if url_limit_mode not in ("iis", "apache"):
            raise ValueError("url_limit_mode must be 'iis' or 'apache'")
        self.url_limit_mode = url_limit_mode
        self.enforce_if_match = enforce_if_match

    # -------------------------------------------------------------- ASGI entry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        method = request.method.upper()
        path: str = scope["path"]
        raw_qs: bytes = scope.get("query_string", b"")
        url = path + ("?" + _decode(raw_qs) if raw_qs else "")
        cfg = self.faults.config
        early = self._gatekeeper(request, method, path, raw_qs)
        entity_set = self._set_name(path)
        if early is not None:
            self.stats.record(method, entity_set, early.status, url)
            await self._send(early, scope, receive, send)
            return
        params = parse_query(raw_qs)
        faulty = self.faults.applies(entity_set)
        if cfg.latency_seconds:
            await asyncio.sleep(cfg.latency_seconds)
        if faulty and self.faults.roll(cfg.slow_rate):
            await asyncio.sleep(cfg.slow_seconds)
        if faulty and self.faults.roll(cfg.drop_rate):
            self.stats.record(method, entity_set, "dropped", url)
            await _drop(send)
        if faulty and self.faults.roll(cfg.error_rate):
            reply = self._random_error(params, request)
            self.stats.record(method, entity_set, reply.status, url)
            await self._send(reply, scope, receive, send)
            return
        body = await request.body() if method in ("POST", "PATCH", "PUT", "MERGE") else b""
        reply = self._process(request, method, path, params, body)
        if reply.status == 200 and reply.content_type.startswith("application/json") and self.faults.broken(
                entity_set, _skip_of(params)):
            reply = Reply(200, reply.body[: max(1, len(reply.body) // 2)], reply.content_type)
        if reply.created and self.faults.roll(cfg.lose_create_response_rate):
            self.stats.record(method, entity_set, "dropped-after-commit", url)
            await _drop(send)
        self.stats.record(method, entity_set, reply.status, url)
        await self._send(reply, scope, receive, send)

    @staticmethod
    async def _send(reply: Reply, scope: Scope, receive: Receive, send: Send) -> None:
        response = Response(reply.body, status_code=reply.status,
                            headers={"content-type": reply.content_type, **reply.headers})
        await response(scope, receive, send)

    def _set_name(self, path: str) -> str:
        if not path.startswith(self.root):
            return "(outside)"
        segs = split_path(path[len(self.root):])
        if not segs:
            return "(service)"
        m = _SEGMENT.fullmatch(segs[0])
        return m.group(1) if m else segs[0]

    def _gatekeeper(self, request: Request, method: str, path: str, raw_qs: bytes) -> Reply | None:
        """Web server and 1C module checks that happen before any OData processing."""
        cfg = self.faults.config
        if self.url_limit_mode == "apache":
            raw_path = request.scope.get("raw_path") or path.encode()
            line = len(method) + 1 + len(raw_path) + (1 + len(raw_qs) if raw_qs else 0) + 9
            if line > self.url_limit:
                return Reply(414, render.APACHE_414, render.HTML_TYPE)
        elif len(raw_qs) > self.url_limit or len(request.scope.get("raw_path") or path.encode()) > self.path_limit:
            return Reply(404, render.IIS_404, render.HTML_TYPE)
        if not (path == self.root or path.startswith(self.root + "/")):
            return Reply(404, render.IIS_404, render.HTML_TYPE)
        if cfg.odata_disabled:
            return Reply(404, render.ODATA_OFF_404, render.HTML_TYPE)
        if cfg.html_auth_200:
            return Reply(200, render.LOGIN_PAGE, render.HTML_TYPE)
        if not self._authorized(request.headers.get("authorization")):
            return Reply(401, "Ошибка аутентификации пользователя".encode(), "text/plain; charset=utf-8",
                         {"www-authenticate": 'Basic realm="1C:Enterprise"'})
        return None

    def _authorized(self, header: str | None) -> bool:
        if not header or header[:6].lower() != "basic ":
            return False
        try:
            user, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False
        return bool(sep) and user in self.users and self.users[user] == password

    def _random_error(self, params: dict[str, str], request: Request) -> Reply:
        cfg = self.faults.config
        status = self.faults.rng.choice(cfg.error_statuses or [500])
        odata = cfg.error_body == "odata" or (cfg.error_body == "mixed" and status == 500)
        if not odata:
            page = render.GATEWAY_PAGES.get(status) or render.html_page(f"{status} Error", "Server error")
            return Reply(status, page, render.HTML_TYPE)
        err = ODataError(status, "-1", "Ошибка СУБД: превышено время ожидания блокировки (симуляция сбоя)")
        return self._error(err, params, request)

    def _error(self, err: ODataError, params: dict[str, str], request: Request) -> Reply:
        try:
            as_json, _meta = negotiate(params, request.headers)
        except ODataError:
            as_json = False
        if as_json:
            return Reply(err.status, render.error_json(err), "application/json;charset=utf-8")
        return Reply(err.status, render.error_xml(err), render.XML_TYPE)

    # -------------------------------------------------------------- OData processing

    def _process(self, request: Request, method: str, path: str, params: dict[str, str], body: bytes) -> Reply:
        try:
            with self.ds.lock:
                return self._dispatch(request, method, path, params, body)
        except ODataError as err:
            return self._error(err, params, request)
        except DropConnection:
            raise
        except Exception as exc:  # a simulator bug must still look like 1C
            err = ODataError(500, "-1", f"Произошла внутренняя ошибка OData-сервиса: {type(exc).__name__}: {exc}")
            return self._error(err, params, request)

    def _dispatch(self, request: Request, method: str, path: str, params: dict[str, str], body: bytes) -> Reply:
        as_json, meta = negotiate(params, request.headers)
        root = f"{str(request.base_url).rstrip('/')}{self.root}"
        for name in params:
            if name.startswith("$") and name not in (
                    "$filter", "$select", "$orderby", "$top", "$skip", "$inlinecount", "$format", "$expand",
                    "$allowedOnly"):
                raise ODataError(400, "14", f"Неизвестный параметр запроса {name}")
        segs = split_path(path[len(self.root):])
        if not segs:
            if method != "GET":
                raise ODataError(405, "19", "Метод не разрешен для этого ресурса")
            names = self.registry.entity_sets()
            if as_json:
                return Reply(200, render.service_json(root, names), render.JSON_TYPE)
            return Reply(200, render.service_xml(root, names), "application/atomsvc+xml;charset=utf-8")
        if segs[0] == "$metadata":
            if params.get("$format", "").strip().lower().startswith(("json", "application/json")):
                raise ODataError(406, "3", "Получение метаданных в формате JSON не поддерживается")
            return Reply(200, self._metadata(), render.XML_TYPE)
        name, key = parse_segment(segs[0])
        table = self.registry.table(name)
        price_reg = self.registry.price_register(name)
        stock_reg = self.registry.stock_register(name)
        if table is None and price_reg is None and stock_reg is None:
            raise not_found_set(name)
        assert table is not None
        if key is not None:
            return self._entity_request(request, method, table, key, segs[1:], params, body, root, as_json, meta)
        if len(segs) == 1:
            if method == "GET":
                return self._list(table, params, root, table.name, as_json, meta)
            if method == "POST":
                return self._create(table, body, root, as_json, meta)
            raise ODataError(405, "19", f"Метод {method} не разрешен для \"{name}\"")
        if segs[1] == "$count" and len(segs) == 2:
            return self._count(table, params, method)
        fname, fparams = parse_segment(segs[1])
        if (price_reg or stock_reg) and fname in vtables.ALL_FUNCTIONS:
            if len(segs) > 2 and not (len(segs) == 3 and segs[2] == "$count"):
                raise ODataError(400, "6", f"Лишние сегменты в URL: {'/'.join(segs[2:])}")
            if method != "GET":
                raise ODataError(405, "19", f"Метод {method} не разрешен для виртуальной таблицы")
            vt = self._virtual(name, price_reg, stock_reg, fname, fparams, params)
            if len(segs) == 3:
                return self._count(vt, params, method)
            return self._list(vt, params, root, vt.name, as_json, meta)
        raise ODataError(400, "6", f"Лишние сегменты в URL: {'/'.join(segs[1:])}")

    def _virtual(self, name: str, price_reg: Any, stock_reg: Any, function: str, paren: str | None,
                 query: dict[str, str]) -> Table:
        params = vtables.split_params(paren or "")
        for k, v in query.items():
            if not k.startswith("$") and k not in vtables.SERVICE_PARAMS:
                params[k] = v
        kind, reg = ("price", price_reg) if price_reg else ("stock", stock_reg)
        key = (name, function, tuple(sorted(params.items())), self.ds.catalog_version)
        return self.engine.cached_table(
            key, lambda: vtables.build(self.ds, self.profile, name, kind, reg, function, params))

    def _list(self, table: Table, params: dict[str, str], root: str, set_name: str, as_json: bool,
              meta: str) -> Reply:
        top = parse_int("$top", params.get("$top"))
        skip = parse_int("$skip", params.get("$skip")) or 0
        inline = (params.get("$inlinecount") or "none").strip().lower()
        if inline not in ("allpages", "none"):
            raise ODataError(400, "14", f"Неверное значение параметра $inlinecount: {inline}")
        select = parse_select(params.get("$select"))
        expand = [e.strip() for e in (params.get("$expand") or "").split(",") if e.strip()]
        navs = {f.nav for f in table.fields if f.nav}
        for e in expand:
            if e != "*" and e not in navs:
                raise ODataError(400, "10", f"Свойство \"{e}\" не найдено у \"{table.name}\" или не является ссылкой")
        if "*" in expand:
            expand = sorted(n for n in navs if n)
        projector = render.Projector(self.registry, table, select, expand, meta if as_json else "minimalmetadata")
        ids = self.engine.rids(table, params.get("$filter"), params.get("$orderby"))
        count = len(ids) if inline == "allpages" else None
        end = len(ids) if top is None else skip + top
        values = [projector.entity(table.row(rid)) for rid in ids[skip:end]]
        if as_json:
            return Reply(200, render.list_json(root, set_name, values, meta, count), _json_type(meta))
        return Reply(200, render.list_atom(root, set_name, values, table, self.ds.now(), count), render.ATOM_FEED)

    def _count(self, table: Table, params: dict[str, str], method: str) -> Reply:
        if method != "GET":
            raise ODataError(405, "19", "Метод не разрешен для $count")
        ids = self.engine.rids(table, params.get("$filter"), None)
        return Reply(200, str(len(ids)).encode(), "text/plain;charset=utf-8")

    def _entity_json(self, table: Table, row: dict[str, Any], root: str, as_json: bool, meta: str,
                     params: dict[str, str], status: int = 200, headers: dict[str, str] | None = None,
                     overrides: dict[str, Any] | None = None) -> Reply:
        select = parse_select(params.get("$select"))
        projector = render.Projector(self.registry, table, select, [], meta if as_json else "minimalmetadata")
        value = projector.entity(row)
        if overrides:
            value.update(overrides)
        if as_json:
            return Reply(status, render.entity_json(root, table.name, value, meta), _json_type(meta), headers or {})
        return Reply(status, render.entity_atom(root, table.name, value, table, self.ds.now()), render.ATOM_ENTRY,
                     headers or {})

    def _find(self, table: Table, key: str) -> int:
        key = key.strip()
        m = re.fullmatch(r"(?:Ref_Key\s*=\s*)?guid'([0-9a-fA-F-]{36})'", key)
        if m and table.keyed:
            rid = table.find(m.group(1).lower())
            if rid is None:
                raise not_found_entity(table.name)
            return rid
        parts = vtables.split_params(key)
        if not parts:
            raise ODataError(400, "7", f"Не указан ключ сущности \"{table.name}\"")
        checks = []
        for prop, literal in parts.items():
            value = parse_filter(literal)
            if not hasattr(value, "value"):
                raise ODataError(400, "7", f"Неверное значение ключа {prop}")
            lit = value.value
            if prop == "Recorder_Key" and table.getter("Recorder"):
                get = table.getter("Recorder")
                checks.append(lambda r, g=get, v=lit: isinstance(x := g(r), Composite) and x.key == v)
                continue
            get = table.getter(prop)
            if get is None:
                raise ODataError(400, "7", f"Свойство {prop} не является ключом \"{table.name}\"")
            checks.append(lambda r, g=get, v=lit: g(r) == v)
        product = _literal_of(parts.get("Номенклатура_Key"))
        base = table.candidates({"Номенклатура_Key": frozenset([product])}) if product else None
        for rid in base if base is not None else table.rids():
            if all(check(rid) for check in checks):
                return rid
        raise not_found_entity(table.name)

    def _entity_request(self, request: Request, method: str, table: Table, key: str, rest: list[str],
                        params: dict[str, str], body: bytes, root: str, as_json: bool, meta: str) -> Reply:
        rid = self._find(table, key)
        is_doc = table.kind == "document"
        is_product = table.name == self.profile.products
        if rest:
            action, args = parse_segment(rest[0])
            if action in ("Post", "Unpost"):
                if len(rest) > 1:
                    raise ODataError(400, "6", f"Лишние сегменты в URL: {'/'.join(rest[1:])}")
                if not is_doc:
                    raise ODataError(400, "11", f"Метод {action} не найден у \"{table.name}\"")
                if method != "POST":
                    raise ODataError(405, "19", f"Метод {action} вызывается только через POST")
                ref = table.row(rid)["Ref_Key"]
                if action == "Post":
                    cfg = self.faults.config
                    doc = self.writer.post(ref, fail=cfg.post_fails, message=cfg.post_fail_message)
                else:
                    doc = self.writer.unpost(ref)
                return self._entity_json(self.registry.table(table.name) or table, doc, root, as_json, meta, {})
            if method != "GET":
                raise ODataError(405, "19", f"Метод {method} не разрешен для свойства")
            return self._property(table, table.row(rid), rest, root, as_json)
        row = table.row(rid)
        if method == "GET":
            return self._entity_json(table, row, root, as_json, meta, params)
        if_match = request.headers.get("if-match")
        if self.enforce_if_match and if_match and if_match.strip('"') != row.get("DataVersion"):
            raise ODataError(412, "0", "Версия объекта не совпадает с переданной (DataVersion)")
        if method in ("PATCH", "MERGE", "PUT"):
            payload = _json_body(body)
            if is_doc:
                doc = self.writer.update(row["Ref_Key"], payload, replace=method == "PUT")
                fresh = self.registry.table(table.name) or table
                return self._entity_json(fresh, doc, root, as_json, meta, {})
            if is_product and rid >= len(self.ds.folders):
                self.writer.update_product(rid - len(self.ds.folders), payload)
                return self._entity_json(table, table.row(rid), root, as_json, meta, {})
            if table.kind in ("register", "tab", "virtual"):
                raise ODataError(405, "19", f"Записи \"{table.name}\" доступны только для чтения")
            raise ODataError(501, "0", f"Изменение объектов \"{table.name}\" не поддерживается симулятором")
        if method == "DELETE":
            if is_doc:
                self.writer.delete(row["Ref_Key"])
                return Reply(204, b"", "text/plain")
            if is_product and rid >= len(self.ds.folders):
                self.ds.remove(rid - len(self.ds.folders))
                return Reply(204, b"", "text/plain")
            if table.kind in ("register", "tab", "virtual"):
                raise ODataError(405, "19", f"Записи \"{table.name}\" доступны только для чтения")
            raise ODataError(501, "0", f"Удаление объектов \"{table.name}\" не поддерживается симулятором")
        raise ODataError(405, "19", f"Метод {method} не разрешен")

    def _property(self, table: Table, row: dict[str, Any], rest: list[str], root: str, as_json: bool) -> Reply:
        """`…(guid'…')/Description`, `…/Parent` (the referenced entity), `…/Parent/Description`."""
        name = rest[0]
        fmap = table.field_map()
        if f"{name}_Key" in fmap and fmap[f"{name}_Key"].target:
            hit = self.registry.lookup(row.get(f"{name}_Key", ""))
            if hit is None:
                raise not_found_entity(fmap[f"{name}_Key"].target or name)
            target, trid = hit
            if len(rest) == 1:
                return self._entity_json(target, target.row(trid), root, as_json, "minimalmetadata", {})
            return self._property(target, target.row(trid), rest[1:], root, as_json)
        if name not in fmap or len(rest) > 2 or (len(rest) == 2 and rest[1] != "$value"):
            raise ODataError(400, "10", f"Свойство \"{'/'.join(rest)}\" не найдено у \"{table.name}\"")
        f = fmap[name]
        raw = row.get(name, MISSING)
        value = (raw.key if isinstance(raw, Composite) else "") if f.composite else render.to_json(raw, f.edm)
        if len(rest) == 2:
            return Reply(200, str(value).encode(), "text/plain;charset=utf-8")
        body = {"odata.metadata": f"{root}/$metadata#{table.name}/@Element/{name}", "value": value}
        return Reply(200, render.dumps(body), render.JSON_TYPE)

    def _create(self, table: Table, body: bytes, root: str, as_json: bool, meta: str) -> Reply:
        if table.kind == "tab":
            raise ODataError(400, "13", "Создание строк табличных частей напрямую не поддерживается")
        if table.kind != "document":
            if table.kind in ("register", "virtual"):
                raise ODataError(405, "19", f"Записи \"{table.name}\" доступны только для чтения")
            raise ODataError(501, "0", f"Создание объектов \"{table.name}\" не поддерживается симулятором")
        doc = self.writer.create(_json_body(body), fail=self.faults.config.create_fails)
        fresh = self.registry.table(table.name) or table
        location = quote(f"{root}/{table.name}(guid'{doc['Ref_Key']}')", safe=":/()'=,")  # headers are ASCII
        reply = self._entity_json(fresh, doc, root, as_json, meta, {}, status=201, headers={"location": location},
                                  overrides={"DataVersion": None})
        reply.created = True
        return reply

    def _metadata(self) -> bytes:
        virtual = []
        p = self.profile
        for reg in p.prices:
            for fn in vtables.INFO_FUNCTIONS:
                vt = vtables.build(self.ds, p, reg.entity_set, "price", reg, fn, {})
                virtual.append((reg.entity_set, fn, vt.fields, sorted(vtables.INFO_FUNCTIONS[fn])))
        for fn, names in vtables.ACCUM_FUNCTIONS.items():
            vt = vtables.build(self.ds, p, p.stock.name, "stock", p.stock, fn, {})
            virtual.append((p.stock.name, fn, vt.fields, sorted(names)))
        return render.metadata_xml(self.registry, virtual)


def _literal_of(text: str | None) -> str | None:
    if not text:
        return None
    m = re.fullmatch(r"\s*guid'([0-9a-fA-F-]{36})'\s*", text)
    return m.group(1).lower() if m else None


def _json_type(meta: str) -> str:
    return f"application/json;odata={meta or 'minimalmetadata'};charset=utf-8"


def _json_body(body: bytes) -> Any:
    try:
        return orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        raise ODataError(400, "2", "Неверный формат тела запроса: ошибка разбора JSON") from None


def _skip_of(params: dict[str, str]) -> int | None:
    try:
        return parse_int("$skip", params.get("$skip"))
    except ODataError:
        return None


async def _drop(send: Send) -> None:
    """Close the connection with nothing on the wire (the client sees a RemoteProtocolError).

    uvicorn marks the response as started before it validates the headers, so a start message
    with an invalid header value makes it close the socket instead of answering 500. Under other
    servers the exception still aborts the response after the status line.
    """
    with contextlib.suppress(Exception):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"x-drop", b"\r\n")]})
    raise DropConnection("connection dropped by fault injection")


# ------------------------------------------------------------------------------------ admin API


def _admin_routes(sim: OneCSimulator) -> list[Route]:
    ds = sim.ds

    async def health(request: Request) -> Response:
        return JSONResponse({
            "status": "ok", "configuration": sim.configuration, "base": sim.base, "odata_root": sim.root,
            "size": ds.size, "seed": ds.seed, "catalog_version": ds.catalog_version, "documents": len(ds.documents),
            "char_product": ds.char_product, "future_product": ds.future_product,
        })

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            payload = await request.json()
            try:
                sim.faults.merge(payload if isinstance(payload, dict) else {})
            except Exception as exc:  # pydantic validation error
                return JSONResponse({"error": str(exc)}, status_code=422)
        elif request.method == "DELETE":
            sim.faults.set(FaultConfig())
        return JSONResponse(sim.faults.config.model_dump())

    async def stats(request: Request) -> Response:
        return JSONResponse({
            "total": sim.stats.total, "by_method": dict(sim.stats.by_method),
            "by_set": {k: dict(v) for k, v in sim.stats.by_set.items()}, "documents": len(ds.documents),
            "cache": {"hits": sim.engine.hits, "misses": sim.engine.misses}, "recent": list(sim.stats.recent),
        })

    async def documents(request: Request) -> Response:
        number = request.query_params.get("external")
        out = []
        with ds.lock:
            table = sim.registry.table(sim.profile.order_set)
            assert table is not None
            projector = render.Projector(sim.registry, table, Select(), [], "nometadata")
            for doc in ds.documents.values():
                if number and doc.get(sim.profile.order_external_field) != number:
                    continue
                out.append(projector.entity(doc))
        return Response(render.dumps(out), media_type="application/json")

    async def mutate(request: Request) -> Response:
        payload = await request.json()
        ops = payload.get("ops", [payload]) if isinstance(payload, dict) else payload
        results = []
        try:
            with ds.lock:
                for op in ops:
                    results.append(apply_op(ds, op))
        except (KeyError, ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc), "done": results}, status_code=400)
        return JSONResponse({"results": results, "catalog_version": ds.catalog_version})

    async def reset(request: Request) -> Response:
        with ds.lock:
            ds.reset()
            sim.engine.clear()
        sim.faults.set(FaultConfig())
        sim.stats = Stats()
        return JSONResponse({"status": "ok"})

    async def expected(request: Request) -> Response:
        q = request.query_params
        warehouses = [w for w in (q.get("warehouses") or "").split(",") if w] or None
        with ds.lock:
            data = ds.expected_products(q.get("price_type", "Розничная"), warehouses)
        if "offset" in q or "limit" in q:  # 1M products is ~250 MB of JSON: let callers page it
            offset = int(q.get("offset") or 0)
            limit = int(q.get("limit") or len(data))
            data = dict(list(data.items())[offset:offset + limit])
        return Response(render.dumps(data), media_type="application/json")

    return [
        Route("/_admin/health", health),
        Route("/_admin/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/_admin/stats", stats),
        Route("/_admin/documents", documents),
        Route("/_admin/mutate", mutate, methods=["POST"]),
        Route("/_admin/reset", reset, methods=["POST"]),
        Route("/_admin/expected", expected),
    ]


def apply_op(ds: Dataset, op: dict[str, Any]) -> Any:
    """One admin mutation: {"op": "set_price", "index": 5, "price_type": "Розничная", "value": 990}."""
    name = op.get("op")
    i = op.get("index")
    if name == "set_price":
        ds.set_price(i, op.get("price_type", "Розничная"), op["value"], package=op.get("package"), char=op.get("char"))
    elif name == "set_stock":
        ds.set_stock(i, op.get("warehouse", 0), op["qty"], char=op.get("char"))
    elif name == "mark_deleted":
        ds.mark_deleted(i, op.get("flag", True))
    elif name == "rename":
        ds.rename(i, op["name"])
    elif name == "set_article":
        ds.set_article(i, op["article"])
    elif name == "remove":
        ds.remove(i)
    elif name == "change_fraction":
        return ds.change_fraction(op["share"], op.get("seed", 0))
    elif name == "reset":
        ds.reset()
    else:
        raise ValueError(f"unknown op {name!r}")
    return "ok"


def create_app(
    dataset: Dataset | None = None,
    *,
    base: str = "zeta",
    configuration: str = "ut11",
    users: dict[str, str] | None = None,
    faults: FaultConfig | None = None,
    url_limit: int = 2048,
    url_limit_mode: str = "iis",
    path_limit: int = 4096,
    enforce_if_match: bool = False,
) -> Starlette:
    """The simulator as a Starlette app; `app.state.simulator` / `app.state.dataset` for tests.

    url_limit: max bytes of the raw query string (IIS `maxQueryString`, answered with HTML 404);
    with url_limit_mode="apache" it bounds the whole request line instead and answers 414.
    path_limit: max bytes of the raw (percent-encoded) path in IIS mode (`maxUrl`, HTML 404) — a
    Condition moved into the path to dodge the query-string limit still hits it.
    enforce_if_match: answer 412 on a stale `If-Match` (1C is reported to ignore it; default off).
    """
    sim = OneCSimulator(dataset, base=base, configuration=configuration, users=users or dict(DEFAULT_USERS),
                        faults=faults, url_limit=url_limit, url_limit_mode=url_limit_mode,
                        path_limit=path_limit, enforce_if_match=enforce_if_match)
    app = Starlette(routes=[*_admin_routes(sim), Route("/{path:path}", sim)])
    app.state.simulator = sim
    app.state.dataset = sim.ds
    return app
