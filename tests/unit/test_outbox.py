"""Outbox store: ids, idempotency keys, leased claims, fencing, backoff, dead letters, replay."""

from __future__ import annotations

import random
import threading
from datetime import timedelta

import pytest
from sqlalchemy import text

from resources.store import outbox
from resources.store.database import Database, get_database
from tests.postgres import fresh_database


@pytest.fixture(scope="module")
def postgres_url() -> str | None:
    """One PostgreSQL database for this module (see tests/postgres.py)."""
    return fresh_database("outbox")


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path, postgres_url) -> Database:
    if request.param == "sqlite":
        return get_database(f"sqlite:///{tmp_path / 'outbox.db'}")
    if not postgres_url:
        pytest.skip("no PostgreSQL: set ZETA_TEST_POSTGRES_URL or install pgserver")
    database = get_database(postgres_url)
    with database.write() as conn:
        conn.execute(text("TRUNCATE outbox RESTART IDENTITY"))
    return database


def _order(db: Database, n: int = 0, **kw):
    return outbox.enqueue(db, outbox.ORDER, {"n": n}, phone=kw.pop("phone", f"+7777000{n:04d}"), **kw)


def test_ids_are_short_prefixed_and_unique(db):
    order, created = _order(db)
    lead, _ = outbox.enqueue(db, outbox.LEAD, {"x": 1})
    act, _ = outbox.enqueue(db, outbox.ACTIVITY, {"x": 2})
    assert created
    assert (order.id, lead.id, act.id) == ("BOT-000001", "LEAD-000002", "ACT-000003")
    assert all(len(r.id) <= outbox.MAX_ID_LENGTH for r in (order, lead, act))
    assert order.status == outbox.PENDING and order.attempts == 0


def test_dedup_key_returns_existing_row_and_conflicts_on_other_data(db):
    first, created = outbox.enqueue(db, outbox.ORDER, {"a": 1}, dedup_key="order:k", fingerprint="f1")
    again, created_again = outbox.enqueue(db, outbox.ORDER, {"a": 1}, dedup_key="order:k", fingerprint="f1")
    assert created and not created_again and again.id == first.id
    with pytest.raises(outbox.DuplicateKeyConflict) as err:
        outbox.enqueue(db, outbox.ORDER, {"a": 2}, dedup_key="order:k", fingerprint="f2")
    assert err.value.existing.id == first.id
    assert outbox.counts(db)[outbox.PENDING] == 1


def test_claim_takes_due_rows_once_and_counts_the_attempt(db):
    for n in range(5):
        _order(db, n)
    rows = outbox.claim(db, "run-a", limit=3)
    assert [r.id for r in rows] == ["BOT-000001", "BOT-000002", "BOT-000003"]
    assert all(r.status == outbox.IN_PROGRESS and r.attempts == 1 and r.claim_owner == "run-a" for r in rows)
    rest = outbox.claim(db, "run-b", limit=10)
    assert [r.id for r in rest] == ["BOT-000004", "BOT-000005"]
    assert outbox.claim(db, "run-c", limit=10) == []


