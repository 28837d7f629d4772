"""The 1C OData simulator behaves like 1C (onec.md §6) and its data set is self-consistent.

Runs the simulator on a loopback port (ThreadServer) so percent-encoding, Basic auth and dropped
connections go over real HTTP. A small reference reader driven by config/mappings/*.yaml checks
that every profile finds its entity sets and that `expected_products()` is what a correct sync gets.
"""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import psutil
import pytest
import yaml

from simulators.onec import Dataset, create_app
from simulators.onec.keys import ZERO_GUID, product_key
from simulators.serving import ThreadServer

USER, PASSWORD = "Администратор", "zeta-demo"
AUTH = httpx.BasicAuth(USER, PASSWORD)
ROOT = "/zeta/odata/standard.odata"
MAPPINGS = Path(__file__).resolve().parents[2] / "config" / "mappings"
J = {"$format": "json"}


class Sim:
    """A running simulator plus a client and shortcuts."""

    def __init__(self, configuration: str, size: int = 2000, **kw: Any) -> None:
        self.ds = Dataset(size=size, seed=7)
        self.app = create_app(self.ds, configuration=configuration, **kw)
        self.sim = self.app.state.simulator
        self.server = ThreadServer(self.app).start()
        self.url = self.server.url
        self.client = httpx.Client(base_url=self.url + ROOT, auth=AUTH, timeout=30)

    def get(self, path: str, params: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
        return self.client.get(path, params={**J, **(params or {})}, **kw)

    def rows(self, path: str, **params: Any) -> list[dict[str, Any]]:
        r = self.get(path, params)
        assert r.status_code == 200, r.text
        return r.json()["value"]

    def admin(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}/_admin/{path}", timeout=30, **kw)

    def close(self) -> None:
        self.client.close()
        self.server.stop()


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, Sim]]:
    made: dict[str, Sim] = {}

    class Lazy(dict):  # type: ignore[type-arg]
        def __missing__(self, key: str) -> Sim:
            made[key] = Sim(key)
            self[key] = made[key]
            return made[key]

    yield Lazy()
    for sim in made.values():
        sim.close()


@pytest.fixture()
def ut(sims: dict[str, Sim]) -> Iterator[Sim]:
    sim = sims["ut11"]
    yield sim
    sim.admin("POST", "reset")


def odata_error(r: httpx.Response) -> tuple[str, str]:
    err = r.json()["odata.error"]
    assert err["message"]["lang"] == "ru"
    return err["code"], err["message"]["value"]


def price_type_key(sim: Sim, name: str = "Розничная") -> str:
    return next(r["Ref_Key"] for r in sim.rows("Catalog_ВидыЦен") if r["Description"] == name)


def server_now(sim: Sim) -> str:
    return sim.ds.now().strftime("%Y-%m-%dT%H:%M:%S")


# ------------------------------------------------------------------------------------ reference reader


def load_mapping(name: str) -> dict[str, Any]:
    data = yaml.safe_load((MAPPINGS / f"{name}.yaml").read_text(encoding="utf-8"))
    if data.get("extends"):
        base = load_mapping(data["extends"])
        base.update({k: v for k, v in data.items() if k != "extends"})
        return base
    return data


def read_all(sim: Sim, path: str, **params: Any) -> list[dict[str, Any]]:
    out, skip = [], 0
    while True:
        page = sim.rows(path, **params, **{"$top": 500, "$skip": skip})
        out += page
        if len(page) < 500:
            return out
        skip += 500


def reference_sync(sim: Sim, profile: str, price_type: str = "Розничная") -> dict[str, dict[str, Any]]:
    """What a correct client reads, driven only by the mapping profile (onec.md §7)."""
    m = load_mapping(profile)
    names = {v["name"] for v in sim.rows("")}
    for section in ("products", "units", "currencies", "price_types", "warehouses", "orders"):
        assert m[section]["entity_set"] in names, (profile, section)
    for section in ("prices", "stock"):
        assert m[section]["register"] in names, (profile, section)
    pf = m["products"]["fields"]
    products = read_all(sim, m["products"]["entity_set"], **{"$filter": f"{pf['is_folder']} eq false",
                                                              "$orderby": pf["ref"]})
    units = {u["Ref_Key"]: u for u in sim.rows(m["units"]["entity_set"])}
    ratio_field = m["units"]["fields"].get("ratio")
    pt = next(r for r in sim.rows(m["price_types"]["entity_set"])
              if r["Description"].strip().casefold() == price_type.casefold())
    currencies = {r["Ref_Key"]: r["Code"].strip() for r in sim.rows(m["currencies"]["entity_set"])}
    assert currencies[pt["ВалютаЦены_Key"]] == "398"
    prf = m["prices"]["fields"]
    cond = f"{prf['price_type']} eq guid'{pt['Ref_Key']}'"
    prices: dict[str, float] = {}
    for row in read_all(sim, f"{m['prices']['register']}/{m['prices']['function']}"
                             f"(Period=datetime'{server_now(sim)}',Condition='{cond}')",
                        **{"$orderby": f"{prf['product']},{prf['characteristic']}"}):
        value = row[prf["price"]]
        package = row.get(prf.get("package", ""), ZERO_GUID)
        if package != ZERO_GUID:
            value /= units[package][ratio_field]
        prices.setdefault(row[prf["product"]], value)
    sf = m["stock"]["fields"]
    stock: dict[str, float] = {}
    dims = ",".join(m["stock"]["dimensions"])
    for row in read_all(sim, f"{m['stock']['register']}/Balance(Period=datetime'{server_now(sim)}',Dimensions='{dims}')",
                        **{"$orderby": f"{sf['product']},{sf['warehouse']}"}):
        stock[row[sf["product"]]] = stock.get(row[sf["product"]], 0.0) + row[sf["quantity"]]
    by_article: dict[str, list[dict[str, Any]]] = {}
    for p in products:
        if p[pf["article"]]:
            by_article.setdefault(p[pf["article"]], []).append(p)
    out = {}
    for p in products:
        holders = by_article.get(p[pf["article"]], [])
        winner = min(holders, key=lambda x: (x[pf["deletion_mark"]], x[pf["code"]])) if holders else None
        sku = p[pf["article"]] if winner is p else p[pf["code"]]
        out[sku] = {"ref": p[pf["ref"]], "name": p[pf["name"]], "price": prices.get(p[pf["ref"]]),
                    "stock": round(stock.get(p[pf["ref"]], 0.0), 3), "is_active": not p[pf["deletion_mark"]]}
    return out


