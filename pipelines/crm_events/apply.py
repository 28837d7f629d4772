"""Turn stored CRM events into the CRM state of the bot's deals and leads, and catch missed ones.

An event carries only an id (reference §8), so each changed object is read back (`crm.deal.get`,
`crm.lead.get`, ≤ 50 per batch). Only objects the bot created (`ORIGINATOR_ID` of the push mapping)
are kept; a manager's own deals are not the bot's business. Because Bitrix24 never resends an
event, `reconcile` lists the bot's deals and leads changed since the last reconciliation began.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from resources.bitrix24.client import Bitrix24Client
from resources.bitrix24.errors import Bitrix24Error, MethodNotFound, NotFound
from resources.store.crm_events import (
    DONE,
    EVENT_RETRY,
    FAILED,
    IGNORED,
    SEMANTICS,
    CrmObjectState,
    StoredEvent,
    finish_events,
    pending_events,
    reconcile_cursor,
    set_reconcile_cursor,
    upsert_states,
)
from resources.store.database import Database, utcnow
from resources.store.outbox import RetryPolicy

logger = logging.getLogger("integrations.bitrix24")

TRACKED = ("deal", "lead")  # contacts carry no order or lead status
_STAGE_FIELDS = {"deal": ("STAGE_ID", "STAGE_SEMANTIC_ID"), "lead": ("STATUS_ID", "STATUS_SEMANTIC_ID")}
RECONCILE_OVERLAP = timedelta(minutes=5)  # re-read a little before the cursor: clocks and commits lag


@dataclass
class ApplyReport:
    events: int = 0
    objects_read: int = 0
    states_changed: int = 0
    ignored: int = 0
    failed: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {"events": self.events, "objects_read": self.objects_read, "states_changed": self.states_changed,
                "ignored": self.ignored, "failed": self.failed}


@dataclass
class ReconcileReport:
    listed: dict[str, int] = field(default_factory=dict)
    states_changed: int = 0
    since: dict[str, str | None] = field(default_factory=dict)
    seconds: float = 0.0


def utc_iso(value: Any) -> str | None:  # noqa: ANN401 - whatever the portal sent
    """A portal timestamp (`2026-11-28T15:04:05+05:00`) as UTC ISO text, so stored values compare
    in time order as strings; None when it is not a timestamp."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat(timespec="seconds")


def state_from_row(entity: str, row: dict[str, Any], originator_id: str) -> CrmObjectState | None:
    """The tracked state of one CRM row, or None when the bot did not create it."""
    if str(row.get("ORIGINATOR_ID") or "") != originator_id:
        return None
    stage_field, semantic_field = _STAGE_FIELDS[entity]
    semantic = SEMANTICS.get(str(row.get(semantic_field) or "P").upper(), "in_progress")
    return CrmObjectState(entity=entity, entity_id=int(row["ID"]), origin_id=str(row.get("ORIGIN_ID") or "") or None,
                          stage=str(row.get(stage_field) or "") or None, semantic=semantic,
                          date_modify=utc_iso(row.get("DATE_MODIFY")))


def apply_pending_events(db: Database, client: Bitrix24Client, originator_id: str, *, limit: int = 500,
                         policy: RetryPolicy = EVENT_RETRY) -> ApplyReport:
    """Apply up to `limit` pending events: one read per changed object, whatever number of events
    it got. Safe to run twice over the same events (it writes what the CRM says now)."""
    started = time.perf_counter()
    report = ApplyReport()
    events = pending_events(db, limit)
    report.events = len(events)
    outcomes: dict[int, tuple[str, str | None]] = {}
    by_object: dict[tuple[str, int], list[StoredEvent]] = {}
    for ev in events:
        if ev.entity not in TRACKED:
            outcomes[ev.id] = (IGNORED, f"{ev.entity} events carry no status the bot tracks")
        else:
            by_object.setdefault((ev.entity, ev.entity_id), []).append(ev)
    states: list[CrmObjectState] = []
    to_read = list(by_object)
    batch = None
    if to_read:
        try:
            batch = client.batch({f"{e}_{i}": (f"crm.{e}.get", {"id": i}) for e, i in to_read}, halt=False)
        except Bitrix24Error as exc:  # the portal could not be read at all: every event waits and retries
            report.errors.append(f"reading {len(to_read)} object(s) failed: {exc}")
            for group in by_object.values():
                for ev in group:
                    outcomes[ev.id] = (FAILED, str(exc))
    if batch is not None:
        for entity, entity_id in to_read:
            key, group = f"{entity}_{entity_id}", by_object[(entity, entity_id)]
            error = batch.errors.get(key)
            if key in batch.result:
                report.objects_read += 1
                row = batch.result[key]
                if not isinstance(row, dict):
                    outcome = (FAILED, f"crm.{entity}.get answered {type(row).__name__}, not a record")
                else:
                    state = state_from_row(entity, row, originator_id)
                    outcome = (DONE, None) if state else (IGNORED, "not created by the bot (ORIGINATOR_ID)")
                    if state:
                        states.append(state)
            elif isinstance(error, NotFound) and not isinstance(error, MethodNotFound):
                # deleted in the CRM (a DELETE event, or a change then a delete); stored only when known
                states.append(CrmObjectState(entity, entity_id, None, None, "deleted", None, deleted=True))
                outcome = (DONE, None)
            else:
                outcome = (FAILED, str(error) if error else "not run")
                report.errors.append(f"{entity} {entity_id}: {outcome[1]}")
            for ev in group:
                outcomes[ev.id] = outcome
    report.states_changed = upsert_states(db, states)
    finish_events(db, outcomes, seen={ev.id: ev.received_at for ev in events}, policy=policy)
    report.ignored = sum(1 for s, _ in outcomes.values() if s == IGNORED)
    report.failed = sum(1 for s, _ in outcomes.values() if s == FAILED)
    report.seconds = time.perf_counter() - started
    if report.events:
        logger.info("CRM events: %s", report.summary())
    return report


def reconcile(db: Database, client: Bitrix24Client, originator_id: str,
              entities: Iterable[str] = TRACKED) -> ReconcileReport:
    """List the bot's deals and leads changed since the last successful reconciliation began (less
    an overlap) and store their state: the safety net for events Bitrix24 dropped, we never
    received, or gave up on. Its cursor is its own: applied events never move it. (A deletion
    whose event was lost stays unseen: Bitrix24 lists no deleted records.)"""
    started = time.perf_counter()
    report = ReconcileReport()
    for entity in entities:
        begun = utcnow()
        stage_field, semantic_field = _STAGE_FIELDS[entity]
        flt: dict[str, Any] = {"ORIGINATOR_ID": originator_id}
        cursor = reconcile_cursor(db, entity)
        since = (cursor - RECONCILE_OVERLAP).replace(tzinfo=UTC).isoformat(timespec="seconds") if cursor else None
        if since:
            flt[">DATE_MODIFY"] = since
        report.since[entity] = since
        rows = client.list_all(f"crm.{entity}.list", filter=flt, select=[
            "ID", stage_field, semantic_field, "DATE_MODIFY", "ORIGIN_ID", "ORIGINATOR_ID"])
        report.listed[entity] = len(rows)
        states = [s for s in (state_from_row(entity, r, originator_id) for r in rows) if s is not None]
        report.states_changed += upsert_states(db, states)
        set_reconcile_cursor(db, entity, begun)
    report.seconds = time.perf_counter() - started
    logger.info("CRM reconcile: listed %s since %s, %d states changed", report.listed, report.since,
                report.states_changed)
    return report

