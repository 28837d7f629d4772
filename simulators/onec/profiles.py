"""Per-configuration naming: which entity sets, registers and fields the base publishes.

The same data is served under the names of УТ 11.5 (`ut11`), УТ 11.4 (`ut114`) and УНФ (`unf`),
exactly as config/mappings/<profile>.yaml expect them, so a client configured for the wrong
profile meets the 404s and silently empty filters it would meet in production.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Field:
    """One property of an entity type as it appears on the wire."""

    name: str
    edm: str = "Edm.String"
    target: str | None = None  # entity set a `_Key` property references
    rows: tuple[Field, ...] | None = None  # tabular section: its row properties
    composite: bool = False  # value + `<name>_Type`

    @property
    def nav(self) -> str | None:
        """Navigation property name (`Parent` for `Parent_Key`), None if not a reference."""
        return self.name[:-4] if self.target and self.name.endswith("_Key") else None


G, B, D, N, I64 = "Edm.Guid", "Edm.Boolean", "Edm.DateTime", "Edm.Double", "Edm.Int64"


@dataclass(frozen=True, slots=True)
class PriceRegister:
    name: str  # without _RecordType
    subordinate: bool  # recorder-subordinate: only reachable as <name>_RecordType
    type_dim: str  # ВидЦены / ВидЦен
    dims: tuple[str, ...]  # dimension names in $metadata order
    per_base_unit: bool  # УНФ: prices per ЕдиницаИзмерения (always the base unit here)
    legacy: bool = False  # УТ 11.5 keeps the pre-rename register with frozen old data

    @property
    def entity_set(self) -> str:
        return f"{self.name}_RecordType" if self.subordinate else self.name


@dataclass(frozen=True, slots=True)
class StockRegister:
    name: str
    warehouse_dim: str
    dims: tuple[str, ...]
    resources: tuple[str, ...]  # first = on hand, second (optional) = reserved


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    products: str
    units: str
    warehouses: str
    warehouse_folder: bool
    characteristics: str
    currencies: str
    price_types: str
    product_kinds: str | None
    organizations: str
    partners: str | None
    counterparties: str
    agreements: str | None
    contracts: str | None
    prices: tuple[PriceRegister, ...]
    stock: StockRegister
    order_set: str
    order_tab: str
    order_prefix: str
    order_title: str
    order_external_field: str
    header: tuple[Field, ...]
    rows: tuple[Field, ...]

    @property
    def price(self) -> PriceRegister:
        """The register the mapping profile reads prices from."""
        return next(p for p in self.prices if not p.legacy)


_UT_HEADER_REFS = (
    Field("Организация_Key", G, "Catalog_Организации"),
    Field("Партнер_Key", G, "Catalog_Партнеры"),
    Field("Контрагент_Key", G, "Catalog_Контрагенты"),
    Field("Соглашение_Key", G, "Catalog_СоглашенияСКлиентами"),
    Field("Договор_Key", G),
    Field("Склад_Key", G, "Catalog_Склады"),
    Field("Валюта_Key", G, "Catalog_Валюты"),
)
UT_HEADER = (
    *_UT_HEADER_REFS,
    Field("ЦенаВключаетНДС", B), Field("Статус"), Field("ХозяйственнаяОперация"),
    Field("СуммаДокумента", N), Field("ДатаОтгрузки", D), Field("АдресДоставки"), Field("Комментарий"),
    Field("Менеджер_Key", G), Field("НомерПоДаннымКлиента"), Field("ДатаПоДаннымКлиента", D),
)
UT_ROWS = (
    Field("Номенклатура_Key", G, "Catalog_Номенклатура"),
    Field("Характеристика_Key", G, "Catalog_ХарактеристикиНоменклатуры"),
    Field("Упаковка_Key", G, "Catalog_УпаковкиЕдиницыИзмерения"),
    Field("КоличествоУпаковок", N), Field("Количество", N),
    Field("ВидЦены_Key", G, "Catalog_ВидыЦен"),
    Field("Цена", N), Field("Сумма", N), Field("СтавкаНДС"), Field("СуммаНДС", N), Field("СуммаСНДС", N),
    Field("Склад_Key", G, "Catalog_Склады"), Field("Отменено", B), Field("ПричинаОтмены_Key", G),
    Field("ВариантОбеспечения"), Field("КодСтроки", I64),
)
UNF_HEADER = (
    Field("Организация_Key", G, "Catalog_Организации"),
    Field("Контрагент_Key", G, "Catalog_Контрагенты"),
    Field("Договор_Key", G, "Catalog_ДоговорыКонтрагентов"),
    Field("СтруктурнаяЕдиницаРезерв_Key", G, "Catalog_СтруктурныеЕдиницы"),
    Field("ВидЦен_Key", G, "Catalog_ВидыЦен"),
    Field("ВалютаДокумента_Key", G, "Catalog_Валюты"),
    Field("Ответственный_Key", G), Field("СостояниеЗаказа_Key", G),
    Field("СуммаДокумента", N), Field("СуммаВключаетНДС", B), Field("ВариантЗавершения"),
    Field("ДатаОтгрузки", D), Field("Комментарий"),
)
UNF_ROWS = (
    Field("Номенклатура_Key", G, "Catalog_Номенклатура"),
    Field("Характеристика_Key", G, "Catalog_ХарактеристикиНоменклатуры"),
    Field("ЕдиницаИзмерения", G, composite=True),
    Field("Количество", N), Field("Цена", N), Field("Сумма", N), Field("Резерв", N),
    Field("ТипНоменклатурыЗапас"), Field("СтавкаНДС_Key", G), Field("СуммаНДС", N), Field("Всего", N),
)

_UT_PRICE_DIMS = ("Номенклатура", "Характеристика", "ВидЦены")
_UT_STOCK = StockRegister(
    "AccumulationRegister_ТоварыНаСкладах", "Склад", ("Номенклатура", "Характеристика", "Назначение", "Склад"),
    ("ВНаличии", "ВРезервеСоСклада"),
)


def _ut(name: str, prices: tuple[PriceRegister, ...]) -> Profile:
    return Profile(
        name=name, products="Catalog_Номенклатура", units="Catalog_УпаковкиЕдиницыИзмерения",
        warehouses="Catalog_Склады", warehouse_folder=True, characteristics="Catalog_ХарактеристикиНоменклатуры",
        currencies="Catalog_Валюты", price_types="Catalog_ВидыЦен", product_kinds="Catalog_ВидыНоменклатуры",
        organizations="Catalog_Организации", partners="Catalog_Партнеры", counterparties="Catalog_Контрагенты",
        agreements="Catalog_СоглашенияСКлиентами", contracts=None, prices=prices, stock=_UT_STOCK,
        order_set="Document_ЗаказКлиента", order_tab="Товары", order_prefix="ЗК00-", order_title="Заказ клиента",
        order_external_field="НомерПоДаннымКлиента", header=UT_HEADER, rows=UT_ROWS,
    )


PROFILES: dict[str, Profile] = {
    "ut11": _ut("ut11", (
        PriceRegister("InformationRegister_ЦеныНоменклатуры25", True, "ВидЦены", _UT_PRICE_DIMS, False),
        PriceRegister("InformationRegister_ЦеныНоменклатуры", True, "ВидЦены", _UT_PRICE_DIMS, False, legacy=True),
    )),
    "ut114": _ut("ut114", (
        PriceRegister("InformationRegister_ЦеныНоменклатуры", True, "ВидЦены", _UT_PRICE_DIMS, False),
    )),
    "unf": Profile(
        name="unf", products="Catalog_Номенклатура", units="Catalog_КлассификаторЕдиницИзмерения",
        warehouses="Catalog_СтруктурныеЕдиницы", warehouse_folder=False,
        characteristics="Catalog_ХарактеристикиНоменклатуры", currencies="Catalog_Валюты",
        price_types="Catalog_ВидыЦен", product_kinds=None, organizations="Catalog_Организации", partners=None,
        counterparties="Catalog_Контрагенты", agreements=None, contracts="Catalog_ДоговорыКонтрагентов",
        prices=(PriceRegister("InformationRegister_ЦеныНоменклатуры", False, "ВидЦен",
                              ("ВидЦен", "Номенклатура", "Характеристика"), True),),
        stock=StockRegister(
            "AccumulationRegister_ЗапасыНаСкладах", "СтруктурнаяЕдиница",
            ("Организация", "Номенклатура", "Характеристика", "Партия", "СтруктурнаяЕдиница", "Ячейка"),
            ("Количество",),
        ),
        order_set="Document_ЗаказПокупателя", order_tab="Запасы", order_prefix="ЗП00-",
        order_title="Заказ покупателя", order_external_field="Комментарий", header=UNF_HEADER, rows=UNF_ROWS,
    ),
}

# reference targets of register dimensions (<dim>_Key → entity set), filled per profile
DIM_TARGETS = {
    "Номенклатура": "Catalog_Номенклатура",
    "Характеристика": "Catalog_ХарактеристикиНоменклатуры",
    "ВидЦены": "Catalog_ВидыЦен",
    "ВидЦен": "Catalog_ВидыЦен",
    "Склад": "Catalog_Склады",
    "СтруктурнаяЕдиница": "Catalog_СтруктурныеЕдиницы",
    "Организация": "Catalog_Организации",
    "Назначение": None,
    "Партия": None,
    "Ячейка": None,
}


def profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown configuration {name!r}; expected one of {sorted(PROFILES)}") from None
