"""CRM events: parsing and token check of one outgoing-webhook call, the inbox's once-only store,
the state table keeping the newest read; and the store's /metrics figures."""

from datetime import timedelta
from urllib.parse import urlencode

import pytest

from pipelines.crm_events.apply import apply_pending_events, reconcile, state_from_row, utc_iso
from pipelines.crm_events.jobs import RETRY_BUCKET_SECONDS, run_key
from resources.bitrix24.errors import ServerError
from resources.bitrix24.events import MAX_BODY_BYTES, CrmEvent, EventRejected, parse_event
from resources.store import crm_events, metrics, outbox
from resources.store.crm_events import CrmObjectState
from resources.store.database import Database, utcnow
from resources.store.schema import products, sync_runs
from tests.postgres import fresh_database

TOKEN = "jvh9y1ulvt2m6k5or90v9mg8nn32ozas"


def body(**overrides: str) -> bytes:
    fields = {"event": "ONCRMDEALUPDATE", "event_handler_id": "975", "data[FIELDS][ID]": "662", "ts": "1724140800",
              "auth[domain]": "portal.bitrix24.kz", "auth[application_token]": TOKEN, **overrides}
    return urlencode({k: v for k, v in fields.items() if v is not None}).encode()


def rejected(raw: bytes, token: str = TOKEN) -> EventRejected:
    with pytest.raises(EventRejected) as err:
        parse_event(raw, token)
    return err.value


def test_a_reference_call_parses():
    assert parse_event(body(), TOKEN) == CrmEvent("ONCRMDEALUPDATE", "deal", "update", 662, 1724140800)
    lead = parse_event(body(event="oncrmleadadd", **{"data[FIELDS][ID]": "7"}), TOKEN)
    assert (lead.event, lead.entity, lead.action, lead.entity_id) == ("ONCRMLEADADD", "lead", "add", 7)


@pytest.mark.parametrize("token", ["", "wrong-token", TOKEN[:-1], TOKEN + "x"])
def test_a_wrong_or_missing_token_is_401_and_never_echoed(token):
    err = rejected(body(**{"auth[application_token]": token or None}))
    assert err.status == 401 and "auth[application_token]" in str(err)
    assert TOKEN not in str(err) and (not token or token not in str(err))


def test_the_token_is_checked_before_the_fields():
    """An unauthenticated caller learns nothing about what would be accepted."""
    err = rejected(body(event="SOMETHING", **{"auth[application_token]": "nope"}))
    assert err.status == 401


@pytest.mark.parametrize("overrides,field", [
    ({"event": "ONTASKADD"}, "event"), ({"event": None}, "event"),
    ({"data[FIELDS][ID]": "abc"}, "data[FIELDS][ID]"), ({"data[FIELDS][ID]": "0"}, "data[FIELDS][ID]"),
    ({"data[FIELDS][ID]": None}, "data[FIELDS][ID]"), ({"ts": "-5"}, "ts"),
    ({"data[FIELDS][ID]": "²"}, "data[FIELDS][ID]"), ({"data[FIELDS][ID]": str(2**31)}, "data[FIELDS][ID]"),
    ({"ts": "9" * 30}, "ts"),
])
def test_a_bad_field_is_400_naming_it(overrides, field):
    err = rejected(body(**overrides))
    assert err.status == 400 and str(err).startswith(field + ":")


def test_size_encoding_and_missing_configuration():
    assert rejected(b"x" * (MAX_BODY_BYTES + 1)).status == 413
    assert rejected(b"event=\xff\xfe").status == 400
    assert rejected(body(), token="").status == 503


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> Database:
    url = f"sqlite:///{tmp_path / 'z.db'}" if request.param == "sqlite" else fresh_database("crm")
    if not url:
        pytest.skip("no PostgreSQL: set ZETA_TEST_POSTGRES_URL or install pgserver")
    database = Database(url)
    database.migrate()
    yield database
    database.dispose()


def test_the_inbox_stores_each_call_once_and_retries_with_backoff(db):
    event = parse_event(body(), TOKEN)
    first, created = crm_events.record_event(db, event)
    again, created_again = crm_events.record_event(db, event)
    later, created_later = crm_events.record_event(db, parse_event(body(ts="1724140900"), TOKEN))
    assert (created, created_again, created_later) == (True, False, True)
    assert first == again != later
    summary = crm_events.pending_summary(db)
    assert (summary.count, summary.newest_id, summary.attempts) == (2, later, 0)

    policy = outbox.RetryPolicy(max_attempts=2, backoff_base_seconds=60, backoff_max_seconds=60)
    crm_events.finish_events(db, {first: ("failed", "boom"), later: ("done", None)}, policy=policy)
    assert crm_events.pending_summary(db).count == 0  # the failed one waits out its backoff
    soon = utcnow() + timedelta(seconds=61)
    assert [e.id for e in crm_events.pending_events(db, now=soon)] == [first]
    assert crm_events.pending_summary(db, now=soon).attempts == 1  # a new sensor key for the retry
    crm_events.finish_events(db, {first: ("failed", "boom")}, policy=policy)
    assert crm_events.event_counts(db) == {"pending": 0, "done": 1, "ignored": 0, "failed": 1}

    # the same call after it was applied (or given up): read the object once more
    crm_events.record_event(db, parse_event(body(ts="1724140900"), TOKEN))
    crm_events.record_event(db, event)
    assert crm_events.event_counts(db)["pending"] == 2 and crm_events.pending_summary(db).attempts == 0


