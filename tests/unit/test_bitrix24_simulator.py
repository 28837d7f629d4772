"""Bitrix24 simulator: envelopes, errors, encodings, limits, batch, lists, CRM rules, faults, events.

The limiters read an injected clock, so nothing here sleeps for rate-limit reasons; the few tests
that need real sockets (dropped connections, redirects, event delivery) use loopback servers.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from simulators.bitrix24 import FaultConfig, LimitConfig, create_app
from simulators.bitrix24.params import decode_request, php_parse_str
from simulators.serving import ProcessServer, ThreadServer

with warnings.catch_warnings():  # starlette 1.x nags about httpx in its TestClient
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

BASE = "/rest/1/zetademo/"
TIME_KEYS = {"start", "finish", "duration", "processing", "date_start", "date_finish", "operating"}


class FakeClock:
    """Monotonic clock the test moves by hand."""

    def __init__(self, start: float = 10_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(clock: FakeClock) -> Any:
    return create_app(clock=clock, webhooks={
        (1, "zetademo"): {"scopes": ["crm", "task", "user"]},
        (3, "crmonly"): {"scopes": ["crm"]},
    })


@pytest.fixture
def client(app: Any) -> TestClient:
    return TestClient(app)


def call(client: TestClient, method: str, payload: dict[str, Any] | None = None, base: str = BASE) -> httpx.Response:
    return client.post(f"{base}{method}.json", json=payload or {})


def ok(client: TestClient, method: str, payload: dict[str, Any] | None = None) -> Any:
    response = call(client, method, payload)
    assert response.status_code == 200, response.text
    return response.json()


# --- envelopes -----------------------------------------------------------------------------------


def test_success_and_error_envelopes(client: TestClient) -> None:
    body = ok(client, "crm.lead.add", {"fields": {"TITLE": "Chatbot: Иван", "OPPORTUNITY": 45000}})
    assert isinstance(body["result"], int)
    assert set(body["time"]) >= TIME_KEYS
    assert body["time"]["date_start"].endswith("+05:00")

    got = ok(client, "crm.lead.get", {"id": body["result"]})["result"]
    assert got["ID"] == str(body["result"]) and got["OPPORTUNITY"] == "45000.00" and got["ASSIGNED_BY_ID"] == "1"

    listed = ok(client, "crm.lead.list", {"select": ["ID", "OPPORTUNITY"]})
    assert listed["total"] == 1 and "next" not in listed
    assert listed["result"] == [{"ID": str(body["result"]), "OPPORTUNITY": "45000.00"}]

    error = call(client, "crm.lead.get", {"id": 999})
    assert error.status_code == 400
    assert error.json() == {"error": "", "error_description": "Not found"}  # no "time" key

    assert call(client, "crm.lead.get", {}).json()["error_description"] == "ID is not defined or invalid."
    assert call(client, "crm.lead.update", {"id": "abc", "fields": {}}).json()["error_description"] == \
        "ID is not defined or invalid."


def test_auth_and_routing_errors(client: TestClient, app: Any) -> None:
    wrong = client.post("/rest/1/nope/crm.lead.list.json", json={})
    assert (wrong.status_code, wrong.json()["error"]) == (401, "INVALID_CREDENTIALS")
    assert "time" not in wrong.json()

    malformed = client.post("/rest/zetademo/crm.lead.list.json", json={})
    assert malformed.status_code == 404
    assert malformed.json() == {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}

    unknown = call(client, "crm.lead.frobnicate")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "ERROR_METHOD_NOT_FOUND")

    no_auth = client.post("/rest/crm.lead.list", json={})
    assert (no_auth.status_code, no_auth.json()["error"]) == (401, "NO_AUTH_FOUND")

    scope = call(client, "tasks.task.add", {"fields": {"TITLE": "x", "RESPONSIBLE_ID": 1}}, base="/rest/3/crmonly/")
    assert (scope.status_code, scope.json()["error"]) == (401, "insufficient_scope")
    assert call(client, "crm.lead.list", base="/rest/3/crmonly/").status_code == 200

    client.post("/_admin/faults", json={"auth_error_status": 403})
    assert client.post("/rest/1/nope/crm.lead.list", json={}).status_code == 403
    client.post("/_admin/faults", json={"overload": True})
    overload = call(client, "crm.lead.list")
    assert (overload.status_code, overload.json()["error"]) == (403, "OVERLOAD_LIMIT")
    client.post("/_admin/faults", json={"reset": True, "expired": True})
    assert call(client, "crm.lead.list").json()["error"] == "INVALID_CREDENTIALS"
    client.post("/_admin/faults", json={"reset": True, "https_required": True})
    https = call(client, "crm.lead.list")
    assert (https.status_code, https.json()) == (400, {"error": "INVALID_REQUEST", "error_description": "Https required."})
    assert client.post(f"{BASE}crm.lead.list", json={}, headers={"X-Forwarded-Proto": "https"}).status_code == 200
    client.post("/_admin/faults", json={"reset": True, "scopes": {"1/zetademo": ["task"]}})
    assert call(client, "crm.lead.list").json()["error"] == "insufficient_scope"


# --- encodings -----------------------------------------------------------------------------------


def test_php_parse_str_rules() -> None:
    parsed = php_parse_str("fields[PHONE][0][VALUE]=%2B7701&fields[TITLE]=a+b&select[]=ID&select[]=PHONE"
                           "&filter[>ID]=5&a.b=1&x[=3")
    assert parsed["fields"]["PHONE"][0]["VALUE"] == "+7701"
    assert parsed["fields"]["TITLE"] == "a b"
    assert parsed["select"] == {0: "ID", 1: "PHONE"}
    assert parsed["filter"] == {">ID": "5"} and parsed["a_b"] == "1" and parsed["x_"] == "3"
    assert decode_request("GET", "application/json", b"id=5", b'{"id": 7}') == {"id": "5"}
    assert decode_request("POST", "application/json", b"id=5", b"{broken") == {"id": "5"}


def test_form_query_and_json_encodings(client: TestClient) -> None:
    form = ("fields[TITLE]=Заказ+из+бота&fields[NAME]=Әлия&fields[PHONE][0][VALUE]=%2B77011234567"
            "&fields[PHONE][0][VALUE_TYPE]=MOBILE&fields[UNKNOWN_FIELD]=x")
    lead_id = client.post(f"{BASE}crm.lead.add", content=form.encode(),
                          headers={"Content-Type": "application/x-www-form-urlencoded"}).json()["result"]
    lead = client.get(f"{BASE}crm.lead.get?id={lead_id}").json()["result"]
    assert lead["TITLE"] == "Заказ из бота" and lead["NAME"] == "Әлия"
    assert lead["PHONE"][0]["VALUE"] == "+77011234567" and "UNKNOWN_FIELD" not in lead

    raw_plus = client.post(f"{BASE}crm.lead.add", content=b"fields[TITLE]=x&fields[PHONE][0][VALUE]=+7701",
                           headers={"Content-Type": "application/x-www-form-urlencoded"}).json()["result"]
    assert ok(client, "crm.lead.get", {"id": raw_plus})["result"]["PHONE"][0]["VALUE"] == " 7701"

    listed = client.get(f"{BASE}crm.lead.list?select[]=ID&select[]=TITLE&filter[>ID]={lead_id - 1}"
                        "&order[ID]=ASC").json()
    assert [r["TITLE"] for r in listed["result"]] == ["Заказ из бота", "x"]

    upper = ok(client, "crm.lead.add", {"FIELDS": {"TITLE": "UPPER works for classic"}})["result"]
    assert ok(client, "crm.lead.get", {"ID": upper})["result"]["TITLE"] == "UPPER works for classic"

    # GET with a JSON body: the body is ignored
    ignored = client.request("GET", f"{BASE}crm.duplicate.findbycomm", content=b'{"type":"PHONE","values":["1"]}',
                             headers={"Content-Type": "application/json"})
    assert ignored.status_code == 400
    assert ignored.json() == {"error": "", "error_description": "Communication type is not defined."}

    kazakh = "Қазақстан Республикасы, Өскемен — ұлы үміт"
    cid = ok(client, "crm.contact.add", {"fields": {"NAME": kazakh}})["result"]
    assert ok(client, "crm.contact.get", {"id": cid})["result"]["NAME"] == kazakh


def test_multipart_form(client: TestClient) -> None:
    response = client.post(f"{BASE}crm.lead.add", files={"fields[TITLE]": (None, "Мультипарт")})
    lead = ok(client, "crm.lead.get", {"id": response.json()["result"]})["result"]
    assert lead["TITLE"] == "Мультипарт"


# --- rate limits ---------------------------------------------------------------------------------


def test_leaky_bucket_threshold_then_503_then_drain(client: TestClient, clock: FakeClock) -> None:
    for _ in range(50):
        assert call(client, "crm.lead.list").status_code == 200
    refused = call(client, "crm.lead.list")
    assert refused.status_code == 503
    assert refused.json() == {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
    assert "retry-after" not in refused.headers
    clock.advance(1.0)  # drains 2
    assert call(client, "crm.lead.list").status_code == 200
    assert call(client, "crm.lead.list").status_code == 200
    assert call(client, "crm.lead.list").status_code == 503
    clock.advance(0.5)
    batch = call(client, "batch", {"cmd": {f"c{i}": "crm.lead.list" for i in range(50)}})
    assert batch.status_code == 200  # a batch of 50 is one request
    assert call(client, "crm.lead.list").status_code == 503
    stats = client.get("/_admin/stats").json()
    assert stats["rate_limited_503"] == 3 and stats["batch_commands"]["crm.lead.list"] == 50

    client.post("/_admin/limits", json={"burst": 250, "drain_per_second": 5})
    assert call(client, "crm.lead.list").status_code == 200


def test_operating_limit_blocks_only_that_method(client: TestClient, clock: FakeClock) -> None:
    client.post("/_admin/limits", json={"operating_limit_seconds": 10, "operating_cost_seconds": {
        "crm.lead.add": 4.0, "crm.lead.list": 0.1}})
    first = ok(client, "crm.lead.add", {"fields": {"TITLE": "a"}})
    assert first["time"]["operating"] == 4.0 and first["time"]["processing"] == 4.0
    reset_at = first["time"]["operating_reset_at"]
    assert isinstance(reset_at, int) and reset_at > first["time"]["start"] + 590
    ok(client, "crm.lead.add", {"fields": {"TITLE": "b"}})
    assert ok(client, "crm.lead.add", {"fields": {"TITLE": "c"}})["time"]["operating"] == 12.0
    blocked = call(client, "crm.lead.add", {"fields": {"TITLE": "d"}})
    assert blocked.status_code == 429
    assert blocked.json() == {"error": "OPERATION_TIME_LIMIT",
                              "error_description": "Method is blocked due to operation time limit."}
    listed = ok(client, "crm.lead.list")  # other methods keep working; ≤ 0.1 s is not counted
    assert listed["total"] == 3 and listed["time"]["operating"] == 0.0 and "operating_reset_at" not in listed["time"]

    batch = call(client, "batch", {"cmd": {"add": "crm.lead.add?fields[TITLE]=e", "list": "crm.lead.list"}})
    assert batch.status_code == 200
    inner = batch.json()["result"]
    assert inner["result_error"]["add"]["error"] == "OPERATION_TIME_LIMIT"
    assert inner["result_total"] == {"list": 3}
    stats = client.get("/_admin/stats").json()
    assert (stats["operation_limited_429"], stats["operation_limited_in_batch"]) == (1, 1)

    clock.advance(601)  # the ten one-minute buckets aged out
    assert call(client, "crm.lead.add", {"fields": {"TITLE": "f"}}).status_code == 200


def test_operating_fixed_ban(client: TestClient, clock: FakeClock) -> None:
    client.post("/_admin/limits", json={"operating_limit_seconds": 5, "operating_ban_seconds": 300,
                                        "operating_cost_seconds": {"crm.deal.add": 6.0}})
    assert call(client, "crm.deal.add", {"fields": {}}).status_code == 200
    assert call(client, "crm.deal.add", {"fields": {}}).status_code == 429
    clock.advance(299)
    assert call(client, "crm.deal.add", {"fields": {}}).status_code == 429
    clock.advance(2)
    assert call(client, "crm.deal.add", {"fields": {}}).status_code == 200


def test_operating_batch_accounting_modes(client: TestClient) -> None:
    client.post("/_admin/limits", json={"operating_cost_seconds": {"crm.lead.add": 3.0}})
    nested = ok(client, "batch", {"cmd": {"a": "crm.lead.add", "b": "crm.lead.add"}})
    assert nested["time"]["operating"] == 0.0 and nested["time"]["processing"] == 6.0
    assert nested["result"]["result_time"]["b"]["operating"] == 6.0  # billed to crm.lead.add

    client.post("/_admin/limits", json={"batch_accounting": "batch", "reset_counters": True})
    billed = ok(client, "batch", {"cmd": {"a": "crm.lead.add", "b": "crm.lead.add"}})
    assert billed["time"]["operating"] == 3.0  # half weight, SRC BATCH_TIME_WEIGHT
    assert billed["result"]["result_time"]["a"]["operating"] == 0.0  # the batch figure before this batch
    again = ok(client, "batch", {"cmd": {"a": "crm.lead.add"}})
    assert again["result"]["result_time"]["a"]["operating"] == 3.0 and again["time"]["operating"] == 4.5
    assert ok(client, "crm.lead.add", {"fields": {}})["time"]["operating"] == 3.0


# --- batch ---------------------------------------------------------------------------------------


def test_batch_references_and_shapes(client: TestClient) -> None:
    cmd = {
        "lead": "crm.lead.add?fields[TITLE]=Chatbot%20order&fields[PHONE][0][VALUE]=%2B77011234567",
        "comment": "crm.timeline.comment.add?fields[ENTITY_ID]=$result[lead]&fields[ENTITY_TYPE]=lead"
                   "&fields[COMMENT]=Hello+from+bot",
        "task": "tasks.task.add?fields[TITLE]=Call%20back&fields[RESPONSIBLE_ID]=3"
                "&fields[UF_CRM_TASK][0]=L_$result[lead]",
        "list": "crm.lead.list?select[]=ID&select[]=TITLE",
        "get": "crm.lead.get?id=$result[list][0][ID]",
        "title": "crm.lead.update?id=$result[lead]&fields[COMMENTS]=$result[get][TITLE]",
        "skipped": 42,
    }
    response = call(client, "batch", {"halt": 1, "cmd": cmd})
    assert response.status_code == 200
    body = response.json()["result"]
    lead_id = body["result"]["lead"]
    assert body["result_error"] == [] and body["result"]["comment"] > 0
    assert body["result"]["task"]["task"]["responsibleId"] == "3"
    assert body["result_total"] == {"list": 1} and body["result_next"] == []
    assert set(body["result_time"]) == {"lead", "comment", "task", "list", "get", "title"}
    assert "skipped" not in body["result"]
    state = client.get("/_admin/state").json()
    assert state["tasks"][0]["UF_CRM_TASK"] == [f"L_{lead_id}"]
    assert state["comments"][0]["COMMENT"] == "Hello from bot"
    assert state["leads"][0]["COMMENTS"] == "Chatbot order"


def test_batch_halt_errors_and_limits(client: TestClient) -> None:
    halted = call(client, "batch", {"halt": 1, "cmd": {
        "bad": "crm.lead.get?id=0", "never": "crm.lead.add?fields[TITLE]=x"}}).json()["result"]
    assert halted["result"] == [] and halted["result_time"] == []
    assert halted["result_error"] == {"bad": {"error": "", "error_description": "ID is not defined or invalid."}}
    assert client.get("/_admin/state").json()["counts"]["leads"] == 0

    go_on = call(client, "batch", {"halt": 0, "cmd": ["crm.lead.get?id=0", "crm.lead.add?fields[TITLE]=y",
                                                     "batch?cmd[a]=crm.lead.list"]}).json()["result"]
    assert go_on["result"] == {"1": 1}  # numeric keys
    assert go_on["result_error"]["0"]["error_description"] == "ID is not defined or invalid."
    assert go_on["result_error"]["2"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED"

    listy = call(client, "batch", {"cmd": ["crm.lead.list", "crm.lead.list"]}).json()["result"]
    assert isinstance(listy["result"], list) and listy["result_total"] == [1, 1]

    many = call(client, "batch", {"cmd": {f"k{i}": "crm.status.list" for i in range(52)}})
    assert many.status_code == 200
    body = many.json()["result"]
    assert len(body["result"]) == 50
    assert body["result_error"] == {
        "k50": {"error": "ERROR_BATCH_LENGTH_EXCEEDED", "error_description": "Max batch length exceeded"},
        "k51": {"error": "ERROR_BATCH_LENGTH_EXCEEDED", "error_description": "Max batch length exceeded"}}

    fragment = call(client, "batch", {"cmd": {"a": "crm.lead.add?fields[TITLE]=Order #5&fields[NAME]=lost"}})
    created = fragment.json()["result"]["result"]["a"]
    assert ok(client, "crm.lead.get", {"id": created})["result"]["TITLE"] == "Order "  # parse_url cut "#5…"


# --- lists ---------------------------------------------------------------------------------------


def test_paging_total_next_and_fast_scan(client: TestClient, app: Any) -> None:
    for i in range(120):
        app.store.add_entity("lead", {"TITLE": f"lead {i}"}, 1)
    first = ok(client, "crm.lead.list", {"order": {"ID": "ASC"}, "select": ["ID"]})
    assert (len(first["result"]), first["total"], first["next"]) == (50, 120, 50)
    second = ok(client, "crm.lead.list", {"order": {"ID": "ASC"}, "start": 50})
    assert second["result"][0]["ID"] == "51" and second["next"] == 100
    last = ok(client, "crm.lead.list", {"order": {"ID": "ASC"}, "start": 100})
    assert len(last["result"]) == 20 and "next" not in last and last["total"] == 120
    rounded = ok(client, "crm.lead.list", {"order": {"ID": "ASC"}, "start": 30})
    assert rounded["result"][0]["ID"] == "1"  # classic lists page by page number
    fast = ok(client, "crm.lead.list", {"order": {"ID": "ASC"}, "filter": {">ID": 100}, "start": -1})
    assert len(fast["result"]) == 20 and "total" not in fast and "next" not in fast
    items = ok(client, "crm.item.list", {"entityTypeId": 1, "start": 30, "order": {"id": "ASC"},
                                         "select": ["id", "title"]})
    assert items["result"]["items"][0] == {"id": 31, "title": "lead 30"} and items["next"] == 80


def test_filters_order_and_select(client: TestClient, app: Any) -> None:
    for n, (title, source, origin) in enumerate(
            [("Алма", "WEB", "conv-1"), ("Банан", "UC_BOT", "conv-2"), ("Вишня", "UC_BOT", None)], start=1):
        ok(client, "crm.lead.add", {"fields": {
            "TITLE": title, "SOURCE_ID": source, "ORIGINATOR_ID": "zeta-bot" if origin else None, "ORIGIN_ID": origin,
            "OPPORTUNITY": n * 1000, "UF_CRM_CHANNEL": "telegram", "EMAIL": [{"VALUE": f"u{n}@ex.kz"}]}})

    def ids(flt: dict[str, Any], order: dict[str, str] | None = None) -> list[str]:
        body = ok(client, "crm.lead.list", {"filter": flt, "order": order or {"ID": "ASC"}, "select": ["ID"]})
        return [r["ID"] for r in body["result"]]

    assert ids({">ID": 1}) == ["2", "3"]
    assert ids({">=OPPORTUNITY": 2000, "<OPPORTUNITY": 3000}) == ["2"]
    assert ids({"=SOURCE_ID": "UC_BOT"}) == ["2", "3"]
    assert ids({"!SOURCE_ID": "UC_BOT"}) == ["1"]
    assert ids({"%TITLE": "ан"}) == ["2"]
    assert ids({"@ID": [1, 3]}) == ["1", "3"]
    assert ids({"ORIGINATOR_ID": "zeta-bot", "ORIGIN_ID": "conv-2"}) == ["2"]
    assert ids({"EMAIL": "U3@EX.KZ"}) == ["3"]
    assert ids({}, {"OPPORTUNITY": "DESC"}) == ["3", "2", "1"]
    assert ids({"NO_SUCH_FIELD": "x"}) == ["1", "2", "3"]  # unknown filter keys are ignored
    assert ids({"origin_id": "conv-2"}) == ["1", "2", "3"]  # ... and so are wrongly cased ones

    star = ok(client, "crm.lead.list", {"select": ["*"], "filter": {"ID": 1}})["result"][0]
    assert "EMAIL" not in star and "UF_CRM_CHANNEL" not in star and star["SOURCE_ID"] == "WEB"
    named = ok(client, "crm.lead.list", {"select": ["ID", "EMAIL", "UF_*"], "filter": {"ID": 1}})["result"][0]
    assert named["EMAIL"][0]["VALUE"] == "u1@ex.kz" and named["UF_CRM_CHANNEL"] == "telegram"

    bad = call(client, "crm.lead.list", {"order": {"ID": "SIDEWAYS"}})
    assert (bad.status_code, bad.json()["error"]) == (400, "ERROR_ARGUMENT")
    assert call(client, "crm.lead.list", {"filter": "ID=1"}).json()["error_description"] == \
        "Parameter 'filter' must be array."


# --- CRM data rules ------------------------------------------------------------------------------


def test_multifields_append_update_delete(client: TestClient) -> None:
    cid = ok(client, "crm.contact.add", {"fields": {"NAME": "Иван", "PHONE": [{"VALUE": "+77010000001",
                                                                                "VALUE_TYPE": "MOBILE"}]}})["result"]
    ok(client, "crm.contact.update", {"id": cid, "fields": {"PHONE": [{"VALUE": "+77010000002"}]}})
    phones = ok(client, "crm.contact.get", {"id": cid})["result"]["PHONE"]
    assert [p["VALUE"] for p in phones] == ["+77010000001", "+77010000002"]  # appended
    first, second = phones
    ok(client, "crm.contact.update", {"id": cid, "fields": {"PHONE": [
        {"ID": first["ID"], "VALUE": "+77010000009"}, {"ID": second["ID"], "DELETE": "Y"}]}})
    phones = ok(client, "crm.contact.get", {"id": cid})["result"]["PHONE"]
    assert [(p["ID"], p["VALUE"]) for p in phones] == [(first["ID"], "+77010000009")]
    ok(client, "crm.contact.update", {"id": cid, "fields": {"PHONE": [{"ID": first["ID"], "VALUE": ""}]}})
    contact = ok(client, "crm.contact.get", {"id": cid})["result"]
    assert "PHONE" not in contact and contact["HAS_PHONE"] == "N"


def test_deals_pipelines_stages_and_statuses(client: TestClient) -> None:
    categories = ok(client, "crm.category.list", {"entityTypeId": 2})["result"]["categories"]
    assert [(c["id"], c["name"]) for c in categories] == [(0, "Общая"), (1, "Чат-бот")]
    stages = ok(client, "crm.status.list", {"filter": {"ENTITY_ID": "DEAL_STAGE_1"}, "order": {"SORT": "ASC"}})
    assert [s["STATUS_ID"] for s in stages["result"]][:2] == ["C1:NEW", "C1:PREPARATION"]
    assert stages["result"][0]["EXTRA"]["SEMANTICS"] == "process" and stages["total"] == len(stages["result"])
    sources = ok(client, "crm.status.list", {"filter": {"ENTITY_ID": "SOURCE"}})["result"]
    assert "UC_BOT" in {s["STATUS_ID"] for s in sources}

    deal = ok(client, "crm.deal.add", {"fields": {"TITLE": "Заказ", "CATEGORY_ID": 1,
                                                  "STAGE_ID": "C1:PREPARATION"}})["result"]
    got = ok(client, "crm.deal.get", {"id": deal})["result"]
    assert (got["CATEGORY_ID"], got["STAGE_ID"], got["STAGE_SEMANTIC_ID"]) == ("1", "C1:PREPARATION", "P")
    wrong = ok(client, "crm.deal.add", {"fields": {"CATEGORY_ID": 1, "STAGE_ID": "PREPARATION"}})["result"]
    assert ok(client, "crm.deal.get", {"id": wrong})["result"]["STAGE_ID"] == "C1:NEW"
    by_stage = ok(client, "crm.deal.add", {"fields": {"STAGE_ID": "C1:EXECUTING"}})["result"]
    assert ok(client, "crm.deal.get", {"id": by_stage})["result"]["CATEGORY_ID"] == "1"
    ok(client, "crm.deal.update", {"id": deal, "fields": {"CATEGORY_ID": 0, "STAGE_ID": "C1:WON"}})
    got = ok(client, "crm.deal.get", {"id": deal})["result"]
    assert (got["CATEGORY_ID"], got["STAGE_ID"], got["CLOSED"]) == ("1", "C1:WON", "Y")
    assert ok(client, "crm.deal.fields")["result"]["CATEGORY_ID"]["isImmutable"] is True
    assert ok(client, "crm.lead.fields")["result"]["ORIGIN_ID"]["type"] == "string"


def test_product_rows_replace_the_whole_set(client: TestClient) -> None:
    deal = ok(client, "crm.deal.add", {"fields": {"TITLE": "С товарами"}})["result"]
    ok(client, "crm.deal.productrows.set", {"id": deal, "rows": [
        {"PRODUCT_NAME": "Чай", "PRICE": 1500, "QUANTITY": 2}, {"PRODUCT_NAME": "Кофе", "PRICE": 3000}]})
    assert len(ok(client, "crm.deal.productrows.get", {"id": deal})["result"]) == 2
    assert ok(client, "crm.deal.get", {"id": deal})["result"]["OPPORTUNITY"] == "6000.00"
    ok(client, "crm.deal.productrows.set", {"id": deal, "rows": [{"PRODUCT_NAME": "Сахар", "PRICE": 500}]})
    rows = ok(client, "crm.deal.productrows.get", {"id": deal})["result"]
    assert [(r["PRODUCT_NAME"], r["QUANTITY"]) for r in rows] == [("Сахар", 1.0)]
    unnamed = ok(client, "crm.item.productrow.set", {"ownerType": "D", "ownerId": deal,
                                                     "productRows": [{"price": 10}]})["result"]["productRows"]
    assert unnamed[0]["productName"].startswith("[") and len(unnamed) == 1
    assert call(client, "crm.deal.productrows.set", {"id": 999, "rows": []}).json()["error_description"] == "Not found"


def test_find_by_comm(client: TestClient) -> None:
    lead = ok(client, "crm.lead.add", {"fields": {"PHONE": [{"VALUE": "+7 777 123-45-67"}]}})["result"]
    contact = ok(client, "crm.contact.add", {"fields": {"PHONE": [{"VALUE": "+77771234567"}],
                                                       "EMAIL": [{"VALUE": "Ivan@Example.kz"}]}})["result"]
    both = ok(client, "crm.duplicate.findbycomm", {"type": "PHONE", "values": ["+77771234567", 77771234567]})
    assert both["result"] == {"LEAD": [lead], "CONTACT": [contact]}
    only = ok(client, "crm.duplicate.findbycomm", {"type": "phone", "values": ["+77771234567"],
                                                   "entity_type": "CONTACT"})
    assert only["result"] == {"CONTACT": [contact]}
    assert ok(client, "crm.duplicate.findbycomm", {"type": "EMAIL", "values": ["ivan@example.kz"]})["result"] == \
        {"CONTACT": [contact]}
    assert ok(client, "crm.duplicate.findbycomm", {"type": "PHONE", "values": [77771234567]})["result"] == []
    assert ok(client, "crm.duplicate.findbycomm", {"type": "PHONE", "values": ["+70000000000"]})["result"] == []
    errors = {
        "Deal is not supported in current context.": {"type": "PHONE", "values": ["1"], "entity_type": "DEAL"},
        "Communication values is not defined.": {"type": "PHONE", "values": "+77771234567"},
        "Communication type 'FAX' is not supported in current context.": {"type": "FAX", "values": ["1"]},
    }
    for description, payload in errors.items():
        response = call(client, "crm.duplicate.findbycomm", payload)
        assert (response.status_code, response.json()) == (400, {"error": "", "error_description": description})


def test_item_methods_are_camel_case(client: TestClient) -> None:
    created = ok(client, "crm.item.add", {"entityTypeId": 2, "fields": {
        "title": "Сделка из бота", "categoryId": 1, "stageId": "C1:PREPARATION", "originatorId": "zeta-bot",
        "originId": "conv-9", "opportunity": 45000, "assignedById": 5}})["result"]["item"]
    assert created["id"] == 1 and created["stageId"] == "C1:PREPARATION" and created["categoryId"] == 1
    assert created["assignedById"] == 5 and created["opportunity"] == 45000.0
    found = ok(client, "crm.item.list", {"entityTypeId": 2, "filter": {"=originId": "conv-9"}})
    assert [i["id"] for i in found["result"]["items"]] == [1] and found["total"] == 1
    lead = ok(client, "crm.item.add", {"entityTypeId": 1, "fields": {
        "title": "Лид", "fm": [{"typeId": "PHONE", "valueType": "WORK", "value": "+77010000000"}]}})["result"]
    assert lead["item"]["fm"][0]["value"] == "+77010000000"
    assert ok(client, "crm.lead.get", {"id": lead["item"]["id"]})["result"]["PHONE"][0]["VALUE"] == "+77010000000"
    missing = call(client, "crm.item.get", {"entityTypeId": 2, "id": 77})
    assert (missing.status_code, missing.json()["error"]) == (400, "NOT_FOUND")
    bad_filter = call(client, "crm.item.list", {"entityTypeId": 2, "filter": {"nonsense": 1}})
    assert bad_filter.json()["error"] == "INVALID_ARG_VALUE"


def test_timeline_activities_tasks_and_users(client: TestClient) -> None:
    lead = ok(client, "crm.lead.add", {"fields": {"TITLE": "x"}})["result"]
    comment = ok(client, "crm.timeline.comment.add", {"fields": {
        "ENTITY_ID": lead, "ENTITY_TYPE": "lead", "COMMENT": "marker:ext-42 Клиент спросил о доставке"}})
    assert isinstance(comment["result"], int)
    upper = call(client, "crm.timeline.comment.add", {"FIELDS": {"ENTITY_ID": lead, "ENTITY_TYPE": "lead",
                                                                 "COMMENT": "x"}})
    assert upper.json() == {"error": "100", "error_description": "Could not find value for parameter {fields}"}
    owner = call(client, "crm.timeline.comment.add", {"fields": {"ENTITY_ID": 99, "ENTITY_TYPE": "lead",
                                                                 "COMMENT": "x"}})
    assert owner.json()["error"] == "OWNER_NOT_FOUND"
    found = ok(client, "crm.timeline.comment.list", {"filter": {"ENTITY_ID": lead, "ENTITY_TYPE": "lead",
                                                                "%COMMENT": "marker:ext-42"}})
    assert [c["ID"] for c in found["result"]] == [str(comment["result"])]

    todo = ok(client, "crm.activity.todo.add", {"ownerTypeId": 1, "ownerId": lead,
                                                "deadline": "2026-01-15T18:00:00+05:00", "title": "Перезвонить"})
    assert set(todo["result"]) == {"id"}
    missing = call(client, "crm.activity.todo.add", {"ownerTypeId": 1, "ownerId": lead})
    assert missing.json()["error"] == "100" and "deadline" in missing.json()["error_description"]

    no_title = call(client, "tasks.task.add", {"fields": {"RESPONSIBLE_ID": 1}})
    assert (no_title.status_code, no_title.json()["error"]) == (400, "ERROR_CORE")
    assert no_title.json()["error_description"].startswith("Task title is not specified")
    no_resp = call(client, "tasks.task.add", {"fields": {"TITLE": "t"}})
    assert no_resp.json()["error"] == "ERROR_CORE" and "Responsible" in no_resp.json()["error_description"]
    fired = call(client, "tasks.task.add", {"fields": {"TITLE": "t", "RESPONSIBLE_ID": 9}})
    assert fired.json()["error"] == "ERROR_CORE"
    task = ok(client, "tasks.task.add", {"fields": {
        "TITLE": "Перезвонить [ext-42]", "RESPONSIBLE_ID": 5, "DEADLINE": "2026-01-15T18:00:00+05:00",
        "UF_CRM_TASK": [f"L_{lead}"]}})["result"]["task"]
    assert task["id"] == "1" and task["responsibleId"] == "5" and task["status"] == "2" and "ufCrmTask" not in task
    by_binding = ok(client, "tasks.task.list", {"filter": {"UF_CRM_TASK": f"L_{lead}"},
                                                "select": ["ID", "TITLE", "UF_CRM_TASK"]})
    assert by_binding["result"]["tasks"][0]["ufCrmTask"] == [f"L_{lead}"] and by_binding["total"] == 1
    by_marker = ok(client, "tasks.task.list", {"filter": {"%TITLE": "[ext-42]"}})
    assert [t["id"] for t in by_marker["result"]["tasks"]] == ["1"]

    users = ok(client, "user.get", {"FILTER": {"ACTIVE": True}})
    assert [u["ID"] for u in users["result"]] == ["1", "3", "5", "7"] and users["total"] == 4
    assert ok(client, "user.get", {"ID": 7})["result"][0]["LAST_NAME"] == "Жұмабаева"


def test_every_create_makes_a_new_record(client: TestClient) -> None:
    payload = {"fields": {"TITLE": "same", "ORIGINATOR_ID": "zeta-bot", "ORIGIN_ID": "conv-1"}}
    assert ok(client, "crm.lead.add", payload)["result"] != ok(client, "crm.lead.add", payload)["result"]
    found = ok(client, "crm.lead.list", {"filter": {"ORIGINATOR_ID": "zeta-bot", "ORIGIN_ID": "conv-1"},
                                         "select": ["ID"]})
    assert found["total"] == 2


# --- faults --------------------------------------------------------------------------------------


def test_front_layer_and_output_faults(client: TestClient) -> None:
    client.post("/_admin/faults", json={"error_rate": 1.0, "error_kinds": ["502"]})
    bad_gateway = call(client, "crm.lead.list")
    assert bad_gateway.status_code == 502 and bad_gateway.headers["content-type"].startswith("text/html")
    client.post("/_admin/faults", json={"error_kinds": ["500"], "error_after_execute": True})
    internal = call(client, "crm.lead.add", {"fields": {"TITLE": "committed anyway"}})
    assert (internal.status_code, internal.json()["error"]) == (500, "INTERNAL_SERVER_ERROR")
    assert client.get("/_admin/state").json()["counts"]["leads"] == 1

    client.post("/_admin/faults", json={"reset": True, "truncated_json_rate": 1.0})
    truncated = call(client, "crm.lead.list")
    assert truncated.status_code == 200
    with pytest.raises(ValueError):
        truncated.json()

    client.post("/_admin/faults", json={"reset": True, "html_batch_rate": 1.0})
    html = call(client, "batch", {"cmd": {"a": "crm.lead.add?fields[TITLE]=via+batch"}})
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert client.get("/_admin/state").json()["counts"]["leads"] == 2

    client.post("/_admin/faults", json={"reset": True, "latency_seconds": 0.2, "max_execution_seconds": 0.05})
    interrupted = call(client, "crm.lead.add", {"fields": {"TITLE": "slow"}})
    assert interrupted.status_code == 504 and "Gateway Time-out" in interrupted.text
    assert client.get("/_admin/state").json()["counts"]["leads"] == 3

    client.post("/_admin/faults", json={"reset": True, "methods": ["crm.lead.add"], "error_rate": 1.0,
                                        "error_kinds": ["504"]})
    assert call(client, "crm.lead.list").status_code == 200
    assert call(client, "crm.lead.add", {"fields": {}}).status_code == 504
    assert client.get("/_admin/stats").json()["faults"]["error_504"] == 1


def test_lost_create_response_commits_the_record(clock: FakeClock) -> None:
    app = create_app(clock=clock, faults=FaultConfig(lose_create_response_rate=1.0))
    with ThreadServer(app) as server:
        url = f"{server.url}{BASE}crm.lead.add.json"
        payload = {"fields": {"TITLE": "Заказ", "ORIGINATOR_ID": "zeta-bot", "ORIGIN_ID": "conv-7"}}
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(url, json=payload, timeout=5)
        assert httpx.get(f"{server.url}/_admin/state").json()["counts"]["leads"] == 1
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(url, json=payload, timeout=5)  # a blind retry duplicates
        lookup = httpx.post(f"{server.url}{BASE}crm.lead.list.json", timeout=5,
                            json={"filter": {"ORIGINATOR_ID": "zeta-bot", "ORIGIN_ID": "conv-7"}}).json()
        assert lookup["total"] == 2

        httpx.post(f"{server.url}/_admin/faults", json={"lose_create_mode": "timeout",
                                                        "lose_create_timeout_seconds": 1.0})
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{server.url}{BASE}tasks.task.add.json", timeout=0.3,
                       json={"fields": {"TITLE": "t", "RESPONSIBLE_ID": 1}})
        assert httpx.get(f"{server.url}/_admin/state").json()["counts"]["tasks"] == 1
        stats = httpx.get(f"{server.url}/_admin/stats").json()
        assert stats["faults"] == {"lost_create_drop": 2, "lost_create_timeout": 1}


def test_domain_move_redirect(clock: FakeClock) -> None:
    app = create_app(clock=clock)
    with ThreadServer(app) as server:
        new_base = f"http://localhost:{server.port}"  # same server, another host name
        deal = httpx.post(f"{server.url}{BASE}crm.deal.add.json", json={"fields": {"TITLE": "d"}}).json()["result"]
        httpx.post(f"{server.url}/_admin/faults", json={"domain_moved_to": new_base})
        url = f"{server.url}{BASE}crm.deal.get.json"
        moved = httpx.post(url, json={"id": deal})
        assert moved.status_code == 302 and moved.headers["location"] == f"{new_base}{BASE}crm.deal.get.json"
        followed = httpx.post(url, json={"id": deal}, follow_redirects=True)
        assert followed.request.method == "GET"  # POST became GET and lost its body
        assert (followed.status_code, followed.json()) == (
            400, {"error": "", "error_description": "ID is not defined or invalid."})
        again = httpx.post(moved.headers["location"], json={"id": deal})
        assert again.json()["result"]["ID"] == str(deal)
        assert httpx.get(f"{server.url}/_admin/stats").json()["redirects"] == 2


# --- events --------------------------------------------------------------------------------------


def test_outgoing_events_once_with_token(client: TestClient, app: Any) -> None:
    received: list[dict[str, list[str]]] = []
    lock = threading.Lock()
    fail = {"on": False}

    async def handler(request: Request) -> PlainTextResponse:
        with lock:
            received.append(parse_qs((await request.body()).decode()))
        return PlainTextResponse("fail" if fail["on"] else "ok", status_code=500 if fail["on"] else 200)

    receiver = Starlette(routes=[Route("/hook", handler, methods=["POST"])])
    with ThreadServer(receiver) as server:
        client.post("/_admin/events", json={"handler_url": f"{server.url}/hook", "application_token": "tok-123"})
        lead = ok(client, "crm.lead.add", {"fields": {"TITLE": "event"}})["result"]
        ok(client, "crm.lead.update", {"id": lead, "fields": {"TITLE": "event 2"}})
        deal = ok(client, "crm.deal.add", {"fields": {}})["result"]
        assert app.events.flush(5)
        assert [(r["event"][0], r["data[FIELDS][ID]"][0]) for r in received] == [
            ("ONCRMLEADADD", str(lead)), ("ONCRMLEADUPDATE", str(lead)), ("ONCRMDEALADD", str(deal))]
        first = received[0]
        assert first["auth[application_token]"] == ["tok-123"] and first["auth[domain]"] == ["zeta-demo.bitrix24.kz"]
        assert first["auth[client_endpoint]"] == ["https://zeta-demo.bitrix24.kz/rest/"]
        assert first["event_handler_id"] and first["ts"][0].isdigit() and first["auth[member_id]"]

        client.post("/_admin/events", json={"wrong_token": True})
        fail["on"] = True
        ok(client, "crm.contact.add", {"fields": {"NAME": "x"}})
        assert app.events.flush(5)
        assert received[-1]["auth[application_token]"] != ["tok-123"]
        deliveries = client.get("/_admin/events").json()["deliveries"]
        assert len(deliveries) == 4 and deliveries[-1]["status"] == 500  # recorded once, no retry
        assert len(received) == 4


# --- admin and process -----------------------------------------------------------------------


def test_admin_state_stats_limits_and_reset(client: TestClient) -> None:
    assert client.get("/_admin/health").json()["status"] == "ok"
    ok(client, "crm.lead.add", {"fields": {"TITLE": "a", "ORIGINATOR_ID": "zeta-bot", "ORIGIN_ID": "c-1"}})
    state = client.get("/_admin/state").json()
    assert state["counts"]["leads"] == 1 and state["leads"][0]["ORIGIN_ID"] == "c-1"
    assert client.get("/_admin/state?kind=leads").json()["leads"][0]["ID"] == 1
    assert client.get("/_admin/stats").json()["methods"] == {"crm.lead.add": 1}
    limits = client.post("/_admin/limits", json={"burst": 3}).json()
    assert limits["burst"] == 3
    assert client.post("/_admin/limits", json={"nonsense": 1}).status_code == 400
    assert client.post("/_admin/faults", json={"nonsense": 1}).status_code == 400
    client.post("/_admin/reset", json={})
    assert client.get("/_admin/state").json()["counts"]["leads"] == 0
    assert client.get("/_admin/limits").json()["burst"] == 50
    assert client.get("/_admin/nothing").status_code == 404


def test_process_server_entry_point() -> None:
    with ProcessServer("simulators.bitrix24", ["--burst", "2", "--drain", "0.001"]) as server:
        assert httpx.get(f"{server.url}/_admin/health").json()["webhooks"] == ["/rest/1/zetademo/"]
        url = f"{server.url}{BASE}crm.lead.add.json"
        assert httpx.post(url, json={"fields": {"TITLE": "Тест"}}).json()["result"] == 1
        assert httpx.post(url, json={"fields": {"TITLE": "Тест"}}).status_code == 200
        assert httpx.post(url, json={"fields": {"TITLE": "Тест"}}).status_code == 503


def test_limit_config_object_is_live(clock: FakeClock) -> None:
    limits = LimitConfig(burst=1, drain_per_second=1)
    client = TestClient(create_app(clock=clock, limits=limits))
    assert call(client, "crm.lead.list").status_code == 200
    assert call(client, "crm.lead.list").status_code == 503
    limits.burst = 5
    assert call(client, "crm.lead.list").status_code == 200
