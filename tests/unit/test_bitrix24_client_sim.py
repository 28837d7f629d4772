"""Bitrix24 client against the Bitrix24 simulator over real loopback HTTP (`/rest/1/zetademo/`).

One simulator per module. Where time matters the simulator and the client share a virtual
clock: the client's sleeps advance it and the simulator's leaky bucket and operating limiter
drain by it, so limits are exercised at full strength without real waiting.
"""

import logging
import threading

import httpx
import pytest

from resources.bitrix24.client import Bitrix24Client
from resources.bitrix24.errors import (
    AuthError,
    MethodNotFound,
    NotFound,
    OperationTimeLimit,
    RateLimited,
    TransportError,
    ValidationError,
)
from simulators.bitrix24 import create_app
from simulators.serving import ThreadServer

CODE = "zetademo"
T0 = 1_760_000_000.0


class FakeClock:
    """Virtual Unix time shared by the simulator and the client."""

    def __init__(self, start: float = T0) -> None:
        self.now = start
        self.slept = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept += seconds
            self.now += seconds


@pytest.fixture(scope="module")
def clock():
    return FakeClock()


@pytest.fixture(scope="module")
def sim(clock):
    app = create_app(clock=clock, wall_clock=clock)
    with ThreadServer(app) as server:
        yield app, server


@pytest.fixture
def admin(sim):
    app, server = sim
    http = httpx.Client(base_url=server.url + "/_admin/", timeout=10)
    http.post("reset", json={"config": True}).raise_for_status()

    def post(name: str, **body):
        reply = http.post(name, json=body)
        reply.raise_for_status()
        return reply.json()

    yield post
    http.post("reset", json={"config": True})
    http.close()


def make(sim, clock, *, code=CODE, host=None, **kw) -> Bitrix24Client:
    _, server = sim
    base = f"http://{host or server.host}:{server.port}/rest/1/{code}/"
    kw.setdefault("max_retries", 3)
    return Bitrix24Client(base, clock=clock, sleep=clock.sleep, **kw)


def stats(sim) -> dict:
    return sim[0].stats.as_dict()


# ---- round trips ------------------------------------------------------------------------------


def test_lead_round_trip_with_cyrillic_kazakh_and_lookup_by_origin(sim, clock, admin):
    client = make(sim, clock)
    title = "Чат-бот: Әлия Қожахметова +7 & «скидка 10%»"
    lead_id = client.call("crm.lead.add", {"fields": {
        "TITLE": title, "NAME": "Әлия", "ORIGINATOR_ID": "zeta-bot", "ORIGIN_ID": "conv-8812",
        "PHONE": [{"VALUE": "+77771234567", "VALUE_TYPE": "MOBILE"}]}}).result
    assert isinstance(lead_id, int)
    lead = client.call("crm.lead.get", {"id": lead_id}).result
    assert lead["TITLE"] == title and lead["NAME"] == "Әлия"
    assert client.find_by_origin("lead", "zeta-bot", "conv-8812") == lead_id
    assert client.find_by_origin("lead", "zeta-bot", "conv-881") is None
    assert client.find_by_origin("deal", "zeta-bot", "conv-8812") is None


def test_find_contacts_by_phone_in_another_format(sim, clock, admin):
    client = make(sim, clock)
    contact = client.call("crm.contact.add", {"fields": {
        "NAME": "Иван", "PHONE": [{"VALUE": "+77771234567", "VALUE_TYPE": "MOBILE"}]}}).result
    assert client.find_contacts_by_phone(["8 (777) 123-45-67"]) == [contact]
    assert client.find_contacts_by_phone(["+77000000000"]) == []


def test_list_all_scans_every_page(sim, clock, admin):
    client = make(sim, clock)
    out = client.batch({f"lead_{i}": ("crm.lead.add", {"fields": {"TITLE": f"L{i}", "SOURCE_ID": "WEB"}})
                        for i in range(120)})
    assert out.ok
    rows = client.list_all("crm.lead.list", filter={"SOURCE_ID": "WEB"}, select=["TITLE"])
    assert [r["ID"] for r in rows] == sorted(out.result.values())
    assert rows[0]["TITLE"] == "L0" and isinstance(rows[0]["ID"], int)


# ---- batch ----------------------------------------------------------------------------------------