def assert_matches_expected(got: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]) -> None:
    assert got.keys() == expected.keys()
    for sku, exp in expected.items():
        g = got[sku]
        assert (g["ref"], g["name"], g["is_active"]) == (exp["ref"], exp["name"], exp["is_active"]), sku
        assert g["stock"] == pytest.approx(exp["stock"]), sku
        assert (g["price"] is None) == (exp["price"] is None), sku
        if exp["price"] is not None:
            assert g["price"] == pytest.approx(exp["price"]), sku


# ------------------------------------------------------------------------------------ data set


def test_dataset_is_deterministic_realistic_and_lazy() -> None:
    ds = Dataset(2000, seed=7)
    assert Dataset(2000, seed=7).product(123) == ds.product(123)
    exp = ds.expected_products()
    names = [v["name"] for v in exp.values()]
    assert sum(1 for n in names if re.search("[әғқңөұүһі]", n)) > 100
    assert any(n.startswith("Молоко") for n in names) and any("Қант" in n for n in names)
    total = 2000
    assert 0.01 * total < sum(not v["is_active"] for v in exp.values()) < 0.04 * total
    assert 0.015 * total < sum(v["price"] is None for v in exp.values()) < 0.05 * total
    assert 0.07 * total < sum(v["stock"] == 0 for v in exp.values()) < 0.14 * total
    empty_articles = sum(1 for i in range(total) if ds.article(i) == "")
    assert 0.03 * total < empty_articles < 0.08 * total
    articles = [ds.article(i) for i in range(total) if ds.article(i)]
    assert len(articles) > len(set(articles))  # some duplicates
    assert len(exp) == total  # every product gets a distinct SKU
    assert all(re.fullmatch(r"00-\d{8}", ds.code(i)) for i in range(0, total, 97))
    keys = [product_key(i) for i in range(0, total, 13)]
    assert keys == sorted(keys)
    assert any(ds.facts(i).package for i in range(total))
    assert any(ds.facts(i).parent < 0 for i in range(total))


def test_sku_rule_for_duplicate_articles() -> None:
    ds = Dataset(2000, seed=7)
    losers = ds.sku_overrides()
    assert losers
    for i, sku in losers.items():
        assert sku == ds.code(i)
        holders = [j for j in range(ds.size) if ds.article(j) == ds.article(i)]
        winner = min(holders, key=lambda j: (ds.deleted(j), j))
        assert winner != i and ds.sku(winner) == ds.article(i)
    i = next(iter(losers))
    winner = next(j for j in range(ds.size) if ds.sku(j) == ds.article(i))
    ds.mark_deleted(winner)
    assert ds.sku(winner) == ds.code(winner) or all(ds.deleted(j) for j in range(ds.size)
                                                      if ds.article(j) == ds.article(i))


def test_mutations_change_expected_products() -> None:
    ds = Dataset(500, seed=3)
    i = next(j for j in range(500) if ds.facts(j).package == 0 and not ds.facts(j).no_price)
    sku = ds.sku(i)
    before = ds.expected_products()[sku]
    ds.set_price(i, "Розничная", 777)
    ds.set_stock(i, "Склад Астана", 5)
    ds.rename(i, "Сүт Адал 2,5% 1 л")
    after = ds.expected_products()[sku]
    assert after["price"] == 777 and after["name"] == "Сүт Адал 2,5% 1 л"
    assert after["data_version"] != before["data_version"]
    assert after["stock"] == pytest.approx(ds.stock(i)) and ds.stock(i, [2]) == 5
    ds.mark_deleted(i)
    assert ds.expected_products()[sku]["is_active"] is False
    ds.remove(i)
    assert sku not in ds.expected_products()
    changed = ds.change_fraction(0.1, seed=1)
    assert 40 <= sum(len(v) for v in changed.values()) <= 60


def test_lazy_million_is_cheap() -> None:
    proc = psutil.Process(os.getpid())
    rss0 = proc.memory_info().rss
    t0 = time.perf_counter()
    ds = Dataset(1_000_000)
    app = create_app(ds)
    assert time.perf_counter() - t0 < 1.0
    sim = app.state.simulator
    t0 = time.perf_counter()
    table = sim.registry.table("Catalog_Номенклатура")
    ids = sim.engine.rids(table, "IsFolder eq false", "Ref_Key")
    page = [table.row(r) for r in ids[500_000:500_100]]
    assert page[0]["Ref_Key"] == product_key(500_000) and len(page) == 100
    assert time.perf_counter() - t0 < 3.0
    assert (proc.memory_info().rss - rss0) / 1e6 < 150


