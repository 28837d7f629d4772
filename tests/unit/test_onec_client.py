"""1C OData client, narrow cases over httpx.MockTransport: paging, errors, retries, auth encoding."""

import base64
import json
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from assets.catalogue.extract import currency_letters
from resources.onec.client import OneCClient, RetryPolicy, empty_to_none, odata_root
from resources.onec.errors import (
    OneCAuthError,
    OneCBadResponse,
    OneCConfigError,
    OneCNotFoundError,
    OneCODataError,
    OneCTransientError,
)

PASSWORD = "S3cr3t-пароль"


def make_client(handler, **kw) -> OneCClient:
    kw.setdefault("retry", RetryPolicy(max_retries=3, backoff_base=0.001, backoff_max=0.002))
    return OneCClient("http://1c.test/base", "Администратор", PASSWORD, transport=httpx.MockTransport(handler), **kw)


def odata(value, status=200):
    return httpx.Response(status, content=json.dumps({"odata.metadata": "x", "value": value}, ensure_ascii=False),
                          headers={"Content-Type": "application/json;charset=utf-8"})


def odata_error(status, code, message):
    body = {"odata.error": {"code": code, "message": {"lang": "ru", "value": message}}}
    return httpx.Response(status, content=json.dumps(body, ensure_ascii=False),
                          headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("url", ["http://h/base", "http://h/base/", "http://h/base/hs",
                                 "http://h/base/odata/standard.odata", "http://h/base/odata/standard.odata/"])
def test_odata_root_accepts_all_documented_forms(url):
    assert odata_root(url) == "http://h/base/odata/standard.odata/"


def test_odata_root_rejects_non_http():
    with pytest.raises(OneCConfigError):
        odata_root("1c-server/base")


def test_sentinels_and_currency_mapping():
    assert empty_to_none("00000000-0000-0000-0000-000000000000") is None
    assert empty_to_none("0001-01-01T00:00:00") is None
    assert empty_to_none("") is None and empty_to_none("x") == "x"
    assert currency_letters("398", "тг.") == "KZT"
    assert currency_letters(" 643 ", "руб.") == "RUB"
    assert currency_letters("", "usd") == "USD"
    assert currency_letters("999", "тг.") is None


def test_cyrillic_basic_auth_is_utf8_and_json_is_requested():
    seen = {}

    def handler(request: httpx.Request):
        seen["auth"] = request.headers["Authorization"]
        seen["accept"] = request.headers["Accept"]
        seen["query"] = parse_qs(urlsplit(str(request.url)).query)
        return odata([])

    make_client(handler).list_page("Catalog_Номенклатура", top=10)
    user_pass = base64.b64decode(seen["auth"].split()[1]).decode("utf-8")
    assert user_pass == f"Администратор:{PASSWORD}"
    assert seen["accept"] == "application/json"
    assert seen["query"]["$format"] == ["json"]


def test_paging_until_short_page_with_stable_order_and_select():
    rows = [{"Ref_Key": f"{i:08d}", "Description": f"Товар {i}"} for i in range(25)]
    requests = []

    def handler(request: httpx.Request):
        q = parse_qs(urlsplit(str(request.url)).query)
        requests.append(q)
        skip, top = int(q["$skip"][0]), int(q["$top"][0])
        return odata(rows[skip: skip + top])

    client = make_client(handler, prefetch=2)
    got = [r for page in client.iter_pages("Catalog_Номенклатура", page_size=10, select=["Ref_Key", "Description"],
                                           filter_="IsFolder eq false") for r in page]
    assert got == rows
    assert all(q["$orderby"] == ["Ref_Key"] and q["$select"] == ["Ref_Key,Description"] for q in requests)
    assert all(q["$filter"] == ["IsFolder eq false"] for q in requests)
    # pages 0,1,2 needed; prefetch may ask one page past the end, never more
    assert sorted(int(q["$skip"][0]) for q in requests)[:3] == [0, 10, 20]
    assert len(requests) <= 4


def test_paging_exact_multiple_ends_on_empty_page():
    rows = [{"Ref_Key": f"{i:08d}"} for i in range(20)]

    def handler(request: httpx.Request):
        q = parse_qs(urlsplit(str(request.url)).query)
        skip, top = int(q["$skip"][0]), int(q["$top"][0])
        return odata(rows[skip: skip + top])

    got = [r for page in make_client(handler).iter_pages("X", page_size=10) for r in page]
    assert got == rows


def test_401_names_user_not_password():
    client = make_client(lambda r: httpx.Response(401, text="Unauthorized"))
    with pytest.raises(OneCAuthError) as err:
        client.list_page("Catalog_Номенклатура")
    assert "Администратор" in str(err.value) and PASSWORD not in str(err.value)


def test_404_without_odata_body_means_not_published():
    client = make_client(lambda r: httpx.Response(404, text="<html>Not Found</html>",
                                                  headers={"Content-Type": "text/html"}))
    with pytest.raises(OneCNotFoundError, match="not published"):
        client.list_page("Catalog_Номенклатура")


def test_404_with_odata_error_names_the_object():
    client = make_client(lambda r: odata_error(404, "8", "Не найден тип сущности"))
    with pytest.raises(OneCNotFoundError) as err:
        client.list_page("Catalog_Нет")
    assert "Catalog_Нет" in str(err.value) and "code 8" in str(err.value)


def test_business_error_is_surfaced_with_code_and_not_retried():
    calls = []

    def handler(request):
        calls.append(1)
        return odata_error(500, "-1", "Ошибка при выполнении обработчика - 'ОбработкаЗаполнения'")

    with pytest.raises(OneCODataError) as err:
        make_client(handler).send("POST", "Document_ЗаказКлиента", "creating an order", {"Товары": []})
    assert "code -1" in str(err.value) and "ОбработкаЗаполнения" in str(err.value)
    assert len(calls) == 1


def test_minus_one_on_a_read_is_retried():
    script = iter([odata_error(500, "-1", "Конфликт блокировок"), odata([{"Ref_Key": "a"}])])
    client = make_client(lambda r: next(script))
    assert client.list_page("Catalog_Номенклатура") == [{"Ref_Key": "a"}] and client.retries_done == 1


def test_transient_5xx_and_drops_are_retried_then_succeed():
    script = iter(["503", "drop", "timeout", "ok"])

    def handler(request):
        step = next(script)
        if step == "503":
            return httpx.Response(503, text="<html>busy</html>", headers={"Content-Type": "text/html"})
        if step == "drop":
            raise httpx.RemoteProtocolError("Server disconnected", request=request)
        if step == "timeout":
            raise httpx.ReadTimeout("timed out", request=request)
        return odata([{"Ref_Key": "a"}])

    client = make_client(handler)
    assert client.list_page("X") == [{"Ref_Key": "a"}]
    assert client.retries_done == 3


def test_retry_budget_exhausted_raises_transient():
    client = make_client(lambda r: httpx.Response(502, text="bad gateway"))
    with pytest.raises(OneCTransientError, match="HTTP 502"):
        client.list_page("X")


def test_broken_json_page_is_retried_then_reported_with_url():
    client = make_client(lambda r: httpx.Response(200, content=b'{"value": [{"Ref_Key": "a"',
                                                  headers={"Content-Type": "application/json"}))
    with pytest.raises(OneCTransientError) as err:
        client.list_page("Catalog_Номенклатура", top=5, skip=10)
    assert "broken JSON" in str(err.value) and "skip 10" in str(err.value)


def test_html_login_page_with_200_is_an_error():
    client = make_client(lambda r: httpx.Response(200, text="<html>Вход</html>",
                                                  headers={"Content-Type": "text/html"}))
    with pytest.raises(OneCBadResponse, match="instead of JSON"):
        client.list_page("X")


def test_missing_entity_sets_are_a_config_error():
    doc = {"odata.metadata": "m", "value": [{"name": "Catalog_Номенклатура", "url": "Catalog_Номенклатура"}]}
    client = make_client(lambda r: httpx.Response(200, content=json.dumps(doc, ensure_ascii=False),
                                                  headers={"Content-Type": "application/json"}))
    with pytest.raises(OneCConfigError) as err:
        client.check_entity_sets(["Catalog_Номенклатура", "InformationRegister_ЦеныНоменклатуры25_RecordType"])
    assert "ЦеныНоменклатуры25" in str(err.value) and "Catalog_Номенклатура," not in str(err.value)


def test_virtual_table_path_is_percent_encoded_utf8():
    seen = {}

    def handler(request):
        seen["raw"] = request.url.raw_path.decode()
        return odata([])

    client = make_client(handler)
    path = client.virtual_table_path("AccumulationRegister_ТоварыНаСкладах", "Balance",
                                     Dimensions="'Номенклатура,Склад'")
    client.list_page("AccumulationRegister_ТоварыНаСкладах", path=path, orderby=None)
    assert seen["raw"].isascii()
    assert "Balance(Dimensions='" in unquote(seen["raw"])
