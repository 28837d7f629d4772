"""How much the bot has handed over that has not reached the outside systems yet.

`get_status()` reports it per integration: 1C receives orders; Bitrix24 receives orders (as
deals), leads and activity logs. Rows waiting for a retry count as pending; dead rows are counted
apart because they need a person (replay).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select

from resources.store import outbox as outbox_store
from resources.store.database import Database

WAITING = (outbox_store.PENDING, outbox_store.IN_PROGRESS, outbox_store.FAILED)


def outbox_backlog(db: Database, kinds: Iterable[str]) -> dict[str, int]:
    """`{"pending": n, "dead": m}` over the given outbox kinds."""
    table = outbox_store.outbox
    query = (select(table.c.status, func.count()).where(table.c.kind.in_(list(kinds)))
             .group_by(table.c.status))
    with db.read() as conn:
        found = {status: int(n) for status, n in conn.execute(query).all()}
    return {"pending": sum(found.get(s, 0) for s in WAITING), "dead": found.get(outbox_store.DEAD, 0)}
