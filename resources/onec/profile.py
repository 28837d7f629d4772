"""Mapping profiles (`config/mappings/<name>.yaml`): which 1C objects and fields feed `products`.

One file per 1C configuration (УТ 11.5, УТ 11.4, УНФ, …). A profile may `extends:` another and
override whole sections. Validated on load; errors name the file and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from resources.settings import PROJECT_ROOT, ConfigError, StrictModel, read_yaml_mapping, validate_config

MAPPINGS_DIR = PROJECT_ROOT / "config" / "mappings"


class ProductFields(StrictModel):
    ref: str = "Ref_Key"
    data_version: str = "DataVersion"
    deletion_mark: str = "DeletionMark"
    is_folder: str = "IsFolder"
    parent: str = "Parent_Key"
    code: str = "Code"
    article: str = "Артикул"
    name: str = "Description"
    unit: str | None = None


class ProductsSection(StrictModel):
    entity_set: str
    fields: ProductFields
    sku_rule: list[Literal["article", "code"]] = Field(default_factory=lambda: ["article", "code"])

    @field_validator("sku_rule")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("sku_rule needs at least one of: article, code")
        return value


class ReferenceFields(StrictModel):
    ref: str = "Ref_Key"
    name: str = "Description"
    code: str | None = None
    ratio: str | None = None
    currency: str | None = None
    deletion_mark: str | None = None
    is_folder: str | None = None


class ReferenceSection(StrictModel):
    entity_set: str
    fields: ReferenceFields = Field(default_factory=ReferenceFields)


class PriceFields(StrictModel):
    product: str
    price_type: str
    price: str
    package: str | None = None
    characteristic: str | None = None


class PricesSection(StrictModel):
    register_name: str = Field(alias="register")
    function: Literal["SliceLast"] = "SliceLast"
    fields: PriceFields


class StockFields(StrictModel):
    product: str
    warehouse: str
    quantity: str


class StockSection(StrictModel):
    register_name: str = Field(alias="register")
    function: Literal["Balance"] = "Balance"
    dimensions: list[str]
    fields: StockFields

    @property
    def dimensions_param(self) -> str:
        """The `Dimensions='…'` value of a `Balance` call: balances per product and warehouse only."""
        return "'" + ",".join(self.dimensions) + "'"


class OrderFields(StrictModel):
    product: str = "Номенклатура_Key"
    quantity: str = "Количество"
    price: str = "Цена"
    amount: str = "Сумма"


class OrdersSection(StrictModel):
    entity_set: str
    rows: str
    external_number_field: str
    fields: OrderFields = Field(default_factory=OrderFields)


class MappingProfile(StrictModel):
    profile: str
    description: str = ""
    extends: str | None = None
    products: ProductsSection
    units: ReferenceSection | None = None
    currencies: ReferenceSection
    price_types: ReferenceSection
    prices: PricesSection
    warehouses: ReferenceSection
    stock: StockSection
    orders: OrdersSection | None = None
    source: str = Field("", exclude=True)

    def entity_sets(self) -> list[str]:
        """Every entity set the profile reads; each must be in the 1C service document."""
        sets = [self.products.entity_set, self.currencies.entity_set, self.price_types.entity_set,
                self.warehouses.entity_set, self.prices.register_name, self.stock.register_name]
        if self.units:
            sets.append(self.units.entity_set)
        return sets


def load_profile(name_or_path: str | Path, mappings_dir: Path = MAPPINGS_DIR) -> MappingProfile:
    """Load a profile by name (`ut11`) or path, resolving `extends`, and validate it."""
    candidate = Path(name_or_path)
    path = candidate if candidate.suffix in (".yaml", ".yml") else mappings_dir / f"{name_or_path}.yaml"
    data = read_yaml_mapping(path, "mapping profile")
    seen = {path.resolve()}
    parent_name = data.get("extends")
    while parent_name:
        parent_path = path.parent / f"{parent_name}.yaml"
        if parent_path.resolve() in seen:
            raise ConfigError(f"{path}: extends: cycle through {parent_name!r}")
        seen.add(parent_path.resolve())
        parent = read_yaml_mapping(parent_path, "mapping profile")
        data = {**parent, **data, "extends": parent.get("extends")}
        parent_name = parent.get("extends")
    profile = validate_config(MappingProfile, data, path)
    profile.source = str(path)
    return profile