def test_state_keeps_the_newest_read_and_counts_only_changes(db):
    new = CrmObjectState("deal", 5, "BOT-000001", "C1:NEW", "in_progress", "2026-11-28T10:00:00+00:00")
    won = CrmObjectState("deal", 5, "BOT-000001", "C1:WON", "won", "2026-11-28T11:00:00+00:00")
    assert crm_events.upsert_states(db, [new]) == 1
    assert crm_events.upsert_states(db, [new]) == 0  # the same again: nothing changed
    assert crm_events.upsert_states(db, [won]) == 1
    assert crm_events.upsert_states(db, [new]) == 0  # an older read arriving late does not win
    assert crm_events.state_of(db, "deal", 5)[0].semantic == "won"
    gone = CrmObjectState("deal", 5, None, None, "deleted", None, deleted=True)
    assert crm_events.upsert_states(db, [gone]) == 1
    assert crm_events.upsert_states(db, [gone]) == 0
    assert crm_events.upsert_states(db, [won]) == 0  # a read from before the delete does not bring it back
    state = crm_events.state_of(db, "deal", 5)[0]
    assert (state.deleted, state.semantic, state.origin_id, state.stage) == (True, "deleted", "BOT-000001", "C1:WON")
    # the deletion of an object the bot never tracked is not stored
    assert crm_events.upsert_states(db, [CrmObjectState("deal", 77, None, None, "deleted", None, True)]) == 0
    assert crm_events.state_of(db, "deal", 77) is None


class _DownPortal:
    def batch(self, commands, halt=True):
        raise ServerError("Bitrix24 answered 503 five times", method="batch", url="https://p/rest/1/***/")


def test_a_portal_that_cannot_be_read_leaves_every_event_waiting(db):
    ids = [crm_events.record_event(db, parse_event(body(**{"data[FIELDS][ID]": str(i)}), TOKEN))[0] for i in (1, 2)]
    contact = crm_events.record_event(db, parse_event(body(event="ONCRMCONTACTADD"), TOKEN))[0]
    report = apply_pending_events(db, _DownPortal(), "zeta-bot")
    assert (report.events, report.failed, report.ignored, report.states_changed) == (3, 2, 1, 0)
    rows = {r["id"]: r for r in crm_events.events_for(db, [1, 2, 662])}
    assert all(rows[i]["status"] == "pending" and rows[i]["attempts"] == 1 for i in ids)
    assert all(rows[i]["next_attempt_at"] > utcnow() for i in ids) and "503" in rows[ids[0]]["last_error"]
    assert rows[contact]["status"] == "ignored"


def test_sensor_run_keys_change_with_the_work_and_with_time():
    start = 8 * RETRY_BUCKET_SECONDS
    assert run_key("5:2:0", start) == run_key("5:2:0", start + RETRY_BUCKET_SECONDS - 1)
    assert run_key("5:2:0", 1000.0) != run_key("5:2:1", 1000.0)
    assert run_key("5:2:0", 1000.0) != run_key("5:2:0", 1000.0 + RETRY_BUCKET_SECONDS)


def test_rows_not_created_by_the_bot_are_not_tracked_and_times_become_utc():
    row = {"ID": "9", "STATUS_ID": "CONVERTED", "STATUS_SEMANTIC_ID": "S", "DATE_MODIFY": "2026-11-28T15:00:00+05:00",
           "ORIGINATOR_ID": "zeta-bot", "ORIGIN_ID": "LEAD-000002"}
    state = state_from_row("lead", row, "zeta-bot")
    assert state == CrmObjectState("lead", 9, "LEAD-000002", "CONVERTED", "won", "2026-11-28T10:00:00+00:00")
    assert state_from_row("lead", {**row, "ORIGINATOR_ID": ""}, "zeta-bot") is None
    assert utc_iso("not a date") is None and utc_iso(None) is None


