"""The outbox: durable rows for orders, leads and activity logs that the bot hands over.

The bot writes a row and gets an answer at once; the push job delivers the row to 1C and
Bitrix24 later. A row is the single source of truth for what has already reached the outside
world: every external id (1C `Ref_Key`/`Number`, posted flag; Bitrix24 contact, lead, deal,
task and comment ids) is stored by `record()` right after the create that produced it, before
the next step, so a crash or a retry resumes where the last one stopped and never creates twice.

Row life cycle::

    pending ──claim──> in_progress ──complete──> done
       ^                    │  └──fail (retryable, budget left)──> failed ──(next_attempt_at)──┐
       │                    └──fail (permanent or budget spent)──> dead ──replay──> pending  │
       └──────────────────────────────────────────────────────────────────────────────────────┘

Claiming is safe when two push runs overlap: on SQLite the claim runs inside `BEGIN IMMEDIATE`
(one writer at a time) and the UPDATE re-checks the due condition; on PostgreSQL the candidate
rows are selected `FOR UPDATE SKIP LOCKED`. A claim is a lease: a run that dies leaves its rows
`in_progress` with an expired `lease_expires_at`, and they become claimable again. Every write
of a run is fenced by `claim_owner`, so a run that lost its lease cannot overwrite the newer
owner's progress (`LeaseLost`). Rows with the same phone are never held by two runs at once, so
two runs cannot both create the Bitrix24 contact of one customer.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from resources.store.database import Database, as_datetime, utcnow

metadata = MetaData()

PENDING = "pending"
IN_PROGRESS = "in_progress"
DONE = "done"
FAILED = "failed"
DEAD = "dead"
STATUSES = (PENDING, IN_PROGRESS, DONE, FAILED, DEAD)

ORDER = "order"
LEAD = "lead"
ACTIVITY = "activity"
KINDS = (ORDER, LEAD, ACTIVITY)
ID_PREFIX = {ORDER: "BOT", LEAD: "LEAD", ACTIVITY: "ACT"}
MAX_ID_LENGTH = 20

outbox = Table(
    "outbox",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(MAX_ID_LENGTH), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("source", String(32), nullable=False),
    Column("dedup_key", String(255), nullable=True, unique=True),
    Column("conversation_id", String(128), nullable=True),
    Column("phone", String(20), nullable=True),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("replays", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("claim_owner", String(64), nullable=True),
    Column("lease_expires_at", DateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("done_at", DateTime, nullable=True),
    # 1C delivery state
    Column("onec_ref_key", String(36), nullable=True),
    Column("onec_number", String(64), nullable=True),
    Column("onec_posted", Boolean, nullable=False, default=False),
    Column("onec_error", Text, nullable=True),
    # Bitrix24 delivery state
    Column("b24_contact_id", Integer, nullable=True),
    Column("b24_lead_id", Integer, nullable=True),
    Column("b24_deal_id", Integer, nullable=True),
    Column("b24_rows_set", Boolean, nullable=False, default=False),
    Column("b24_number_written", Boolean, nullable=False, default=False),
    Column("b24_task_id", Integer, nullable=True),
    Column("b24_comment_id", Integer, nullable=True),
    Column("b24_error", Text, nullable=True),
    # creates sent whose outcome is not known yet (JSON list): look up before sending again
    Column("intents", Text, nullable=True),
    Index("ix_outbox_due", "status", "next_attempt_at"),
    Index("ix_outbox_conversation", "conversation_id"),
    Index("ix_outbox_phone", "phone"),
)

# Columns a push run may set through `record()`: the delivery state of each target.
STATE_COLUMNS = frozenset(c.name for c in outbox.columns if c.name.startswith(("onec_", "b24_")))


class OutboxError(RuntimeError):
    """Base of outbox errors."""


class LeaseLost(OutboxError):
    """The run no longer holds the row (its lease expired and another run claimed it)."""


class DuplicateKeyConflict(OutboxError):
    """An idempotency key was reused with a different payload."""

    def __init__(self, message: str, existing: OutboxRow):
        super().__init__(message)
        self.existing = existing


@dataclass
class RetryPolicy:
    """Per-row retry budget and backoff: delay = U(½, 1) · min(max, base · 2^(attempt-1))."""

    max_attempts: int = 8
    backoff_base_seconds: float = 30.0
    backoff_max_seconds: float = 3600.0
    lease_seconds: float = 300.0

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        cap = min(self.backoff_max_seconds, self.backoff_base_seconds * 2 ** max(0, attempts - 1))
        return cap * (0.5 + 0.5 * (rng or random).random())


@dataclass
class OutboxRow:
    seq: int
    id: str
    kind: str
    source: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime
    dedup_key: str | None = None
    conversation_id: str | None = None
    phone: str | None = None
    replays: int = 0
    claim_owner: str | None = None
    lease_expires_at: datetime | None = None
    last_error: str | None = None
    done_at: datetime | None = None
    onec_ref_key: str | None = None
    onec_number: str | None = None
    onec_posted: bool = False
    onec_error: str | None = None
    b24_contact_id: int | None = None
    b24_lead_id: int | None = None
    b24_deal_id: int | None = None
    b24_rows_set: bool = False
    b24_number_written: bool = False
    b24_task_id: int | None = None
    b24_comment_id: int | None = None
    b24_error: str | None = None
    intents: set[str] = field(default_factory=set)

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> OutboxRow:
        values = dict(m)
        values["payload"] = orjson.loads(values["payload"])
        values["intents"] = set(orjson.loads(values["intents"])) if values.get("intents") else set()
        values["onec_posted"] = bool(values.get("onec_posted"))
        values["b24_rows_set"] = bool(values.get("b24_rows_set"))
        values["b24_number_written"] = bool(values.get("b24_number_written"))
        return cls(**values)

    def external_ids(self) -> dict[str, Any]:
        """The ids this row produced so far (None where not delivered)."""
        return {"onec_ref_key": self.onec_ref_key, "onec_number": self.onec_number,
                "onec_posted": self.onec_posted, "b24_contact_id": self.b24_contact_id,
                "b24_lead_id": self.b24_lead_id, "b24_deal_id": self.b24_deal_id,
                "b24_task_id": self.b24_task_id, "b24_comment_id": self.b24_comment_id}


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _row_id(kind: str, seq: int) -> str:
    return f"{ID_PREFIX[kind]}-{seq:06d}"


# ---- bot side --------------------------------------------------------------------------------

def enqueue(db: Database, kind: str, payload: Mapping[str, Any], *, source: str = "bot",
            dedup_key: str | None = None, fingerprint: str | None = None, conversation_id: str | None = None,
            phone: str | None = None, now: datetime | None = None) -> tuple[OutboxRow, bool]:
    """Add a row (status `pending`, due now) and return it with `True`; with a `dedup_key`
    already in the outbox return the existing row and `False` instead (a double submit).

    With a `fingerprint` (stored in the payload as `fingerprint`), a key reused for a request
    with another fingerprint raises `DuplicateKeyConflict`; without one a reused key always
    answers with the existing row.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown outbox kind {kind!r}; expected one of {', '.join(KINDS)}")
    if fingerprint is not None:
        payload = {**payload, "fingerprint": fingerprint}
    body = _dumps(payload)
    moment = now or utcnow()
    for _ in range(2):  # a second pass only after a concurrent insert of the same key (PostgreSQL)
        try:
            with db.write() as conn:
                if dedup_key is not None:
                    existing = conn.execute(select(outbox).where(outbox.c.dedup_key == dedup_key)).mappings().first()
                    if existing is not None:
                        row = OutboxRow.from_mapping(existing)
                        if fingerprint is not None and row.payload.get("fingerprint") != fingerprint:
                            raise DuplicateKeyConflict(
                                f"idempotency key {dedup_key!r} was already used for {row.id} with different data",
                                row)
                        return row, False
                placeholder = "new-" + uuid.uuid4().hex[:16]
                seq = conn.execute(outbox.insert().values(
                    id=placeholder, kind=kind, source=source[:32], dedup_key=dedup_key,
                    conversation_id=conversation_id, phone=phone, payload=body, status=PENDING, attempts=0,
                    replays=0, next_attempt_at=moment, created_at=moment, updated_at=moment,
                    onec_posted=False, b24_rows_set=False, b24_number_written=False,
                )).inserted_primary_key[0]
                conn.execute(update(outbox).where(outbox.c.seq == seq).values(id=_row_id(kind, seq)))
                created = conn.execute(select(outbox).where(outbox.c.seq == seq)).mappings().one()
                return OutboxRow.from_mapping(created), True
        except IntegrityError:
            if dedup_key is None:
                raise
            continue
    raise OutboxError(f"could not enqueue {kind} with key {dedup_key!r}")  # pragma: no cover


