"""Health figures of the store in the Prometheus text format, for `GET /metrics`.

Everything comes from the local database in one read snapshot (no call to 1C or Bitrix24), so a
scrape is cheap and says what the bot is working with: how big and how fresh the catalogue is,
what waits in the outbox and for how long, and what the CRM event inbox holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, func, select

from resources.store.crm_events import event_counts_in
from resources.store.database import Database, as_datetime, utcnow
from resources.store.outbox import FAILED, IN_PROGRESS, KINDS, PENDING, STATUSES, outbox
from resources.store.schema import products, sync_runs

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Metric:
    name: str
    help: str
    kind: str = "gauge"
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> Metric:
        self.samples.append((labels, float(value)))
        return self

    def render(self) -> str:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        for labels, value in self.samples:
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{self.name}{{{label_text}}} {value:g}" if label_text else f"{self.name} {value:g}")
        return "\n".join(lines)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _age(now: datetime, then: datetime | str | None) -> float | None:
    moment = as_datetime(then)
    return None if moment is None else max(0.0, (now - moment).total_seconds())


def collect(conn: Connection, now: datetime | None = None) -> list[Metric]:
    """Every metric, read through `conn` (one snapshot)."""
    now = now or utcnow()
    total, active, in_stock = conn.execute(select(
        func.count(), func.count().filter(products.c.is_active),
        func.count().filter(products.c.is_active & (products.c.stock > 0)))).one()
    catalogue = Metric("zeta_products", "Rows of the products table the bot reads.")
    catalogue.add(total, state="all").add(active, state="active").add(in_stock, state="in_stock")

    last = conn.execute(select(sync_runs.c.status, func.max(sync_runs.c.finished_at))
                        .where(sync_runs.c.finished_at.is_not(None)).group_by(sync_runs.c.status)).all()
    sync_age = Metric("zeta_catalogue_last_sync_age_seconds",
                      "Seconds since the last catalogue publish that ended with this status.")
    for status, finished in last:
        age = _age(now, finished)
        if age is not None:
            sync_age.add(age, status=status)

    by_state = {(k, s): int(n) for k, s, n in conn.execute(
        select(outbox.c.kind, outbox.c.status, func.count()).group_by(outbox.c.kind, outbox.c.status)).all()}
    rows = Metric("zeta_outbox_rows", "Outbox rows (orders, leads, activity logs) per kind and status.")
    for kind in KINDS:
        for status in STATUSES:
            rows.add(by_state.get((kind, status), 0), kind=kind, status=status)
    oldest = conn.execute(select(func.min(outbox.c.created_at))
                          .where(outbox.c.status.in_([PENDING, IN_PROGRESS, FAILED]))).scalar()
    waiting = Metric("zeta_outbox_oldest_undelivered_age_seconds",
                     "Age of the oldest outbox row not yet delivered (0 when none waits).")
    waiting.add(_age(now, oldest) or 0.0)

    inbox = Metric("zeta_crm_events", "Bitrix24 events in the inbox per status.")
    for status, count in event_counts_in(conn).items():
        inbox.add(count, status=status)
    return [catalogue, sync_age, rows, waiting, inbox]


def render(metrics: Iterable[Metric]) -> str:
    return "\n".join(m.render() for m in metrics) + "\n"


def scrape(db: Database) -> str:
    """The whole exposition, read in one snapshot."""
    with db.read() as conn:
        return render(collect(conn))
