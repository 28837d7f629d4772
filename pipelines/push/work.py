"""One claimed outbox row while a push run works on it, and the durable recorder of its progress."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from resources.store import outbox
from resources.store.database import Database

logger = logging.getLogger("integrations.push")

ONEC = "1c"
BITRIX = "bitrix24"


@dataclass(eq=False)
class RowWork:
    """A claimed row, its in-memory delivery state (mirrors what is stored) and this attempt's
    outcome per target: an error (retryable or permanent), a deferral, or a lost lease."""

    row: outbox.OutboxRow
    errors: dict[str, str] = field(default_factory=dict)
    permanent: set[str] = field(default_factory=set)
    deferred: str | None = None
    lost: bool = False
    # activity logs: the order/lead row whose deal/lead is created later in this run, or a
    # fall-back to the customer's contact when the conversation has no lead or deal
    waiting_for: str | None = None
    contact_fallback: bool = False

    @property
    def id(self) -> str:
        return self.row.id

    @property
    def kind(self) -> str:
        return self.row.kind

    @property
    def payload(self) -> dict[str, Any]:
        return self.row.payload

    def fail(self, target: str, message: str, *, permanent: bool = False) -> None:
        if target in self.errors:
            return  # keep the first error of a target: later ones are usually consequences
        self.errors[target] = message
        if permanent:
            self.permanent.add(target)

    def blocked(self, target: str) -> bool:
        """True when this target cannot make progress any more in this run."""
        return self.lost or self.deferred is not None or target in self.errors

    def error_text(self) -> str:
        return "; ".join(f"{target}: {message}" for target, message in self.errors.items())


class Recorder:
    """Persists delivery state right after each create (one short transaction), fenced by the
    claim; keeps the in-memory rows in step and marks a row `lost` when its lease is gone."""

    def __init__(self, db: Database, owner: str, lease_seconds: float) -> None:
        self.db = db
        self.owner = owner
        self.lease_seconds = lease_seconds
        self._lock = threading.Lock()

    def save(self, work: RowWork, *, drop_intents: tuple[str, ...] = (), **state: Any) -> bool:
        return self.save_many({work: state}, drop_intents={work: set(drop_intents)} if drop_intents else None)

    def save_many(self, states: Mapping[RowWork, Mapping[str, Any]], *,
                  add_intents: Mapping[RowWork, set[str]] | None = None,
                  drop_intents: Mapping[RowWork, set[str]] | None = None) -> bool:
        """Write the given state of several rows in one transaction; False if any lease was lost."""
        works = {w.id: w for w in [*states, *(add_intents or {}), *(drop_intents or {})] if not w.lost}
        if not works:
            return False
        lost = outbox.record_many(
            self.db, self.owner, {w.id: dict(s) for w, s in states.items() if w.id in works},
            lease_seconds=self.lease_seconds,
            add_intents={w.id: i for w, i in (add_intents or {}).items() if w.id in works} or None,
            drop_intents={w.id: i for w, i in (drop_intents or {}).items() if w.id in works} or None,
        )
        with self._lock:
            for work in works.values():
                if work.id in lost:
                    work.lost = True
                    logger.warning("%s: lease lost (another run took the row over); this run leaves it", work.id)
                    continue
                for key, value in states.get(work, {}).items():
                    setattr(work.row, key, value)
                work.row.intents |= (add_intents or {}).get(work, set())
                work.row.intents -= (drop_intents or {}).get(work, set())
        return not lost

    def renew(self, works: list[RowWork]) -> None:
        self.save_many({w: {} for w in works if not w.lost})