def get(db: Database, row_id: str) -> OutboxRow | None:
    with db.read() as conn:
        m = conn.execute(select(outbox).where(outbox.c.id == row_id)).mappings().first()
    return OutboxRow.from_mapping(m) if m else None


def find(db: Database, *, kind: str | None = None, conversation_id: str | None = None,
         phone: str | None = None, statuses: Iterable[str] | None = None, limit: int = 100) -> list[OutboxRow]:
    """Rows matching every given filter, newest first."""
    query = select(outbox)
    if kind:
        query = query.where(outbox.c.kind == kind)
    if conversation_id:
        query = query.where(outbox.c.conversation_id == conversation_id)
    if phone:
        query = query.where(outbox.c.phone == phone)
    if statuses:
        query = query.where(outbox.c.status.in_(list(statuses)))
    with db.read() as conn:
        rows = conn.execute(query.order_by(outbox.c.seq.desc()).limit(limit)).mappings().all()
    return [OutboxRow.from_mapping(m) for m in rows]


def list_rows(db: Database, *, status: str | None = None, kind: str | None = None,
              limit: int | None = None) -> list[OutboxRow]:
    query = select(outbox).order_by(outbox.c.seq)
    if status:
        query = query.where(outbox.c.status == status)
    if kind:
        query = query.where(outbox.c.kind == kind)
    if limit:
        query = query.limit(limit)
    with db.read() as conn:
        return [OutboxRow.from_mapping(m) for m in conn.execute(query).mappings().all()]