def test_batch_of_120_is_three_requests_and_text_survives_encoding(sim, clock, admin):
    client = make(sim, clock)
    titles = {f"lead_{i}": f"№{i}: 1+1=2 & a=b?c#d 100% Қазақ тілі" for i in range(120)}
    out = client.batch({k: ("crm.lead.add", {"fields": {"TITLE": t, "PHONE": [{"VALUE": f"+7701{i:07d}"}]}})
                        for i, (k, t) in enumerate(titles.items())})
    assert out.ok and out.requests == 3 and len(out.result) == 120
    s = stats(sim)
    assert s["methods"]["batch"] == 3 and s["batch_commands"]["crm.lead.add"] == 120
    assert client.stats.requests == 3 and client.stats.commands == 120
    got = client.batch({f"get_{i}": ("crm.lead.get", {"id": out.result[f"lead_{i}"]}) for i in (0, 77, 119)})
    assert got.result["get_77"]["TITLE"] == titles["lead_77"]
    assert got.result["get_119"]["PHONE"][0]["VALUE"] == "+77010000119"


def test_batch_dependent_commands_with_result_references(sim, clock, admin):
    client = make(sim, clock)
    out = client.batch({
        "lead": ("crm.lead.add", {"fields": {"TITLE": "Chatbot order", "ORIGINATOR_ID": "zeta-bot",
                                             "ORIGIN_ID": "conv-1"}}),
        "comment": ("crm.timeline.comment.add", {"fields": {"ENTITY_ID": "$result[lead]", "ENTITY_TYPE": "lead",
                                                            "COMMENT": "Здравствуйте! +7 & co"}}),
        "task": ("tasks.task.add", {"fields": {"TITLE": "Перезвонить", "RESPONSIBLE_ID": 1,
                                               "UF_CRM_TASK": ["L_$result[lead]"]}}),
    })
    assert out.ok, out.errors
    assert isinstance(out.result["comment"], int)
    assert out.result["task"]["task"]["id"]


def test_batch_per_command_errors_and_halt(sim, clock, admin):
    client = make(sim, clock)
    out = client.batch({
        "ok": ("crm.lead.add", {"fields": {"TITLE": "x"}}),
        "missing": ("crm.deal.get", {"id": 999999}),
        "no_title": ("tasks.task.add", {"fields": {"RESPONSIBLE_ID": 1}}),
        "later": ("crm.lead.add", {"fields": {"TITLE": "y"}}),
    }, halt=False)
    assert set(out.result) == {"ok", "later"}
    assert isinstance(out.errors["missing"], NotFound)
    assert isinstance(out.errors["no_title"], ValidationError) and out.errors["no_title"].error == "ERROR_CORE"
    halted = client.batch({"bad": ("crm.deal.get", {"id": 0}), "never": ("crm.lead.add", {"fields": {}})})
    assert isinstance(halted.errors["bad"], ValidationError) and halted.not_run == ["never"]


# ---- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("auth_status", [401, 403])
def test_auth_errors_classified_whatever_the_status(sim, clock, admin, auth_status):
    admin("faults", auth_error_status=auth_status)
    with pytest.raises(AuthError) as info:
        make(sim, clock, code="wrongcode").call("crm.lead.list", {})
    assert info.value.status == auth_status and info.value.error == "INVALID_CREDENTIALS"
    admin("faults", scopes={f"1/{CODE}": ["user"]})
    with pytest.raises(AuthError) as info:
        make(sim, clock).call("crm.lead.add", {"fields": {}})
    assert info.value.error == "insufficient_scope" and info.value.status == auth_status
    admin("faults", scopes={}, overload=True)
    with pytest.raises(AuthError) as info:
        make(sim, clock).call("crm.lead.list", {})
    assert info.value.error == "OVERLOAD_LIMIT"


def test_crm_errors_with_empty_code(sim, clock, admin):
    client = make(sim, clock, max_retries=5)
    with pytest.raises(NotFound):
        client.call("crm.lead.get", {"id": 424242})
    with pytest.raises(ValidationError) as info:
        client.call("crm.deal.get", {})
    assert info.value.error == "" and "ID is not defined" in info.value.description
    with pytest.raises(MethodNotFound):
        client.call("crm.nonexistent.method", {})
    assert client.stats.retries == 0


# ---- limits ---------------------------------------------------------------------------------------


