"""A deterministic catalogue of ~300 Kazakhstan retail products for product-search tests.

Shared by `tests/unit/test_search*.py` and `benchmarks/bot_queries.py`, together with the query
test set `tests/search_queries.yaml` and the hit@3 evaluation, so the unit tests and the benchmark
score search the same way. Products go in through the real migrations and the same
`search_text()` the sync uses.

Line format: ``SKU | name | stock | flags`` under a ``# group`` header; flags: ``off`` = inactive,
``art=…`` = article. Barcodes and 1C codes are derived from the SKU (EAN-13 with a 487 prefix).
"""

from __future__ import annotations

import hashlib
import uuid
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection, text

from resources.store.database import Database
from resources.store.search import fold, search_products, search_text

QUERIES_FILE = Path(__file__).resolve().parent / "search_queries.yaml"

CATALOGUE = """
# Молочная продукция
MLK-001 | Молоко Food Master 2,5% 1 л | 40
MLK-002 | Молоко Food Master 3,2% 1 л | 25
MLK-003 | Молоко Простоквашино 3,2% 930 мл | 0
MLK-004 | Молоко Адал 2,5% 1 л | 12
MLK-005 | Молоко ультрапастеризованное Lactel 3,2% 1 л | 8
MLK-006 | Молоко топлёное Моё 4% 900 мл | 5
MLK-007 | Сүт «Қазақстан» 2,5% 1 л | 10
MLK-008 | Молоко безлактозное Food Master 1,5% 1 л | 0
MLK-009 | Молоко сгущённое Рогачёв 8,5% 380 г | 30
MLK-010 | Молоко козье Айна 3,5% 0,5 л | 3
MLK-011 | Молоко Food Master 6% 1 л | 0
MLK-012 | Молоко Простоквашино 2,5% 930 мл | 15
MLK-013 | Молоко Вимм-Билль-Данн 3,2% 1 л | 20 | off
MLK-014 | Молоко Адал 3,2% 2 л | 6
KEF-001 | Кефир Food Master 2,5% 1 л | 18
KEF-002 | Кефир Простоквашино 3,2% 930 мл | 7
KEF-003 | Кефир Адал 1% 900 мл | 0
KEF-004 | Кефир Био Баланс 1% 930 мл | 11 | off
AYR-001 | Айран Food Master 1,5% 1 л | 14
AYR-002 | Айран Адал 2% 500 мл | 9
RYA-001 | Ряженка Адал 4% 500 мл | 0
RYA-002 | Ряженка Food Master 4% 500 мл | 9
KYM-001 | Қымыз «Саумал» 0,5 л | 6
SHB-001 | Шұбат верблюжий 0,5 л | 4
KRT-001 | Құрт солёный 200 г | 15
IRM-001 | Ірімшік домашний 250 г | 5
SZB-001 | Сүзбе домашняя 250 г | 3
KMK-001 | Қаймақ 20% 400 г | 8
SMT-001 | Сметана Food Master 20% 400 г | 22
SMT-002 | Сметана Простоквашино 15% 300 г | 10
TVR-001 | Творог Food Master 5% 400 г | 16
TVR-002 | Творог Простоквашино 9% 355 г | 0
TVR-003 | Сырок творожный глазированный Б.Ю. Александров 26% 50 г | 40
YOG-001 | Йогурт Danone клубника 2,5% 270 г | 12
YOG-002 | Йогурт питьевой Food Master персик 1,5% 450 г | 9
YOG-003 | Йогурт греческий Epica натуральный 4,8% 130 г | 4
SYR-001 | Сыр Российский 50% весовой | 7 | art=SR-50
SYR-002 | Сыр Голландский Киприно 45% 200 г | 6
SYR-003 | Сыр плавленый Hochland сливочный 200 г | 11
SYR-004 | Сыр моцарелла Galbani 125 г | 0
SYR-005 | Сыр сулугуни Умалат 45% 300 г | 5
SYR-006 | Сыр Ламбер 50% 1 кг | 9 | off
MSL-001 | Масло сливочное Food Master 72,5% 180 г | 19
MSL-002 | Масло сливочное Простоквашино 82% 180 г | 0
EGG-001 | Яйцо куриное С1 10 шт | 50
EGG-002 | Яйцо куриное С0 30 шт | 12
EGG-003 | Жұмыртқа бөдене (яйцо перепелиное) 20 шт | 6
MLK-015 | Молоко Lactel 2,5% 1 л | 14
MLK-016 | Молоко пастеризованное Адал 1,5% 1 л | 0
KEF-005 | Кефир Food Master 1% 500 мл | 6
YOG-004 | Йогурт Epica малина 6% 130 г | 5
YOG-005 | Йогурт Активиа натуральный 3% 150 г | 7
SYR-007 | Сыр Пармезан 40% 180 г | 3
SYR-008 | Сыр брынза 300 г | 5
MSL-003 | Спред растительно-сливочный Доярушка 200 г | 6
TVR-004 | Творожная масса с изюмом 200 г | 4
# Хлеб и выпечка
BRD-001 | Хлеб Бородинский 400 г | 14
BRD-002 | Хлеб белый формовой 500 г | 20
BRD-003 | Нан «Тандыр» 350 г | 9
BRD-004 | Батон нарезной 400 г | 17
BRD-005 | Лепёшка тандырная 250 г | 8
BRD-006 | Бауырсақ домашний 500 г | 5
BRD-007 | Лаваш армянский тонкий 200 г | 10
BRD-008 | Хлебцы Dr. Körner злаковый коктейль 100 г | 6
BRD-009 | Булочка с маком 80 г | 0
BRD-010 | Круассан шоколадный 60 г | 12
BRD-011 | Хлеб ржаной Дарницкий 700 г | 9
BRD-012 | Сушки с маком 300 г | 7
BRD-013 | Баранки ванильные 400 г | 0
# Бакалея
SGR-001 | Сахар-песок 1 кг | 60
SGR-002 | Сахар-песок 5 кг | 15
SGR-003 | Сахар-песок 10 кг | 0
SGR-004 | Сахар рафинад кусковой 500 г | 13
SGR-005 | Қант «Тараз» 1 кг | 8
SLT-001 | Соль поваренная йодированная 1 кг | 30
SLT-002 | Тұз «Аралтұз» 1 кг | 12
FLR-001 | Мука пшеничная Цесна высший сорт 2 кг | 25 | art=CS-2000
FLR-002 | Мука пшеничная Цесна первый сорт 5 кг | 10
FLR-003 | Ұн «Ақсу» высший сорт 2 кг | 7
FLR-004 | Мука пшеничная Цесна высший сорт 10 кг | 0
GRC-001 | Крупа гречневая ядрица 900 г | 20
GRC-002 | Рис длиннозёрный Мистраль 900 г | 11
GRC-003 | Рис круглозёрный Кызылординский 1 кг | 16
GRC-004 | Күріш «Ақмаржан» 1 кг | 5
GRC-005 | Пшено шлифованное 800 г | 9
GRC-006 | Овсяные хлопья Геркулес 500 г | 13
GRC-007 | Крупа манная 700 г | 7
GRC-008 | Горох колотый 800 г | 6
GRC-009 | Чечевица красная 500 г | 4
GRC-010 | Крупа перловая 800 г | 0
GRC-011 | Булгур 500 г | 5
PST-001 | Макароны Цесна рожки 400 г | 18
PST-002 | Макароны Barilla спагетти №5 450 г | 9
PST-003 | Вермишель Макфа 450 г | 12
PST-004 | Лапша быстрого приготовления Доширак говядина 90 г | 40
PST-005 | Лапша Роллтон курица 60 г | 35
PST-006 | Лапша домашняя для бешбармака 500 г | 8
SPC-001 | Перец чёрный молотый Kotanyi 20 г | 14
SPC-002 | Лавровый лист 10 г | 10
SPC-003 | Кетчуп Heinz томатный 320 г | 12
SPC-004 | Майонез Махеевъ провансаль 67% 380 г | 16
SPC-005 | Майонез Маслава провансаль 72% 400 г | 0
SPC-006 | Уксус столовый 9% 500 мл | 6
SPC-007 | Сода пищевая 500 г | 9
SPC-008 | Дрожжи сухие Саф-Момент 11 г | 20
SPC-009 | Масло подсолнечное Шедевр рафинированное 1 л | 24
SPC-010 | Масло подсолнечное Золотая семечка нерафинированное 1 л | 0
SPC-011 | Масло оливковое Borges Extra Virgin 500 мл | 5
SPC-012 | Масло подсолнечное Шедевр рафинированное 5 л | 6
SAU-001 | Соус соевый Kikkoman 150 мл | 7
SAU-002 | Горчица русская 140 г | 8
SAU-003 | Аджика острая 200 г | 4
SAU-004 | Паста томатная Помидорка 270 г | 10
GRC-012 | Крупа кукурузная 700 г | 5
GRC-013 | Рис бурый нешлифованный 500 г | 3
PST-007 | Спагетти Макфа 500 г | 11
SPC-013 | Корица молотая 15 г | 6
SPC-014 | Приправа для плова 30 г | 14
SPC-015 | Зира целая 50 г | 9
SPC-016 | Сахарная пудра 200 г | 5
SPC-017 | Крахмал картофельный 400 г | 4
SPC-018 | Разрыхлитель теста 10 г | 15
SPC-019 | Ванильный сахар 8 г | 20
# Чай и кофе
TEA-001 | Чай чёрный Пиала гранулированный 250 г | 30
TEA-002 | Чай чёрный Пиала пакетированный 100 пак | 22
TEA-003 | Чай зелёный Ahmad Tea 100 г | 7
TEA-004 | Чай чёрный Dala кенийский 250 г | 0
TEA-005 | Шай «Қазақ шайы» 250 г | 9
TEA-006 | Чай Lipton Yellow Label 100 пак | 11
TEA-007 | Чай чёрный Assam Пиала 500 г | 5
COF-001 | Кофе растворимый Nescafé Gold 190 г | 14
COF-002 | Кофе растворимый Jacobs Monarch 150 г | 10
COF-003 | Кофе молотый Lavazza Qualità Rossa 250 г | 6
COF-004 | Кофе в зёрнах Paulig Presidentti 1 кг | 3
COF-005 | Кофейный напиток 3в1 MacCoffee 20 г | 50
COF-006 | Какао-порошок Nesquik 500 г | 8
TEA-008 | Чай Greenfield Golden Ceylon 100 пак | 6
TEA-009 | Чай травяной ромашка 20 пак | 4
COF-007 | Кофе растворимый Nescafé Classic 95 г | 0
COF-008 | Кофе молотый Jacobs Barista 230 г | 5
# Кондитерские изделия
CHC-001 | Шоколад молочный Рахат 100 г | 20
CHC-002 | Шоколад тёмный Казахстанский Рахат 100 г | 15
CHC-003 | Шоколад Alpen Gold молочный с фундуком 85 г | 12
CHC-004 | Шоколад Milka молочный 90 г | 9
CHC-005 | Шоколадный батончик Snickers 50 г | 44
CHC-006 | Конфеты Рахат «Маска» весовые | 8
CHC-007 | Конфеты Баян Сулу ассорти 300 г | 10
CHC-008 | Печенье Юбилейное традиционное 112 г | 17
CHC-009 | Печенье овсяное Баян Сулу 400 г | 6
CHC-010 | Вафли Артек 120 г | 9
CHC-011 | Зефир Шармэль ванильный 255 г | 5
CHC-012 | Мармелад жевательный Haribo 140 г | 7
CHC-013 | Пряники медовые 300 г | 0
CHC-014 | Торт «Наполеон» 1 кг | 3
CHC-015 | Халва подсолнечная 250 г | 6
CHC-016 | Мёд натуральный горный 500 г | 4
CHC-017 | Жент 250 г | 3
CHC-018 | Шоколад Казахстанский 100 г | 10 | off
CHC-019 | Шоколад Kinder Chocolate 100 г | 13
CHC-020 | Конфеты Raffaello 150 г | 4
CHC-021 | Батончик Mars 50 г | 21
CHC-022 | Батончик Twix 55 г | 18
CHC-023 | Печенье Oreo 95 г | 9
CHC-024 | Шоколад Алёнка 90 г | 7
CHC-025 | Конфеты Коровка 250 г | 6
CHC-026 | Жевательная резинка Orbit мята 13,6 г | 50
# Напитки
DRK-001 | Вода минеральная Тассай негазированная 1,5 л | 48
DRK-002 | Вода минеральная Сарыагаш газированная 1 л | 20
DRK-003 | Вода минеральная Borjomi 0,5 л | 6
DRK-004 | Напиток Coca-Cola 1,5 л | 30
DRK-005 | Напиток Coca-Cola Zero 0,5 л | 12
DRK-006 | Напиток Pepsi 1 л | 15
DRK-007 | Напиток Fanta апельсин 1 л | 0
DRK-008 | Сок Gracio яблочный 1 л | 9
DRK-009 | Сок Gracio апельсиновый 1 л | 8
DRK-010 | Нектар Да-Да вишнёвый 1 л | 5
DRK-011 | Компот из сухофруктов 1 л | 4
DRK-012 | Квас Шымкентский 1,5 л | 10
DRK-013 | Энергетик Red Bull 250 мл | 24
DRK-014 | Лимонад Буратино 1,5 л | 7
DRK-015 | Вода Тассай негазированная 5 л | 12
DRK-016 | Напиток Coca-Cola 1 л | 0
DRK-017 | Вода питьевая Асем-Ай 1,5 л | 15
DRK-018 | Сок Да-Да томатный 1 л | 4
DRK-019 | Вода Bonaqua негазированная 1 л | 0
DRK-020 | Напиток Sprite 1,5 л | 13
DRK-021 | Чай холодный Fuse Tea лимон 1 л | 7
DRK-022 | Напиток 7UP 1 л | 5
# Мясо и колбасы
MET-001 | Колбаса варёная Докторская 500 г | 12
MET-002 | Колбаса сырокопчёная Салями Финская 300 г | 7
MET-003 | Қазы конина 1 кг | 4
MET-004 | Шұжық конина 500 г | 3
MET-005 | Сосиски молочные 450 г | 14
MET-006 | Сардельки говяжьи 500 г | 8
MET-007 | Говядина вырезка охлаждённая 1 кг | 5
MET-008 | Баранина лопатка 1 кг | 4
MET-009 | Конина жая 1 кг | 2
MET-010 | Фарш говяжий 500 г | 9
MET-011 | Цыплёнок-бройлер тушка охлаждённая 1 кг | 11
MET-012 | Окорочка куриные замороженные 1 кг | 16
MET-013 | Филе куриное грудки 1 кг | 10
MET-014 | Ет сиыр (говядина) для бешбармака 1 кг | 6
MET-015 | Колбаса варёная Молочная 400 г | 0
MET-016 | Колбаса копчёная Сервелат 350 г | 9
MET-017 | Ветчина куриная 400 г | 6
MET-018 | Грудинка копчёная 300 г | 3
MET-019 | Печень говяжья 1 кг | 4
MET-020 | Фарш куриный 500 г | 7
# Рыба и морепродукты
FSH-001 | Скумбрия холодного копчения | 3
FSH-002 | Сазан свежемороженый | 2
FSH-003 | Крабовые палочки Vici 200 г | 10
FSH-004 | Форель слабосолёная 200 г | 0
# Замороженные продукты
FRZ-001 | Пельмени Сибирские 800 г | 14
FRZ-002 | Манты с говядиной замороженные 1 кг | 6
FRZ-003 | Вареники с картофелем 900 г | 5
FRZ-004 | Мороженое пломбир Шин-Лайн 80 г | 30
FRZ-005 | Мороженое эскимо Food Master 70 г | 0
FRZ-006 | Овощи замороженные мексиканская смесь 400 г | 8
FRZ-007 | Мороженое Шин-Лайн ванильное 450 г | 6
FRZ-008 | Котлеты куриные замороженные 500 г | 6
FRZ-009 | Чебуреки с мясом 600 г | 5
FRZ-010 | Пицца Ristorante Маргарита 295 г | 4
# Консервы
CNS-001 | Тушёнка говяжья 325 г | 20
CNS-002 | Сайра в масле 250 г | 11
CNS-003 | Шпроты в масле 160 г | 9
CNS-004 | Горошек зелёный Bonduelle 400 г | 12
CNS-005 | Кукуруза сладкая Bonduelle 340 г | 10
CNS-006 | Фасоль красная 400 г | 7
CNS-007 | Огурцы маринованные 680 г | 5
CNS-008 | Сельдь слабосолёная филе 300 г | 0
CNS-009 | Икра кабачковая 480 г | 6
CNS-010 | Тунец консервированный 185 г | 4
# Овощи и фрукты
VEG-001 | Картофель | 100
VEG-002 | Лук репчатый | 80
VEG-003 | Морковь | 70
VEG-004 | Капуста белокочанная | 40
VEG-005 | Помидоры | 30
VEG-006 | Огурцы | 25
VEG-007 | Яблоки Апорт | 35
VEG-008 | Бананы | 40
VEG-009 | Апельсины | 20
VEG-010 | Лимоны | 15
VEG-011 | Алма «Голден» | 12
VEG-012 | Виноград кишмиш | 0
VEG-013 | Чеснок 100 г | 20
VEG-014 | Перец болгарский | 10
VEG-015 | Зелень укроп 50 г | 8
VEG-016 | Курага 500 г | 6
VEG-017 | Изюм 500 г | 7
VEG-018 | Мандарины | 18
VEG-019 | Груши | 9
VEG-020 | Арбуз | 0
VEG-021 | Кабачки | 12
VEG-022 | Баклажаны | 9
VEG-023 | Свёкла | 30
VEG-024 | Авокадо | 6
VEG-025 | Киви | 8
# Снеки
SNK-001 | Чипсы Lay's сметана и лук 150 г | 20
SNK-002 | Чипсы Pringles оригинальные 165 г | 8
SNK-003 | Сухарики Кириешки ржаные бекон 40 г | 30
SNK-004 | Семечки жареные 200 г | 15
SNK-005 | Арахис солёный 100 г | 12
SNK-006 | Фисташки жареные солёные 150 г | 6
SNK-007 | Грецкий орех очищенный 200 г | 5
SNK-008 | Миндаль 200 г | 4
SNK-009 | Попкорн солёный 100 г | 9
SNK-010 | Кукурузные палочки 150 г | 11
CRL-001 | Хлопья кукурузные Nestlé Corn Flakes 500 г | 6
CRL-002 | Мюсли фруктовые 400 г | 5
CRL-003 | Готовый завтрак Nesquik шарики 375 г | 7
# Детское питание
BBY-001 | Пюре детское Фрутоняня яблоко 90 г | 24
BBY-002 | Каша детская Nestlé гречневая 200 г | 8
BBY-003 | Смесь молочная Nutrilon 1 350 г | 5
BBY-004 | Сок детский Агуша яблоко 200 мл | 16
# Бытовая химия
HHC-001 | Стиральный порошок Ariel автомат 3 кг | 9
HHC-002 | Стиральный порошок Tide автомат 4,5 кг | 0
HHC-003 | Средство для мытья посуды Fairy лимон 500 мл | 18
HHC-004 | Средство чистящее Domestos 1 л | 7
HHC-005 | Отбеливатель Белизна 1 л | 10
HHC-006 | Губки для посуды 5 шт | 25
HHC-007 | Пакеты для мусора 60 л 20 шт | 14
HHC-008 | Кондиционер для белья Lenor 1 л | 5
HHC-009 | Освежитель воздуха Glade лаванда 300 мл | 6
HHC-010 | Капсулы для стирки Persil 15 шт | 6
HHC-011 | Средство для мытья стёкол Clin 500 мл | 5
HHC-012 | Перчатки хозяйственные резиновые M | 10
HHC-013 | Фольга алюминиевая 10 м | 8
HHC-014 | Плёнка пищевая 20 м | 6
HHC-015 | Спички 10 коробков | 20
HHC-016 | Батарейки Duracell AA 4 шт | 12
HHC-017 | Лампочка светодиодная 10 Вт E27 | 9
# Гигиена
HYG-001 | Туалетная бумага Zewa 4 рулона | 40
HYG-002 | Бумажные полотенца Papia 2 рулона | 12
HYG-003 | Салфетки влажные 100 шт | 20
HYG-004 | Мыло туалетное Dove 100 г | 15
HYG-005 | Шампунь Head & Shoulders 400 мл | 8
HYG-006 | Зубная паста Colgate 100 мл | 22
HYG-007 | Зубная щётка Oral-B средней жёсткости | 17
HYG-008 | Гель для душа Nivea 250 мл | 9
HYG-009 | Дезодорант Rexona 150 мл | 6
HYG-010 | Подгузники Pampers 4 (9-14 кг) 52 шт | 4
HYG-011 | Прокладки Always Ultra 10 шт | 10
HYG-012 | Ватные диски 120 шт | 14
HYG-013 | Ватные палочки 200 шт | 10
HYG-014 | Крем для рук Nivea 75 мл | 5
HYG-015 | Бритвенный станок Gillette Mach3 | 3
HYG-016 | Пена для бритья Gillette 200 мл | 4
HYG-017 | Шампунь детский Johnson's Baby 300 мл | 0
# Товары для животных
PET-001 | Корм для кошек Whiskas курица 75 г | 30
PET-002 | Корм для собак Pedigree 2,2 кг | 5
PET-003 | Наполнитель для кошачьего туалета 5 л | 4
PET-004 | Корм для кошек Kitekat говядина 85 г | 25
PET-005 | Корм для собак Chappi говядина 15 кг | 2
"""