def counts(db: Database) -> dict[str, int]:
    """Rows per status (every status present, zero when none)."""
    with db.read() as conn:
        found = dict(conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status)).all())
    return {s: int(found.get(s, 0)) for s in STATUSES}


# ---- push side -------------------------------------------------------------------------------

def _due(now: datetime, backoff_ignored_before: datetime | None = None):  # noqa: ANN202 - SQL expression
    waiting = outbox.c.status.in_([PENDING, FAILED])
    ready = outbox.c.next_attempt_at <= now
    if backoff_ignored_before is not None:  # "retry now": rows last touched before that moment
        ready = or_(ready, outbox.c.updated_at < backoff_ignored_before)
    return or_(
        and_(waiting, ready),
        and_(outbox.c.status == IN_PROGRESS, outbox.c.lease_expires_at < now),
    )


@dataclass(frozen=True)
class DueSummary:
    """What the sensor needs: is there work, and a key that changes with every new piece of it."""

    count: int
    max_seq: int
    attempts: int
    replays: int
    last_touch: datetime | None
    next_due_at: datetime | None

    @property
    def work_key(self) -> str:
        """Changes whenever a row becomes due or a due row is touched (claimed, failed,
        released, replayed), so each new piece of work gets a new key."""
        touch = int(self.last_touch.timestamp() * 1000) if self.last_touch else 0
        return f"{self.count}.{self.max_seq}.{self.attempts}.{self.replays}.{touch}"


def due_summary(db: Database, now: datetime | None = None, kinds: Sequence[str] | None = None) -> DueSummary:
    """Count of rows due now, their max `seq`, summed attempts and replays, and the earliest
    future due time; one read of the local table (no HTTP)."""
    moment = now or utcnow()
    of_kind = outbox.c.kind.in_(list(kinds)) if kinds else outbox.c.kind.is_not(None)
    with db.read() as conn:
        count, max_seq, attempts, replays, last_touch = conn.execute(
            select(func.count(), func.max(outbox.c.seq), func.sum(outbox.c.attempts), func.sum(outbox.c.replays),
                   func.max(outbox.c.updated_at))
            .where(_due(moment), of_kind)
        ).one()
        next_due = conn.execute(
            select(func.min(outbox.c.next_attempt_at)).where(outbox.c.status.in_([PENDING, FAILED]), of_kind)
        ).scalar()
    return DueSummary(int(count or 0), int(max_seq or 0), int(attempts or 0), int(replays or 0),
                      as_datetime(last_touch), as_datetime(next_due))