def test_limiter_keeps_200_calls_under_the_real_bucket(sim, clock, admin):
    admin("limits", burst=20, drain_per_second=2.0, reset_counters=True)
    # without the client's limiter the simulator refuses most of a 200-call burst
    greedy = make(sim, clock, rate_per_second=1e6, burst=10**6, max_retries=0)
    refused = 0
    for _ in range(60):
        try:
            greedy.call("crm.lead.list", {"select": ["ID"]})
        except RateLimited:
            refused += 1
    assert refused == 40
    clock.sleep(60)  # drain
    before = stats(sim)["rate_limited_503"]
    polite = make(sim, clock, rate_per_second=2.0, burst=20, headroom=4)
    start = clock.now
    for i in range(200):
        polite.call("crm.lead.list" if i % 2 else "crm.deal.list", {"select": ["ID"]})
    assert stats(sim)["rate_limited_503"] == before
    assert polite.stats.http_503 == 0 and polite.stats.retries == 0
    assert clock.now - start == pytest.approx((200 - 16) / 2.0, abs=0.01)  # burst of 16, then 2/s


def test_limiter_with_real_time_at_a_fast_drain():
    """Real clocks on both sides (own simulator): 200 calls at the drain rate, none refused."""
    app = create_app(rate_limit=(10, 100.0))
    with ThreadServer(app) as server:
        client = Bitrix24Client(f"{server.url}/rest/1/{CODE}/", rate_per_second=100.0, burst=10, headroom=4,
                                max_retries=0)
        for _ in range(200):
            client.call("crm.lead.list", {"select": ["ID"]})
        assert client.stats.http_503 == 0 and app.stats.rate_limited_503 == 0
        assert app.stats.methods["crm.lead.list"] == 200
        client.close()


def test_query_limit_from_a_shared_ip_is_retried(sim, clock, admin):
    admin("limits", burst=5, drain_per_second=2.0, reset_counters=True)
    other = make(sim, clock, rate_per_second=1e6, burst=10**6, max_retries=0)
    for _ in range(5):
        other.call("crm.lead.list", {})  # another integration on the same IP fills the bucket
    client = make(sim, clock, rate_per_second=2.0, burst=5, headroom=0, max_retries=5)
    assert client.call("crm.lead.list", {}).result == []
    assert client.stats.http_503 >= 1 and client.stats.retries == client.stats.http_503


def test_operation_time_limit_pauses_only_that_method(sim, clock, admin):
    admin("limits", operating_limit_seconds=1.0, operating_cost_seconds={"crm.lead.list": 0.4},
          reset_counters=True)
    client = make(sim, clock, max_retries=0)
    for _ in range(3):
        client.call("crm.lead.list", {})  # 1.2 s billed: over the limit
    reset_at = client.throttle.budget("crm.lead.list").reset_at
    assert reset_at is not None and reset_at > clock.now
    with pytest.raises(OperationTimeLimit) as info:
        client.call("crm.lead.list", {})
    assert info.value.status == 429 and info.value.reset_at >= reset_at
    before = clock.now
    client.call("crm.deal.list", {})  # other methods keep going, no pause
    assert clock.now - before < 1.0
    patient = make(sim, clock, max_retries=2)
    patient.throttle = client.throttle  # same portal, same throttle
    patient.call("crm.lead.list", {})
    assert clock.now >= info.value.reset_at
    assert stats(sim)["operation_limited_429"] == 1


def test_method_nearing_operating_limit_is_slowed_and_never_refused(sim, clock, admin):
    admin("limits", operating_limit_seconds=4.0, operating_cost_seconds={"crm.lead.list": 0.5},
          reset_counters=True)
    client = make(sim, clock, operating_limit=4.0, max_retries=0)
    start = clock.now
    for _ in range(12):
        client.call("crm.lead.list", {})
    assert stats(sim)["operation_limited_429"] == 0
    assert clock.now - start > 60  # it waited for budget to come back instead of being refused


def test_operating_ban_inside_batch_is_reported_per_command(sim, clock, admin):
    admin("limits", operating_limit_seconds=0.5, operating_cost_seconds={"crm.lead.list": 0.3},
          reset_counters=True)
    client = make(sim, clock)
    out = client.batch({f"q{i}": ("crm.lead.list", {}) for i in range(4)} | {"d": ("crm.deal.list", {})},
                       halt=False)
    assert "d" in out.result
    blocked = [k for k, e in out.errors.items() if isinstance(e, OperationTimeLimit)]
    assert blocked and client.throttle.method_wait(["crm.lead.list"]) > 0
    assert client.throttle.method_wait(["crm.deal.list"]) == 0