def test_concurrent_claims_never_overlap(db):
    for n in range(200):
        _order(db, n)
    taken: dict[str, list[str]] = {}

    def worker(name: str) -> None:
        mine: list[str] = []
        while rows := outbox.claim(db, name, limit=7):
            mine += [r.id for r in rows]
        taken[name] = mine

    threads = [threading.Thread(target=worker, args=(f"run-{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for ids in taken.values() for i in ids]
    assert len(everything) == 200 and len(set(everything)) == 200


def test_expired_lease_makes_the_row_claimable_and_fences_the_old_owner(db):
    row, _ = _order(db)
    outbox.claim(db, "crashed", limit=1, lease_seconds=60)
    assert outbox.claim(db, "other", limit=1) == []
    later = outbox.utcnow() + timedelta(seconds=61)
    again = outbox.claim(db, "other", limit=1, now=later)
    assert [r.id for r in again] == [row.id] and again[0].attempts == 2
    # the crashed run wakes up: none of its writes land
    assert outbox.record_many(db, "crashed", {row.id: {"b24_deal_id": 7}}) == [row.id]
    with pytest.raises(outbox.LeaseLost):
        outbox.complete(db, "crashed", row.id)
    outbox.record(db, "other", row.id, b24_deal_id=9, add_intents=["b24_task"])
    stored = outbox.get(db, row.id)
    assert stored.b24_deal_id == 9 and stored.intents == {"b24_task"}


def test_record_rejects_columns_that_are_not_delivery_state(db):
    row, _ = _order(db)
    outbox.claim(db, "run", limit=1)
    with pytest.raises(ValueError, match="status"):
        outbox.record(db, "run", row.id, status="done")


def test_rows_of_a_phone_held_by_another_run_wait(db):
    _order(db, 1, phone="+77770000001")
    _order(db, 2, phone="+77770000001")
    _order(db, 3, phone="+77770000003")
    first = outbox.claim(db, "run-a", limit=1)
    assert [r.id for r in first] == ["BOT-000001"]
    second = outbox.claim(db, "run-b", limit=10)
    assert [r.id for r in second] == ["BOT-000003"]  # BOT-000002 shares run-a's phone
    outbox.complete(db, "run-a", "BOT-000001")
    assert [r.id for r in outbox.claim(db, "run-b", limit=10)] == ["BOT-000002"]


def test_backoff_grows_with_jitter_and_is_capped():
    policy = outbox.RetryPolicy(backoff_base_seconds=10, backoff_max_seconds=100)
    rng = random.Random(1)
    for attempt, cap in [(1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (9, 100)]:
        delays = [policy.delay(attempt, rng) for _ in range(50)]
        assert all(cap / 2 <= d <= cap for d in delays)
        assert len({round(d, 6) for d in delays}) > 1  # jittered


def test_failed_rows_back_off_then_die_after_the_budget(db):
    row, _ = _order(db)
    policy = outbox.RetryPolicy(max_attempts=3, backoff_base_seconds=100, backoff_max_seconds=1000)
    statuses = []
    now = outbox.utcnow()
    for attempt in range(1, 4):
        now += timedelta(seconds=10_000)
        claimed = outbox.claim(db, "run", limit=1, now=now)
        assert claimed and claimed[0].attempts == attempt
        statuses.append(outbox.fail(db, "run", row.id, f"boom {attempt}", policy))
        stored = outbox.get(db, row.id)
        if stored.status == outbox.FAILED:
            assert stored.next_attempt_at > outbox.utcnow() + timedelta(seconds=40)
            assert outbox.claim(db, "run", limit=1) == []  # not due before its backoff
    assert statuses == [outbox.FAILED, outbox.FAILED, outbox.DEAD]
    assert outbox.get(db, row.id).last_error == "boom 3"


def test_permanent_error_is_dead_at_once_and_replay_keeps_external_ids(db):
    row, _ = _order(db)
    outbox.claim(db, "run", limit=1)
    outbox.record(db, "run", row.id, onec_ref_key="ref-1", onec_number="ЗК-000001")
    assert outbox.fail(db, "run", row.id, "1C: -1", outbox.RetryPolicy(), permanent=True) == outbox.DEAD
    assert outbox.replay_dead(db, ["BOT-999999"]) == []
    assert outbox.replay_dead(db) == [row.id]
    stored = outbox.get(db, row.id)
    assert (stored.status, stored.attempts, stored.replays) == (outbox.PENDING, 0, 1)
    assert stored.onec_ref_key == "ref-1" and stored.onec_number == "ЗК-000001"


def test_release_gives_the_row_back_without_spending_an_attempt(db):
    row, _ = _order(db)
    outbox.claim(db, "run", limit=1)
    outbox.release(db, "run", row.id, delay_seconds=30, note="waiting for LEAD-000001")
    stored = outbox.get(db, row.id)
    assert (stored.status, stored.attempts, stored.claim_owner) == (outbox.PENDING, 0, None)
    assert stored.next_attempt_at > outbox.utcnow() + timedelta(seconds=20)


def test_due_summary_key_changes_with_every_new_piece_of_work(db):
    assert outbox.due_summary(db).count == 0
    _order(db, 1)
    first = outbox.due_summary(db)
    assert first.count == 1
    assert outbox.due_summary(db).work_key == first.work_key  # nothing new: same key
    _order(db, 2)
    second = outbox.due_summary(db)
    assert second.work_key != first.work_key
    rows = outbox.claim(db, "run", limit=10)
    assert outbox.due_summary(db).count == 0
    for r in rows:
        outbox.fail(db, "run", r.id, "x", outbox.RetryPolicy(backoff_base_seconds=0.001, backoff_max_seconds=0.001))
    third = outbox.due_summary(db, now=outbox.utcnow() + timedelta(seconds=1))
    assert third.count == 2 and third.work_key not in (first.work_key, second.work_key)
    assert outbox.due_summary(db, kinds=[outbox.LEAD]).count == 0


def test_retry_now_takes_waiting_rows_once(db):
    row, _ = _order(db)
    outbox.claim(db, "run", limit=1)
    outbox.fail(db, "run", row.id, "boom", outbox.RetryPolicy(backoff_base_seconds=3600))
    assert outbox.claim(db, "run", limit=1) == []
    start = outbox.utcnow() + timedelta(seconds=1)
    taken = outbox.claim(db, "operator", limit=1, backoff_ignored_before=start)
    assert [r.id for r in taken] == [row.id]
    outbox.fail(db, "operator", row.id, "boom again", outbox.RetryPolicy(backoff_base_seconds=3600))
    assert outbox.claim(db, "operator", limit=1, backoff_ignored_before=start - timedelta(seconds=1)) == []