def test_metrics_read_the_store_on_both_databases(db):
    now = utcnow()
    with db.write() as conn:
        conn.execute(products.insert(), [
            {"sku": f"S{i}", "name": f"n{i}", "price": 1.0, "currency": "KZT", "stock": float(i % 2),
             "is_active": i < 3, "onec_ref": f"ref-{i}", "synced_at": now, "deletion_mark": False,
             "content_hash": "h", "updated_at": now} for i in range(4)])
        conn.execute(sync_runs.insert().values(source="onec", started_at=now - timedelta(minutes=3),
                                               finished_at=now - timedelta(minutes=2), status="success"))
    outbox.enqueue(db, outbox.LEAD, {"customer": {"name": "A", "phone": "+77771234567"}}, dedup_key="m1")
    crm_events.record_event(db, parse_event(body(), TOKEN))
    text = metrics.scrape(db)
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
              for line in text.splitlines() if line and not line.startswith("#")}
    assert values['zeta_products{state="all"}'] == 4
    assert values['zeta_products{state="active"}'] == 3
    assert values['zeta_products{state="in_stock"}'] == 1  # S1 (S3 has stock but is inactive)
    assert 115 <= values['zeta_catalogue_last_sync_age_seconds{status="success"}'] < 300
    assert values['zeta_outbox_rows{kind="lead",status="pending"}'] == 1
    assert values['zeta_outbox_rows{kind="order",status="pending"}'] == 0
    assert 0 <= values["zeta_outbox_oldest_undelivered_age_seconds"] < 60
    assert values['zeta_crm_events{status="pending"}'] == 1
    assert "# TYPE zeta_outbox_rows gauge" in text


class _ListingPortal:
    """Answers crm.*.list with fixed rows and records the filters it was asked for."""

    def __init__(self, rows: dict[str, list[dict]]):
        self.rows, self.filters = rows, []

    def list_all(self, method, filter=None, select=None, order=None, *, params=None):
        self.filters.append((method, dict(filter or {})))
        return self.rows[method]


def test_reconcile_starts_where_the_last_one_began_whatever_events_did(db):
    deal = {"ID": "3", "STAGE_ID": "C1:WON", "STAGE_SEMANTIC_ID": "S", "DATE_MODIFY": "2026-11-28T09:00:00+00:00",
            "ORIGINATOR_ID": "zeta-bot", "ORIGIN_ID": "BOT-000003"}
    portal = _ListingPortal({"crm.deal.list": [deal], "crm.lead.list": []})
    first = reconcile(db, portal, "zeta-bot")
    assert first.states_changed == 1 and ">DATE_MODIFY" not in portal.filters[0][1]  # the first one reads all
    cursor = crm_events.reconcile_cursor(db, "deal")
    # an applied event stores a much newer change of another deal: the cursor must not follow it
    crm_events.upsert_states(db, [CrmObjectState("deal", 9, "BOT-000009", "C1:NEW", "in_progress",
                                                 "2031-01-01T00:00:00+00:00")])
    reconcile(db, portal, "zeta-bot")
    method, flt = portal.filters[2]
    assert method == "crm.deal.list" and flt["ORIGINATOR_ID"] == "zeta-bot"
    assert flt[">DATE_MODIFY"] == (cursor - timedelta(minutes=5)).isoformat(timespec="seconds") + "+00:00"


def test_a_call_repeated_while_its_event_is_applied_is_read_again(db):
    event = parse_event(body(), TOKEN)
    event_id, _ = crm_events.record_event(db, event)
    [taken] = crm_events.pending_events(db)
    key_before = crm_events.pending_summary(db).work_key
    crm_events.record_event(db, event)  # the same call lands while a run works on the event
    assert crm_events.pending_summary(db).work_key != key_before  # the sensor may ask for a run at once
    crm_events.finish_events(db, {event_id: ("done", None)}, seen={event_id: taken.received_at})
    assert crm_events.event_counts(db)["pending"] == 1  # the run's read may predate the repeat
    [again] = crm_events.pending_events(db)
    crm_events.finish_events(db, {event_id: ("done", None)}, seen={event_id: again.received_at})
    assert crm_events.event_counts(db) == {"pending": 0, "done": 1, "ignored": 0, "failed": 0}


def test_an_undated_read_keeps_the_stored_time_and_origin_ids_fill_in(db):
    won = CrmObjectState("deal", 6, None, "C1:WON", "won", "2026-11-28T10:00:00+00:00")
    assert crm_events.upsert_states(db, [won]) == 1
    undated = CrmObjectState("deal", 6, "BOT-000006", "C1:WON", "won", None)
    assert crm_events.upsert_states(db, [undated]) == 1  # the origin id is new information
    older = CrmObjectState("deal", 6, "BOT-000006", "C1:NEW", "in_progress", "2026-11-28T09:00:00+00:00")
    assert crm_events.upsert_states(db, [older]) == 0
    state = crm_events.state_of(db, "deal", 6)[0]
    assert (state.stage, state.origin_id, state.date_modify) == ("C1:WON", "BOT-000006", "2026-11-28T10:00:00+00:00")