def claim(db: Database, owner: str, *, limit: int = 100, lease_seconds: float = 300.0,
          kinds: Sequence[str] | None = None, now: datetime | None = None,
          backoff_ignored_before: datetime | None = None) -> list[OutboxRow]:
    """Take up to `limit` due rows for `owner`: status `in_progress`, a lease, one more attempt.

    Oldest first. A row whose phone is held by another live run is left for later, so one
    customer's contact is never created by two runs at once. With `backoff_ignored_before`,
    failed rows last touched before that moment are taken even if their backoff has not
    expired (an operator's "retry now"; rows failed by the same run are not taken again).
    """
    moment = now or utcnow()
    lease_until = moment + timedelta(seconds=lease_seconds)
    busy_phones = (
        select(outbox.c.phone)
        .where(outbox.c.status == IN_PROGRESS, outbox.c.lease_expires_at >= moment,
               outbox.c.claim_owner != owner, outbox.c.phone.is_not(None))
        .scalar_subquery()
    )
    due = _due(moment, backoff_ignored_before)
    condition = and_(due, or_(outbox.c.phone.is_(None), outbox.c.phone.not_in(busy_phones)))
    if kinds:
        condition = and_(condition, outbox.c.kind.in_(list(kinds)))
    with db.write() as conn:
        candidates = select(outbox.c.seq).where(condition).order_by(outbox.c.seq).limit(limit)
        if not db.is_sqlite:
            candidates = candidates.with_for_update(skip_locked=True)
        seqs = list(conn.execute(candidates).scalars())
        if not seqs:
            return []
        conn.execute(
            update(outbox).where(outbox.c.seq.in_(seqs), due).values(
                status=IN_PROGRESS, claim_owner=owner, lease_expires_at=lease_until,
                attempts=outbox.c.attempts + 1, updated_at=moment)
        )
        rows = conn.execute(
            select(outbox).where(outbox.c.seq.in_(seqs), outbox.c.claim_owner == owner,
                                 outbox.c.status == IN_PROGRESS).order_by(outbox.c.seq)
        ).mappings().all()
    return [OutboxRow.from_mapping(m) for m in rows]


def _fenced(row_id: str, owner: str):  # noqa: ANN202 - SQL expression
    return and_(outbox.c.id == row_id, outbox.c.claim_owner == owner, outbox.c.status == IN_PROGRESS)


def record(db: Database, owner: str, row_id: str, *, lease_seconds: float | None = None,
           add_intents: Iterable[str] = (), drop_intents: Iterable[str] = (), **state: Any) -> None:
    """Persist delivery state of one row now (one short transaction), fenced by the claim."""
    record_many(db, owner, {row_id: state}, lease_seconds=lease_seconds,
                add_intents={row_id: set(add_intents)} if add_intents else None,
                drop_intents={row_id: set(drop_intents)} if drop_intents else None)


def record_many(db: Database, owner: str, states: Mapping[str, Mapping[str, Any]], *,
                lease_seconds: float | None = None, add_intents: Mapping[str, set[str]] | None = None,
                drop_intents: Mapping[str, set[str]] | None = None) -> list[str]:
    """Persist delivery state of several rows in one transaction; returns the ids whose lease
    was lost (not written). Intents are added/removed per row; the lease is extended when
    `lease_seconds` is given."""
    moment = utcnow()
    lost: list[str] = []
    ids = set(states) | set(add_intents or {}) | set(drop_intents or {})
    with db.write() as conn:
        for row_id in sorted(ids):
            values: dict[str, Any] = dict(states.get(row_id, {}))
            unknown = set(values) - STATE_COLUMNS
            if unknown:
                raise ValueError(f"not delivery-state columns: {', '.join(sorted(unknown))}")
            if (add_intents and add_intents.get(row_id)) or (drop_intents and drop_intents.get(row_id)):
                current = conn.execute(select(outbox.c.intents).where(_fenced(row_id, owner))).scalar()
                intents = set(orjson.loads(current)) if current else set()
                intents |= (add_intents or {}).get(row_id, set())
                intents -= (drop_intents or {}).get(row_id, set())
                values["intents"] = _dumps(sorted(intents)) if intents else None
            values["updated_at"] = moment
            if lease_seconds is not None:
                values["lease_expires_at"] = moment + timedelta(seconds=lease_seconds)
            if conn.execute(update(outbox).where(_fenced(row_id, owner)).values(**values)).rowcount != 1:
                lost.append(row_id)
    return lost