# ------------------------------------------------------------------------------------ protocol


def test_service_document_metadata_and_profiles(sims: dict[str, Sim]) -> None:
    for name in ("ut11", "ut114", "unf"):
        sim = sims[name]
        r = sim.get("")
        body = r.json()
        assert body["odata.metadata"].endswith("/standard.odata/$metadata")
        assert all(v["name"] == v["url"] for v in body["value"])
    names = {v["name"] for v in sims["ut11"].rows("")}
    assert "InformationRegister_ЦеныНоменклатуры25_RecordType" in names
    assert "InformationRegister_ЦеныНоменклатуры25" not in names
    unf_names = {v["name"] for v in sims["unf"].rows("")}
    assert {"InformationRegister_ЦеныНоменклатуры", "AccumulationRegister_ЗапасыНаСкладах",
            "Document_ЗаказПокупателя", "Catalog_СтруктурныеЕдиницы",
            "Catalog_КлассификаторЕдиницИзмерения"} <= unf_names
    sim = sims["ut11"]
    r = sim.client.get("$metadata")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    assert "<edmx:Edmx" in r.text and 'EntitySet Name="Catalog_Номенклатура"' in r.text
    r = sim.get("$metadata")
    assert r.status_code == 406 and odata_error(r)[0] == "3"
    r = sim.get("Catalog_Несуществующий")
    assert r.status_code == 404 and odata_error(r)[0] == "8"
    r = sim.get(f"Catalog_Номенклатура(guid'{ZERO_GUID[:-1]}1')")
    assert r.status_code == 404 and odata_error(r)[0] == "9"


def test_format_negotiation_and_envelopes(ut: Sim) -> None:
    r = ut.client.get("Catalog_Номенклатура", params={"$top": 1})
    assert r.headers["content-type"].startswith("application/atom+xml") and r.text.startswith("<?xml")
    r = ut.client.get("Catalog_Номенклатура", params={"$top": 1}, headers={"Accept": "application/json"})
    assert r.json()["odata.metadata"].endswith("$metadata#Catalog_Номенклатура")
    r = ut.get("Catalog_Номенклатура", {"$top": 1, "$format": "application/json;odata=nometadata"})
    body = r.json()
    assert "odata.metadata" not in body and not any("@" in k for k in body["value"][0])
    item = ut.rows("Catalog_Номенклатура", **{"$filter": "IsFolder eq false", "$top": 1})[0]
    assert "Parent@navigationLinkUrl" in item and item["ТипНоменклатуры"] == "Товар"
    one = ut.get(f"Catalog_Номенклатура(guid'{item['Ref_Key']}')").json()
    assert one["odata.metadata"].endswith("#Catalog_Номенклатура/@Element") and "value" not in one
    assert one["Ref_Key"] == item["Ref_Key"]
    assert re.fullmatch(r"[A-Za-z0-9+/]+=*", one["DataVersion"]) and isinstance(one["Code"], str)
    raw = ut.client.get(f"Catalog_Номенклатура(guid'{item['Ref_Key']}')", params=J).content
    assert b"Description" in raw and item["Description"].encode() in raw  # Cyrillic not escaped
    assert ut.get(f"Catalog_Номенклатура(guid'{item['Ref_Key']}')/Description").json()["value"] == item["Description"]
    parent = ut.get(f"Catalog_Номенклатура(guid'{item['Ref_Key']}')/Parent").json()
    assert parent.get("IsFolder") is True or item["Parent_Key"] == ZERO_GUID


def test_paging_counts_and_percent_encoding(ut: Sim) -> None:
    path = "Catalog_Номенклатура"
    q = {"$filter": "IsFolder eq false", "$orderby": "Ref_Key", "$select": "Ref_Key,Code"}
    a = ut.client.get(f"{path}?$format=json&$top=5&$skip=10&$filter=IsFolder eq false&$orderby=Ref_Key")
    b = ut.client.get(f"{path}?$format=json&$skip=10&$filter=IsFolder eq false&$top=5&$orderby=Ref_Key")
    assert a.json()["value"] == b.json()["value"] and len(a.json()["value"]) == 5
    assert a.json()["value"][0]["Ref_Key"] == product_key(10)
    body = ut.get(path, {**q, "$top": 3, "$skip": 7, "$inlinecount": "allpages"}).json()
    assert body["odata.count"] == "2000" and len(body["value"]) == 3 and "odata.nextLink" not in body
    assert ut.client.get(f"{path}/$count", params={"$filter": "IsFolder eq false"}).text == "2000"
    assert len(ut.rows(path, **q)) == 2000  # no server-driven paging
    encoded = ut.url + quote(f"{ROOT}/{path}", safe="/") + "?" + "&".join(
        f"{quote(k)}={quote(v)}" for k, v in {"$format": "json", "$filter": "Code eq '00-00000003'"}.items())
    r = httpx.get(encoded, auth=AUTH)
    assert r.json()["value"][0]["Ref_Key"] == product_key(2)