@dataclass(frozen=True)
class FixtureProduct:
    sku: str
    name: str
    group: str
    stock: float
    is_active: bool
    barcode: str
    code: str
    article: str | None
    price: float


def ean13(body12: str) -> str:
    """`body12` with its EAN-13 check digit."""
    digits = [int(d) for d in body12]
    check = (10 - (sum(digits[0::2]) + 3 * sum(digits[1::2])) % 10) % 10
    return body12 + str(check)


def parse_catalogue(source: str = CATALOGUE) -> list[FixtureProduct]:
    """The fixture products, in file order (deterministic barcodes, codes and prices)."""
    products: list[FixtureProduct] = []
    group = ""
    for line in source.strip().splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            group = line.lstrip("# ").strip()
            continue
        sku, name, stock, *flags = (part.strip() for part in line.split("|"))
        article = next((f[4:] for f in flags if f.startswith("art=")), None)
        seed = zlib.crc32(sku.encode())
        products.append(
            FixtureProduct(
                sku=sku,
                name=name,
                group=group,
                stock=float(stock),
                is_active="off" not in flags,
                barcode=ean13(f"487{seed % 10**9:09d}"),
                code=f"00-{len(products) + 1:08d}",
                article=article,
                price=float(150 + seed % 4000),
            )
        )
    return products


