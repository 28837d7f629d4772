"""Checks on a candidate before it may replace `products`.

Plain functions returning a `CheckOutcome`; the Dagster asset checks wrap them (blocking, so a
failed check stops the publish) and the publish step re-runs the shrink guard inside its
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text

from .staging import batch_by_id

CHECK_UNIQUE_SKUS = "unique_skus"
CHECK_NO_NEGATIVE_PRICES = "no_negative_prices"
CHECK_SHRINK_GUARD = "shrink_guard"
_SAMPLE = 20  # offenders listed in a check's metadata; the full count is only queried past it


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def check_unique_skus(conn: Connection, candidate_id: int) -> CheckOutcome:
    dupes = conn.execute(text(
        "SELECT sku, COUNT(*) AS n FROM products_next WHERE candidate_id = :c GROUP BY sku HAVING COUNT(*) > 1 "
        "ORDER BY n DESC, sku LIMIT :n"), {"c": candidate_id, "n": _SAMPLE}).all()
    total = len(dupes) if len(dupes) < _SAMPLE else conn.execute(text(
        "SELECT COUNT(*) FROM (SELECT sku FROM products_next WHERE candidate_id = :c GROUP BY sku "
        "HAVING COUNT(*) > 1) d"), {"c": candidate_id}).scalar_one()
    return CheckOutcome(
        CHECK_UNIQUE_SKUS, total == 0,
        "every SKU is unique" if total == 0 else f"{total} SKUs occur more than once, e.g. "
        + ", ".join(f"{s} ×{n}" for s, n in dupes[:5]),
        {"duplicate_skus": total, "sample": [s for s, _ in dupes]},
    )


def check_no_negative_prices(conn: Connection, candidate_id: int) -> CheckOutcome:
    bad = conn.execute(text(
        "SELECT sku, price FROM products_next WHERE candidate_id = :c AND price < 0 ORDER BY sku LIMIT :n"),
        {"c": candidate_id, "n": _SAMPLE}).all()
    total = len(bad) if len(bad) < _SAMPLE else conn.execute(text(
        "SELECT COUNT(*) FROM products_next WHERE candidate_id = :c AND price < 0"), {"c": candidate_id}).scalar_one()
    return CheckOutcome(
        CHECK_NO_NEGATIVE_PRICES, total == 0,
        "no negative prices" if total == 0 else f"{total} products have a negative price, e.g. "
        + ", ".join(f"{s}: {p}" for s, p in bad[:5]),
        {"negative_prices": total, "sample": [s for s, _ in bad]},
    )


def check_shrink_guard(conn: Connection, candidate_id: int, max_active_drop: float) -> CheckOutcome:
    """Block a publish that would deactivate more than `max_active_drop` of the active catalogue:
    a 1C user filter, a truncated read or the wrong profile must not empty the bot's shelf."""
    current = conn.execute(text("SELECT COUNT(*) FROM products WHERE is_active")).scalar_one()
    nxt = _candidate_active(conn, candidate_id)
    drop = (current - nxt) / current if current else 0.0
    passed = drop <= max_active_drop
    return CheckOutcome(
        CHECK_SHRINK_GUARD, passed,
        f"active products {current} → {nxt} ({drop:+.1%} drop, limit {max_active_drop:.0%})"
        if passed else
        f"active catalogue would shrink from {current} to {nxt} ({drop:.1%} > {max_active_drop:.0%} allowed): "
        "publish blocked; check the 1C read, or raise catalogue.max_active_drop for a deliberate clean-up",
        {"active_now": current, "active_next": nxt, "drop_share": round(drop, 4), "limit": max_active_drop},
    )


def _candidate_active(conn: Connection, candidate_id: int) -> int:
    """Active rows of a candidate: counted when it was built (a complete candidate never changes),
    counted again only for one built before the count was kept."""
    candidate = batch_by_id(conn, candidate_id)
    active = candidate.note.get("active") if candidate and candidate.status == "complete" else None
    if isinstance(active, int):
        return active
    return conn.execute(text("SELECT COUNT(*) FROM products_next WHERE candidate_id = :c AND is_active"),
                        {"c": candidate_id}).scalar_one()