def test_select_expand_and_presentations(ut: Sim) -> None:
    ref = ut.client.post("Document_ЗаказКлиента", params=J, json=order_body(ut, "BOT-S")).json()["Ref_Key"]
    plain = ut.rows("Document_ЗаказКлиента", **{"$select": "**"})[0]
    full = ut.rows("Document_ЗаказКлиента", **{"$select": "*"})[0]
    assert "Товары" not in plain and len(full["Товары"]) == 2 and plain["Ref_Key"] == ref
    partial = ut.rows("Document_ЗаказКлиента", **{"$select": "Number,Товары/Цена"})[0]
    assert partial == {"Number": partial["Number"], "Товары": [{"Цена": 100}, {"Цена": 100}]}
    r = ut.get("Document_ЗаказКлиента", {"$select": "НетТакого"})
    assert r.status_code == 400
    item = ut.rows("Catalog_Номенклатура", **{"$filter": f"Ref_Key eq guid'{product_key(0)}'",
                                              "$select": "Description,Parent_Key,Parent____Presentation",
                                              "$expand": "Parent,ЕдиницаИзмерения"})[0]
    assert item["Parent____Presentation"] == item["Parent"]["Description"]
    assert item["ЕдиницаИзмерения"]["Description"] in ("шт", "кг", "л")
    root_item = next(i for i in range(ut.ds.size) if ut.ds.facts(i).parent < 0)
    expanded = ut.rows("Catalog_Номенклатура", **{"$filter": f"Ref_Key eq guid'{product_key(root_item)}'",
                                                  "$expand": "Parent"})[0]
    assert expanded["Parent"] is None and expanded["Parent_Key"] == ZERO_GUID  # null only from $expand
    assert ut.get("Catalog_Номенклатура", {"$top": "ten"}).status_code == 400


def test_filters(ut: Sim) -> None:
    p = "Catalog_Номенклатура"
    milk = ut.rows(p, **{"$filter": "substringof('молоко', Description) and IsFolder eq false"})
    assert milk and all("молоко" in r["Description"].lower() for r in milk)
    assert ut.rows(p, **{"$filter": "startswith(Description, 'ҚАНТ')"})
    assert ut.rows(p, **{"$filter": "like(Description, 'Сүт%1 л')"})
    assert ut.rows(p, **{"$filter": "endswith(Code, '0007') and IsFolder eq false", "$select": "Code"}) == [{"Code": "00-00000007"}]
    keys = [product_key(i) for i in (3, 5, 8)]
    chunk = " or ".join(f"Ref_Key eq guid'{k}'" for k in keys)
    assert [r["Ref_Key"] for r in ut.rows(p, **{"$filter": chunk, "$select": "Ref_Key"})] == keys
    got = ut.rows(p, **{"$filter": "not (IsFolder eq false) and Parent_Key eq guid'00000000-0000-0000-0000-000000000000'"})
    assert got and all(r["IsFolder"] for r in got)
    by_parent = ut.rows(p, **{"$filter": "Parent/Description eq 'Смартфоны'", "$select": "Description"})
    assert by_parent and all(r["Description"].startswith("Смартфон") for r in by_parent)
    assert ut.rows(p, **{"$filter": "НетТакогоПоля eq 1"}) == []  # silently empty, as reported for 1C
    assert ut.rows("Catalog_Валюты", **{"$filter": "Code eq '398'"})[0]["Description"] == "тг."
    for fn in ("tolower(Description) eq 'x'", "length(Code) gt 3", "indexof(Code, '0') eq 1"):
        r = ut.get(p, {"$filter": fn})
        assert r.status_code == 400 and odata_error(r)[0] == "21"
        assert re.search("[а-я]", odata_error(r)[1])
    r = ut.get(p, {"$filter": "Code eq"})
    assert r.status_code == 400 and odata_error(r)[0] == "14"
    pt = price_type_key(ut)
    rows = ut.rows("InformationRegister_ЦеныНоменклатуры25_RecordType",
                   **{"$filter": f"ВидЦены_Key eq guid'{pt}' and Цена mul 2 gt 1000000", "$top": 5})
    assert rows and all(r["Цена"] * 2 > 1_000_000 for r in rows)
    recorder = rows[0]["Recorder"]
    assert ut.rows("InformationRegister_ЦеныНоменклатуры25_RecordType",
                   **{"$filter": f"Recorder eq guid'{recorder}'"}) == []  # composite needs cast
    cast = ut.rows("InformationRegister_ЦеныНоменклатуры25_RecordType",
                   **{"$filter": f"Recorder eq cast(guid'{recorder}','Document_УстановкаЦенНоменклатуры')"})
    assert cast and all(r["Recorder"] == recorder for r in cast)
    r = ut.get("InformationRegister_ЦеныНоменклатуры25_RecordType", {"$filter": f"Recorder_Key eq guid'{recorder}'"})
    assert r.status_code == 400


# ------------------------------------------------------------------------------------ virtual tables


