"""Writes: create/update/post/unpost/delete customer orders, mark or rename products.

Reproduces what the order push meets in 1C (onec.md §1.7): 201 + Location + the entity (with
`DataVersion: null`, as in the vendor example); unknown properties ignored; rows need `LineNumber`;
references must exist (else 500 / -1 from the configuration's handlers); every POST creates a new
document — there is no de-duplication, the client must look up `НомерПоДаннымКлиента` first.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from simulators.onec.dataset import Dataset
from simulators.onec.errors import ODataError, business, not_found_entity
from simulators.onec.keys import ZERO_GUID, Kind, data_version, guid
from simulators.onec.profiles import Field, Profile
from simulators.onec.query import Composite, parse_datetime
from simulators.onec.tables import Registry, document_fields

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_BIND = re.compile(r"^\w+\(guid'([0-9a-fA-F-]{36})'\)$")


def _bad_value(name: str, value: Any) -> ODataError:
    return ODataError(400, "4", f"Неверное значение свойства \"{name}\": {value!r}")


def coerce(f: Field, value: Any) -> Any:
    """A JSON value for property `f` as the typed internal value; 400 / code 4 when it cannot be."""
    edm = f.edm
    if f.composite:
        if isinstance(value, str) and (value == "" or _GUID.fullmatch(value)):
            return value.lower()
        raise _bad_value(f.name, value)
    if edm == "Edm.Guid":
        if value is None or value == "":
            return ZERO_GUID
        if isinstance(value, str) and _GUID.fullmatch(value):
            return value.lower()
        raise _bad_value(f.name, value)
    if edm == "Edm.Boolean":
        if isinstance(value, bool):
            return value
        raise _bad_value(f.name, value)
    if edm == "Edm.Double":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise _bad_value(f.name, value)
    if edm == "Edm.Int64":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        raise _bad_value(f.name, value)
    if edm == "Edm.DateTime":
        if value is None or value == "":
            return None
        if isinstance(value, str):
            text = value.rstrip("Z")
            try:
                return parse_datetime(text[:19] if len(text) > 19 and text[19] in ".+-" else text)
            except ODataError:
                raise _bad_value(f.name, value) from None
        raise _bad_value(f.name, value)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise _bad_value(f.name, value)


def _default(f: Field) -> Any:
    if f.rows is not None:
        return []
    if f.composite:
        return Composite(ZERO_GUID, "StandardODATA.Undefined")
    return {"Edm.Guid": ZERO_GUID, "Edm.Boolean": False, "Edm.Double": 0.0, "Edm.Int64": 0,
            "Edm.DateTime": None}.get(f.edm, "")


class Writer:
    """Applies write requests to the dataset in the shape of one configuration."""

    def __init__(self, ds: Dataset, registry: Registry, p: Profile) -> None:
        self.ds = ds
        self.registry = registry
        self.p = p
        self.fields = {f.name: f for f in document_fields(p)}
        self.row_fields = {f.name: f for f in self.fields[p.order_tab].rows or ()}

    # -------------------------------------------------------------- helpers

    def title(self, doc: dict[str, Any]) -> str:
        date: datetime = doc["Date"]
        return f"{self.p.order_title} {doc['Number']} от {date:%d.%m.%Y %H:%M:%S}"

    def _apply(self, doc: dict[str, Any], body: dict[str, Any]) -> None:
        """Copy known properties from a request body into `doc` (unknown ones are ignored)."""
        for name, value in body.items():
            if name.endswith("@odata.bind"):
                base = name[: -len("@odata.bind")]
                m = _BIND.match(str(value))
                if not m or f"{base}_Key" not in self.fields:
                    continue
                name, value = f"{base}_Key", m.group(1)
            if name.endswith("@odata.type"):
                continue
            f = self.fields.get(name)
            if f is None or name in ("Ref_Key", "DataVersion", "Posted", "Number"):
                if name == "Number" and isinstance(value, str) and value:
                    doc["Number"] = value
                continue
            if f.rows is not None:
                if not isinstance(value, list):
                    raise _bad_value(name, value)
                doc[name] = [self._row(doc["Ref_Key"], n, r) for n, r in enumerate(value, 1)]
                continue
            if name.endswith("_Type") and name[:-5] in self.fields:
                continue
            doc[name] = coerce(f, value)

    def _row(self, ref: str, position: int, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _bad_value(self.p.order_tab, body)
        if "LineNumber" not in body:
            raise ODataError(500, "-1", "Произошла внутренняя ошибка OData-сервиса. "
                             f"Не задано значение ключевого свойства LineNumber строки {position} "
                             f"табличной части \"{self.p.order_tab}\"")
        row: dict[str, Any] = {"Ref_Key": ref, "LineNumber": coerce(Field("LineNumber", "Edm.Int64"), body["LineNumber"])}
        for f in self.row_fields.values():
            if f.name in ("Ref_Key", "LineNumber"):
                continue
            if f.name in body:
                value = coerce(f, body[f.name])
                if f.composite:
                    kind = body.get(f"{f.name}_Type") or f"StandardODATA.{self.p.units}"
                    value = Composite(value, kind if value != ZERO_GUID else "StandardODATA.Undefined")
                row[f.name] = value
            else:
                row[f.name] = _default(f)
        return row

    def _fill(self, doc: dict[str, Any]) -> None:
        """What the configuration's filling handlers do: defaults, sums, row warehouse."""
        p = self.p
        org = guid(Kind.ORGANIZATION, 1)
        kzt = guid(Kind.CURRENCY, 1)
        if doc.get("Организация_Key", ZERO_GUID) == ZERO_GUID:
            doc["Организация_Key"] = org
        if p.name == "unf":
            for name, value in (("ВалютаДокумента_Key", kzt), ("ВидЦен_Key", guid(Kind.PRICE_TYPE, 1)),
                                ("СтруктурнаяЕдиницаРезерв_Key", guid(Kind.WAREHOUSE, 1))):
                if doc.get(name, ZERO_GUID) == ZERO_GUID:
                    doc[name] = value
            if not doc.get("ВариантЗавершения"):
                doc["ВариантЗавершения"] = ""
        else:
            for name, value in (("Валюта_Key", kzt), ("Склад_Key", guid(Kind.WAREHOUSE, 1))):
                if doc.get(name, ZERO_GUID) == ZERO_GUID:
                    doc[name] = value
            if doc.get("Контрагент_Key", ZERO_GUID) == ZERO_GUID and doc.get("Партнер_Key", ZERO_GUID) != ZERO_GUID:
                hit = self.registry.lookup(doc["Партнер_Key"])
                if hit:
                    doc["Контрагент_Key"] = guid(Kind.COUNTERPARTY, hit[1] + 1)
            doc["Статус"] = doc.get("Статус") or "НеСогласован"
            doc["ХозяйственнаяОперация"] = doc.get("ХозяйственнаяОперация") or "РеализацияКлиенту"
        total = 0.0
        for row in doc[p.order_tab]:
            if not row.get("Сумма"):
                row["Сумма"] = round(row.get("Количество", 0.0) * row.get("Цена", 0.0), 2)
            total += row["Сумма"]
            if p.name == "unf":
                row["Всего"] = row["Сумма"]
                row["ТипНоменклатурыЗапас"] = row.get("ТипНоменклатурыЗапас") or "Запас"
                unit = row.get("ЕдиницаИзмерения")
                if not isinstance(unit, Composite) or unit.key == ZERO_GUID:
                    i = self.ds.index_of(row.get("Номенклатура_Key", ZERO_GUID))
                    base = self.ds.facts(i).unit if i is not None else 0
                    row["ЕдиницаИзмерения"] = Composite(guid(Kind.UNIT, base + 1), f"StandardODATA.{p.units}")
            else:
                row["СуммаСНДС"] = row.get("СуммаСНДС") or row["Сумма"]
                if row.get("Склад_Key", ZERO_GUID) == ZERO_GUID:
                    row["Склад_Key"] = doc["Склад_Key"]
                if not row.get("КоличествоУпаковок") and row.get("Количество"):
                    row["КоличествоУпаковок"] = row["Количество"]
                row["ВариантОбеспечения"] = row.get("ВариантОбеспечения") or "Отгрузить"
        doc["СуммаДокумента"] = round(total, 2)

    def _check(self, doc: dict[str, Any]) -> None:
        """Reference checks of the write handlers: every non-empty reference must exist."""
        p = self.p
        for name, f in self.fields.items():
            if f.target and doc.get(name, ZERO_GUID) != ZERO_GUID and self.registry.lookup(doc[name]) is None:
                raise business(f"Ошибка при выполнении обработчика - 'ПередЗаписью'\nПоле \"{f.nav}\" ссылается "
                               f"на несуществующий объект: <Объект не найден> ({doc[name]})")
        for row in doc[p.order_tab]:
            n = row["LineNumber"]
            for name, f in self.row_fields.items():
                key = row.get(name, ZERO_GUID)
                if f.target and isinstance(key, str) and key != ZERO_GUID and self.registry.lookup(key) is None:
                    raise business(f"Ошибка при выполнении обработчика - 'ПередЗаписью'\nВ строке {n} списка "
                                   f"\"{p.order_tab}\" поле \"{f.nav}\" ссылается на несуществующий объект: "
                                   f"<Объект не найден> ({key})")
            if row.get("Номенклатура_Key", ZERO_GUID) == ZERO_GUID:
                raise business(f"Не заполнена колонка \"Номенклатура\" в строке {n} списка \"{p.order_tab}\"")
            hit = self.registry.lookup(row["Номенклатура_Key"])
            if hit and hit[0].row(hit[1]).get("IsFolder"):
                raise business(f"В строке {n} списка \"{p.order_tab}\" выбрана группа номенклатуры, а не товар")

    def _stamp(self, doc: dict[str, Any]) -> None:
        self.ds._stamp += 1
        doc["DataVersion"] = data_version(self.ds._stamp, self.ds.doc_counter)
        self.ds.docs_version += 1

    def get(self, ref: str) -> dict[str, Any]:
        doc = self.ds.documents.get(ref)
        if doc is None or doc["_set"] != self.p.order_set:
            raise not_found_entity(self.p.order_set)
        return doc

    # -------------------------------------------------------------- operations

    def create(self, body: Any, *, fail: bool = False) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ODataError(400, "2", "Неверный формат тела запроса: ожидается объект JSON")
        ds = self.ds
        number = ds.doc_counter + 1
        ref = guid(Kind.ORDER, number)
        doc: dict[str, Any] = {"_set": self.p.order_set}
        for f in self.fields.values():
            doc[f.name] = _default(f)
        doc.update({"Ref_Key": ref, "Number": f"{self.p.order_prefix}{number:06d}", "Date": ds.now()})
        self._apply(doc, body)
        if doc["Date"] is None:
            doc["Date"] = ds.now()
        self._fill(doc)
        self._check(doc)
        if fail:
            raise business("Ошибка при выполнении обработчика - 'ОбработкаЗаполнения'\n"
                           "{ДокументОбъект.ЗаказКлиента.МодульОбъекта(412)}: Не заполнено соглашение с клиентом")
        ds.doc_counter = number
        ds.documents[ref] = doc
        self._stamp(doc)
        return doc

    def update(self, ref: str, body: Any, *, replace: bool) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ODataError(400, "2", "Неверный формат тела запроса: ожидается объект JSON")
        doc = self.get(ref)
        new = dict(doc)
        if replace:
            for f in self.fields.values():
                if f.name not in ("Ref_Key", "DataVersion", "Number", "Posted", "Date"):
                    new[f.name] = _default(f)
        self._apply(new, body)
        if new["Date"] is None:
            new["Date"] = doc["Date"]
        self._fill(new)
        self._check(new)
        if new.get("DeletionMark") and new.get("Posted"):
            new["Posted"] = False  # marking a posted document for deletion unposts it
        doc.clear()
        doc.update(new)
        self._stamp(doc)
        return doc

    def post(self, ref: str, *, fail: bool, message: str) -> dict[str, Any]:
        doc = self.get(ref)
        if doc.get("DeletionMark"):
            raise business(f"Не удалось провести \"{self.title(doc)}\"!\nПомеченный на удаление документ не может "
                           "быть проведен")
        if not doc[self.p.order_tab]:
            raise business(f"Не удалось провести \"{self.title(doc)}\"!\nНе заполнен список \"{self.p.order_tab}\"")
        if fail:
            raise business(f"Не удалось провести \"{self.title(doc)}\"!\n{message}")
        doc["Posted"] = True
        self._stamp(doc)
        return doc

    def unpost(self, ref: str) -> dict[str, Any]:
        doc = self.get(ref)
        doc["Posted"] = False
        self._stamp(doc)
        return doc

    def delete(self, ref: str) -> None:
        self.get(ref)
        del self.ds.documents[ref]
        self.ds.docs_version += 1

    # -------------------------------------------------------------- products

    def update_product(self, i: int, body: Any) -> None:
        """PATCH on Catalog_Номенклатура: DeletionMark / Description / Артикул; others ignored."""
        if not isinstance(body, dict):
            raise ODataError(400, "2", "Неверный формат тела запроса: ожидается объект JSON")
        if "DeletionMark" in body:
            self.ds.mark_deleted(i, coerce(Field("DeletionMark", "Edm.Boolean"), body["DeletionMark"]))
        if "Description" in body:
            self.ds.rename(i, coerce(Field("Description"), body["Description"]))
        if "Артикул" in body:
            self.ds.set_article(i, coerce(Field("Артикул"), body["Артикул"]))

