"""Bitrix24 client, narrow cases over httpx.MockTransport: envelopes, error classes, retries and
ambiguity, portal moves, batch encoding/packing, throttle, helpers, secrecy.

Time is virtual: the client gets a fake clock whose `sleep` advances it, so back-offs and
operating-limit pauses are asserted, never waited.
"""

import json
import logging
import threading
import time
from urllib.parse import unquote

import httpx
import pytest

from resources.bitrix24.client import Bitrix24Client, as_int, is_read, phone_variants
from resources.bitrix24.encoding import batch_command, pack, php_query, references
from resources.bitrix24.errors import (
    AuthError,
    Bitrix24Error,
    MethodNotFound,
    NotFound,
    OperationTimeLimit,
    PortalMoved,
    RateLimited,
    ServerError,
    TransportError,
    ValidationError,
    mask_url,
)
from resources.bitrix24.resource import Bitrix24Resource
from resources.bitrix24.throttle import Throttle
from simulators.bitrix24.params import php_parse_str

SECRET = "s3cr3tc0de42"
WEBHOOK = f"https://portal.example/rest/1/{SECRET}/"
T0 = 1_760_000_000.0


class FakeClock:
    """Unix-like virtual time; `sleep` advances it and records the pause."""

    def __init__(self, start: float = T0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


class Portal:
    """A scripted MockTransport handler that records every request."""

    def __init__(self, *replies) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if callable(reply):
            reply = reply(request)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def bodies(self) -> list[dict]:
        return [json.loads(r.content) for r in self.requests]


def ok(result, status=200, **extra) -> httpx.Response:
    body = {"result": result, "time": {"start": T0, "finish": T0 + 0.01, "duration": 0.01, "operating": 0},
            **extra}
    return httpx.Response(status, content=json.dumps(body, ensure_ascii=False),
                          headers={"Content-Type": "application/json"})


def err(status, code, description="") -> httpx.Response:
    return httpx.Response(status, json={"error": code, "error_description": description})


def html(status) -> httpx.Response:
    return httpx.Response(status, content=b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>",
                          headers={"Content-Type": "text/html"})


def make_client(handler, clock: FakeClock | None = None, **kw) -> Bitrix24Client:
    clock = clock or FakeClock()
    kw.setdefault("max_retries", 3)
    return Bitrix24Client(WEBHOOK, transport=httpx.MockTransport(handler), clock=clock, sleep=clock.sleep, **kw)


# ---- envelope and request shape ---------------------------------------------------------------


def test_call_posts_json_to_method_url_and_parses_envelope():
    portal = Portal(ok([{"ID": "17", "TITLE": "Заказ"}], total=120, next=50))
    client = make_client(portal)
    response = client.call("crm.lead.list", {"FILTER": {">ID": 0}, "select": ["ID", "TITLE"], "start": 0})
    assert response.result == [{"ID": "17", "TITLE": "Заказ"}]
    assert (response.total, response.next) == (120, 50)
    assert response.time["operating"] == 0
    request = portal.requests[0]
    assert request.method == "POST"
    assert str(request.url) == WEBHOOK + "crm.lead.list.json"
    assert request.headers["accept"] == "application/json"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"filter": {">ID": 0}, "select": ["ID", "TITLE"], "start": 0}
    assert client.stats.requests == 1 and client.stats.commands == 1


def test_top_level_keys_lowercased_only_where_case_is_free():
    portal = Portal(ok(True))
    client = make_client(portal)
    client.call("crm.timeline.comment.add", {"FIELDS": {"ENTITY_ID": 1, "ENTITY_TYPE": "lead", "COMMENT": "x"}})
    client.call("user.get", {"FILTER": {"ACTIVE": True}, "sort": "ID"})
    client.call("crm.item.add", {"entityTypeId": 1, "fields": {"title": "t"}})
    first, second, third = portal.bodies()
    assert "fields" in first and "FIELDS" not in first
    assert "FILTER" in second  # outside crm.*/tasks.* keys go exactly as given
    assert "entityTypeId" in third


def test_missing_next_and_total_are_none():
    client = make_client(Portal(ok(123)))
    response = client.call("crm.lead.add", {"fields": {"TITLE": "x"}})
    assert response.result == 123 and response.total is None and response.next is None


@pytest.mark.parametrize("method,read", [
    ("crm.lead.list", True), ("crm.deal.get", True), ("crm.lead.fields", True),
    ("crm.duplicate.findbycomm", True), ("user.get", True), ("crm.status.list", True),
    ("crm.category.list", True), ("tasks.task.list", True), ("crm.item.list", True),
    ("crm.lead.add", False), ("crm.deal.update", False), ("crm.deal.productrows.set", False),
    ("tasks.task.add", False), ("crm.timeline.comment.add", False), ("crm.activity.todo.add", False),
    ("event.offline.get", False), ("batch", False), ("crm.lead.delete", False), ("some.unknown", False),
])
def test_read_write_classification(method, read):
    assert is_read(method) is read