def complete(db: Database, owner: str, row_id: str) -> None:
    moment = utcnow()
    with db.write() as conn:
        n = conn.execute(update(outbox).where(_fenced(row_id, owner)).values(
            status=DONE, done_at=moment, updated_at=moment, claim_owner=None, lease_expires_at=None,
            last_error=None)).rowcount
    if n != 1:
        raise LeaseLost(f"{row_id}: lease lost before completion")


def fail(db: Database, owner: str, row_id: str, error: str, policy: RetryPolicy, *,
         permanent: bool = False, rng: random.Random | None = None) -> str:
    """Record a failed attempt: `failed` with a backoff, or `dead` when the error is permanent
    or the retry budget is spent. Returns the new status."""
    moment = utcnow()
    with db.write() as conn:
        attempts = conn.execute(select(outbox.c.attempts).where(_fenced(row_id, owner))).scalar()
        if attempts is None:
            raise LeaseLost(f"{row_id}: lease lost before recording the failure")
        dead = permanent or attempts >= policy.max_attempts
        values: dict[str, Any] = {"status": DEAD if dead else FAILED, "last_error": error[:4000],
                                  "updated_at": moment, "claim_owner": None, "lease_expires_at": None}
        if not dead:
            values["next_attempt_at"] = moment + timedelta(seconds=policy.delay(attempts, rng))
        conn.execute(update(outbox).where(_fenced(row_id, owner)).values(**values))
    return values["status"]


def release(db: Database, owner: str, row_id: str, *, delay_seconds: float = 0.0, note: str | None = None) -> None:
    """Give a row back untouched (not an attempt): it waits for something else, e.g. an
    activity log whose lead has not reached Bitrix24 yet."""
    moment = utcnow()
    values: dict[str, Any] = {"status": PENDING, "attempts": outbox.c.attempts - 1, "claim_owner": None,
                              "lease_expires_at": None, "updated_at": moment,
                              "next_attempt_at": moment + timedelta(seconds=delay_seconds)}
    if note is not None:
        values["last_error"] = note[:4000]
    with db.write() as conn:
        conn.execute(update(outbox).where(_fenced(row_id, owner)).values(**values))


def replay_dead(db: Database, ids: Iterable[str] | None = None, *, now: datetime | None = None) -> list[str]:
    """Put dead rows back to `pending` with a fresh retry budget; `ids=None` replays every dead
    row. The stored external ids stay, so a replay resumes and never creates twice.
    Returns the ids replayed (ids that are not dead are ignored)."""
    moment = now or utcnow()
    with db.write() as conn:
        query = select(outbox.c.id).where(outbox.c.status == DEAD)
        if ids is not None:
            wanted = list(ids)
            if not wanted:
                return []
            query = query.where(outbox.c.id.in_(wanted))
        found = list(conn.execute(query.order_by(outbox.c.seq)).scalars())
        if found:
            conn.execute(update(outbox).where(outbox.c.id.in_(found), outbox.c.status == DEAD).values(
                status=PENDING, attempts=0, replays=outbox.c.replays + 1, next_attempt_at=moment,
                updated_at=moment, claim_owner=None, lease_expires_at=None))
    return found


def list_due(db: Database, *, limit: int = 1000, now: datetime | None = None) -> list[OutboxRow]:
    """Rows due now, without claiming them (dry runs, diagnostics)."""
    moment = now or utcnow()
    with db.read() as conn:
        rows = conn.execute(select(outbox).where(_due(moment)).order_by(outbox.c.seq).limit(limit)).mappings().all()
    return [OutboxRow.from_mapping(m) for m in rows]


__all__ = [
    "ACTIVITY", "DEAD", "DONE", "FAILED", "IN_PROGRESS", "KINDS", "LEAD", "ORDER", "PENDING", "STATUSES",
    "DueSummary", "DuplicateKeyConflict", "LeaseLost", "OutboxError", "OutboxRow", "RetryPolicy",
    "claim", "complete", "counts", "due_summary", "enqueue", "fail", "find", "get", "list_due", "list_rows",
    "outbox", "record", "record_many", "release", "replay_dead", "utcnow",
]