def test_virtual_table_parameter_forms(ut: Sim) -> None:
    pt = price_type_key(ut)
    reg = "InformationRegister_ЦеныНоменклатуры25_RecordType"
    now = server_now(ut)
    sel = {"$select": "Номенклатура_Key,Цена", "$orderby": "Номенклатура_Key", "$top": 50, "$skip": 20}
    forms = [
        ut.rows(f"{reg}/SliceLast(Period=datetime'{now}',Condition='ВидЦены_Key eq guid'{pt}'')", **sel),
        ut.rows(f"{reg}/SliceLast(Period=datetime'{now}',Condition='ВидЦены_Key eq guid''{pt}''')", **sel),
        ut.rows(f"{reg}/SliceLast()", **sel, Period=f"datetime'{now}'", Condition=f"'ВидЦены_Key eq guid'{pt}''"),
        ut.rows(f"{reg}/SliceLast", **sel, Period=f"datetime'{now}'", Condition=f"ВидЦены_Key eq guid'{pt}'"),
        ut.rows(f"{reg}/SliceLast(Period=datetime'{now}')",
                **{**sel, "$filter": f"ВидЦены_Key eq guid'{pt}'"}),
    ]
    assert forms[0] and all(f == forms[0] for f in forms)
    bare = ut.rows(f"{reg}/SliceLast")
    assert len(ut.rows(f"{reg}/SliceLast()")) == len(bare) > len(forms[0])
    # the bare slice includes a future-dated price; an explicit Period does not
    future = ut.ds.future_product
    key = product_key(future)
    filt = {"$filter": f"Номенклатура_Key eq guid'{key}' and ВидЦены_Key eq guid'{pt}'"}
    later = ut.rows(f"{reg}/SliceLast", **filt)[0]
    current = ut.rows(f"{reg}/SliceLast(Period=datetime'{now}')", **filt)[0]
    assert later["Period"] > now > current["Period"] and later["Цена"] != current["Цена"]
    assert current["Цена"] == ut.ds.expected_products()[ut.ds.sku(future)]["price"]
    first = ut.rows(f"{reg}/SliceFirst", **filt)[0]
    assert first["Period"] <= current["Period"]


def test_virtual_table_errors_and_record_type_rule(sims: dict[str, Sim]) -> None:
    ut = sims["ut11"]
    r = ut.get("InformationRegister_ЦеныНоменклатуры25/SliceLast")
    assert r.status_code == 404 and odata_error(r)[0] == "8"
    r = ut.get("InformationRegister_ЦеныНоменклатуры25_RecordType/SliceLast(Periodd=datetime'2025-01-01T00:00:00')")
    assert r.status_code == 501
    r = ut.get("AccumulationRegister_ТоварыНаСкладах/Balance(AccountCondition='x')")
    assert r.status_code == 501
    r = ut.get("AccumulationRegister_ТоварыНаСкладах/Balance", {"Foo": "1"})
    assert r.status_code == 501
    r = ut.get("AccumulationRegister_ТоварыНаСкладах/SliceLast")
    assert r.status_code == 400
    r = ut.get("AccumulationRegister_ТоварыНаСкладах/Balance/Лишнее")
    assert r.status_code == 400
    r = ut.get("Catalog_Номенклатура/Balance")
    assert r.status_code == 400
    r = ut.get("AccumulationRegister_ТоварыНаСкладах/Balance", {"$orderby": "Ref_Key", "$top": 10})
    assert r.status_code == 400  # virtual tables have no Ref_Key
    assert ut.rows("InformationRegister_ЦеныНоменклатуры_RecordType/SliceLast", **{"$top": 1})  # old register kept
    unf = sims["unf"]
    assert unf.rows("InformationRegister_ЦеныНоменклатуры/SliceLast", **{"$top": 1})[0]["ВидЦен_Key"]
    r = unf.get("InformationRegister_ЦеныНоменклатуры_RecordType/SliceLast")
    assert r.status_code == 404
    assert sims["ut114"].rows("InformationRegister_ЦеныНоменклатуры_RecordType/SliceLast", **{"$top": 1})


def test_balance_shape_grouping_and_zero_omission(ut: Sim) -> None:
    reg = "AccumulationRegister_ТоварыНаСкладах"
    rows = ut.rows(f"{reg}/Balance(Dimensions='Номенклатура,Склад')", **{"$top": 100})
    assert rows and all(set(r) == {"Номенклатура_Key", "Склад_Key", "ВНаличииBalance", "ВРезервеСоСкладаBalance"}
                        for r in rows)
    i = next(j for j in range(100) if len([r for r in rows if r["Номенклатура_Key"] == product_key(j)]) >= 2)
    key = product_key(i)
    per_wh = [r for r in rows if r["Номенклатура_Key"] == key]
    total = ut.rows(f"{reg}/Balance(Dimensions='Номенклатура')",
                    **{"$filter": f"Номенклатура_Key eq guid'{key}'"})
    assert total[0]["ВНаличииBalance"] == pytest.approx(sum(r["ВНаличииBalance"] for r in per_wh))
    wh = per_wh[0]["Склад_Key"]
    warehouse = ut.get(f"Catalog_Склады(guid'{wh}')").json()["Description"]
    ut.ds.set_stock(i, warehouse, 0)
    after = ut.rows(f"{reg}/Balance", Condition=f"Номенклатура_Key eq guid'{key}'", Dimensions="'Номенклатура,Склад'")
    assert wh not in {r["Склад_Key"] for r in after} and len(after) == len(per_wh) - 1
    no_stock = next(j for j in range(ut.ds.size) if ut.ds.facts(j).no_stock)
    assert ut.rows(f"{reg}/Balance", **{"$filter": f"Номенклатура_Key eq guid'{product_key(no_stock)}'"}) == []
    assert ut.client.get(f"{reg}/Balance/$count").text.isdigit()
    turnovers = ut.rows(f"{reg}/Turnovers(StartPeriod=datetime'2000-01-01T00:00:00',Dimensions='Номенклатура')",
                        **{"$top": 5})
    assert turnovers and "ВНаличииTurnover" in turnovers[0] and "ВНаличииReceipt" in turnovers[0]


