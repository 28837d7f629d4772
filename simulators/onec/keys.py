"""Reference keys (GUIDs), data versions and dates of the simulated 1C base.

Keys are derived from (kind, number) instead of being stored: the first group is the number, so
keys of one kind sort as strings in number order (that is what makes `$orderby=Ref_Key` paging
O(page)), and `resolve()` can tell from a key alone which catalogue row it names. Real 1C keys
look the same way: objects created in one session share the tail and count up in the first group.
"""

from __future__ import annotations

import base64
import struct
from datetime import datetime, timedelta
from enum import IntEnum

ZERO_GUID = "00000000-0000-0000-0000-000000000000"
EMPTY_DATE = datetime(1, 1, 1)
EPOCH = datetime(2000, 1, 1)

_MID = "5e7a-11ee-9c4d-0050569a"


class Kind(IntEnum):
    """What a key points at; the last four hex digits of every key."""

    PRODUCT = 0x0A01  # items and folders of Catalog_Номенклатура
    CHARACTERISTIC = 0x0A02
    UNIT = 0x0A03  # Catalog_УпаковкиЕдиницыИзмерения / Catalog_КлассификаторЕдиницИзмерения
    CURRENCY = 0x0A05
    PRICE_TYPE = 0x0A06
    WAREHOUSE = 0x0A07  # Catalog_Склады / Catalog_СтруктурныеЕдиницы
    ORGANIZATION = 0x0A09
    PARTNER = 0x0A0A
    COUNTERPARTY = 0x0A0B
    AGREEMENT = 0x0A0C
    CONTRACT = 0x0A0D
    PRODUCT_KIND = 0x0A0E  # Catalog_ВидыНоменклатуры
    ORDER = 0x0B01
    PRICE_DOC = 0x0B02  # recorder of price records (Document_УстановкаЦенНоменклатуры)
    STOCK_DOC = 0x0B03  # recorder of stock records (Document_ПриходныйОрдерНаТовары)


FOLDER_BASE = 0x0100_0000  # folders sort before items in Catalog_Номенклатура
ITEM_BASE = 0x1000_0000


def guid(kind: Kind, number: int) -> str:
    """Key number `number` of `kind`; numbers must stay below 2**32."""
    return f"{number:08x}-{_MID}{int(kind):04x}"


def resolve(key: str) -> tuple[Kind, int] | None:
    """(kind, number) of a key made by `guid()`, or None for the zero GUID and foreign keys."""
    if len(key) != 36 or key == ZERO_GUID or key[9:32] != _MID:
        return None
    try:
        return Kind(int(key[32:], 16)), int(key[:8], 16)
    except ValueError:
        return None


def product_key(index: int) -> str:
    return guid(Kind.PRODUCT, ITEM_BASE + index)


def folder_key(index: int) -> str:
    return guid(Kind.PRODUCT, FOLDER_BASE + index)


def data_version(stamp: int, salt: int) -> str:
    """Opaque base64 DataVersion as 1C prints it (8 bytes); changes whenever `stamp` does."""
    return base64.b64encode(struct.pack(">II", stamp & 0xFFFFFFFF, salt & 0xFFFFFFFF)).decode()


def to_seconds(moment: datetime) -> int:
    """Naive local datetime → whole seconds since EPOCH (the internal period representation)."""
    return int((moment - EPOCH).total_seconds())


def from_seconds(seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def format_date(moment: datetime | None) -> str:
    """1C JSON date: naive local time, no offset, no fraction; empty date as 0001-01-01."""
    if moment is None:
        moment = EMPTY_DATE
    return moment.strftime("%Y-%m-%dT%H:%M:%S") if moment.year >= 1000 else (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
        f"{moment.minute:02d}:{moment.second:02d}"
    )
