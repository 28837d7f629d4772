"""The CRM event inbox, the last known CRM state of the bot's deals and leads, and the cursors of
the reconciliation (migration 0005).

An event row is kept once per (event, id, ts); the same call arriving again after it was applied
puts it back to pending (`ts` has one-second resolution, so two changes in one second look alike:
reading the object once more is harmless). A failed read waits with exponential backoff. The state
table is keyed by (entity, id); every write keeps the newer read, in SQL, so the event job and the
reconciliation may write side by side.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from resources.bitrix24.events import CrmEvent
from resources.store.database import Database, utcnow
from resources.store.outbox import RetryPolicy
from resources.store.schema import metadata

PENDING, DONE, IGNORED, FAILED = "pending", "done", "ignored", "failed"
# The outbox's full-jitter backoff; 10 tries from 30 s up to an hour wait out a long portal outage.
EVENT_RETRY = RetryPolicy(max_attempts=10)
STATUSES = (PENDING, DONE, IGNORED, FAILED)
# Bitrix24's STAGE_SEMANTIC_ID / STATUS_SEMANTIC_ID, in words the bot can use.
SEMANTICS = {"P": "in_progress", "S": "won", "F": "lost"}

crm_events = Table(
    "crm_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event", String(64), nullable=False),
    Column("entity", String(16), nullable=False),
    Column("entity_id", Integer, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("received_at", DateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("processed_at", DateTime, nullable=True),
    UniqueConstraint("event", "entity_id", "ts", name="uq_crm_events_event_id_ts"),
    Index("ix_crm_events_due", "status", "next_attempt_at"),
)

crm_state = Table(
    "crm_state",
    metadata,
    Column("entity", String(16), primary_key=True),
    Column("entity_id", Integer, primary_key=True),
    Column("origin_id", String(64), nullable=True),
    Column("stage", String(64), nullable=True),
    Column("semantic", String(16), nullable=False),
    Column("date_modify", String(40), nullable=True),
    Column("deleted", Boolean, nullable=False),
    Column("fetched_at", DateTime, nullable=False),
    Index("ix_crm_state_origin", "origin_id"),
)

crm_cursors = Table(
    "crm_cursors",
    metadata,
    Column("entity", String(16), primary_key=True),
    Column("since", DateTime, nullable=False),
)


@dataclass(frozen=True)
class StoredEvent:
    id: int
    event: str
    entity: str
    entity_id: int
    ts: int
    attempts: int
    received_at: datetime  # moves when the same call comes again: an outcome is then not recorded


@dataclass(frozen=True)
class CrmObjectState:
    """What the CRM said about one deal or lead: its stage and what the stage means."""

    entity: str
    entity_id: int
    origin_id: str | None
    stage: str | None
    semantic: str  # in_progress | won | lost | deleted
    date_modify: str | None
    deleted: bool = False

    def as_bot_dict(self) -> dict[str, Any]:
        return {"entity": self.entity, "id": self.entity_id, "stage": self.stage, "semantic": self.semantic,
                "modified": self.date_modify}


def _insert(conn: Connection, table: Table) -> Any:  # noqa: ANN401 - dialect-specific Insert
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)


def record_event(db: Database, event: CrmEvent) -> tuple[int, bool]:
    """Store an event once; returns (its id, whether this call stored it). The same call after the
    event was applied (or ignored, or given up) makes it pending again, due now."""
    now = utcnow()
    key = and_(crm_events.c.event == event.event, crm_events.c.entity_id == event.entity_id,
               crm_events.c.ts == event.ts)
    with db.write() as conn:
        stmt = _insert(conn, crm_events).values(
            event=event.event, entity=event.entity, entity_id=event.entity_id, ts=event.ts, received_at=now,
            status=PENDING, attempts=0, next_attempt_at=now).on_conflict_do_nothing(
            index_elements=["event", "entity_id", "ts"])
        created = conn.execute(stmt).rowcount == 1
        if not created:  # due now; a run reading it at this moment will not record over this call
            conn.execute(update(crm_events).where(key).values(
                status=PENDING, attempts=0, next_attempt_at=now, last_error=None, received_at=now))
        row_id = conn.execute(select(crm_events.c.id).where(key)).scalar_one()
    return int(row_id), created


def _due(now: datetime) -> Any:  # noqa: ANN401 - SQL expression
    return and_(crm_events.c.status == PENDING, crm_events.c.next_attempt_at <= now)


def pending_events(db: Database, limit: int = 500, now: datetime | None = None) -> list[StoredEvent]:
    """The oldest events due now, in arrival order."""
    with db.read() as conn:
        rows = conn.execute(select(crm_events.c.id, crm_events.c.event, crm_events.c.entity, crm_events.c.entity_id,
                                   crm_events.c.ts, crm_events.c.attempts, crm_events.c.received_at)
                            .where(_due(now or utcnow())).order_by(crm_events.c.id).limit(limit)).all()
    return [StoredEvent(*r) for r in rows]


@dataclass(frozen=True)
class PendingSummary:
    count: int  # due now
    newest_id: int | None
    attempts: int  # grows with every failed try, so a retry gets a new sensor run key
    last_received: datetime | str | None = None  # moves when a call comes again

    @property
    def work_key(self) -> str:
        received = str(self.last_received or "").replace(" ", "T")
        return f"{self.newest_id}:{self.count}:{self.attempts}:{received}"


def pending_summary(db: Database, now: datetime | None = None) -> PendingSummary:
    """What a sensor needs to know about events due now, from the local table only."""
    with db.read() as conn:
        count, newest, attempts, received = conn.execute(select(
            func.count(), func.max(crm_events.c.id), func.coalesce(func.sum(crm_events.c.attempts), 0),
            func.max(crm_events.c.received_at)).where(_due(now or utcnow()))).one()
    return PendingSummary(int(count), int(newest) if newest is not None else None, int(attempts), received)


def finish_events(db: Database, outcomes: Mapping[int, tuple[str, str | None]], *,
                  seen: Mapping[int, datetime] | None = None, policy: RetryPolicy = EVENT_RETRY,
                  rng: random.Random | None = None) -> None:
    """Record each event's outcome. A `failed` outcome waits (backoff) and is tried again, and
    becomes `failed` for good only after `policy.max_attempts` tries. With `seen` (each event's
    `received_at` as the run read it), an event whose call came again meanwhile keeps its new
    pending state: the run's read may be older than that call."""
    now = utcnow()
    seen = seen or {}
    with db.write() as conn:
        attempts = dict(conn.execute(select(crm_events.c.id, crm_events.c.attempts)
                                     .where(crm_events.c.id.in_(list(outcomes)))).all()) if outcomes else {}
        for event_id, (status, error) in outcomes.items():
            tries = int(attempts.get(event_id, 0)) + 1
            values: dict[str, Any] = {"attempts": tries, "last_error": error}
            if status == FAILED and tries < policy.max_attempts:
                values.update(status=PENDING, next_attempt_at=now + timedelta(seconds=policy.delay(tries, rng)))
            else:
                values.update(status=status, processed_at=now)
            where = [crm_events.c.id == event_id]
            if event_id in seen:
                where.append(crm_events.c.received_at == seen[event_id])
            conn.execute(update(crm_events).where(*where).values(**values))


