"""The CRM event inbox and the last known CRM state of the bot's deals and leads (migration 0005).

An event is stored once per (event, id, ts) — a repeated call of the same change is a duplicate,
a later change of the same object is a new event. The state table is keyed by (entity, id) and
written by whoever reads the CRM last: the event job or the reconciliation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
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
    case,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from resources.bitrix24.events import CrmEvent
from resources.store.database import Database, utcnow
from resources.store.schema import metadata

PENDING, DONE, IGNORED, FAILED = "pending", "done", "ignored", "failed"
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
    Column("processed_at", DateTime, nullable=True),
    UniqueConstraint("event", "entity_id", "ts", name="uq_crm_events_event_id_ts"),
    Index("ix_crm_events_status", "status", "id"),
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


@dataclass(frozen=True)
class StoredEvent:
    id: int
    event: str
    entity: str
    entity_id: int
    ts: int
    attempts: int

    @property
    def action(self) -> str:
        return self.event.removeprefix(f"ONCRM{self.entity.upper()}").lower()


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
    return (postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table))


def record_event(db: Database, event: CrmEvent) -> tuple[int, bool]:
    """Store an event once; returns (its id, whether this call stored it)."""
    with db.write() as conn:
        stmt = _insert(conn, crm_events).values(
            event=event.event, entity=event.entity, entity_id=event.entity_id, ts=event.ts, received_at=utcnow(),
            status=PENDING, attempts=0).on_conflict_do_nothing(index_elements=["event", "entity_id", "ts"])
        created = conn.execute(stmt).rowcount == 1
        row_id = conn.execute(select(crm_events.c.id).where(and_(
            crm_events.c.event == event.event, crm_events.c.entity_id == event.entity_id,
            crm_events.c.ts == event.ts))).scalar_one()
    return int(row_id), created


def pending_events(db: Database, limit: int = 500) -> list[StoredEvent]:
    """The oldest pending events, in arrival order."""
    with db.read() as conn:
        rows = conn.execute(select(crm_events.c.id, crm_events.c.event, crm_events.c.entity, crm_events.c.entity_id,
                                   crm_events.c.ts, crm_events.c.attempts)
                            .where(crm_events.c.status == PENDING).order_by(crm_events.c.id).limit(limit)).all()
    return [StoredEvent(*r) for r in rows]


@dataclass(frozen=True)
class PendingSummary:
    count: int
    newest_id: int | None
    attempts: int  # grows when a run fails some events, so a retry gets a new sensor run key

    @property
    def work_key(self) -> str:
        return f"{self.newest_id}:{self.count}:{self.attempts}"


def pending_summary(db: Database) -> PendingSummary:
    """What a sensor needs to know about pending events, from the local table only."""
    with db.read() as conn:
        count, newest, attempts = conn.execute(select(func.count(), func.max(crm_events.c.id),
                                                      func.coalesce(func.sum(crm_events.c.attempts), 0))
                                               .where(crm_events.c.status == PENDING)).one()
    return PendingSummary(int(count), int(newest) if newest is not None else None, int(attempts))


def finish_events(db: Database, outcomes: Mapping[int, tuple[str, str | None]], *, max_attempts: int) -> None:
    """Record each event's outcome. A `failed` outcome stays pending (retried by the next run) until
    the event has been tried `max_attempts` times."""
    now = utcnow()
    with db.write() as conn:
        for event_id, (status, error) in outcomes.items():
            if status == FAILED:
                conn.execute(update(crm_events).where(crm_events.c.id == event_id).values(
                    attempts=crm_events.c.attempts + 1, last_error=error,
                    status=_failed_status(crm_events.c.attempts + 1, max_attempts)))
            else:
                conn.execute(update(crm_events).where(crm_events.c.id == event_id).values(
                    status=status, last_error=error, processed_at=now, attempts=crm_events.c.attempts + 1))


def _failed_status(attempts: Any, max_attempts: int) -> Any:  # noqa: ANN401 - SQL expression
    return case((attempts >= max_attempts, FAILED), else_=PENDING)


def upsert_states(db: Database, states: Iterable[CrmObjectState]) -> int:
    """Write the states that differ from what is stored; returns how many rows changed."""
    states = list(states)
    if not states:
        return 0
    now = utcnow()
    changed = 0
    with db.write() as conn:
        for s in states:
            values = {"origin_id": s.origin_id, "stage": s.stage, "semantic": s.semantic,
                      "date_modify": s.date_modify, "deleted": s.deleted, "fetched_at": now}
            # Insert-or-nothing first: a concurrent writer (the event job beside the reconciliation on
            # PostgreSQL) that inserted the same object meanwhile makes this an update below.
            inserted = conn.execute(_insert(conn, crm_state).values(entity=s.entity, entity_id=s.entity_id, **values)
                                    .on_conflict_do_nothing(index_elements=["entity", "entity_id"])).rowcount
            if inserted == 1:
                changed += 1
                continue
            current = conn.execute(select(crm_state.c.stage, crm_state.c.semantic, crm_state.c.deleted,
                                          crm_state.c.date_modify, crm_state.c.origin_id).where(and_(
                crm_state.c.entity == s.entity, crm_state.c.entity_id == s.entity_id))).one()
            if s.deleted and current.deleted:
                continue
            if not s.deleted and current.date_modify and s.date_modify and s.date_modify < current.date_modify:
                continue  # an older read arriving after a newer one: keep the newer
            if s.deleted and s.origin_id is None:
                values["origin_id"] = current.origin_id  # a delete carries no origin; keep the known one
            stmt = update(crm_state).where(and_(crm_state.c.entity == s.entity, crm_state.c.entity_id == s.entity_id))
            if (current.stage, current.semantic, bool(current.deleted)) == (values["stage"], values["semantic"],
                                                                              s.deleted):
                conn.execute(stmt.values(fetched_at=now, date_modify=values["date_modify"]))
            else:
                conn.execute(stmt.values(**values))
                changed += 1
    return changed


def state_of(db: Database, entity: str, entity_id: int) -> tuple[CrmObjectState, datetime] | None:
    with db.read() as conn:
        row = conn.execute(select(crm_state).where(and_(crm_state.c.entity == entity,
                                                        crm_state.c.entity_id == entity_id))).one_or_none()
    if row is None:
        return None
    return (CrmObjectState(row.entity, row.entity_id, row.origin_id, row.stage, row.semantic, row.date_modify,
                           bool(row.deleted)), row.fetched_at)


def newest_modification(db: Database, entity: str) -> str | None:
    """The latest DATE_MODIFY stored for `entity`: where the next reconciliation starts."""
    with db.read() as conn:
        return conn.execute(select(func.max(crm_state.c.date_modify)).where(crm_state.c.entity == entity)).scalar()


def event_counts(db: Database) -> dict[str, int]:
    with db.read() as conn:
        return {s: int(n) for s, n in conn.execute(select(crm_events.c.status, func.count())
                                                   .group_by(crm_events.c.status)).all()}


def events_for(db: Database, entity_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Stored events of these objects (tests and the UI metadata)."""
    with db.read() as conn:
        return [dict(r) for r in conn.execute(select(crm_events).where(crm_events.c.entity_id.in_(entity_ids))
                                              .order_by(crm_events.c.id)).mappings()]