# ---- ambiguity, retries, portal moves -------------------------------------------------------------


def test_lost_create_reply_is_ambiguous_and_lookup_finds_the_record(sim, clock, admin):
    admin("faults", lose_create_response_rate=1.0, lose_create_mode="drop", methods=["crm.lead.add"])
    client = make(sim, clock, max_retries=5)
    with pytest.raises(TransportError) as info:
        client.call("crm.lead.add", {"fields": {"TITLE": "x", "ORIGINATOR_ID": "zeta-bot", "ORIGIN_ID": "c-77"}})
    assert info.value.ambiguous and client.stats.retries == 0
    assert sim[0].stats.methods["crm.lead.add"] == 1  # sent once, never blindly again
    assert client.find_by_origin("lead", "zeta-bot", "c-77") is not None  # it was committed


def test_timed_out_create_is_ambiguous(sim, clock, admin):
    admin("faults", lose_create_response_rate=1.0, lose_create_mode="timeout", lose_create_timeout_seconds=1.5,
          methods=["crm.lead.add"])
    client = make(sim, clock, timeout=0.3, max_retries=5)
    with pytest.raises(TransportError) as info:
        client.call("crm.lead.add", {"fields": {"TITLE": "x"}})
    assert info.value.ambiguous and "timed out" in str(info.value)
    assert sim[0].stats.methods["crm.lead.add"] == 1


def test_reads_retried_through_server_faults(sim, clock, admin):
    admin("faults", error_rate=0.6, error_kinds=["500", "502", "504"], seed=7, methods=["crm.lead.list"])
    client = make(sim, clock, max_retries=10)
    for _ in range(10):
        assert client.call("crm.lead.list", {}).result == []
    assert client.stats.retries > 0
    admin("faults", error_rate=0.0, truncated_json_rate=0.5, seed=3, methods=["crm.deal.list"])
    for _ in range(5):
        client.call("crm.deal.list", {})


def test_html_batch_with_writes_is_ambiguous(sim, clock, admin):
    admin("faults", html_batch_rate=1.0)
    client = make(sim, clock, max_retries=5)
    with pytest.raises(TransportError) as info:
        client.batch({"a": ("crm.lead.add", {"fields": {"TITLE": "x"}})})
    assert info.value.ambiguous and sim[0].stats.methods["batch"] == 1
    reads = client.batch  # a batch of reads is retried as a whole until the budget runs out
    with pytest.raises(TransportError) as info:
        reads({"a": ("crm.lead.list", {})})
    assert not info.value.ambiguous and sim[0].stats.methods["batch"] == 1 + 6


def test_portal_move_302_reposts_the_body(sim, clock, admin, caplog):
    _, server = sim
    admin("faults", domain_moved_to=f"http://localhost:{server.port}")
    client = make(sim, clock)  # configured with 127.0.0.1: the "old" address
    lead = make(sim, clock, host="localhost").call("crm.lead.add", {"fields": {"TITLE": "moved"}}).result
    with caplog.at_level(logging.WARNING, logger="integrations.bitrix24"):
        got = client.call("crm.lead.get", {"id": lead}).result
    assert got["TITLE"] == "moved"  # the body survived: no «ID is not defined or invalid.»
    assert client.base_url == f"http://localhost:{server.port}/rest/1/***/"
    assert client.stats.redirects == 1 and "portal moved" in caplog.text
    client.call("crm.lead.get", {"id": lead})
    assert client.stats.redirects == 1


def test_webhook_code_never_logged_over_real_http(sim, clock, admin, caplog):
    admin("faults", error_rate=0.5, seed=1, methods=["crm.lead.list"])
    with caplog.at_level(logging.DEBUG):
        client = make(sim, clock, max_retries=3)
        for _ in range(5):
            try:
                client.call("crm.lead.list", {})
            except TransportError as exc:
                assert CODE not in str(exc)
        for code in ("wrongcode", CODE):
            try:
                make(sim, clock, code=code).call("crm.nonexistent", {})
            except MethodNotFound as exc:
                assert code not in str(exc)
    ours = [r.getMessage() for r in caplog.records if r.name.startswith(("integrations", "httpx", "httpcore"))]
    assert ours and not [m for m in ours if CODE in m or "wrongcode" in m]