def test_reference_reader_matches_expected_products_for_every_profile(sims: dict[str, Sim]) -> None:
    for profile in ("ut11", "ut114", "unf"):
        sim = sims[profile]
        assert_matches_expected(reference_sync(sim, profile), sim.ds.expected_products())
    ut = sims["ut11"]
    ut.ds.change_fraction(0.05, seed=2)
    pkg = next(i for i in range(ut.ds.size) if ut.ds.facts(i).package)
    ut.ds.set_price(pkg, "Розничная", 1200, package="упаковка (12 шт)")
    expected = ut.ds.expected_products()
    assert expected[ut.ds.sku(pkg)]["price"] == 100
    assert_matches_expected(reference_sync(ut, "ut11"), expected)
    ut.admin("POST", "reset")


# ------------------------------------------------------------------------------------ writes


def order_body(sim: Sim, external: str, rows: int = 2) -> dict[str, Any]:
    return {
        "Date": server_now(sim), "НомерПоДаннымКлиента": external, "Комментарий": "из бота", "Лишнее": 1,
        "Товары": [{"LineNumber": str(n), "Номенклатура_Key": product_key(n), "Количество": 2, "Цена": 100.0,
                    "Сумма": 200.0, "Характеристика_Key": ZERO_GUID, "НесуществующееПоле": "x"}
                   for n in range(1, rows + 1)],
    }


def test_order_create_post_patch_delete(ut: Sim) -> None:
    r = ut.client.post("Document_ЗаказКлиента", params=J, json=order_body(ut, "BOT-1"))
    assert r.status_code == 201, r.text
    doc = r.json()
    ref = doc["Ref_Key"]
    assert unquote(r.headers["location"]).endswith(f"Document_ЗаказКлиента(guid'{ref}')")
    assert doc["Number"].startswith("ЗК00-") and doc["DataVersion"] is None and doc["Posted"] is False
    assert doc["Товары"][0]["LineNumber"] == "1" and "Лишнее" not in doc and doc["СуммаДокумента"] == 400
    again = ut.client.post("Document_ЗаказКлиента", params=J, json=order_body(ut, "BOT-1"))
    assert again.status_code == 201 and again.json()["Ref_Key"] != ref  # no de-duplication
    found = ut.rows("Document_ЗаказКлиента", **{"$filter": "НомерПоДаннымКлиента eq 'BOT-1'",
                                                "$select": "Ref_Key,Number,Posted"})
    assert len(found) == 2 and set(found[0]) == {"Ref_Key", "Number", "Posted"}
    assert ut.rows("Document_ЗаказКлиента_Товары", **{"$filter": f"Ref_Key eq guid'{ref}'"})[1]["LineNumber"] == "2"
    row = ut.get(f"Document_ЗаказКлиента_Товары(Ref_Key=guid'{ref}', LineNumber=2)").json()
    assert row["LineNumber"] == "2" and row["Номенклатура_Key"] == product_key(2)
    version = ut.get(f"Document_ЗаказКлиента(guid'{ref}')").json()["DataVersion"]
    r = ut.client.post(f"Document_ЗаказКлиента(guid'{ref}')/Post", params={**J, "PostingModeOperational": "false"})
    assert r.status_code == 200 and r.json()["Posted"] is True
    r = ut.client.post(f"Document_ЗаказКлиента(guid'{ref}')/Unpost", params=J)
    assert r.json()["Posted"] is False
    assert ut.client.post(f"Document_ЗаказКлиента(guid'{ref}')/Post()", params=J).json()["Posted"] is True
    r = ut.client.patch(f"Document_ЗаказКлиента(guid'{ref}')", params=J, json={
        "Комментарий": "изменён", "Товары": [{"LineNumber": 1, "Номенклатура_Key": product_key(9), "Количество": 1,
                                              "Цена": 50.0, "Сумма": 50.0}]})
    patched = r.json()
    assert patched["Комментарий"] == "изменён" and len(patched["Товары"]) == 1
    assert patched["НомерПоДаннымКлиента"] == "BOT-1" and patched["DataVersion"] != version
    r = ut.client.put(f"Document_ЗаказКлиента(guid'{ref}')", params=J, json={"Товары": []})
    assert r.json()["НомерПоДаннымКлиента"] == ""
    assert ut.client.delete(f"Document_ЗаказКлиента(guid'{ref}')").status_code == 204
    assert ut.get(f"Document_ЗаказКлиента(guid'{ref}')").status_code == 404
    docs = ut.admin("GET", "documents", params={"external": "BOT-1"}).json()
    assert len(docs) == 1