FIXTURE = parse_catalogue()
BY_SKU = {p.sku: p for p in FIXTURE}


def product_row(
    sku: str,
    name: str,
    *,
    group: str | None,
    stock: float,
    is_active: bool = True,
    barcode: str | None = None,
    code: str | None = None,
    article: str | None = None,
    price: float | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A `products` row as the sync would write it, `search_text` included."""
    now = now or datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None)
    return {
        "sku": sku,
        "name": name,
        "price": price,
        "currency": "KZT",
        "stock": stock,
        "is_active": is_active,
        "onec_ref": str(uuid.UUID(hashlib.md5(sku.encode()).hexdigest())),
        "synced_at": now,
        "code": code,
        "article": article,
        "unit": "шт",
        "group_name": group,
        "barcode": barcode,
        "deletion_mark": not is_active,
        "data_version": "1",
        "content_hash": hashlib.md5(f"{name}|{stock}|{is_active}".encode()).hexdigest(),
        "updated_at": now,
        "search_text": search_text(name, sku, article, code, barcode, group),
    }


INSERT_PRODUCT = text(
    "INSERT INTO products (sku, name, price, currency, stock, is_active, onec_ref, synced_at, code, "
    "article, unit, group_name, barcode, deletion_mark, data_version, content_hash, updated_at, search_text) "
    "VALUES (:sku, :name, :price, :currency, :stock, :is_active, :onec_ref, :synced_at, :code, :article, "
    ":unit, :group_name, :barcode, :deletion_mark, :data_version, :content_hash, :updated_at, :search_text)"
)


def fixture_rows(products: Iterable[FixtureProduct] = FIXTURE) -> list[dict[str, Any]]:
    return [
        product_row(
            p.sku, p.name, group=p.group, stock=p.stock, is_active=p.is_active,
            barcode=p.barcode, code=p.code, article=p.article, price=p.price,
        )
        for p in products
    ]


def insert_rows(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(INSERT_PRODUCT, list(rows))


def build_fixture_db(path: Path) -> Database:
    """A migrated SQLite database at `path` holding the fixture catalogue."""
    db = Database(f"sqlite:///{path}")
    db.migrate()
    with db.write() as conn:
        insert_rows(conn, fixture_rows())
    return db


# --- the query test set -------------------------------------------------------------------


@dataclass(frozen=True)
class QueryCase:
    q: str
    expect: tuple[str, ...] = ()
    expect_words: tuple[str, ...] = ()
    match: str | None = None  # expected match kind of the hit
    top1: bool = False
    in_stock: bool = False
    absent: tuple[str, ...] = ()
    empty: bool = False
    note: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)


def load_queries(path: Path = QUERIES_FILE) -> list[QueryCase]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    cases = []
    for item in raw:
        q = str(item["q"]) if "q" in item else BY_SKU[item["q_barcode"]].barcode
        cases.append(
            QueryCase(
                q=q,
                expect=tuple(item.get("expect", ())),
                expect_words=tuple(item.get("expect_words", ())),
                match=item.get("match"),
                top1=bool(item.get("top1", False)),
                in_stock=bool(item.get("in_stock", False)),
                absent=tuple(item.get("absent", ())),
                empty=bool(item.get("empty", False)),
                note=str(item.get("note", "")),
                tags=tuple(item.get("tags", ())),
            )
        )
    return cases


def _words_hit(row: dict[str, Any], words: Sequence[str]) -> bool:
    """Every item is in the folded name; an item may offer alternatives: «пиала|piala»."""
    name_words = fold(row["name"]).split()
    return all(any(fold(alt) in name_words for alt in w.split("|")) for w in words)


def judge(case: QueryCase, results: list[dict[str, Any]]) -> tuple[bool, str]:
    """(hit, reason): is the expected product among the top 3, with the expected kind/rank?"""
    skus = [r["sku"] for r in results]
    for sku in case.absent:
        if sku in skus:
            return False, f"{sku} must not be returned"
    if case.empty:
        return (not results), "expected no results"
    if not case.expect and not case.expect_words:
        return True, ""
    top = results[:1] if case.top1 else results[:3]
    for row in top:
        if row["sku"] in case.expect or (case.expect_words and _words_hit(row, case.expect_words)):
            if case.in_stock and not row["stock"] > 0:
                continue
            if case.match and row["match"] != case.match:
                return False, f"{row['sku']} found as {row['match']!r}, expected {case.match!r}"
            return True, ""
    return False, "expected product not in top " + ("1" if case.top1 else "3")


@dataclass
class Evaluation:
    total: int = 0
    hits: int = 0
    failures: list[tuple[QueryCase, str, list[str]]] = field(default_factory=list)

    @property
    def hit_rate(self) -> float:
        return self.hits / self.total if self.total else 0.0


def evaluate(db: Database, cases: Sequence[QueryCase], limit: int = 10) -> Evaluation:
    """hit@3 of `search_products` over the cases."""
    ev = Evaluation()
    for case in cases:
        results = search_products(db, case.q, limit)
        ok, reason = judge(case, results)
        ev.total += 1
        if ok:
            ev.hits += 1
        else:
            ev.failures.append((case, reason, [f"{r['sku']}:{r['match']}:{r['score']}" for r in results[:5]]))
    return ev
