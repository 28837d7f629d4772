"""Benchmark of the bot's catalogue reads on a 100k-product SQLite store.

Builds a store through the real migrations (search index triggers included): the fixture
catalogue of the search tests plus generated filler products with realistic Russian/Kazakh
names, then measures
- SKU lookup (`SELECT … FROM products WHERE sku = ?`): p50/p99 over random SKUs;
- `search_products` over the search test set (tests/search_queries.yaml): p50/p95/p99;
- hit@3 of that test set on the big store,
and prints pass/fail against the targets: lookup p99 < 1 ms, search p95 < 15 ms, hit@3 ≥ 95 %.
Exit status 1 if a target is missed.

    .venv/bin/python -m benchmarks.bot_queries [--products 100000] [--lookups 10000] [--repeat 5]
                                               [--names generated|simulator] [--db PATH]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from sqlalchemy import text

from resources.store.database import Database
from resources.store.search import fold, index_version, search_products
from tests.search_fixture import (
    FIXTURE,
    ean13,
    evaluate,
    fixture_rows,
    insert_rows,
    load_queries,
    product_row,
)

LOOKUP_P99_MS = 1.0
SEARCH_P95_MS = 15.0
HIT_AT_3 = 0.95

# --- filler catalogue -----------------------------------------------------------------------
# (noun | Kazakh noun or "", brands, variants, sizes, group); "|" separates choices.
_KINDS: tuple[tuple[str, str, str, str, str], ...] = (
    ("Молоко|Сүт", "Простоквашино|Food Master|Адал|Домик в деревне|Моё|Emil|Lactel|Береке|Сарыарқа",
     "2,5%|3,2%|1,5%|6%|ультрапастеризованное|пастеризованное", "1 л|0,9 л|2 л|0,5 л|930 мл", "Молочная продукция"),
    ("Кефир", "Food Master|Адал|Простоквашино|Моё|Emil", "1%|2,5%|3,2%", "0,5 л|1 л|900 мл", "Молочная продукция"),
    ("Айран", "Food Master|Адал|Моё|Береке", "1%|1,5%|2%", "0,5 л|1 л", "Молочная продукция"),
    ("Сметана|Қаймақ", "Food Master|Адал|Простоквашино|Emil", "15%|20%|25%", "200 г|400 г|300 г", "Молочная продукция"),
    ("Творог|Сүзбе", "Food Master|Простоквашино|Адал|Савушкин", "5%|9%|0,5%|обезжиренный", "200 г|350 г|400 г",
     "Молочная продукция"),
    ("Йогурт", "Danone|Активиа|Food Master|Epica|Эрмигурт", "клубника|персик|натуральный|черника|вишня|злаки",
     "125 г|290 г|270 г|450 г", "Молочная продукция"),
    ("Сыр", "Hochland|Адал|President|Киприно|Брест-Литовск|Умалат", "Российский 50%|Голландский 45%|Моцарелла|"
     "Сулугуни|Гауда|Маасдам|Чеддер|плавленый", "весовой|200 г|150 г|300 г", "Сыры"),
    ("Масло сливочное|Сары май", "Простоквашино|Food Master|President|Адал|Экомилк", "72,5%|82,5%|82%",
     "180 г|200 г|400 г", "Молочная продукция"),
    ("Хлеб|Нан", "Аксай нан|Цесна|Ақ бидай|Евразия хлеб|Дәмді", "белый|ржаной|бородинский|пшеничный|зерновой",
     "400 г|500 г|300 г|700 г", "Хлеб и выпечка"),
    ("Батон", "Аксай нан|Цесна|Евразия хлеб", "нарезной|с отрубями|молочный", "350 г|400 г", "Хлеб и выпечка"),
    ("Лепёшка|Бауырсақ", "Дәмді|Тандыр", "тандырная|домашняя|с кунжутом", "250 г|300 г|500 г", "Хлеб и выпечка"),
    ("Сахар|Қант", "Тараз|Шымкент|Каинды|Меркі", "песок|рафинад|тростниковый", "1 кг|5 кг|10 кг|50 кг|500 г",
     "Бакалея"),
    ("Мука|Ұн", "Цесна|Казахстанская|Ақсу|Голд|Дәнекер", "пшеничная высший сорт|первый сорт|ржаная|блинная",
     "1 кг|2 кг|5 кг|10 кг|25 кг", "Бакалея"),
    ("Рис|Күріш", "Мистраль|Кызылординский|Ақмаржан|Увелка|Националь", "длиннозёрный|круглозёрный|басмати|"
     "пропаренный|жасмин", "500 г|900 г|1 кг|5 кг", "Бакалея"),
    ("Крупа", "Мистраль|Увелка|Агро-Альянс|Националь", "гречневая|перловая|пшённая|манная|ячневая|кукурузная",
     "800 г|900 г|1 кг|5 пак", "Бакалея"),
    ("Макароны", "Цесна|Barilla|Макфа|Шебекинские|Corona", "рожки|спагетти|перья|ракушки|спирали|вермишель",
     "400 г|450 г|500 г|1 кг", "Бакалея"),
    ("Масло подсолнечное", "Шедевр|Золотая семечка|Олейна|Maxi|Ақ алтын", "рафинированное|нерафинированное",
     "1 л|3 л|5 л|0,85 л", "Бакалея"),
    ("Чай|Шай", "Пиала|Dala|Ahmad Tea|Lipton|Greenfield|Tess|Майский|Beta", "чёрный|зелёный|гранулированный|"
     "пакетированный|с бергамотом|кенийский", "100 г|250 г|500 г|25 пак|100 пак", "Чай и кофе"),
    ("Кофе", "Nescafé|Jacobs|Lavazza|Paulig|Tchibo|Carte Noire|Черная карта", "растворимый|молотый|в зёрнах|"
     "сублимированный", "95 г|150 г|190 г|250 г|1 кг", "Чай и кофе"),
    ("Шоколад", "Рахат|Alpen Gold|Milka|Ritter Sport|Kinder|Казахстанский|Баян Сулу", "молочный|тёмный|горький 70%|"
     "с фундуком|с изюмом|белый|пористый", "85 г|90 г|100 г|200 г", "Кондитерские изделия"),
    ("Конфеты", "Рахат|Баян Сулу|Коркунов|Красный Октябрь|Roshen", "ассорти|шоколадные|карамель|весовые|"
     "в коробке", "200 г|300 г|1 кг", "Кондитерские изделия"),
    ("Печенье", "Юбилейное|Баян Сулу|Рахат|Oreo|Tuc|Любятово", "овсяное|сахарное|затяжное|с шоколадом|"
     "традиционное", "112 г|200 г|300 г|400 г", "Кондитерские изделия"),
    ("Вода минеральная|Су", "Тассай|Сарыагаш|Borjomi|Bonaqua|Асем-Ай|Шифалы|Караой", "газированная|"
     "негазированная|слабогазированная", "0,5 л|1 л|1,5 л|5 л|19 л", "Напитки"),
    ("Напиток", "Coca-Cola|Pepsi|Fanta|Sprite|7UP|Mirinda|Piala", "газированный|апельсин|лимон|кола|zero",
     "0,33 л|0,5 л|1 л|1,5 л|2 л", "Напитки"),
    ("Сок", "Gracio|Да-Да|Piko|J7|Rich|Добрый", "яблочный|апельсиновый|томатный|вишнёвый|мультифрукт|"
     "персиковый", "0,2 л|1 л|2 л", "Напитки"),
    ("Колбаса|Шұжық", "Жана-Жол|Alel Agro|Ет-Сүт|Евразия|Бекон", "варёная Докторская|сырокопчёная|"
     "полукопчёная|Сервелат|Салями|Молочная|конина", "300 г|400 г|500 г|весовая", "Мясо и колбасы"),
    ("Сосиски|Сардельки", "Alel Agro|Жана-Жол|Рамфуд|Бекон", "молочные|говяжьи|куриные|сливочные",
     "300 г|450 г|1 кг", "Мясо и колбасы"),
    ("Говядина|Сиыр еті", "Фермерская|Ет-Сүт|Қазақ ет", "вырезка|лопатка|грудинка|фарш|рёбра|на кости",
     "весовая|1 кг|500 г", "Мясо и колбасы"),
    ("Курица|Тауық еті", "Алель|Ак Кус|Престиж|Макинск", "тушка|филе|бедро|окорочка|крылья|голень",
     "весовая|1 кг|900 г", "Мясо и колбасы"),
    ("Пельмени|Манты|Вареники", "Сибирские|Алель|Цезарь|Домашние|Мастер", "с говядиной|с курицей|с картофелем|"
     "с творогом|классические", "500 г|800 г|900 г|1 кг", "Замороженные продукты"),
    ("Мороженое", "Шин-Лайн|Food Master|Айс-Фили|Баскин", "пломбир|эскимо|ванильное|шоколадное|крем-брюле",
     "70 г|80 г|450 г|1 кг", "Замороженные продукты"),
    ("Картофель|Картоп", "Фермер|Отечественный|Импорт", "молодой|мытый|красный|белый", "весовой|2 кг|5 кг",
     "Овощи и фрукты"),
    ("Яблоки|Алма", "Апорт|Голден|Семеренко|Гала|Фуджи", "отборные|весовые|фасованные", "весовые|1 кг|2 кг",
     "Овощи и фрукты"),
    ("Помидоры|Қызанақ", "тепличные|сливовидные|черри|розовые", "весовые|отборные", "весовые|250 г|500 г",
     "Овощи и фрукты"),
    ("Огурцы|Қияр", "тепличные|грунтовые|короткоплодные", "весовые|отборные", "весовые|500 г|1 кг",
     "Овощи и фрукты"),
    ("Стиральный порошок", "Ariel|Tide|Persil|Миф|Losk|Bimax", "автомат|ручная стирка|color|для белого",
     "400 г|1,5 кг|3 кг|4,5 кг|9 кг", "Бытовая химия"),
    ("Средство для мытья посуды", "Fairy|AOS|Sorti|Pril|Капля", "лимон|яблоко|алоэ|бальзам", "450 мл|500 мл|900 мл|1 л",
     "Бытовая химия"),
    ("Шампунь", "Head & Shoulders|Pantene|Clear|Elseve|Шаума|Чистая линия", "для всех типов волос|против перхоти|"
     "восстанавливающий|для окрашенных волос", "250 мл|400 мл|600 мл", "Гигиена"),
    ("Зубная паста", "Colgate|Blend-a-med|Splat|Lacalut|Новый жемчуг", "отбеливающая|для чувствительных зубов|"
     "травы|мята", "50 мл|75 мл|100 мл", "Гигиена"),
    ("Туалетная бумага", "Zewa|Papia|Kleenex|Мягкий знак|Lotus", "2-слойная|3-слойная|белая", "4 рулона|8 рулонов|"
     "12 рулонов", "Гигиена"),
    ("Подгузники", "Pampers|Huggies|Libero|Merries|Bambolina", "1|2|3|4|5|6", "22 шт|52 шт|64 шт|90 шт",
     "Детские товары"),
    ("Корм для кошек|Корм для собак", "Whiskas|Kitekat|Purina|Pedigree|Chappi|Royal Canin|Felix", "курица|говядина|"
     "рыба|ягнёнок|индейка", "75 г|85 г|400 г|2,2 кг|15 кг", "Товары для животных"),
    ("Смартфон|Телефон", "Samsung Galaxy|Xiaomi Redmi|Apple iPhone|Honor|Realme|Tecno", "A15|Note 13|15|X8|C55|"
     "Spark 20", "128 ГБ|256 ГБ|64 ГБ", "Электроника"),
    ("Наушники|Құлаққап", "JBL|Sony|Xiaomi|Samsung|Apple", "беспроводные|Tune 520BT|WH-CH520|Buds|AirPods",
     "чёрные|белые|синие", "Электроника"),
    ("Чайник электрический|Шәйнек", "Philips|Tefal|Bosch|Scarlett|Vitek|Polaris", "стеклянный|металлический|"
     "1,7 л|2200 Вт", "белый|чёрный|серебристый", "Бытовая техника"),
    ("Утюг|Үтік", "Philips|Tefal|Braun|Bosch|Scarlett", "паровой|2400 Вт|с керамической подошвой", "синий|белый|"
     "фиолетовый", "Бытовая техника"),
    ("Пылесос|Шаңсорғыш", "Philips|Samsung|LG|Bosch|Dyson|Xiaomi", "с контейнером|с мешком|беспроводной|"
     "робот", "1800 Вт|2000 Вт|чёрный", "Бытовая техника"),
    ("Сковорода|Таба", "Kukmara|Tefal|Нева металл|Биол|Scovo", "антипригарная|чугунная|гриль|блинная",
     "20 см|24 см|26 см|28 см", "Посуда"),
    ("Кастрюля|Қазан", "Kukmara|Tefal|Appetite|Vitesse|Казан-Базар", "эмалированная|нержавеющая|с крышкой|"
     "алюминиевая", "2 л|3 л|5 л|8 л", "Посуда"),
    ("Полотенце|Сүлгі", "Арт Дизайн|Cleanelly|Текс-Дизайн|Самал", "вафельное|махровое|кухонное|банное",
     "35×75 см|50×90 см|70×140 см", "Текстиль"),
)
_LINES = ("", "", "", "", "Эконом", "Премиум", "Классический", "Домашний", "Фермерский", "Органик", "Новинка",
          "ГОСТ", "Оригинал", "Люкс", "Selection", "Gold", "Традиционный", "Отборный")
_SYLLABLES_RU = ("Ал", "тын", "Ақ", "бек", "Нур", "сай", "Да", "ла", "Бе", "ре", "ке", "Жер", "Таң", "Агро",
                 "Эко", "Вит", "Рос", "Сиб", "Кам", "лан", "Мир", "Дар", "Степ", "Ка", "рат", "Ас", "тана")
_SYLLABLES_LAT = ("Pro", "Max", "Eco", "Vita", "Fresh", "Nord", "Sun", "Star", "Green", "Gold", "Best", "Royal",
                  "Prime", "Lux", "Nova", "Terra")


def _choices(spec: str) -> list[str]:
    return [s.strip() for s in spec.split("|") if s.strip()]


def _synthetic_brands(rng: random.Random, count: int) -> list[str]:
    """Made-up brand names of two or three syllables: a long tail of rare words, as in real bases."""
    brands: set[str] = set()
    for _ in range(count * 20):
        if len(brands) >= count:
            break
        pool = _SYLLABLES_RU if rng.random() < 0.6 else _SYLLABLES_LAT
        parts = [rng.choice(pool) for _ in range(rng.choice((2, 2, 3)))]
        brand = "".join(parts).lower()
        brands.add(brand[0].upper() + brand[1:])
    return sorted(brands)


def filler_names(count: int, seed: int = 7) -> Iterator[tuple[str, str]]:
    """(name, group) of `count` generated products; fixture names are never repeated."""
    rng = random.Random(seed)
    extra_brands = _synthetic_brands(rng, 2500)
    fixture_names = {fold(p.name) for p in FIXTURE}
    kinds = [(_choices(n), _choices(b), _choices(v), _choices(s), g) for n, b, v, s, g in _KINDS]
    made = 0
    while made < count:
        nouns, brands, variants, sizes, group = rng.choice(kinds)
        parts = [nouns[0] if len(nouns) == 1 or rng.random() < 0.7 else rng.choice(nouns[1:])]
        if rng.random() < 0.85:
            parts.append(rng.choice(brands) if rng.random() < 0.6 else rng.choice(extra_brands))
        line = rng.choice(_LINES)
        if line:
            parts.append(line)
        parts.extend(rng.sample(variants, k=min(len(variants), rng.choice((1, 1, 1, 2)))))
        parts.append(rng.choice(sizes))
        name = " ".join(parts)
        if fold(name) in fixture_names:
            continue
        made += 1
        yield name, group


def simulator_names(count: int, seed: int = 1) -> Iterator[tuple[str, str]]:
    """(name, group) from the 1C simulator's catalogue (`simulators.onec.dataset`), which repeats
    names heavily (few thousand distinct ones per 100k), as real bases with many near-duplicates do."""
    from simulators.onec.dataset import Dataset

    fixture_names = {fold(p.name) for p in FIXTURE}
    ds = Dataset(size=count * 2, seed=seed)
    made = 0
    for i in range(count * 2):
        if made == count:
            return
        facts = ds.facts(i)
        name = ds.name(i, facts)
        if not name or fold(name) in fixture_names:
            continue
        group = ds.folders[facts.parent][0] if facts.parent >= 0 else ""
        made += 1
        yield name, group


def build_store(
    path: Path, products: int, seed: int = 7, names: str = "generated"
) -> tuple[Database, list[str], float]:
    """A migrated store at `path` with the fixture plus filler up to `products` rows; (db, skus, load s)."""
    db = Database(f"sqlite:///{path}")
    db.migrate()
    rng = random.Random(seed)
    skus = [p.sku for p in FIXTURE]
    started = time.perf_counter()
    with db.write() as conn:
        insert_rows(conn, fixture_rows())
        batch = []
        filler = simulator_names if names == "simulator" else filler_names
        for i, (name, group) in enumerate(filler(max(0, products - len(FIXTURE)), seed)):
            sku = f"F{i + 1:06d}"
            skus.append(sku)
            batch.append(
                product_row(
                    sku, name, group=group,
                    stock=0.0 if rng.random() < 0.25 else float(rng.randint(1, 200)),
                    is_active=rng.random() >= 0.05,
                    barcode=ean13(f"200{i + 1:09d}"),
                    code=f"00-1{i + 1:07d}",
                    article=f"A{i + 1:06d}" if rng.random() < 0.5 else None,
                    price=float(rng.randint(100, 50000)),
                )
            )
            if len(batch) == 5000:
                insert_rows(conn, batch)
                batch = []
        insert_rows(conn, batch)
    return db, skus, time.perf_counter() - started


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--products", type=int, default=100_000)
    ap.add_argument("--lookups", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5, help="passes over the query test set")
    ap.add_argument("--db", type=Path, help="keep the store at this path (default: a temp dir)")
    ap.add_argument("--names", choices=("generated", "simulator"), default="generated",
                    help="filler names: this module's generator, or the 1C simulator's catalogue")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "bench.db"
        if path.exists():
            path.unlink()
        db, skus, load_s = build_store(path, args.products, names=args.names)
        with db.read() as conn:
            total = conn.execute(text("SELECT count(*) FROM products")).scalar()
            indexed = conn.execute(text("SELECT count(*) FROM product_search")).scalar()
            vocab = conn.execute(text("SELECT count(*) FROM products_fts_vocab")).scalar()
            version = index_version(conn)
        print(f"store ({args.names} filler names): {total} products ({indexed} active, indexed), {vocab} distinct words; "
              f"load with index triggers {load_s:.1f} s")

        # A sync's bulk `synced_at` touch must not reindex.
        started = time.perf_counter()
        with db.write() as conn:
            conn.execute(text("UPDATE products SET synced_at = :now"), {"now": "2026-02-01 00:00:00"})
        touch_s = time.perf_counter() - started
        with db.read() as conn:
            unchanged = index_version(conn) == version
        print(f"bulk synced_at update of {total} rows: {touch_s * 1000:.0f} ms, index untouched: {unchanged}")

        # SKU lookup: one statement on an open read connection, as the bot does per request.
        rng = random.Random(11)
        sample = [rng.choice(skus) for _ in range(args.lookups)]
        stmt = text("SELECT sku, name, price, currency, stock, is_active FROM products WHERE sku = :sku")
        lookups: list[float] = []
        with db.reader.connect() as conn:
            for sku in sample[:200]:
                conn.execute(stmt, {"sku": sku}).first()
            for sku in sample:
                t0 = time.perf_counter()
                conn.execute(stmt, {"sku": sku}).first()
                lookups.append(time.perf_counter() - t0)
        in_txn: list[float] = []
        for sku in sample[: min(2000, len(sample))]:
            t0 = time.perf_counter()
            with db.read() as conn:
                conn.execute(stmt, {"sku": sku}).first()
            in_txn.append(time.perf_counter() - t0)
        print(f"sku lookup ×{len(lookups)}: p50 {_ms(_pct(lookups, 50))}, p99 {_ms(_pct(lookups, 99))}; "
              f"with its own read transaction ×{len(in_txn)}: p50 {_ms(_pct(in_txn, 50))}, "
              f"p99 {_ms(_pct(in_txn, 99))}")

        # Search over the test set.
        cases = load_queries()
        t0 = time.perf_counter()
        search_products(db, "молоко", 10)
        print(f"first search (loads the vocabulary): {_ms(time.perf_counter() - t0)}")
        timings: list[float] = []
        per_query: dict[str, float] = {}
        for _ in range(args.repeat):
            for case in cases:
                t0 = time.perf_counter()
                search_products(db, case.q, 10)
                elapsed = time.perf_counter() - t0
                timings.append(elapsed)
                per_query[case.q] = max(per_query.get(case.q, 0.0), elapsed)
        print(f"search ×{len(timings)} ({len(cases)} queries × {args.repeat}): p50 {_ms(_pct(timings, 50))}, "
              f"p95 {_ms(_pct(timings, 95))}, p99 {_ms(_pct(timings, 99))}, max {_ms(max(timings))}, "
              f"mean {_ms(statistics.fmean(timings))}")
        slowest = sorted(per_query.items(), key=lambda kv: -kv[1])[:5]
        print("slowest: " + ", ".join(f"{q!r} {_ms(s)}" for q, s in slowest))

        ev = evaluate(db, cases)
        print(f"hit@3: {ev.hits}/{ev.total} = {ev.hit_rate:.1%}")
        for case, reason, top in ev.failures:
            print(f"  miss {case.q!r}: {reason}; top: {', '.join(top[:3])}")

        checks = [
            ("sku lookup p99 < 1 ms", _pct(lookups, 99) * 1000 < LOOKUP_P99_MS),
            ("search p95 < 15 ms", _pct(timings, 95) * 1000 < SEARCH_P95_MS),
            ("hit@3 ≥ 95 %", ev.hit_rate >= HIT_AT_3),
        ]
        for label, ok in checks:
            print(f"{'PASS' if ok else 'FAIL'}  {label}")
        db.dispose()
        return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