def test_order_errors(ut: Sim) -> None:
    body = order_body(ut, "BOT-2")
    del body["Товары"][0]["LineNumber"]
    assert ut.client.post("Document_ЗаказКлиента", params=J, json=body).status_code == 500
    r = ut.client.post("Document_ЗаказКлиента_Товары", params=J, json={"LineNumber": 1})
    assert r.status_code == 400 and odata_error(r)[0] == "13"
    body = order_body(ut, "BOT-2")
    body["Товары"][0]["Номенклатура_Key"] = "12345678-1234-1234-1234-123456789012"
    r = ut.client.post("Document_ЗаказКлиента", params=J, json=body)
    assert r.status_code == 500 and odata_error(r)[0] == "-1" and "Номенклатура" in odata_error(r)[1]
    body = order_body(ut, "BOT-2")
    body["Товары"][0]["Количество"] = "два"
    assert ut.client.post("Document_ЗаказКлиента", params=J, json=body).status_code == 400
    ref = ut.client.post("Document_ЗаказКлиента", params=J, json=order_body(ut, "BOT-2")).json()["Ref_Key"]
    ut.admin("POST", "faults", json={"post_fails": True})
    r = ut.client.post(f"Document_ЗаказКлиента(guid'{ref}')/Post", params=J)
    assert r.status_code == 500 and odata_error(r)[0] == "-1"
    assert ut.get(f"Document_ЗаказКлиента(guid'{ref}')").json()["Posted"] is False
    item = product_key(11)
    r = ut.client.patch(f"Catalog_Номенклатура(guid'{item}')", params=J, json={"DeletionMark": True})
    assert r.json()["DeletionMark"] is True and ut.ds.deleted(11)
    assert ut.client.delete(f"Catalog_Номенклатура(guid'{item}')").status_code == 204
    assert ut.get(f"Catalog_Номенклатура(guid'{item}')").status_code == 404


def test_unf_order(sims: dict[str, Sim]) -> None:
    unf = sims["unf"]
    body = {"Комментарий": "BOT-9", "Запасы": [{"LineNumber": 1, "Номенклатура_Key": product_key(1),
                                               "Количество": 3, "Цена": 10.0}]}
    r = unf.client.post("Document_ЗаказПокупателя", params=J, json=body)
    assert r.status_code == 201 and r.json()["Запасы"][0]["Сумма"] == 30
    assert r.json()["Запасы"][0]["ЕдиницаИзмерения_Type"] == "StandardODATA.Catalog_КлассификаторЕдиницИзмерения"
    assert unf.rows("Document_ЗаказПокупателя", **{"$filter": "Комментарий eq 'BOT-9'"})
    unf.admin("POST", "reset")


# ------------------------------------------------------------------------------------ auth, limits, faults


def test_auth_with_cyrillic_user(ut: Sim) -> None:
    url = ut.url + ROOT + "/Catalog_Валюты"
    assert httpx.get(url, params=J, auth=AUTH).status_code == 200
    assert httpx.get(url, params=J, auth=(USER, "wrong")).status_code == 401
    assert httpx.get(url, params=J).status_code == 401
    utf8 = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert httpx.get(url, params=J, headers={"Authorization": "Basic " + utf8}).status_code == 200
    cp1251 = base64.b64encode(f"{USER}:{PASSWORD}".encode("cp1251")).decode()
    assert httpx.get(url, params=J, headers={"Authorization": "Basic " + cp1251}).status_code == 401


def test_url_length_limit() -> None:
    for mode, status in (("iis", 404), ("apache", 414)):
        sim = Sim("ut11", size=50, url_limit=2048 if mode == "iis" else 4000, url_limit_mode=mode)
        try:
            chunk = " or ".join(f"Ref_Key eq guid'{product_key(i)}'" for i in range(12))
            assert sim.get("Catalog_Номенклатура", {"$filter": chunk}).status_code == 200
            long = " or ".join(f"Ref_Key eq guid'{product_key(i)}'" for i in range(80))
            r = sim.get("Catalog_Номенклатура", {"$filter": long})
            assert r.status_code == status and r.headers["content-type"].startswith("text/html")
            if mode == "iis":  # maxUrl also bounds the path (a Condition moved into it)
                cond = " or ".join(f"Номенклатура_Key eq guid'{product_key(i)}'" for i in range(60))
                r = sim.get(f"AccumulationRegister_ТоварыНаСкладах/Balance(Condition='{cond}')")
                assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
        finally:
            sim.close()