def upsert_states(db: Database, states: Iterable[CrmObjectState]) -> int:
    """Write each read unless a newer one is stored; returns how many stages changed.

    The comparison is in the statements themselves (insert-or-nothing, then an UPDATE whose WHERE
    keeps the newer `date_modify` and never brings a deleted object back), so two writers cannot
    overwrite a newer read with an older one. A deletion of an object never seen is not stored."""
    now = utcnow()
    changed = 0
    with db.write() as conn:
        for s in states:
            key = and_(crm_state.c.entity == s.entity, crm_state.c.entity_id == s.entity_id)
            if s.deleted:
                changed += conn.execute(update(crm_state).where(key, crm_state.c.deleted.is_(False)).values(
                    deleted=True, semantic="deleted", fetched_at=now)).rowcount
                continue
            values = {"origin_id": s.origin_id, "stage": s.stage, "semantic": s.semantic,
                      "date_modify": s.date_modify, "deleted": False, "fetched_at": now}
            inserted = conn.execute(_insert(conn, crm_state).values(entity=s.entity, entity_id=s.entity_id, **values)
                                    .on_conflict_do_nothing(index_elements=["entity", "entity_id"])).rowcount
            if inserted == 1:
                changed += 1
                continue
            newer = and_(key, crm_state.c.deleted.is_(False))
            if s.date_modify is not None:
                newer = and_(newer, or_(crm_state.c.date_modify.is_(None), crm_state.c.date_modify <= s.date_modify))
            differs = or_(crm_state.c.stage.is_distinct_from(s.stage), crm_state.c.semantic != s.semantic,
                          crm_state.c.origin_id.is_distinct_from(s.origin_id))
            # an undated read never erases the stored time (that would let any older read win later)
            values["date_modify"] = func.coalesce(s.date_modify, crm_state.c.date_modify)
            if conn.execute(update(crm_state).where(newer, differs).values(**values)).rowcount:
                changed += 1
            else:  # same stage: only when it was last confirmed
                conn.execute(update(crm_state).where(newer).values(fetched_at=now, date_modify=values["date_modify"]))
    return changed


def state_of(db: Database, entity: str, entity_id: int) -> tuple[CrmObjectState, datetime] | None:
    with db.read() as conn:
        row = conn.execute(select(crm_state).where(and_(crm_state.c.entity == entity,
                                                        crm_state.c.entity_id == entity_id))).one_or_none()
    if row is None:
        return None
    return (CrmObjectState(row.entity, row.entity_id, row.origin_id, row.stage, row.semantic, row.date_modify,
                           bool(row.deleted)), row.fetched_at)


def reconcile_cursor(db: Database, entity: str) -> datetime | None:
    """Start of the last successful reconciliation of `entity` (naive UTC), or None."""
    with db.read() as conn:
        return conn.execute(select(crm_cursors.c.since).where(crm_cursors.c.entity == entity)).scalar()


def set_reconcile_cursor(db: Database, entity: str, since: datetime) -> None:
    with db.write() as conn:
        conn.execute(_insert(conn, crm_cursors).values(entity=entity, since=since)
                     .on_conflict_do_update(index_elements=["entity"], set_={"since": since}))


def event_counts_in(conn: Connection) -> dict[str, int]:
    """Events per status (every status, zero when none), read through `conn`."""
    found = dict(conn.execute(select(crm_events.c.status, func.count()).group_by(crm_events.c.status)).all())
    return {s: int(found.get(s, 0)) for s in STATUSES}


def event_counts(db: Database) -> dict[str, int]:
    with db.read() as conn:
        return event_counts_in(conn)


def events_for(db: Database, entity_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Stored events of these objects (tests and diagnostics)."""
    with db.read() as conn:
        return [dict(r) for r in conn.execute(select(crm_events).where(crm_events.c.entity_id.in_(entity_ids))
                                              .order_by(crm_events.c.id)).mappings()]