def test_rejects_bad_webhook_url_without_echoing_the_code():
    with pytest.raises(ValueError) as info:
        Bitrix24Client(f"https://portal.example/rest/{SECRET}/")  # code without the user id
    assert SECRET not in str(info.value)
    client = Bitrix24Client(f"https://portal.example/rest/1/{SECRET}")  # trailing slash added
    assert client.base_url == "https://portal.example/rest/1/***/"
    assert SECRET not in repr(client)


def test_method_name_cannot_escape_the_path():
    client = make_client(Portal(ok(True)))
    with pytest.raises(ValueError):
        client.call("../../admin")


# ---- error classification ---------------------------------------------------------------------


@pytest.mark.parametrize("status,code,description,cls", [
    (401, "NO_AUTH_FOUND", "Wrong authorization data", AuthError),
    (401, "INVALID_CREDENTIALS", "Invalid request credentials", AuthError),
    (403, "INVALID_CREDENTIALS", "Invalid request credentials", AuthError),
    (401, "insufficient_scope", "The request requires higher privileges than provided by the webhook token",
     AuthError),
    (403, "insufficient_scope", "The request requires higher privileges", AuthError),
    (401, "expired_token", "The access token provided has expired.", AuthError),
    (403, "ACCESS_DENIED", "REST is available only by subscription.", AuthError),
    (401, "OVERLOAD_LIMIT", "REST API is blocked due to overload.", AuthError),
    (503, "OVERLOAD_LIMIT", "REST API is blocked due to overload.", AuthError),  # DOCS status, same class
    (400, "INVALID_REQUEST", "Https required.", AuthError),
    (400, "", "Access denied.", AuthError),
    (400, "", "Not found", NotFound),
    (400, "NOT_FOUND", "Not found", NotFound),
    (400, "OWNER_NOT_FOUND", "Owner not found", NotFound),
    (404, "ERROR_METHOD_NOT_FOUND", "Method not found!", MethodNotFound),
    (400, "", "ID is not defined or invalid.", ValidationError),
    (400, "", "Communication type is not defined.", ValidationError),
    (400, "ERROR_CORE", "Task title is not specified<br>", ValidationError),
    (400, "ERROR_ARGUMENT", "Bad filter", ValidationError),
    (400, "100", "Could not find value for parameter {fields}", ValidationError),
    (400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded", ValidationError),
    (200, "ERROR_CORE", "an error inside a 200 is still an error", ValidationError),
    (503, "QUERY_LIMIT_EXCEEDED", "Too many requests", RateLimited),
    (429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.", OperationTimeLimit),
    (500, "INTERNAL_SERVER_ERROR", "Internal server error", ServerError),
    (418, "SOMETHING_NEW", "unknown code, 4xx", Bitrix24Error),
])
def test_errors_classified_by_string_not_status(status, code, description, cls):
    portal = Portal(err(status, code, description))
    client = make_client(portal, max_retries=0)
    with pytest.raises(Bitrix24Error) as info:
        client.call("crm.deal.get", {"id": 5})
    exc = info.value
    assert type(exc) is cls
    assert (exc.error, exc.description, exc.status, exc.method) == (code, description, status, "crm.deal.get")
    assert "crm.deal.get" in str(exc) and SECRET not in str(exc)
    assert "https://portal.example/rest/1/***/crm.deal.get.json" in str(exc)


@pytest.mark.parametrize("status,code,description", [
    (401, "INVALID_CREDENTIALS", "Invalid request credentials"),
    (403, "insufficient_scope", "needs crm"),
    (400, "", "Not found"),
    (400, "", "ID is not defined or invalid."),
    (400, "ERROR_CORE", "Responsible person not specified"),
    (404, "ERROR_METHOD_NOT_FOUND", "Method not found!"),
])
def test_client_errors_are_never_retried(status, code, description):
    portal = Portal(err(status, code, description))
    client = make_client(portal, max_retries=5)
    with pytest.raises(Bitrix24Error):
        client.call("crm.lead.get", {"id": 1})
    assert len(portal.requests) == 1 and client.stats.retries == 0


def test_rest_v3_error_shape_is_understood():
    body = {"error": {"code": "BITRIX_REST_V3_EXCEPTION_ACCESSDENIEDEXCEPTION", "message": "no"}}
    client = make_client(Portal(httpx.Response(403, json=body)), max_retries=0)
    with pytest.raises(AuthError):
        client.call("tasks.task.get", {"id": 1})


# ---- QUERY_LIMIT_EXCEEDED and OPERATION_TIME_LIMIT ---------------------------------------------


def test_query_limit_retried_with_exponential_full_jitter_backoff():
    clock = FakeClock()
    limit = err(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
    portal = Portal(limit, limit, limit, ok(7))
    client = make_client(portal, clock, max_retries=5)
    assert client.call("crm.lead.add", {"fields": {"TITLE": "x"}}).result == 7  # a refused write ran nothing
    assert len(portal.requests) == 4
    assert client.stats.http_503 == 3 and client.stats.rate_limited == 3 and client.stats.retries == 3
    # back-offs: U(0,1), U(0,2), U(0,4) plus the throttle's one-interval pause after each refusal
    backoffs = clock.sleeps
    assert len(backoffs) >= 3 and all(0 <= s <= 4.5 for s in backoffs)
    assert len({p.content for p in portal.requests}) == 1  # the same body each time


def test_query_limit_backoff_is_capped_and_budget_exhausts():
    clock = FakeClock()
    portal = Portal(err(503, "QUERY_LIMIT_EXCEEDED", "Too many requests"))
    client = make_client(portal, clock, max_retries=8, backoff_max=30.0)
    with pytest.raises(RateLimited):
        client.call("crm.lead.list", {})
    assert len(portal.requests) == 9  # 1 + max_retries, then give up
    assert max(clock.sleeps) <= 30.0 + 0.5


def test_backoff_ceilings_double_from_one_second():
    class Top:  # a deterministic "random" returning the ceiling
        def uniform(self, low, high):
            return high

    clock = FakeClock()
    portal = Portal(err(503, "QUERY_LIMIT_EXCEEDED", "Too many requests"))
    client = make_client(portal, clock, max_retries=7, rate_per_second=1000.0, rng=Top())
    with pytest.raises(RateLimited):
        client.call("crm.lead.list", {})
    backoffs = [s for s in clock.sleeps if s >= 0.5]
    assert backoffs == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_operation_time_limit_waits_until_reset_for_that_method_only():
    clock = FakeClock()
    reset_at = T0 + 120
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        method = request.url.path.rsplit("/", 1)[-1].removesuffix(".json")
        seen.append((method, clock.now))
        if method == "crm.lead.list" and len([m for m, _ in seen if m == method]) == 2:
            return err(429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.")
        body = {"result": [], "time": {"operating": 400.0 if method == "crm.lead.list" else 1.0,
                                       "operating_reset_at": reset_at}}
        return httpx.Response(200, json=body)

    client = make_client(handler, clock, max_retries=0)
    client.call("crm.lead.list", {})  # learns operating_reset_at
    with pytest.raises(OperationTimeLimit) as info:
        client.call("crm.lead.list", {})
    assert info.value.reset_at == pytest.approx(reset_at + 1.0)
    assert info.value.status == 429 and client.stats.http_429 == 1
    before = clock.now
    client.call("crm.deal.list", {})  # another method is not held back
    assert clock.now - before < 1.0
    client.call("crm.lead.list", {})  # this one waits for the reset
    assert seen[-1][0] == "crm.lead.list" and seen[-1][1] >= reset_at


def test_operation_time_limit_is_retried_after_the_pause():
    clock = FakeClock()
    portal = Portal(err(429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit."), ok([]))
    client = make_client(portal, clock, max_retries=2)
    client.call("crm.deal.add", {"fields": {}})
    assert len(portal.requests) == 2
    assert sum(clock.sleeps) >= 60.0  # no reset known: the 60 s fallback pause


def test_operation_pause_escalates_to_300_seconds_without_reset_info():
    clock = FakeClock()
    throttle = Throttle(clock=clock, sleep=clock.sleep)
    pauses = [throttle.block("crm.lead.add") - clock.now for _ in range(5)]
    assert pauses == [60.0, 120.0, 240.0, 300.0, 300.0]


def test_method_nearing_its_operating_limit_is_slowed():
    clock = FakeClock()
    throttle = Throttle(operating_limit=480.0, clock=clock, sleep=clock.sleep)
    throttle.observe("crm.lead.add", {"operating": 100.0, "operating_reset_at": T0 + 200})
    assert throttle.method_wait(["crm.lead.add"]) == 0
    throttle.observe("crm.lead.add", {"operating": 430.0, "operating_reset_at": T0 + 200})
    mid = throttle.method_wait(["crm.lead.add"])
    assert 0 < mid < 200
    throttle.observe("crm.lead.add", {"operating": 476.0, "operating_reset_at": T0 + 200})
    assert throttle.method_wait(["crm.lead.add"]) == pytest.approx(201.0)
    assert throttle.method_wait(["crm.deal.add"]) == 0


# ---- transport failures: reads retried, writes ambiguous ---------------------------------------


@pytest.mark.parametrize("failure", [
    lambda: err(500, "INTERNAL_SERVER_ERROR", "Internal error"),
    lambda: html(502),
    lambda: html(504),
    lambda: httpx.Response(200, content=b'{"result": [{"ID": "1", "TI', headers={"Content-Type": "application/json"}),
    lambda: httpx.Response(200, content=b"<html>PHP Fatal error</html>", headers={"Content-Type": "text/html"}),
    lambda: httpx.ReadTimeout("timed out"),
    lambda: httpx.RemoteProtocolError("Server disconnected without sending a response."),
])
def test_reads_retried_on_transport_failures(failure):
    portal = Portal(failure(), failure(), ok([{"ID": "1"}]))
    client = make_client(portal, max_retries=3)
    assert client.call("crm.lead.list", {}).result == [{"ID": "1"}]
    assert len(portal.requests) == 3 and client.stats.retries == 2


@pytest.mark.parametrize("failure,status", [
    (lambda: err(500, "INTERNAL_SERVER_ERROR", "Internal error"), 500),
    (lambda: html(502), 502),
    (lambda: html(504), 504),
    (lambda: httpx.Response(200, content=b'{"result": 12', headers={"Content-Type": "application/json"}), 200),
    (lambda: httpx.ReadTimeout("timed out"), None),
    (lambda: httpx.RemoteProtocolError("Server disconnected without sending a response."), None),
    (lambda: httpx.ReadError("connection reset by peer"), None),
])
def test_writes_never_resent_on_ambiguous_failure(failure, status):
    portal = Portal(failure(), ok(99))
    client = make_client(portal, max_retries=5)
    with pytest.raises(TransportError) as info:
        client.call("crm.lead.add", {"fields": {"TITLE": "x", "ORIGIN_ID": "conv-1"}})
    exc = info.value
    assert exc.ambiguous is True and exc.status == status and exc.method == "crm.lead.add"
    assert "outcome unknown" in str(exc) and SECRET not in str(exc)
    assert len(portal.requests) == 1 and client.stats.retries == 0


def test_write_resent_when_the_connection_never_opened():
    portal = Portal(httpx.ConnectError("connection refused"), ok(99))
    client = make_client(portal, max_retries=2)
    assert client.call("tasks.task.add", {"fields": {"TITLE": "t", "RESPONSIBLE_ID": 1}}).result == 99
    assert len(portal.requests) == 2


def test_idempotent_write_may_be_resent():
    portal = Portal(html(502), ok(True))
    client = make_client(portal)
    assert client.call("crm.deal.productrows.set", {"id": 1, "rows": []}, idempotent=True).result is True
    assert len(portal.requests) == 2


def test_html_4xx_page_is_not_retried():
    portal = Portal(httpx.Response(404, content=b"<html>nginx 404</html>", headers={"Content-Type": "text/html"}))
    client = make_client(portal, max_retries=5)
    with pytest.raises(TransportError) as info:
        client.call("crm.lead.list", {})
    assert info.value.status == 404 and len(portal.requests) == 1


def test_retry_budget_is_capped_for_reads():
    portal = Portal(html(502))
    client = make_client(portal, max_retries=4)
    with pytest.raises(ServerError) as info:
        client.call("crm.lead.list", {})
    assert len(portal.requests) == 5 and info.value.ambiguous is False


# ---- portal moved (301/302) ------------------------------------------------------------------


def test_302_is_followed_by_reposting_the_same_body_once(caplog):
    new_base = f"https://new-portal.example/rest/1/{SECRET}/"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "portal.example":
            return httpx.Response(302, headers={"Location": new_base + "crm.deal.get.json"})
        return ok({"ID": "5"}) if json.loads(request.content) == {"id": 5} else err(
            400, "", "ID is not defined or invalid.")

    portal = Portal(handler)
    client = make_client(portal)
    with caplog.at_level(logging.WARNING, logger="integrations.bitrix24"):
        assert client.call("crm.deal.get", {"id": 5}).result == {"ID": "5"}
    first, second = portal.requests
    assert second.method == "POST" and second.content == first.content
    assert str(second.url) == new_base + "crm.deal.get.json"
    assert client.base_url == "https://new-portal.example/rest/1/***/"
    assert client.stats.redirects == 1
    assert "new-portal.example/rest/1/***/" in caplog.text and SECRET not in caplog.text
    client.call("crm.deal.get", {"id": 5})  # remembered: straight to the new host
    assert portal.requests[-1].url.host == "new-portal.example" and len(portal.requests) == 3


def test_301_on_a_write_is_not_ambiguous():
    new = f"https://moved.example/rest/1/{SECRET}/crm.lead.add.json"
    portal = Portal(httpx.Response(301, headers={"Location": new}), ok(41))
    client = make_client(portal)
    assert client.call("crm.lead.add", {"fields": {"TITLE": "x"}}).result == 41
    assert len(portal.requests) == 2


@pytest.mark.parametrize("location", [
    "https://evil.example/collect",  # not a webhook path
    "https://moved.example/rest/1/othercode/crm.lead.add.json",  # another webhook
    f"http://moved.example/rest/1/{SECRET}/crm.lead.add.json",  # https → http downgrade
    "",
])
def test_unsafe_redirects_raise_portal_moved_without_resending(location):
    portal = Portal(httpx.Response(302, headers={"Location": location} if location else {}))
    client = make_client(portal)
    with pytest.raises(PortalMoved) as info:
        client.call("crm.lead.add", {"fields": {}})
    assert len(portal.requests) == 1 and SECRET not in str(info.value)


def test_second_redirect_raises_portal_moved():
    new = f"https://moved.example/rest/1/{SECRET}/crm.lead.list.json"
    portal = Portal(httpx.Response(302, headers={"Location": new}))
    client = make_client(portal)
    with pytest.raises(PortalMoved):
        client.call("crm.lead.list", {})
    assert len(portal.requests) == 2


# ---- batch encoding --------------------------------------------------------------------------


def test_php_query_bracket_syntax_and_percent_encoding():
    query = php_query({"fields": {"TITLE": "A+B & C=D #1 100%", "PHONE": [{"VALUE": "+77011234567",
                                                                            "VALUE_TYPE": "MOBILE"}]},
                       "select": ["ID", "TITLE"], "filter": {">ID": 10}})
    assert "fields[PHONE][0][VALUE]=%2B77011234567" in query
    assert "fields[TITLE]=A%2BB%20%26%20C%3DD%20%231%20100%25" in query
    assert "select[0]=ID&select[1]=TITLE" in query
    assert "filter[%3EID]=10" in query


@pytest.mark.parametrize("params", [
    {"fields": {"TITLE": "Заказ: Иван Петров", "COMMENTS": "Сәлеметсіз бе! Қазақстан, Өскемен, ұлы, үй, һ, і"}},
    {"fields": {"TITLE": "1+1=2 & more; a=b?c#d %20 $result[x]"}},
    {"fields": {"PHONE": [{"VALUE": "+7 (777) 123-45-67", "VALUE_TYPE": "WORK"}, {"VALUE": "87001112233"}],
                "EMAIL": [{"VALUE": "a+b@example.kz"}]}, "params": {"REGISTER_SONET_EVENT": "Y"}},
    {"filter": {">=DATE_MODIFY": "2026-01-15T18:00:00+05:00", "@ID": ["1", "2"]}, "start": "-1"},
])
def test_batch_command_round_trips_through_php_parse_str(params):
    command = batch_command("crm.lead.add", params)
    method, _, query = command.partition("?")
    assert method == "crm.lead.add"
    assert "+" not in query and "#" not in query and " " not in query
    decoded = php_parse_str(query)

    def php_view(value):  # what PHP sees: strings, lists as 0..n maps
        if isinstance(value, dict):
            return {str(k): php_view(v) for k, v in value.items()}
        if isinstance(value, list):
            return {str(i): php_view(v) for i, v in enumerate(value)}
        return str(value)

    assert php_view(decoded) == php_view(params)


def test_batch_rejects_numeric_and_unsafe_keys():
    client = make_client(Portal(ok({})))
    for key in ("0", "17", "a[b]", "", "x y"):
        with pytest.raises(ValueError):
            client.batch({key: ("crm.lead.get", {"id": 1})})


def test_pack_keeps_dependency_groups_in_one_request():
    keys = [f"k{i}" for i in range(60)]
    deps = {"k49": {"k48"}, "k50": {"k48"}, "k51": {"k50"}}
    chunks = pack(keys, deps)
    assert [len(c) for c in chunks] == [48, 12]  # k48..k51 move together into the second request
    with pytest.raises(ValueError):
        pack(["a", "b"], {"a": {"b"}})  # reference to a later command
    with pytest.raises(ValueError):
        pack([f"k{i}" for i in range(60)], {f"k{i}": {f"k{i - 1}"} for i in range(1, 60)})  # group > 50
    assert references({"fields": {"ENTITY_ID": "$result[lead]", "UF": ["L_$result[lead]", "$result[x][ID]"]}}) \
        == {"lead", "x"}


def _batch_reply(request: httpx.Request, fail: dict[str, dict] | None = None, empty_as_list: bool = True):
    cmd = json.loads(request.content)["cmd"]
    halt = json.loads(request.content)["halt"]
    result, errors, times = {}, {}, {}
    for key, command in cmd.items():
        if fail and key in fail:
            errors[key] = fail[key]
            if halt:
                break
            continue
        method, _, query = command.partition("?")
        result[key] = {"method": method, "params": php_parse_str(unquote(query) and query)}
        times[key] = {"operating": 0.5}
    empty = [] if empty_as_list else {}
    return ok({"result": result or empty, "result_error": errors or empty, "result_total": empty,
               "result_next": empty, "result_time": times or empty})


def test_batch_of_120_commands_takes_three_requests_in_order():
    portal = Portal(_batch_reply)
    client = make_client(portal)
    commands = {f"lead_{i}": ("crm.lead.add", {"fields": {"TITLE": f"Лид №{i} +7&"}}) for i in range(120)}
    out = client.batch(commands)
    assert out.ok and out.requests == 3 and len(portal.requests) == 3
    sizes = [len(body["cmd"]) for body in portal.bodies()]
    assert sizes == [50, 50, 20]
    assert list(portal.bodies()[1]["cmd"])[0] == "lead_50"
    assert list(out.result) == list(commands)
    assert out.result["lead_7"]["params"]["fields"]["TITLE"] == "Лид №7 +7&"
    assert client.stats.requests == 3 and client.stats.commands == 120
    assert all(str(r.url).endswith("/batch.json") for r in portal.requests)


def test_batch_reads_per_command_errors_and_accepts_list_or_map_shapes():
    fail = {"task": {"error": "ERROR_CORE", "error_description": "Responsible person not specified<br>"},
            "gone": {"error": "", "error_description": "Not found"}}
    portal = Portal(lambda r: _batch_reply(r, fail, empty_as_list=False))
    client = make_client(portal)
    out = client.batch({"lead": ("crm.lead.add", {"fields": {"TITLE": "x"}}),
                        "gone": ("crm.deal.get", {"id": 999}),
                        "task": ("tasks.task.add", {"fields": {"TITLE": "t"}})}, halt=False)
    assert set(out.result) == {"lead"}
    assert isinstance(out.errors["task"], ValidationError) and out.errors["task"].method == "tasks.task.add"
    assert isinstance(out.errors["gone"], NotFound) and out.errors["gone"].status is None
    assert not out.ok and out.not_run == []
    with pytest.raises(NotFound):
        out.raise_first()


def test_batch_empty_maps_as_lists_and_totals():
    body = {"result": {"result": {"leads": [{"ID": "1"}]}, "result_error": [], "result_total": {"leads": "7531"},
                       "result_next": {"leads": 50}, "result_time": []}, "time": {}}
    client = make_client(Portal(httpx.Response(200, json=body)))
    out = client.batch({"leads": ("crm.lead.list", {"select": ["ID"]})})
    assert out.ok and out.total == {"leads": 7531} and out.next == {"leads": 50}


def test_batch_halt_stops_later_requests():
    fail = {"c10": {"error": "", "error_description": "ID is not defined or invalid."}}
    portal = Portal(lambda r: _batch_reply(r, fail))
    client = make_client(portal)
    out = client.batch({f"c{i}": ("crm.deal.update", {"id": i, "fields": {}}) for i in range(120)}, halt=True)
    assert len(portal.requests) == 1
    assert isinstance(out.errors["c10"], ValidationError)
    assert out.not_run[0] == "c11" and len(out.not_run) == 109


def test_batch_nested_operation_time_limit_pauses_that_method():
    clock = FakeClock()
    fail = {"b": {"error": "OPERATION_TIME_LIMIT", "error_description": "Method is blocked due to operation time limit."}}
    client = make_client(Portal(lambda r: _batch_reply(r, fail)), clock)
    out = client.batch({"a": ("crm.lead.list", {}), "b": ("crm.deal.add", {"fields": {}})}, halt=False)
    assert isinstance(out.errors["b"], OperationTimeLimit) and out.errors["b"].reset_at >= T0 + 60
    assert client.throttle.method_wait(["crm.deal.add"]) >= 59
    assert client.throttle.method_wait(["crm.lead.list"]) == 0


def test_batch_of_reads_is_retried_as_a_whole():
    portal = Portal(html(502), _batch_reply)
    client = make_client(portal)
    out = client.batch({"a": ("crm.lead.list", {}), "b": ("crm.duplicate.findbycomm", {"type": "PHONE"})})
    assert out.ok and len(portal.requests) == 2


def test_batch_with_a_write_is_ambiguous_and_keeps_earlier_results():
    replies = iter([_batch_reply, lambda r: httpx.Response(200, content=b"<html>", headers={"Content-Type": "text/html"})])
    portal = Portal(lambda r: next(replies)(r))
    client = make_client(portal)
    commands = {f"lead_{i}": ("crm.lead.add", {"fields": {"TITLE": str(i)}}) for i in range(60)}
    with pytest.raises(TransportError) as info:
        client.batch(commands)
    exc = info.value
    assert exc.ambiguous and exc.method == "batch" and len(portal.requests) == 2
    assert len(exc.partial.result) == 50 and exc.partial.not_run[0] == "lead_50"


def test_batch_reply_without_result_map_is_a_bad_response():
    client = make_client(Portal(ok([])), max_retries=0)
    with pytest.raises(ServerError) as info:
        client.batch({"a": ("crm.lead.add", {"fields": {}})})
    assert info.value.ambiguous and info.value.partial is not None


def test_batch_limiter_counts_one_request_per_fifty_commands():
    clock = FakeClock()
    client = make_client(Portal(_batch_reply), clock, burst=3, headroom=0, rate_per_second=1.0)
    client.batch({f"q{i}": ("crm.lead.get", {"id": i}) for i in range(150)})  # 3 requests fit the burst
    assert sum(clock.sleeps) == 0


# ---- throttle ------------------------------------------------------------------------------------


def test_leaky_bucket_allows_burst_then_sustained_rate():
    clock = FakeClock()
    throttle = Throttle(2.0, 40, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(200):
        throttle.acquire(["crm.lead.add"])
        sent.append(clock.now)
    assert sent[39] == T0  # the burst goes at once
    assert sent[40] == pytest.approx(T0 + 0.5)
    assert sent[-1] == pytest.approx(T0 + 80.0)  # 160 more at 2/s
    # the server's bucket (+1 per request, −2/s, refuse above 50) never passes 40
    level, last = 0.0, T0
    for t in sent:
        level = max(0.0, level - (t - last) * 2.0) + 1
        last = t
        assert level <= 40 + 1e-9


def test_penalize_drops_the_burst_allowance():
    clock = FakeClock()
    throttle = Throttle(2.0, 40, clock=clock, sleep=clock.sleep)
    throttle.penalize()
    assert throttle.acquire() == pytest.approx(0.5)
    assert throttle.acquire() == pytest.approx(0.5)


def test_throttle_is_thread_safe():
    throttle = Throttle(200.0, 5)  # real clock, fast rate
    stamps: list[float] = []
    lock = threading.Lock()

    def worker():
        for _ in range(25):
            throttle.acquire(["crm.lead.add"])
            with lock:
                stamps.append(time.time())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps.sort()
    assert len(stamps) == 100
    assert stamps[-1] - stamps[0] >= (100 - 5) / 200.0 - 0.02  # never faster than burst + rate


# ---- helpers --------------------------------------------------------------------------------------


def test_list_all_fast_scan_stops_on_short_page_and_converts_ids():
    rows = [{"ID": str(i), "TITLE": f"t{i}"} for i in range(1, 108)]

    def handler(request):
        body = json.loads(request.content)
        assert body["start"] == -1 and body["order"] == {"ID": "ASC"} and "ID" in body["select"]
        after = body["filter"][">ID"]
        assert body["filter"]["STATUS_ID"] == "NEW"
        page = [r for r in rows if int(r["ID"]) > after][:50]
        return ok(page)

    portal = Portal(handler)
    client = make_client(portal)
    got = client.list_all("crm.lead.list", filter={"STATUS_ID": "NEW"}, select=["TITLE"])
    assert [r["ID"] for r in got] == list(range(1, 108))
    assert [b["filter"][">ID"] for b in portal.bodies()] == [0, 50, 100]
    with pytest.raises(ValueError):
        client.list_all("crm.lead.list", order={"DATE_CREATE": "DESC"})


def test_list_all_for_crm_item_list():
    portal = Portal(ok({"items": [{"id": 5, "title": "x"}]}))
    client = make_client(portal)
    assert client.list_all("crm.item.list", params={"entityTypeId": 2}) == [{"id": 5, "title": "x"}]
    body = portal.bodies()[0]
    assert body["entityTypeId"] == 2 and body["filter"] == {">id": 0} and body["order"] == {"id": "ASC"}


def test_find_by_origin_filters_and_rechecks_exact_match():
    portal = Portal(ok([{"ID": "12", "ORIGINATOR_ID": "zeta-bot", "ORIGIN_ID": "conv-88"},
                        {"ID": "9", "ORIGINATOR_ID": "zeta-bot", "ORIGIN_ID": "conv-8"}]))
    client = make_client(portal)
    assert client.find_by_origin("lead", "zeta-bot", "conv-8") == 9
    body = portal.bodies()[0]
    assert str(portal.requests[0].url).endswith("/crm.lead.list.json")
    assert body["filter"] == {"ORIGINATOR_ID": "zeta-bot", "ORIGIN_ID": "conv-8"} and "ID" in body["select"]
    client2 = make_client(Portal(ok([])))
    assert client2.find_by_origin("deal", "zeta-bot", "x") is None
    with pytest.raises(ValueError):
        client.find_by_origin("company", "a", "b")


def test_find_contacts_by_phone_sends_string_variants_in_chunks_of_20():
    def handler(request):
        values = json.loads(request.content)["values"]
        assert len(values) <= 20 and all(isinstance(v, str) for v in values)
        return ok({"CONTACT": [275, "2297"]} if "87771234567" in values else [])

    portal = Portal(handler)
    client = make_client(portal)
    assert client.find_contacts_by_phone(["+7 777 123-45-67"]) == [275, 2297]
    body = portal.bodies()[0]
    assert body["type"] == "PHONE" and body["entity_type"] == "CONTACT"
    assert {"+77771234567", "87771234567", "77771234567"} <= set(body["values"])
    many = [f"+7701000{i:04d}" for i in range(12)]  # 12 numbers × 3 formats = 36 values → 2 calls
    assert client.find_contacts_by_phone(many) == []
    assert len(portal.requests) == 1 + 2
    assert client.find_contacts_by_phone([]) == [] and len(portal.requests) == 3


def test_phone_variants_and_as_int():
    assert phone_variants("87771234567") == ["87771234567", "+77771234567", "77771234567"]
    assert phone_variants("7771234567")[1:] == ["+77771234567", "87771234567", "77771234567"]
    assert as_int("17") == 17 and as_int(" 5 ") == 5 and as_int("15000.00") is None and as_int(True) is None


# ---- secrets ----------------------------------------------------------------------------------------


def test_webhook_code_never_in_errors_or_logs(caplog):
    failures = [
        err(401, "INVALID_CREDENTIALS", "Invalid request credentials"),
        httpx.ConnectError(f"cannot reach {WEBHOOK}crm.lead.add.json"),
        httpx.ReadTimeout(f"timeout for {WEBHOOK}"),
        html(502),
        err(400, "", f"echo of {SECRET}"),
        httpx.Response(302, headers={"Location": f"https://x.example/rest/1/{SECRET}x/m.json"}),
    ]
    messages = []
    with caplog.at_level(logging.DEBUG):
        for failure in failures:
            client = make_client(Portal(failure), max_retries=1)
            for method in ("crm.lead.add", "crm.lead.list"):
                with pytest.raises(Bitrix24Error) as info:
                    client.call(method, {"fields": {"TITLE": "x"}})
                messages += [str(info.value), repr(info.value), info.value.url, info.value.description]
    assert messages and all(SECRET not in m for m in messages)
    assert SECRET not in caplog.text and "***" in caplog.text
    assert mask_url(WEBHOOK + "crm.lead.add.json") == "https://portal.example/rest/1/***/crm.lead.add.json"


def test_errors_survive_pickling():
    import pickle

    exc = OperationTimeLimit("m", reset_at=5.0, error="OPERATION_TIME_LIMIT", status=429, method="crm.lead.add")
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is OperationTimeLimit and str(copy) == "m"
    assert (copy.reset_at, copy.status, copy.method, copy.error) == (5.0, 429, "crm.lead.add", "OPERATION_TIME_LIMIT")
    moved = pickle.loads(pickle.dumps(PortalMoved("x", new_base="https://p/rest/1/***/")))
    assert moved.new_base == "https://p/rest/1/***/"


def test_resource_builds_clients_sharing_one_throttle():
    resource = Bitrix24Resource(webhook_url=WEBHOOK, rate_per_second=2.0, burst=50)
    first, second = resource.client(), resource.client()
    assert first.throttle is second.throttle and first.throttle.burst == 40
    assert first.timeout == 75.0 and SECRET not in repr(first)
    other = Bitrix24Resource(webhook_url="https://other.example/rest/1/abc/").client()
    assert other.throttle is not first.throttle