def test_faults(ut: Sim) -> None:
    set_faults = lambda **kw: ut.admin("POST", "faults", json=kw).raise_for_status()  # noqa: E731
    set_faults(error_rate=1.0, error_body="html", error_statuses=[502])
    r = ut.get("Catalog_Валюты")
    assert r.status_code == 502 and r.headers["content-type"].startswith("text/html")
    set_faults(error_rate=1.0, error_body="odata", error_statuses=[500])
    assert odata_error(ut.get("Catalog_Валюты"))[0] == "-1"
    set_faults(error_rate=0.0, drop_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        ut.get("Catalog_Валюты")
    set_faults(drop_rate=0.0, latency_seconds=0.3)
    t0 = time.perf_counter()
    ut.get("Catalog_Валюты")
    assert time.perf_counter() - t0 >= 0.3
    set_faults(latency_seconds=0.0, broken_json=[{"entity_set": "Catalog_Номенклатура", "skip": 100}])
    for _ in range(2):
        r = ut.get("Catalog_Номенклатура", {"$top": 50, "$skip": 100})
        assert r.status_code == 200
        with pytest.raises(ValueError):
            r.json()
    assert ut.get("Catalog_Номенклатура", {"$top": 50, "$skip": 150}).json()["value"]
    set_faults(broken_json=[], html_auth_200=True)
    r = ut.get("Catalog_Валюты")
    assert r.status_code == 200 and "<form" in r.text
    set_faults(html_auth_200=False, odata_disabled=True)
    r = ut.get("Catalog_Валюты")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    set_faults(odata_disabled=False, lose_create_response_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        ut.client.post("Document_ЗаказКлиента", params=J, json=order_body(ut, "BOT-LOST"))
    set_faults(lose_create_response_rate=0.0)
    assert len(ut.rows("Document_ЗаказКлиента", **{"$filter": "НомерПоДаннымКлиента eq 'BOT-LOST'"})) == 1
    set_faults(lose_create_response_rate=0.0, create_fails=True)
    r = ut.client.post("Document_ЗаказКлиента", params=J, json=order_body(ut, "BOT-NEVER"))
    assert r.status_code == 500 and odata_error(r)[0] == "-1"
    set_faults(create_fails=False, slow_rate=1.0, slow_seconds=0.2, seed=3)
    t0 = time.perf_counter()
    ut.get("Catalog_Валюты")
    assert time.perf_counter() - t0 >= 0.2
    set_faults(slow_rate=0.0, error_rate=1.0, only_sets=["Catalog_Склады"])
    assert ut.get("Catalog_Валюты").status_code == 200 and ut.get("Catalog_Склады").status_code >= 500
    stats = ut.admin("GET", "stats").json()
    assert stats["by_set"]["Catalog_Валюты"]["502"] >= 1 and stats["documents"] == 1
    assert ut.admin("DELETE", "faults").json()["error_rate"] == 0


def test_admin_mutations_reach_odata(ut: Sim) -> None:
    i = 21
    r = ut.admin("POST", "mutate", json={"ops": [
        {"op": "rename", "index": i, "name": "Қымыз Береке 1 л"},
        {"op": "set_stock", "index": i, "warehouse": "Склад Алматы", "qty": 7},
        {"op": "mark_deleted", "index": i, "flag": True},
        {"op": "change_fraction", "share": 0.01, "seed": 5},
    ]})
    assert r.status_code == 200, r.text
    row = ut.get(f"Catalog_Номенклатура(guid'{product_key(i)}')").json()
    assert row["Description"] == "Қымыз Береке 1 л" and row["DeletionMark"] is True
    assert ut.admin("POST", "mutate", json={"op": "bogus"}).status_code == 400
    exp = ut.admin("GET", "expected").json()
    assert exp[ut.ds.sku(i)]["name"] == "Қымыз Береке 1 л"
    page = ut.admin("GET", "expected", params={"offset": 10, "limit": 5}).json()
    assert list(page) == list(exp)[10:15]
    health = ut.admin("GET", "health").json()
    assert health["status"] == "ok" and health["size"] == 2000


def test_process_server_entry_point() -> None:
    from simulators.serving import ProcessServer

    with ProcessServer("simulators.onec", ["--size", "300", "--configuration", "unf"],
                       env={"ONEC_PASSWORD": "секрет"}) as server:
        r = httpx.get(f"{server.url}{ROOT}/Catalog_Номенклатура", params={**J, "$top": 2},
                      auth=(USER, "секрет"))
        assert r.status_code == 200 and len(r.json()["value"]) == 2
        assert httpx.get(f"{server.url}/_admin/health").json()["configuration"] == "unf"


def test_period_is_local_naive(ut: Sim) -> None:
    rows = ut.rows("InformationRegister_ЦеныНоменклатуры25_RecordType", **{"$top": 3})
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", r["Period"]) for r in rows)
    doc = ut.client.post("Document_ЗаказКлиента", params=J, json={"Товары": []}).json()
    assert doc["ДатаОтгрузки"] == "0001-01-01T00:00:00" and doc["Партнер_Key"] == ZERO_GUID
    assert abs(ut.ds.now() - ut.ds.now().replace(microsecond=0)) < timedelta(seconds=1)


def test_fast_id_lists_agree_with_record_generation() -> None:
    """The one-hash id lists of SliceLast/Balance equal what generating every record gives."""
    ds = Dataset(3000, seed=11)
    ds.set_price(7, "Оптовая", 55)
    ds.set_stock(8, 0, 0)
    ds.set_stock(9, "Склад Астана", 3)
    ds.remove(10)
    sim = create_app(ds).state.simulator
    reg = sim.profile.price
    pt = "00000001-5e7a-11ee-9c4d-0050569a0a06"
    cases = [
        (reg.entity_set, reg, None, "SliceLast", ""),
        (reg.entity_set, reg, None, "SliceLast", f"Condition='ВидЦены_Key eq guid'{pt}''"),
        (reg.entity_set, reg, None, "SliceLast", "Period=datetime'2025-06-01T00:00:00'"),
        ("AccumulationRegister_ТоварыНаСкладах", None, sim.profile.stock, "Balance", ""),
        ("AccumulationRegister_ТоварыНаСкладах", None, sim.profile.stock, "Balance", "Dimensions='Номенклатура'"),
        ("AccumulationRegister_ТоварыНаСкладах", None, sim.profile.stock, "Balance",
         "Period=datetime'2025-05-01T00:00:00',Dimensions='Номенклатура,Склад'"),
    ]
    for name, price_reg, stock_reg, fn, params in cases:
        vt = sim._virtual(name, price_reg, stock_reg, fn, params, {})
        products = [i for i in range(ds.size) if ds.exists(i)]
        assert list(vt.rids()) == list(vt._ids(products)), (fn, params)
        assert all(vt.row(r) for r in list(vt.rids())[:50])
