"""The simulated 1C base: a deterministic catalogue of any size, generated lazily per product.

Nothing per product is stored unless it was changed: every fact (group, name, article, prices,
stock) is a pure function of (seed, index) computed from a 64-bit hash, so a 1M-product base costs
no memory and no start-up time, and any page is as cheap as any other. Changes made between syncs
(`set_price`, `set_stock`, `rename`, …) live in small overlays; each one bumps `catalog_version`,
which the query layer uses to invalidate what it cached.

`expected_products()` states what a correct sync must produce, so tests and benchmarks compare the
synced store with it instead of re-deriving the rules.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from simulators.onec import vocab
from simulators.onec.keys import (
    ITEM_BASE,
    ZERO_GUID,
    Kind,
    data_version,
    folder_key,
    guid,
    product_key,
    resolve,
    to_seconds,
)

M64 = (1 << 64) - 1


def mix(x: int) -> int:
    """splitmix64 finaliser: a cheap, well-spread 64-bit hash (≈0.3 µs in CPython)."""
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


class Facts(NamedTuple):
    """Cheap per-product facts derived from the hash; everything else is built from these."""

    h: int
    h3: int
    kind: int
    parent: int  # folder index, -1 = root
    deleted: bool
    empty_article: bool
    dup_distance: int  # >0: the article is copied from product index - dup_distance
    unit: int  # index into vocab.UNITS (0 шт, 1 кг, 2 л)
    package: int  # unit index the prices are set for (0 = base unit)
    no_price: bool
    no_wholesale: bool
    no_stock: bool


# price record: (period, price type, characteristic, package unit, price, recorder number, line)
PriceRecord = tuple[int, int, int, int, float, int, int]
# stock record: (period, characteristic, warehouse, Δ on hand, Δ reserved, recorder number, line)
StockRecord = tuple[int, int, int, float, float, int, int]

PRICE_START = to_seconds(datetime(2025, 1, 9, 9, 0, 0))
STOCK_START = to_seconds(datetime(2025, 3, 3, 10, 30, 0))
PRICE_START_SPAN = 300  # days over which first price records are spread
STOCK_START_SPAN = 200
DAY = 86400
OVERLAY_RECORDER = 0x8000_0000


class Dataset:
    """A deterministic 1C base: catalogue, prices, stock, documents, with a mutation API."""

    def __init__(
        self,
        size: int = 2000,
        seed: int = 1,
        *,
        timezone: str = "Asia/Almaty",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self.seed = seed
        self.timezone = timezone
        self._tz = ZoneInfo(timezone)
        self._clock = clock
        self._salt = mix(seed * 1_000_003)
        self.lock = threading.RLock()
        self._build_groups()
        self.char_product = 4 if size > 4 else 0
        self._char_kind = next(n for n, (kind, _f) in enumerate(self.kinds) if kind.ru == "Полотенце")
        self.future_product = 2 if size > 2 else 0
        self.reset()

    # ------------------------------------------------------------------ structure

    def _build_groups(self) -> None:
        """Flatten vocab.CATALOGUE into folder rows and (kind, folder) pairs."""
        self.folders: list[tuple[str, int, bool]] = []  # (name, parent folder or -1, deletion mark)
        self.kinds: list[tuple[vocab.ProductKind, int]] = []

        def walk(group: vocab.Group, parent: int) -> None:
            index = len(self.folders)
            self.folders.append((group.name, parent, False))
            for kind in group.kinds:
                self.kinds.append((kind, index))
            for child in group.children:
                walk(child, index)

        for top in vocab.CATALOGUE:
            walk(top, -1)
        self.archive_folder = len(self.folders)
        self.folders.append((vocab.ARCHIVE_GROUP, -1, True))

    def reset(self) -> None:
        """Drop every change and document: back to the generated state."""
        with self.lock:
            self.catalog_version = getattr(self, "catalog_version", 0) + 1
            self.docs_version = getattr(self, "docs_version", 0) + 1
            self._stamp = 1
            self._names: dict[int, str] = {}
            self._articles: dict[int, str] = {}
            self._deleted: dict[int, bool] = {}
            self._removed: set[int] = set()
            self._stamps: dict[int, int] = {}
            self._price_over: dict[int, list[PriceRecord]] = {}
            self._stock_over: dict[int, list[StockRecord]] = {}
            self._recorder = OVERLAY_RECORDER
            self._sku_cache: tuple[int, dict[int, str]] | None = None
            self.documents: dict[str, dict[str, Any]] = {}
            self.doc_counter = 0
            created = self.now()
            self.future_period = to_seconds(datetime(created.year, created.month, created.day) + timedelta(days=30))

    def now(self) -> datetime:
        """Naive local time of the 1C server (its time zone), whole seconds."""
        moment = self._clock() if self._clock else datetime.now(self._tz).replace(tzinfo=None)
        return moment.replace(microsecond=0)

    def now_seconds(self) -> int:
        return to_seconds(self.now())

    def _touch(self) -> int:
        self._stamp += 1
        self.catalog_version += 1
        self._sku_cache = None
        return self._stamp

    # ------------------------------------------------------------------ per-product facts

    def facts(self, i: int) -> Facts:
        h = mix(self._salt + i)
        h2 = mix(h ^ 0x5851F42D4C957F2D)
        h3 = mix(h2 + 0x14057B7EF767814F)
        kind = self._char_kind if i == self.char_product else h2 % len(self.kinds)
        product_kind, folder = self.kinds[kind]
        deleted = (h & 1023) < 20
        empty_article = ((h >> 10) & 1023) < 51
        dup = ((h >> 20) & 1023) < 5
        price_roll = (h >> 30) & 1023
        no_stock = ((h >> 40) & 1023) < 102
        package_roll = (h >> 50) & 1023
        if ((h2 >> 20) & 127) == 0:
            folder = -1
        elif deleted and (h2 >> 27) & 1:
            folder = self.archive_folder
        unit = product_kind.unit
        package = vocab.PACKAGES[(h2 >> 30) % len(vocab.PACKAGES)] if package_roll < 51 and unit == 0 else 0
        no_price = price_roll < 31
        no_wholesale = 31 <= price_roll < 51
        if i in (self.char_product, self.future_product):
            deleted = no_price = no_wholesale = no_stock = False
            package = 0
            folder = self.kinds[kind][1]
        dup_distance = 1 + (h >> 60) % 5 if dup and i >= 5 else 0
        return Facts(h, h3, kind, folder, deleted, empty_article and not dup_distance, dup_distance, unit,
                     package, no_price, no_wholesale, no_stock)

    def exists(self, i: int) -> bool:
        return 0 <= i < self.size and i not in self._removed

    def index_of(self, key: str) -> int | None:
        """Product index of a Ref_Key, or None (unknown, a folder, or physically removed)."""
        found = resolve(key)
        if found is None or found[0] != Kind.PRODUCT or found[1] < ITEM_BASE:
            return None
        i = found[1] - ITEM_BASE
        return i if self.exists(i) else None

    def code(self, i: int) -> str:
        return f"00-{i + 1:08d}"

    def _base_article(self, i: int, f: Facts | None = None) -> str:
        f = f or self.facts(i)
        if f.dup_distance:
            source = i - f.dup_distance
            sf = self.facts(source)
            return "" if sf.empty_article else f"ART{source + 1:06d}"
        return "" if f.empty_article else f"ART{i + 1:06d}"

    def article(self, i: int, f: Facts | None = None) -> str:
        if i in self._articles:
            return self._articles[i]
        return self._base_article(i, f)

    def deleted(self, i: int, f: Facts | None = None) -> bool:
        if i in self._deleted:
            return self._deleted[i]
        if f is not None:
            return f.deleted
        if i == self.char_product or i == self.future_product:
            return False
        return (mix(self._salt + i) & 1023) < 20  # same roll as facts(): filters scan this

    def generated_name(self, i: int, f: Facts | None = None, variant: int = 0) -> str:
        f = f or self.facts(i)
        kind = self.kinds[f.kind][0]
        x = mix(f.h3 + variant * 0x9E3779B97F4A7C15)
        word = kind.kz if kind.kz and (x & 7) < 3 else kind.ru
        parts = [word]
        if kind.brands and (((x >> 3) & 7) != 0 or kind.price_hi >= 20000):
            parts.append(kind.brands[(x >> 6) % len(kind.brands)])
        if kind.variants:
            parts.append(kind.variants[(x >> 16) % len(kind.variants)])
        if kind.sizes:
            parts.append(kind.sizes[(x >> 26) % len(kind.sizes)])
        return " ".join(parts)

    def name(self, i: int, f: Facts | None = None) -> str:
        if i in self._names:
            return self._names[i]
        return self.generated_name(i, f)

    def parent_key(self, i: int, f: Facts | None = None) -> str:
        folder = (f or self.facts(i)).parent
        return ZERO_GUID if folder < 0 else folder_key(folder)

    def data_version(self, i: int, f: Facts | None = None) -> str:
        return data_version(self._stamps.get(i, 1), (f or self.facts(i)).h)

    def characteristics(self, i: int) -> range:
        """Characteristic numbers used by product i (0 = none); one product has three."""
        return range(1, len(vocab.CHARACTERISTICS) + 1) if i == self.char_product else range(0, 1)

    # ------------------------------------------------------------------ prices

    def base_retail(self, f: Facts) -> float:
        kind = self.kinds[f.kind][0]
        step = 100 if kind.price_hi >= 20000 else 5
        steps = (kind.price_hi - kind.price_lo) // step
        return float(kind.price_lo + ((f.h3 >> 32) % (steps + 1)) * step)

    def price_records(self, i: int, f: Facts | None = None) -> list[PriceRecord]:
        """All price records of product i in the register, generated history plus changes."""
        f = f or self.facts(i)
        out: list[PriceRecord] = []
        if not f.no_price:
            kind = self.kinds[f.kind][0]
            step = 100 if kind.price_hi >= 20000 else 5
            final = self.base_retail(f)
            h3 = f.h3
            periods = 2 + (h3 >> 50) % 3
            period = self.price_start(f)
            ratio = vocab.UNITS[f.package][1] if f.package else 1.0
            types = (0,) if f.no_wholesale else (0, 1)
            for j in range(periods):
                if j == periods - 1:
                    retail = final
                else:
                    cut = 4 + ((h3 >> (5 * j)) % 12) * (periods - 1 - j)
                    retail = max(float(step), round(final * (100 - cut) / 100 / step) * step)
                recorder = i * 4 + j + 1
                line = 0
                for t in types:
                    value = retail if t == 0 else max(float(step), round(retail * 0.85 / step) * step)
                    for c in self.characteristics(i):
                        line += 1
                        out.append((period, t, c, f.package, value * ratio, recorder, line))
                period += (20 + (h3 >> (7 * j + 3)) % 90) * DAY
            if i == self.future_product:
                future = round(final * 1.25 / step) * step
                for c in self.characteristics(i):
                    out.append((self.future_period, 0, c, f.package, future * ratio, i * 4 + 4, 1))
        extra = self._price_over.get(i)
        if extra:
            out.extend(extra)
        return out

    @staticmethod
    def slice_last(records: Iterable[PriceRecord], at: int | None) -> dict[tuple[int, int], PriceRecord]:
        """(price type, characteristic) → latest record with period <= at (None: no limit)."""
        best: dict[tuple[int, int], PriceRecord] = {}
        for rec in records:
            if at is not None and rec[0] > at:
                continue
            key = (rec[1], rec[2])
            old = best.get(key)
            if old is None or rec[0] >= old[0]:
                best[key] = rec
        return best

    @staticmethod
    def slice_first(records: Iterable[PriceRecord], at: int | None) -> dict[tuple[int, int], PriceRecord]:
        """(price type, characteristic) → earliest record with period >= at (None: no limit)."""
        best: dict[tuple[int, int], PriceRecord] = {}
        for rec in records:
            if at is not None and rec[0] < at:
                continue
            key = (rec[1], rec[2])
            old = best.get(key)
            if old is None or rec[0] < old[0]:
                best[key] = rec
        return best

    def current_price(self, i: int, price_type: int = 0, at: datetime | None = None) -> float | None:
        """Price per base unit in effect at `at` (default now); None when there is none."""
        return self._price_at(i, price_type, to_seconds(at) if at else self.now_seconds())

    def _price_at(self, i: int, price_type: int, moment: int, f: Facts | None = None) -> float | None:
        best = self.slice_last(self.price_records(i, f), moment)
        values = [rec for (t, _c), rec in best.items() if t == price_type]
        if not values:
            return None
        rec = min(values, key=lambda r: r[2])
        ratio = vocab.UNITS[rec[3]][1] if rec[3] else 1.0
        return rec[4] / ratio

    # ------------------------------------------------------------------ stock

    def stock_records(self, i: int, f: Facts | None = None) -> list[StockRecord]:
        """All movements of product i in the stock register, generated plus changes."""
        f = f or self.facts(i)
        out: list[StockRecord] = []
        if not f.no_stock:
            h, period, mask = self.stock_layout(f)
            recorder = i + 1
            line = 0
            for c in self.characteristics(i):
                for w in range(len(vocab.WAREHOUSES)):
                    if not mask >> w & 1:
                        continue
                    r = mix(h + 31 * c + w)
                    if f.unit == 1:
                        qty = (r % 3000 + 5) / 10
                    elif f.unit == 2:
                        qty = (r % 400 + 2) / 2
                    else:
                        qty = float(1 + r % 240)
                    line += 1
                    out.append((period, c, w, qty, 0.0, recorder, line))
                    if (r >> 20) % 4 == 0:  # a later sale, never down to zero
                        sold = qty * ((r >> 24) % 60) / 100
                        sold = round(sold, 1) if f.unit else float(int(sold))
                        if 0 < sold < qty:
                            out.append((period + (5 + (r >> 32) % 60) * DAY, c, w, -sold, 0.0, recorder + 0x4000_0000,
                                        line))
                    if (r >> 40) % 20 == 0 and qty >= 2:
                        out.append((period + DAY, c, w, 0.0, float(int(qty // 4) or 1), recorder + 0x2000_0000, line))
        extra = self._stock_over.get(i)
        if extra:
            out.extend(extra)
        return out

    @staticmethod
    def stock_layout(f: Facts | int) -> tuple[int, int, int]:
        """(hash, period of the first receipt, bit mask of stocked warehouses) of a product.

        Derived from the first hash alone so the Balance id list needs two hashes per product.
        """
        h = mix((f if isinstance(f, int) else f.h) ^ 0x2545F4914F6CDD1D)
        mask = (h & 7) or 1
        if (h >> 3) & 3:
            mask |= 1  # the main warehouse holds most goods
        return h, STOCK_START + ((h >> 5) % STOCK_START_SPAN) * DAY, mask

    def price_start(self, f: Facts) -> int:
        """Period of the first generated price record of a product."""
        return PRICE_START + ((f.h3 >> 52) % PRICE_START_SPAN) * DAY

    @staticmethod
    def balances(records: Iterable[StockRecord], at: int | None) -> dict[tuple[int, int], tuple[float, float]]:
        """(characteristic, warehouse) → (on hand, reserved) at `at` (None: everything)."""
        out: dict[tuple[int, int], list[float]] = {}
        for rec in records:
            if at is not None and rec[0] > at:
                continue
            acc = out.setdefault((rec[1], rec[2]), [0.0, 0.0])
            acc[0] += rec[3]
            acc[1] += rec[4]
        return {k: (round(v[0], 3), round(v[1], 3)) for k, v in out.items()}

    def stock(self, i: int, warehouses: Iterable[int] | None = None, at: datetime | None = None) -> float:
        """On-hand quantity of product i summed over warehouses (default all) and characteristics."""
        chosen = set(range(len(vocab.WAREHOUSES)) if warehouses is None else warehouses)
        return self._stock_at(i, chosen, to_seconds(at) if at else self.now_seconds())

    def _stock_at(self, i: int, chosen: set[int], moment: int, f: Facts | None = None) -> float:
        total = sum(v[0] for (_c, w), v in self.balances(self.stock_records(i, f), moment).items() if w in chosen)
        return round(total, 3)

    # ------------------------------------------------------------------ name resolution

    def price_type_index(self, price_type: int | str) -> int:
        if isinstance(price_type, int):
            return price_type
        wanted = price_type.strip().casefold()
        for n, (name, _cur, _del) in enumerate(vocab.PRICE_TYPES):
            if name.casefold() == wanted or guid(Kind.PRICE_TYPE, n + 1) == price_type:
                return n
        raise KeyError(f"unknown price type {price_type!r}")

    def warehouse_index(self, warehouse: int | str) -> int:
        if isinstance(warehouse, int):
            return warehouse
        wanted = warehouse.strip().casefold()
        for n, name in enumerate(vocab.WAREHOUSES):
            if name.casefold() == wanted or guid(Kind.WAREHOUSE, n + 1) == warehouse:
                return n
        raise KeyError(f"unknown warehouse {warehouse!r}")

    def unit_index(self, unit: int | str) -> int:
        if isinstance(unit, int):
            return unit
        for n, row in enumerate(vocab.UNITS):
            if row[0] == unit or guid(Kind.UNIT, n + 1) == unit:
                return n
        raise KeyError(f"unknown unit {unit!r}")

    # ------------------------------------------------------------------ mutations

    def _check(self, i: int) -> None:
        if not self.exists(i):
            raise KeyError(f"no product with index {i}")

    def _next_recorder(self) -> int:
        self._recorder += 1
        return self._recorder

    def set_price(
        self, i: int, price_type: int | str, value: float, *, package: int | str | None = None,
        char: int | None = None,
    ) -> None:
        """Register a new price effective now (per base unit, or per `package` if given)."""
        with self.lock:
            self._check(i)
            t = self.price_type_index(price_type)
            pkg = self.unit_index(package) if package is not None else 0
            chars = self.characteristics(i) if char is None else (char,)
            period = self.now_seconds()
            recorder = self._next_recorder()
            records = self._price_over.setdefault(i, [])
            for line, c in enumerate(chars, 1):
                records[:] = [r for r in records if not (r[0] == period and r[1] == t and r[2] == c)]
                records.append((period, t, c, pkg, float(value), recorder, line))
            self._touch()

    def set_stock(self, i: int, warehouse: int | str, qty: float, *, char: int | None = None) -> None:
        """Make the on-hand quantity of product i in a warehouse `qty` from now on."""
        with self.lock:
            self._check(i)
            w = self.warehouse_index(warehouse)
            c = char if char is not None else self.characteristics(i)[0]
            period = self.now_seconds()
            current = self.balances(self.stock_records(i), period).get((c, w), (0.0, 0.0))[0]
            delta = round(float(qty) - current, 3)
            if delta:
                self._stock_over.setdefault(i, []).append((period, c, w, delta, 0.0, self._next_recorder(), 1))
            self._touch()

    def mark_deleted(self, i: int, flag: bool = True) -> None:
        with self.lock:
            self._check(i)
            self._deleted[i] = bool(flag)
            self._stamps[i] = self._touch()

    def rename(self, i: int, name: str) -> None:
        with self.lock:
            self._check(i)
            self._names[i] = name
            self._stamps[i] = self._touch()

    def set_article(self, i: int, article: str) -> None:
        with self.lock:
            self._check(i)
            self._articles[i] = article
            self._stamps[i] = self._touch()

    def remove(self, i: int) -> None:
        """Delete product i physically (as OData DELETE does); its register records stay."""
        with self.lock:
            self._check(i)
            self._removed.add(i)
            self._touch()

    def change_fraction(self, share: float, seed: int = 0) -> dict[str, list[int]]:
        """Change about `share` of the products: a new price, a new stock level or a new name each."""
        with self.lock:
            rng = random.Random(seed * 7919 + self.seed)
            alive = self.size - len(self._removed)
            count = min(alive, max(0, round(share * alive)))
            picked: list[int] = []
            for i in rng.sample(range(self.size), min(self.size, count + len(self._removed))):
                if len(picked) == count:
                    break
                if i not in self._removed:
                    picked.append(i)
            changed: dict[str, list[int]] = {"price": [], "stock": [], "name": []}
            for i in sorted(picked):
                action = rng.choice(("price", "stock", "name"))
                if action == "price":
                    old = self.current_price(i, 0) or 500.0
                    self.set_price(i, 0, max(5.0, round(old * rng.uniform(0.8, 1.3) / 5) * 5))
                elif action == "stock":
                    self.set_stock(i, rng.randrange(len(vocab.WAREHOUSES)), float(rng.randrange(0, 200)))
                else:
                    self.rename(i, self.generated_name(i, variant=1 + rng.randrange(1000)))
                changed[action].append(i)
            return changed

    # ------------------------------------------------------------------ reading

    def sku_overrides(self) -> dict[int, str]:
        """Products that lose a duplicate Артикул: index → its Code (which becomes the SKU).

        Rule (as config/mappings `sku_rule: [article, code]`): among present products sharing a
        non-empty Артикул, the one not marked for deletion with the lowest Code keeps it (all
        marked: the lowest Code); the others fall back to their Code.
        """
        with self.lock:
            if self._sku_cache and self._sku_cache[0] == self.catalog_version:
                return self._sku_cache[1]
            candidates: set[int] = set()
            for i in range(self.size):
                h = mix(self._salt + i)
                if ((h >> 20) & 1023) < 5 and i >= 5:
                    candidates.update((i, i - (1 + (h >> 60) % 5)))
            for i, art in self._articles.items():
                candidates.add(i)
                candidates.update(self._base_article_neighbours(art))
                candidates.update(self._base_article_neighbours(self._base_article(i)))
            groups: dict[str, list[int]] = {}
            for i in candidates:
                if self.exists(i):
                    art = self.article(i)
                    if art:
                        groups.setdefault(art, []).append(i)
            losers: dict[int, str] = {}
            for holders in groups.values():
                if len(holders) > 1:
                    winner = min(holders, key=lambda x: (self.deleted(x), x))
                    losers.update({x: self.code(x) for x in holders if x != winner})
            self._sku_cache = (self.catalog_version, losers)
            return losers

    def _base_article_neighbours(self, article: str) -> range:
        m = re.fullmatch(r"ART(\d+)", article)
        if not m:
            return range(0)
        k = int(m.group(1)) - 1
        return range(max(0, k), min(self.size, k + 6))

    def sku(self, i: int) -> str:
        return self.sku_overrides().get(i) or self.article(i) or self.code(i)

    def product(self, i: int, configuration: str = "ut11") -> dict[str, Any]:
        """Catalog_Номенклатура row of product i as 1C's OData JSON shows it (minimal metadata)."""
        f = self.facts(i)
        name = self.name(i, f)
        row: dict[str, Any] = {
            "Ref_Key": product_key(i),
            "DataVersion": self.data_version(i, f),
            "DeletionMark": self.deleted(i, f),
            "Parent_Key": self.parent_key(i, f),
            "IsFolder": False,
            "Code": self.code(i),
            "Description": name,
            "Артикул": self.article(i, f),
            "НаименованиеПолное": name,
            "ЕдиницаИзмерения_Key": guid(Kind.UNIT, f.unit + 1),
        }
        if configuration == "unf":
            row["ТипНоменклатуры"] = "Запас"
            row["КатегорияНоменклатуры_Key"] = ZERO_GUID
        else:
            row["ВидНоменклатуры_Key"] = guid(Kind.PRODUCT_KIND, 1 + (f.unit != 0))
            row["ТипНоменклатуры"] = "Товар"
            row["Производитель_Key"] = ZERO_GUID
            row["ИспользованиеХарактеристик"] = (
                "ИндивидуальныеДляНоменклатуры" if i == self.char_product else "НеИспользовать")
        row["Описание"] = ""
        row["ДополнительныеРеквизиты"] = []
        row["Predefined"] = False
        row["PredefinedDataName"] = ""
        return row

    def expected_products(
        self,
        price_type: str = "Розничная",
        warehouses: Iterable[int | str] | None = None,
        at: datetime | None = None,
    ) -> dict[str, dict[str, Any]]:
        """What a correct sync must store, keyed by SKU.

        Each value: ``ref, sku, code, article, name, group_ref (None at root), unit, price (KZT per
        base unit, None when the product has no price of that type), currency (ISO alpha of the
        price type), stock (on hand summed over `warehouses` — names, keys or indexes, None = all —
        and characteristics; 0 when absent from Balance), is_active (not deletion-marked),
        data_version``. Only present items (no folders, nothing physically removed).
        """
        with self.lock:
            moment = to_seconds(at) if at else self.now_seconds()
            t = self.price_type_index(price_type)
            currency = vocab.ISO_ALPHA[vocab.CURRENCIES[vocab.PRICE_TYPES[t][1]][0]]
            chosen = (set(range(len(vocab.WAREHOUSES))) if warehouses is None
                      else {self.warehouse_index(w) for w in warehouses})
            losers = self.sku_overrides()
            out: dict[str, dict[str, Any]] = {}
            for i in range(self.size):
                if i in self._removed:
                    continue
                f = self.facts(i)
                article = self.article(i, f)
                sku = losers.get(i) or article or self.code(i)
                price = self._price_at(i, t, moment, f)
                stock = self._stock_at(i, chosen, moment, f)
                parent = self.parent_key(i, f)
                out[sku] = {
                    "ref": product_key(i),
                    "sku": sku,
                    "code": self.code(i),
                    "article": article,
                    "name": self.name(i, f),
                    "group_ref": None if parent == ZERO_GUID else parent,
                    "unit": vocab.UNITS[f.unit][0],
                    "price": price,
                    "currency": currency,
                    "stock": stock,
                    "is_active": not self.deleted(i, f),
                    "data_version": self.data_version(i, f),
                }
            return out

