"""Entity sets of the simulated base as uniformly queryable tables.

A table hands out row ids in its natural (Ref_Key) order, per-property getters for filters and
sorting, and full rows for output. Big tables (products, register records) compute everything
from the lazy dataset; small catalogues and documents are plain lists of dicts. `Registry` knows
which tables a configuration publishes and resolves any reference key to its row.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cached_property
from typing import Any

from simulators.onec import vocab
from simulators.onec.dataset import OVERLAY_RECORDER, PRICE_START, Dataset
from simulators.onec.keys import (
    FOLDER_BASE,
    ITEM_BASE,
    ZERO_GUID,
    Kind,
    data_version,
    folder_key,
    from_seconds,
    guid,
    product_key,
    resolve,
)
from simulators.onec.profiles import (
    DIM_TARGETS,
    I64,
    B,
    D,
    Field,
    G,
    N,
    PriceRegister,
    Profile,
    StockRegister,
)
from simulators.onec.query import MISSING, Composite

RID_SPAN = 1 << 12  # row ids of per-product tables: product index * RID_SPAN + sub-row
LEGACY_CUTOFF = PRICE_START + 150 * 86400  # УТ 11.5: the old price register stopped being written here


class Table:
    """Base of every entity set (and virtual-table result)."""

    name: str = ""
    fields: tuple[Field, ...] = ()
    natural: tuple[str, ...] = ("Ref_Key",)
    indexed: frozenset[str] = frozenset()
    keyed: bool = True  # addressable as <Set>(guid'…')
    kind: str = "catalog"  # catalog | document | tab | register | virtual

    @property
    def cache_key(self) -> tuple[Any, ...]:
        return (self.name,)

    def field_map(self) -> dict[str, Field]:
        cached = self.__dict__.get("_field_map")
        if cached is None:
            cached = {f.name: f for f in self.fields}
            self.__dict__["_field_map"] = cached
        return cached

    def rids(self) -> Sequence[int]:
        raise NotImplementedError

    def candidates(self, restr: dict[str, frozenset[Any]]) -> Sequence[int] | None:
        """Row ids satisfying a pushed-down restriction (superset allowed), or None if not indexed."""
        return None

    def row(self, rid: int) -> dict[str, Any]:
        raise NotImplementedError

    def getter(self, name: str) -> Callable[[int], Any] | None:
        fmap = self.field_map()
        if name in fmap:
            return lambda rid: self.row(rid).get(name, MISSING)
        if name.endswith("_Type") and name[:-5] in fmap and fmap[name[:-5]].composite:
            base = name[:-5]
            return lambda rid: (v.type if isinstance(v := self.row(rid).get(base), Composite) else "")
        return None

    def find(self, key: str) -> int | None:
        return None


class ListTable(Table):
    """A small table kept as a list of dicts, sorted by its natural order."""

    def __init__(self, name: str, fields: tuple[Field, ...], rows: list[dict[str, Any]], *,
                 natural: tuple[str, ...] = ("Ref_Key",), kind: str = "catalog", keyed: bool = True,
                 version: int = 0) -> None:
        self.name = name
        self.fields = fields
        self.natural = natural
        self.kind = kind
        self.keyed = keyed
        self.version = version
        self.rows = sorted(rows, key=lambda r: tuple(r.get(c, "") for c in natural))
        self._by_key = {r["Ref_Key"]: n for n, r in enumerate(self.rows)} if keyed else {}
        self.indexed = frozenset({"Ref_Key"}) if keyed else frozenset()

    @property
    def cache_key(self) -> tuple[Any, ...]:
        return (self.name, self.version)

    def rids(self) -> Sequence[int]:
        return range(len(self.rows))

    def candidates(self, restr: dict[str, frozenset[Any]]) -> Sequence[int] | None:
        if "Ref_Key" in restr and self.keyed:
            return sorted(self._by_key[k] for k in restr["Ref_Key"] if k in self._by_key)
        return None

    def row(self, rid: int) -> dict[str, Any]:
        return self.rows[rid]

    def getter(self, name: str) -> Callable[[int], Any] | None:
        if name in self.field_map():
            rows = self.rows
            return lambda rid: rows[rid].get(name, MISSING)
        return super().getter(name)

    def find(self, key: str) -> int | None:
        return self._by_key.get(key)


# ------------------------------------------------------------------------------------ catalogues

CATALOG_HEAD = (Field("Ref_Key", G), Field("DataVersion"), Field("DeletionMark", B))
PREDEFINED = (Field("Predefined", B), Field("PredefinedDataName"))


def _catalog_row(kind: Kind, n: int, code: str, description: str, **extra: Any) -> dict[str, Any]:
    deletion = extra.pop("DeletionMark", False)
    return {"Ref_Key": guid(kind, n), "DataVersion": data_version(1, n * 7919 + int(kind)), "DeletionMark": deletion,
            "Code": code, "Description": description, **extra, "Predefined": False, "PredefinedDataName": ""}


def small_catalogs(p: Profile) -> dict[str, ListTable]:
    """Every small catalogue of the profile, built once from the vocabulary."""
    out: dict[str, ListTable] = {}

    def add(name: str, fields: tuple[Field, ...], rows: list[dict[str, Any]]) -> None:
        out[name] = ListTable(name, (*CATALOG_HEAD, Field("Code"), Field("Description"), *fields, *PREDEFINED), rows)

    if p.name == "unf":
        add(p.units, (Field("НаименованиеПолное"), Field("МеждународноеСокращение")), [
            _catalog_row(Kind.UNIT, n + 1, code, name, НаименованиеПолное=full, МеждународноеСокращение=intl)
            for n, (code, name, full, intl) in enumerate((
                ("796", "шт", "Штука", "PCE"), ("166", "кг", "Килограмм", "KGM"), ("112", "л", "Литр", "LTR"),
                ("778", "упак", "Упаковка", "NMP")))])
    else:
        add(p.units, (Field("Parent_Key", G, p.units), Field("IsFolder", B), Field("Owner_Key", G),
                      Field("ЕдиницаИзмерения_Key", G, p.units), Field("Коэффициент", N), Field("Числитель", N),
                      Field("Знаменатель", N), Field("ТипИзмеряемойВеличины"), Field("ТипУпаковки")), [
            _catalog_row(Kind.UNIT, n + 1, f"{n + 1:09d}", name, Parent_Key=ZERO_GUID, IsFolder=False,
                         Owner_Key=ZERO_GUID, ЕдиницаИзмерения_Key=guid(Kind.UNIT, base + 1), Коэффициент=ratio,
                         Числитель=ratio, Знаменатель=1.0, ТипИзмеряемойВеличины=measure,
                         ТипУпаковки="Конечная" if ratio > 1 else "")
            for n, (name, ratio, base, measure, _okei) in enumerate(vocab.UNITS)])
        add(p.product_kinds or "Catalog_ВидыНоменклатуры", (Field("ТипНоменклатуры"),), [
            _catalog_row(Kind.PRODUCT_KIND, 1, "000000001", "Товар", ТипНоменклатуры="Товар"),
            _catalog_row(Kind.PRODUCT_KIND, 2, "000000002", "Весовой товар", ТипНоменклатуры="Товар")])
    add(p.characteristics, (Field("Owner_Key", G, p.products), Field("НаименованиеПолное")), [])
    add(p.currencies, (Field("НаименованиеПолное"), Field("ЗагружаетсяИзИнтернета", B), Field("Наценка", N),
                       Field("ОсновнаяВалюта_Key", G, p.currencies), Field("СпособУстановкиКурса")), [
        _catalog_row(Kind.CURRENCY, n + 1, code, name, НаименованиеПолное=full, ЗагружаетсяИзИнтернета=n > 0,
                     Наценка=0.0, ОсновнаяВалюта_Key=ZERO_GUID,
                     СпособУстановкиКурса="РучнойВвод" if n == 0 else "ЗагрузкаИзИнтернета")
        for n, (code, name, full) in enumerate(vocab.CURRENCIES)])
    add(p.price_types, (Field("ВалютаЦены_Key", G, p.currencies), Field("ЦенаВключаетНДС", B), Field("Статус"),
                        Field("ИспользоватьПриПродаже", B)), [
        _catalog_row(Kind.PRICE_TYPE, n + 1, f"{n + 1:09d}", name, DeletionMark=deleted,
                     ВалютаЦены_Key=guid(Kind.CURRENCY, cur + 1), ЦенаВключаетНДС=True,
                     Статус="Недействует" if deleted else "Действует", ИспользоватьПриПродаже=not deleted)
        for n, (name, cur, deleted) in enumerate(vocab.PRICE_TYPES)])
    if p.warehouse_folder:
        rows = [_catalog_row(Kind.WAREHOUSE, n + 1, f"{n + 1:09d}", name, Parent_Key=ZERO_GUID, IsFolder=False,
                             ТипСклада="ОптовыйСклад" if n == 0 else "РозничныйМагазин")
                for n, name in enumerate(vocab.WAREHOUSES)]
        folder = guid(Kind.WAREHOUSE, 100)
        for row in rows[1:]:
            row["Parent_Key"] = folder
        rows.append(_catalog_row(Kind.WAREHOUSE, 100, "000000100", "Региональные склады", Parent_Key=ZERO_GUID,
                                 IsFolder=True, ТипСклада=""))
        add(p.warehouses, (Field("Parent_Key", G, p.warehouses), Field("IsFolder", B), Field("ТипСклада")), rows)
    else:
        add(p.warehouses, (Field("Parent_Key", G, p.warehouses), Field("ТипСтруктурнойЕдиницы"),
                           Field("Организация_Key", G, p.organizations)), [
            _catalog_row(Kind.WAREHOUSE, n + 1, f"{n + 1:09d}", name, Parent_Key=ZERO_GUID,
                         ТипСтруктурнойЕдиницы="Склад", Организация_Key=guid(Kind.ORGANIZATION, 1))
            for n, name in enumerate(vocab.WAREHOUSES)])
    add(p.organizations, (Field("НаименованиеПолное"), Field("ИНН"), Field("Префикс")), [
        _catalog_row(Kind.ORGANIZATION, n + 1, f"{n + 1:09d}", name, НаименованиеПолное=name, ИНН="240140012345",
                     Префикс="ЗТ") for n, name in enumerate(vocab.ORGANIZATIONS)])
    if p.partners:
        add(p.partners, (Field("Parent_Key", G, p.partners), Field("IsFolder", B), Field("Клиент", B)), [
            _catalog_row(Kind.PARTNER, n + 1, f"{n + 1:09d}", name, Parent_Key=ZERO_GUID, IsFolder=False,
                         Клиент=True) for n, name in enumerate(vocab.PARTNERS)])
    counterparty_fields: tuple[Field, ...] = (Field("Parent_Key", G, p.counterparties), Field("IsFolder", B),
                                              Field("ИНН"), Field("НаименованиеПолное"))
    if p.partners:
        counterparty_fields = (*counterparty_fields, Field("Партнер_Key", G, p.partners))
    add(p.counterparties, counterparty_fields, [
        _catalog_row(Kind.COUNTERPARTY, n + 1, f"{n + 1:09d}", name, Parent_Key=ZERO_GUID, IsFolder=False,
                     ИНН="" if n == 0 else f"1{n:011d}", НаименованиеПолное=name,
                     **({"Партнер_Key": guid(Kind.PARTNER, n + 1)} if p.partners else {}))
        for n, name in enumerate(vocab.PARTNERS)])
    if p.agreements:
        add(p.agreements, (Field("Партнер_Key", G, p.partners), Field("ВидЦен_Key", G, p.price_types),
                           Field("Валюта_Key", G, p.currencies), Field("Статус")), [
            _catalog_row(Kind.AGREEMENT, 1, "000000001", "Основное соглашение (розница)",
                         Партнер_Key=guid(Kind.PARTNER, 1), ВидЦен_Key=guid(Kind.PRICE_TYPE, 1),
                         Валюта_Key=guid(Kind.CURRENCY, 1), Статус="Действует")])
    if p.contracts:
        add(p.contracts, (Field("Owner_Key", G, p.counterparties), Field("Организация_Key", G, p.organizations),
                          Field("ВидДоговора")), [
            _catalog_row(Kind.CONTRACT, n + 1, f"{n + 1:09d}", "Основной договор",
                         Owner_Key=guid(Kind.COUNTERPARTY, n + 1), Организация_Key=guid(Kind.ORGANIZATION, 1),
                         ВидДоговора="СПокупателем") for n in range(len(vocab.PARTNERS))])
    return out


def characteristic_rows(ds: Dataset) -> list[dict[str, Any]]:
    owner = product_key(ds.char_product)
    return [_catalog_row(Kind.CHARACTERISTIC, n + 1, f"{n + 1:09d}", name, Owner_Key=owner,
                         НаименованиеПолное=f"{ds.name(ds.char_product)}, {name}")
            for n, name in enumerate(vocab.CHARACTERISTICS)]


# ------------------------------------------------------------------------------------ products


class ProductTable(Table):
    """Catalog_Номенклатура: folders first (rid < F), then every present product (rid = F + index)."""

    indexed = frozenset({"Ref_Key", "IsFolder"})

    def __init__(self, ds: Dataset, p: Profile) -> None:
        self.ds = ds
        self.profile = p
        self.name = p.products
        self.F = len(ds.folders)
        extra: tuple[Field, ...]
        if p.name == "unf":
            extra = (Field("ТипНоменклатуры"), Field("КатегорияНоменклатуры_Key", G))
        else:
            extra = (Field("ВидНоменклатуры_Key", G, p.product_kinds), Field("ТипНоменклатуры"),
                     Field("Производитель_Key", G), Field("ИспользованиеХарактеристик"))
        self.fields = (
            *CATALOG_HEAD, Field("Parent_Key", G, p.products), Field("IsFolder", B), Field("Code"),
            Field("Description"), Field("Артикул"), Field("НаименованиеПолное"),
            Field("ЕдиницаИзмерения_Key", G, p.units), *extra, Field("Описание"),
            Field("ДополнительныеРеквизиты", rows=(Field("Ref_Key", G), Field("LineNumber", I64),
                                                    Field("Свойство_Key", G), Field("Значение"))),
            *PREDEFINED,
        )
        self._present: tuple[int, array[int]] | None = None

    @property
    def cache_key(self) -> tuple[Any, ...]:
        return (self.name, self.ds.catalog_version)

    def _products(self) -> Sequence[int]:
        ds, F = self.ds, self.F
        if not ds._removed:
            return range(F, F + ds.size)
        if self._present is None or self._present[0] != ds.catalog_version:
            removed = ds._removed
            self._present = (ds.catalog_version, array("q", (F + i for i in range(ds.size) if i not in removed)))
        return self._present[1]

    def rids(self) -> Sequence[int]:
        products = self._products()
        if isinstance(products, range):
            return range(0, products.stop)
        return array("q", range(self.F)) + products  # type: ignore[operator]

    def candidates(self, restr: dict[str, frozenset[Any]]) -> Sequence[int] | None:
        if "Ref_Key" in restr:
            out = [r for r in (self.find(k) for k in restr["Ref_Key"]) if r is not None]
            return sorted(out)
        if "IsFolder" in restr:
            values = restr["IsFolder"]
            if values == {True}:
                return range(self.F)
            if values == {False}:
                return self._products()
            return self.rids() if values >= {True, False} else []
        return None

    def find(self, key: str) -> int | None:
        found = resolve(key)
        if found is None or found[0] != Kind.PRODUCT:
            return None
        n = found[1]
        if FOLDER_BASE <= n < FOLDER_BASE + self.F:
            return n - FOLDER_BASE
        i = n - ITEM_BASE
        return self.F + i if self.ds.exists(i) else None

    @cached_property
    def _own_getters(self) -> dict[str, Callable[[int], Any]]:
        """Columns computed from the data set (built once: `getter` runs per row in filters)."""
        ds, F, folders = self.ds, self.F, self.ds.folders
        return {
            "Ref_Key": lambda r: folder_key(r) if r < F else product_key(r - F),
            "IsFolder": lambda r: r < F,
            "DeletionMark": lambda r: folders[r][2] if r < F else ds.deleted(r - F),
            "Description": lambda r: folders[r][0] if r < F else ds.name(r - F),
            "Code": lambda r: self._folder_code(r) if r < F else ds.code(r - F),
            "Артикул": lambda r: "" if r < F else ds.article(r - F),
            "Parent_Key": lambda r: self._folder_parent(r) if r < F else ds.parent_key(r - F),
        }

    def getter(self, name: str) -> Callable[[int], Any] | None:
        own = self._own_getters.get(name)
        return own if own is not None else super().getter(name)

    @staticmethod
    def _folder_code(r: int) -> str:
        return f"00-Г{r + 1:07d}"

    def _folder_parent(self, r: int) -> str:
        parent = self.ds.folders[r][1]
        return ZERO_GUID if parent < 0 else folder_key(parent)

    def row(self, rid: int) -> dict[str, Any]:
        if rid >= self.F:
            return self.ds.product(rid - self.F, self.profile.name)
        name, _parent, deleted = self.ds.folders[rid]
        out: dict[str, Any] = {
            "Ref_Key": folder_key(rid), "DataVersion": data_version(1, rid + 77), "DeletionMark": deleted,
            "Parent_Key": self._folder_parent(rid), "IsFolder": True, "Code": self._folder_code(rid),
            "Description": name, "Артикул": "", "НаименованиеПолное": "", "ЕдиницаИзмерения_Key": ZERO_GUID,
        }
        for f in self.fields:
            if f.name not in out:
                out[f.name] = [] if f.rows else (ZERO_GUID if f.edm == G else False if f.edm == B else "")
        out["Predefined"] = False
        return out


# ------------------------------------------------------------------------------------ registers


def recorder(kind: Kind, number: int, type_name: str) -> Composite:
    return Composite(guid(kind, number & 0xFFFFFFFF), f"StandardODATA.{type_name}")


def price_record_row(ds: Dataset, reg: PriceRegister, p: Profile, i: int, rec: tuple[Any, ...]) -> dict[str, Any]:
    """One price record as its OData row (also used by SliceLast/SliceFirst results)."""
    period, t, c, pkg, value, rec_no, line = rec
    dims = {
        "Номенклатура_Key": product_key(i),
        "Характеристика_Key": guid(Kind.CHARACTERISTIC, c) if c else ZERO_GUID,
        f"{reg.type_dim}_Key": guid(Kind.PRICE_TYPE, t + 1),
    }
    row: dict[str, Any] = {}
    if reg.subordinate:
        row["Recorder"] = recorder(Kind.PRICE_DOC, rec_no, "Document_УстановкаЦенНоменклатуры")
    row["Period"] = from_seconds(period)
    if reg.subordinate:
        row["LineNumber"] = line
        row["Active"] = True
    for dim in reg.dims:
        row[f"{dim}_Key"] = dims[f"{dim}_Key"]
    if reg.per_base_unit:
        ratio = vocab.UNITS[pkg][1] if pkg else 1.0
        base_unit = vocab.UNITS[pkg][2] if pkg else ds.facts(i).unit
        row["Цена"] = value / ratio
        row["Актуальность"] = True
        row["ЕдиницаИзмерения"] = Composite(guid(Kind.UNIT, base_unit + 1),
                                            f"StandardODATA.{p.units}")
    else:
        row["Цена"] = value
        row["Упаковка_Key"] = guid(Kind.UNIT, pkg + 1) if pkg else ZERO_GUID
    return row


def price_register_fields(reg: PriceRegister, p: Profile) -> tuple[Field, ...]:
    out: list[Field] = []
    if reg.subordinate:
        out.append(Field("Recorder", G, composite=True))
    out.append(Field("Period", D))
    if reg.subordinate:
        out += [Field("LineNumber", I64), Field("Active", B)]
    for dim in reg.dims:
        target = DIM_TARGETS.get(dim)
        out.append(Field(f"{dim}_Key", G, target))
    out.append(Field("Цена", N))
    if reg.per_base_unit:
        out += [Field("Актуальность", B), Field("ЕдиницаИзмерения", G, composite=True)]
    else:
        out.append(Field("Упаковка_Key", G, p.units))
    return tuple(out)


def price_records(ds: Dataset, reg: PriceRegister, i: int) -> list[tuple[Any, ...]]:
    records = ds.price_records(i)
    if reg.legacy:
        return [r for r in records if r[5] < OVERLAY_RECORDER and r[0] < LEGACY_CUTOFF]
    return records


class _PerProductTable(Table):
    """A register table whose rows are sub-rows of products: rid = index * RID_SPAN + j."""

    kind = "register"
    keyed = False
    indexed = frozenset({"Номенклатура_Key"})
    natural = ("Номенклатура_Key",)

    def __init__(self, ds: Dataset, p: Profile) -> None:
        self.ds = ds
        self.profile = p

    @property
    def cache_key(self) -> tuple[Any, ...]:
        return (self.name, self.ds.catalog_version)

    def sub_rows(self, i: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _range(self, products: Sequence[int]) -> array[int]:
        out = array("q")
        for i in products:
            out.extend(range(i * RID_SPAN, i * RID_SPAN + len(self.sub_rows(i))))
        return out

    def rids(self) -> Sequence[int]:
        return self._range([i for i in range(self.ds.size) if i not in self.ds._removed])

    def candidates(self, restr: dict[str, frozenset[Any]]) -> Sequence[int] | None:
        if "Номенклатура_Key" in restr:
            found = (self.ds.index_of(k) for k in restr["Номенклатура_Key"])
            return self._range(sorted(i for i in found if i is not None))
        return None

    def row(self, rid: int) -> dict[str, Any]:
        return self.sub_rows(rid // RID_SPAN)[rid % RID_SPAN]


class PriceRecordTable(_PerProductTable):
    """InformationRegister_ЦеныНоменклатуры[25][_RecordType]: every price record."""

    def __init__(self, ds: Dataset, p: Profile, reg: PriceRegister) -> None:
        super().__init__(ds, p)
        self.reg = reg
        self.name = reg.entity_set
        self.fields = price_register_fields(reg, p)

    def sub_rows(self, i: int) -> list[dict[str, Any]]:
        records = sorted(price_records(self.ds, self.reg, i), key=lambda r: (r[2], r[1], r[0]))
        return [price_record_row(self.ds, self.reg, self.profile, i, r) for r in records]


def stock_dim_value(dim: str, i: int, c: int, w: int) -> str:
    if dim == "Номенклатура":
        return product_key(i)
    if dim == "Характеристика":
        return guid(Kind.CHARACTERISTIC, c) if c else ZERO_GUID
    if dim in ("Склад", "СтруктурнаяЕдиница"):
        return guid(Kind.WAREHOUSE, w + 1)
    if dim == "Организация":
        return guid(Kind.ORGANIZATION, 1)
    return ZERO_GUID


def stock_record_fields(reg: StockRegister, p: Profile) -> tuple[Field, ...]:
    return (Field("Recorder", G, composite=True), Field("Period", D), Field("LineNumber", I64), Field("Active", B),
            Field("RecordType"),
            *(Field(f"{d}_Key", G, p.warehouses if d == reg.warehouse_dim else DIM_TARGETS.get(d))
              for d in reg.dims),
            *(Field(r, N) for r in reg.resources))


def stock_record_rows(ds: Dataset, reg: StockRegister, i: int) -> list[dict[str, Any]]:
    rows = []
    for period, c, w, qty, reserve, rec_no, line in ds.stock_records(i):
        values = (qty, reserve)[: len(reg.resources)]
        if not any(values):
            continue
        expense = min(values) < 0
        if rec_no >= OVERLAY_RECORDER:
            doc = "Document_ПересчетТоваров"
        elif rec_no >= 0x4000_0000:
            doc = "Document_РеализацияТоваровУслуг"
        elif rec_no >= 0x2000_0000:
            doc = "Document_ЗаказКлиента"
        else:
            doc = "Document_ПриходныйОрдерНаТовары"
        row: dict[str, Any] = {
            "Recorder": recorder(Kind.STOCK_DOC, rec_no, doc), "Period": from_seconds(period), "LineNumber": line,
            "Active": True, "RecordType": "Expense" if expense else "Receipt",
        }
        for d in reg.dims:
            row[f"{d}_Key"] = stock_dim_value(d, i, c, w)
        for name, value in zip(reg.resources, values, strict=False):
            row[name] = abs(value)
        rows.append(row)
    return rows


class StockRecordTable(_PerProductTable):
    """AccumulationRegister_X_RecordType: every movement."""

    def __init__(self, ds: Dataset, p: Profile, reg: StockRegister) -> None:
        super().__init__(ds, p)
        self.reg = reg
        self.name = f"{reg.name}_RecordType"
        self.fields = stock_record_fields(reg, p)

    def sub_rows(self, i: int) -> list[dict[str, Any]]:
        return stock_record_rows(self.ds, self.reg, i)


class StockRecordSetTable(_PerProductTable):
    """AccumulationRegister_X: record sets, one per recorder (`Recorder` + `RecordSet` array)."""

    natural = ("Recorder",)
    indexed = frozenset()

    def __init__(self, ds: Dataset, p: Profile, reg: StockRegister) -> None:
        super().__init__(ds, p)
        self.reg = reg
        self.name = reg.name
        self.fields = (Field("Recorder", G, composite=True),
                       Field("RecordSet", rows=stock_record_fields(reg, p)))

    def sub_rows(self, i: int) -> list[dict[str, Any]]:
        sets: dict[Composite, list[dict[str, Any]]] = {}
        for row in stock_record_rows(self.ds, self.reg, i):
            sets.setdefault(row["Recorder"], []).append(row)
        return [{"Recorder": rec, "RecordSet": rows} for rec, rows in sets.items()]


# ------------------------------------------------------------------------------------ documents


DOC_HEAD = (Field("Ref_Key", G), Field("DataVersion"), Field("DeletionMark", B), Field("Number"), Field("Date", D),
            Field("Posted", B))


def document_fields(p: Profile) -> tuple[Field, ...]:
    row_fields = (Field("Ref_Key", G), Field("LineNumber", I64), *p.rows)
    return (*DOC_HEAD, *p.header, Field(p.order_tab, rows=row_fields))


def document_table(ds: Dataset, p: Profile) -> ListTable:
    docs = [d for d in ds.documents.values() if d["_set"] == p.order_set]
    return ListTable(p.order_set, document_fields(p), docs, kind="document", version=ds.docs_version)


def document_rows_table(ds: Dataset, p: Profile) -> ListTable:
    rows = [r for d in ds.documents.values() if d["_set"] == p.order_set for r in d[p.order_tab]]
    fields = (Field("Ref_Key", G, p.order_set), Field("LineNumber", I64), *p.rows)
    return ListTable(f"{p.order_set}_{p.order_tab}", fields, rows, natural=("Ref_Key", "LineNumber"), kind="tab",
                     keyed=False, version=ds.docs_version)


# ------------------------------------------------------------------------------------ registry


class Registry:
    """The published composition of one configuration over one dataset."""

    def __init__(self, ds: Dataset, p: Profile) -> None:
        self.ds = ds
        self.profile = p
        self._small = small_catalogs(p)
        self._products = ProductTable(ds, p)
        self._price_tables = {reg.entity_set: PriceRecordTable(ds, p, reg) for reg in p.prices}
        self._stock_records = StockRecordTable(ds, p, p.stock)
        self._stock_sets = StockRecordSetTable(ds, p, p.stock)
        self._docs: tuple[int, ListTable, ListTable] | None = None
        self._chars: tuple[int, ListTable] | None = None

    def entity_sets(self) -> list[str]:
        p = self.profile
        names = [p.products, *self._small, *self._price_tables, self._stock_sets.name, self._stock_records.name,
                 p.order_set, f"{p.order_set}_{p.order_tab}"]
        return sorted(dict.fromkeys(names))

    def price_register(self, name: str) -> PriceRegister | None:
        """The price register addressed by an entity-set name (subordinate ones only as _RecordType)."""
        for reg in self.profile.prices:
            if name == reg.entity_set:
                return reg
        return None

    def stock_register(self, name: str) -> StockRegister | None:
        reg = self.profile.stock
        return reg if name in (reg.name, f"{reg.name}_RecordType") else None

    def _documents(self) -> tuple[ListTable, ListTable]:
        if self._docs is None or self._docs[0] != self.ds.docs_version:
            self._docs = (self.ds.docs_version, document_table(self.ds, self.profile),
                          document_rows_table(self.ds, self.profile))
        return self._docs[1], self._docs[2]

    def table(self, name: str) -> Table | None:
        p = self.profile
        if name == p.products:
            return self._products
        if name == p.characteristics:
            if self._chars is None or self._chars[0] != self.ds.catalog_version:
                base = self._small[name]
                self._chars = (self.ds.catalog_version, ListTable(name, base.fields, characteristic_rows(self.ds),
                                                                  version=self.ds.catalog_version))
            return self._chars[1]
        if name in self._small:
            return self._small[name]
        if name in self._price_tables:
            return self._price_tables[name]
        if name == self._stock_sets.name:
            return self._stock_sets
        if name == self._stock_records.name:
            return self._stock_records
        if name == p.order_set:
            return self._documents()[0]
        if name == f"{p.order_set}_{p.order_tab}":
            return self._documents()[1]
        return None

    @cached_property
    def _table_of_kind(self) -> dict[Kind, str]:
        """Entity set of each reference kind in this configuration (the profile is fixed)."""
        p = self.profile
        return {
            Kind.PRODUCT: p.products, Kind.CHARACTERISTIC: p.characteristics, Kind.UNIT: p.units,
            Kind.CURRENCY: p.currencies, Kind.PRICE_TYPE: p.price_types, Kind.WAREHOUSE: p.warehouses,
            Kind.ORGANIZATION: p.organizations, Kind.PARTNER: p.partners, Kind.COUNTERPARTY: p.counterparties,
            Kind.AGREEMENT: p.agreements, Kind.CONTRACT: p.contracts, Kind.PRODUCT_KIND: p.product_kinds,
            Kind.ORDER: p.order_set,
        }

    def lookup(self, key: str) -> tuple[Table, int] | None:
        """The table and row a reference key points at, if it exists in this base."""
        found = resolve(key)
        if found is None:
            return None
        name = self._table_of_kind.get(found[0])
        table = self.table(name) if name else None
        if table is None:
            return None
        rid = table.find(key)
        return (table, rid) if rid is not None else None

    def presentation(self, key: str) -> str:
        """What 1C shows for a reference: the description (documents: «Заказ клиента N от date»)."""
        hit = self.lookup(key)
        if hit is None:
            return "" if key == ZERO_GUID else f"<Объект не найден> ({key})"
        table, rid = hit
        row = table.row(rid)
        if table.kind == "document":
            date: datetime = row["Date"]
            return f"{self.profile.order_title} {row['Number']} от {date:%d.%m.%Y %H:%M:%S}"
        return str(row.get("Description", ""))
