"""Wire formats: JSON (minimal/no/full metadata), atom-xml, EDMX `$metadata`, errors, HTML pages.

JSON is UTF-8 without escaping Cyrillic (orjson), Int64 as strings, references as GUID strings
(zero GUID when empty, never null), dates as naive local `YYYY-MM-DDTHH:MM:SS` (`0001-01-01…` when
empty). Anything that is not an explicit JSON request gets atom-xml, as 1C does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import orjson

from simulators.onec.errors import ODataError
from simulators.onec.keys import ZERO_GUID, format_date
from simulators.onec.profiles import Field
from simulators.onec.query import MISSING, Composite, Select
from simulators.onec.tables import Registry, Table

JSON_TYPE = "application/json;odata=minimalmetadata;charset=utf-8"
ATOM_FEED = "application/atom+xml;type=feed;charset=utf-8"
ATOM_ENTRY = "application/atom+xml;type=entry;charset=utf-8"
XML_TYPE = "application/xml;charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"
UNDEFINED = "StandardODATA.Undefined"


def to_json(value: Any, edm: str) -> Any:
    """A typed internal value as 1C prints it for a property of type `edm`."""
    if value is MISSING or value is None:
        if edm == "Edm.Guid":
            return ZERO_GUID
        if edm == "Edm.DateTime":
            return format_date(None)
        if edm == "Edm.Boolean":
            return False
        if edm in ("Edm.Double", "Edm.Int64"):
            return 0 if edm == "Edm.Double" else "0"
        return ""
    if isinstance(value, datetime):
        return format_date(value)
    if edm == "Edm.Int64":
        return str(int(value))
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value


class Projector:
    """Turns table rows into JSON objects honouring $select, $expand and the metadata level."""

    def __init__(self, registry: Registry, table: Table, select: Select, expand: list[str], meta: str) -> None:
        self.registry = registry
        self.table = table
        self.select = select
        self.expand = expand
        self.meta = meta
        fmap = table.field_map()
        if select.fields is None:
            chosen = [f for f in table.fields if not (select.all_plain and f.rows)]
        else:
            wanted = set(select.fields)
            unknown = [n for n in select.fields if n not in fmap and not (
                n.endswith("_Type") and n[:-5] in fmap and fmap[n[:-5]].composite)]
            if unknown:
                raise ODataError(400, "10", f"Свойство \"{unknown[0]}\" не найдено у \"{table.name}\"")
            chosen = [f for f in table.fields if f.name in wanted or f"{f.name}_Type" in wanted]
            chosen += [fmap[t] for t in select.sub if t in fmap and fmap[t] not in chosen]
        for tab in select.sub:
            if tab not in fmap or not fmap[tab].rows:
                raise ODataError(400, "10", f"Табличная часть \"{tab}\" не найдена у \"{table.name}\"")
        self.fields = chosen
        self._plan = [(f, f.nav) for f in chosen]
        self._extra_expand = [n for n in expand if n not in {f.nav for f in chosen}]
        self.links = meta != "nometadata" and select.fields is None and table.keyed

    def entity(self, row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.meta == "fullmetadata":
            out["odata.type"] = f"StandardODATA.{self.table.name}"
        links: dict[str, str] = {}
        sel = self.select
        for f, nav in self._plan:
            value = row.get(f.name, MISSING)
            if f.rows is not None:
                sub = sel.sub.get(f.name)
                out[f.name] = [self._tab_row(f, r, sub) for r in (value or [])]
                continue
            if f.composite:
                comp = value if isinstance(value, Composite) else None
                out[f.name] = comp.key if comp else ""
                out[f"{f.name}_Type"] = comp.type if comp else UNDEFINED
                continue
            if value.__class__ is str and f.edm != "Edm.Int64":
                out[f.name] = value
            else:
                out[f.name] = to_json(value, f.edm)
            if nav:
                if self.links and "Ref_Key" in row:
                    links[f"{nav}@navigationLinkUrl"] = f"{self.table.name}(guid'{row['Ref_Key']}')/{nav}"
                if sel.all_presentations or nav in sel.presentations:
                    out[f"{nav}____Presentation"] = self.registry.presentation(out[f.name])
                if nav in self.expand:
                    out[nav] = self._expanded(out[f.name])
            elif sel.all_presentations or f.name in sel.presentations:
                out[f"{f.name}____Presentation"] = "" if value is MISSING else str(out[f.name])
        for nav in self._extra_expand:
            out[nav] = self._expanded(to_json(row.get(f"{nav}_Key"), "Edm.Guid"))
        if links:
            out.update(links)
        return out

    def _tab_row(self, f: Field, row: dict[str, Any], sub: list[str] | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for rf in f.rows or ():
            if sub is not None and rf.name not in sub:
                continue
            value = row.get(rf.name, MISSING)
            if rf.composite:
                comp = value if isinstance(value, Composite) else None
                out[rf.name] = comp.key if comp else ""
                out[f"{rf.name}_Type"] = comp.type if comp else UNDEFINED
            else:
                out[rf.name] = to_json(value, rf.edm)
        return out

    def _expanded(self, key: str) -> dict[str, Any] | None:
        hit = self.registry.lookup(key)
        if hit is None:
            return None
        table, rid = hit
        inner = Projector(self.registry, table, Select(), [], "nometadata")
        return inner.entity(table.row(rid))


def dumps(payload: Any) -> bytes:
    return orjson.dumps(payload)


def list_json(root: str, set_name: str, values: list[dict[str, Any]], meta: str, count: int | None) -> bytes:
    body: dict[str, Any] = {}
    if meta != "nometadata":
        body["odata.metadata"] = f"{root}/$metadata#{set_name}"
    if count is not None:
        body["odata.count"] = str(count)
    body["value"] = values
    return dumps(body)


def entity_json(root: str, set_name: str, value: dict[str, Any], meta: str) -> bytes:
    if meta == "nometadata":
        return dumps(value)
    return dumps({"odata.metadata": f"{root}/$metadata#{set_name}/@Element", **value})


def error_json(err: ODataError) -> bytes:
    return dumps({"odata.error": {"code": err.code, "message": {"lang": "ru", "value": err.message}}})


def error_xml(err: ODataError) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<m:error xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata">'
        f"<m:code>{escape(err.code)}</m:code><m:message xml:lang=\"ru\">{escape(err.message)}</m:message></m:error>"
    ).encode()


# ------------------------------------------------------------------------------------ atom


def _xml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def _properties(values: dict[str, Any], fields: dict[str, Field]) -> str:
    parts = []
    for name, value in values.items():
        if "@" in name:
            continue
        f = fields.get(name)
        if isinstance(value, list):
            rows = "".join(f"<d:element>{_properties(r, {x.name: x for x in (f.rows or ())} if f else {})}</d:element>"
                           for r in value)
            parts.append(f"<d:{name}>{rows}</d:{name}>")
            continue
        edm = f.edm if f else "Edm.String"
        type_attr = f' m:type="{edm}"' if edm != "Edm.String" else ""
        parts.append(f"<d:{name}{type_attr}>{_xml_value(value)}</d:{name}>")
    return "".join(parts)


def _entry(root: str, set_name: str, value: dict[str, Any], fields: dict[str, Field], now: str) -> str:
    ident = f"{root}/{set_name}(guid'{value['Ref_Key']}')" if "Ref_Key" in value else f"{root}/{set_name}"
    return (
        f"<entry><id>{escape(ident)}</id>"
        f'<category term="StandardODATA.{escape(set_name)}" '
        'scheme="http://schemas.microsoft.com/ado/2007/08/dataservices/scheme"/>'
        f"<title type=\"text\"/><updated>{now}</updated><author/>"
        f'<content type="application/xml"><m:properties>{_properties(value, fields)}</m:properties></content></entry>'
    )


_ATOM_NS = ('xmlns="http://www.w3.org/2005/Atom" xmlns:d="http://schemas.microsoft.com/ado/2007/08/dataservices" '
            'xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"')


def list_atom(root: str, set_name: str, values: list[dict[str, Any]], table: Table, now: datetime,
              count: int | None) -> bytes:
    stamp = format_date(now)
    fields = table.field_map()
    count_xml = f"<m:count>{count}</m:count>" if count is not None else ""
    entries = "".join(_entry(root, set_name, v, fields, stamp) for v in values)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<feed {_ATOM_NS} xml:base={quoteattr(root + "/")}>'
        f"<id>{escape(root)}/{escape(set_name)}</id><title type=\"text\">{escape(set_name)}</title>"
        f"<updated>{stamp}</updated>{count_xml}{entries}</feed>"
    ).encode()


def entity_atom(root: str, set_name: str, value: dict[str, Any], table: Table, now: datetime) -> bytes:
    entry = _entry(root, set_name, value, table.field_map(), format_date(now))
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + entry.replace("<entry>", f"<entry {_ATOM_NS}>", 1)).encode()


def service_json(root: str, names: list[str]) -> bytes:
    return dumps({"odata.metadata": f"{root}/$metadata", "value": [{"name": n, "url": n} for n in names]})


def service_xml(root: str, names: list[str]) -> bytes:
    collections = "".join(f'<collection href={quoteattr(n)}><atom:title>{escape(n)}</atom:title></collection>'
                          for n in names)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<service xmlns="http://www.w3.org/2007/app" xmlns:atom="http://www.w3.org/2005/Atom" '
        f'xml:base={quoteattr(root + "/")}><workspace><atom:title>Default</atom:title>{collections}</workspace></service>'
    ).encode()


# ------------------------------------------------------------------------------------ $metadata


def _props(fields: tuple[Field, ...], owner: str) -> str:
    out = []
    for f in fields:
        if f.rows is not None:
            out.append(f'<Property Name={quoteattr(f.name)} '
                       f'Type="Collection(StandardODATA.{escape(owner)}_{escape(f.name)}_RowType)" Nullable="false"/>')
            continue
        nullable = "false" if f.name in ("Ref_Key", "LineNumber") else "true"
        out.append(f'<Property Name={quoteattr(f.name)} Type="{f.edm}" Nullable="{nullable}"/>')
        if f.composite:
            out.append(f'<Property Name={quoteattr(f.name + "_Type")} Type="Edm.String" Nullable="true"/>')
    return "".join(out)


def metadata_xml(registry: Registry, virtual: list[tuple[str, str, tuple[Field, ...], list[str]]]) -> bytes:
    """A small but valid EDMX for the published sets, virtual tables and Post/Unpost."""
    types, sets, functions = [], [], []
    for name in registry.entity_sets():
        table = registry.table(name)
        if table is None:
            continue
        key = "<Key><PropertyRef Name=\"Ref_Key\"/></Key>" if table.keyed else ""
        navs = "".join(f'<NavigationProperty Name={quoteattr(f.nav)} '
                       f'Relationship="StandardODATA.{escape(name)}_{escape(f.nav)}" FromRole="Begin" ToRole="End"/>'
                       for f in table.fields if f.nav)
        types.append(f"<EntityType Name={quoteattr(name)}>{key}{_props(table.fields, name)}{navs}</EntityType>")
        for f in table.fields:
            if f.rows is not None:
                types.append(f'<ComplexType Name="{escape(name)}_{escape(f.name)}_RowType">'
                             f"{_props(f.rows, name)}</ComplexType>")
        sets.append(f'<EntitySet Name={quoteattr(name)} EntityType="StandardODATA.{escape(name)}"/>')
        if table.kind == "document":
            for action, params in (("Post", '<Parameter Name="PostingModeOperational" Type="Edm.Boolean"/>'),
                                   ("Unpost", "")):
                functions.append(
                    f'<FunctionImport Name="{action}" IsBindable="true" IsSideEffecting="true" m:HttpMethod="POST">'
                    f'<Parameter Name="bindingParameter" Type="StandardODATA.{escape(name)}"/>{params}</FunctionImport>')
    for set_name, function, fields, params in virtual:
        type_name = f"{set_name}_{function}"
        types.append(f"<ComplexType Name={quoteattr(type_name)}>{_props(fields, type_name)}</ComplexType>")
        plist = "".join(
            f'<Parameter Name="{p}" Type="{"Edm.DateTime" if "Period" in p else "Edm.String"}" Nullable="true"/>'
            for p in params)
        functions.append(
            f'<FunctionImport Name="{function}" IsBindable="true" '
            f'ReturnType="Collection(StandardODATA.{escape(type_name)})">'
            f'<Parameter Name="bindingParameter" Type="StandardODATA.{escape(set_name)}"/>{plist}</FunctionImport>')
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<edmx:Edmx xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx" Version="1.0">'
        '<edmx:DataServices xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata" '
        'm:DataServiceVersion="3.0" m:MaxDataServiceVersion="3.0">'
        '<Schema xmlns="http://schemas.microsoft.com/ado/2009/11/edm" Namespace="StandardODATA">'
        + "".join(types)
        + '<EntityContainer Name="StandardODATA" m:IsDefaultEntityContainer="true">'
        + "".join(sets) + "".join(functions)
        + "</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>"
    ).encode()


# ------------------------------------------------------------------------------------ HTML pages


def html_page(title: str, body: str) -> bytes:
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{escape(title)}</title></head>"
            f"<body><h1>{escape(title)}</h1><p>{escape(body)}</p></body></html>").encode()


IIS_404 = html_page("404 - Файл или каталог не найден.",
                    "Ресурс, который вы ищете, удален, было изменено его имя или он временно недоступен.")
APACHE_414 = html_page("414 Request-URI Too Long",
                       "The requested URL's length exceeds the capacity limit for this server.")
ODATA_OFF_404 = html_page("404 Not Found", "The requested URL was not found on this server.")
LOGIN_PAGE = (
    "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>1С:Предприятие</title></head><body>"
    "<form method=\"post\" action=\"/e1cib/login\"><h2>Вход в 1С:Предприятие</h2>"
    "<label>Пользователь <input name=\"user\"></label><label>Пароль <input name=\"pwd\" type=\"password\"></label>"
    "<button type=\"submit\">Войти</button></form></body></html>"
).encode()
GATEWAY_PAGES = {
    500: html_page("500 - Внутренняя ошибка сервера.", "Возникла проблема с ресурсом, который вы ищете."),
    502: html_page("502 Bad Gateway", "nginx"),
    503: html_page("503 Service Unavailable", "The server is temporarily unable to service your request."),
    504: html_page("504 Gateway Time-out", "nginx"),
}
