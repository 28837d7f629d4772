"""CRM change events from Bitrix24 (an inbox) and the last known state of the bot's deals and leads.

`crm_events` keeps every outgoing-webhook call Bitrix24 made to us, once: Bitrix24 never resends
an event, so the receiver stores it and answers at once, and a Dagster job applies it later.
`crm_state` is what that job (or the periodic reconciliation) last read from the CRM for one deal
or lead: its stage and whether that stage means in progress, won or lost. `crm_cursors` holds where
the next reconciliation starts (the start of the last successful one).

Revision ID: 0005_crm_events
Revises: 0004_stock_next_key
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_crm_events"
down_revision = "0004_stock_next_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crm_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(16), nullable=False),
        sa.Column("entity_id", sa.Integer, nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("next_attempt_at", sa.DateTime, nullable=False),
        sa.Column("processed_at", sa.DateTime),
        sa.UniqueConstraint("event", "entity_id", "ts", name="uq_crm_events_event_id_ts"),
    )
    op.create_index("ix_crm_events_due", "crm_events", ["status", "next_attempt_at"])
    op.create_table(
        "crm_state",
        sa.Column("entity", sa.String(16), primary_key=True),
        sa.Column("entity_id", sa.Integer, primary_key=True),
        sa.Column("origin_id", sa.String(64)),
        sa.Column("stage", sa.String(64)),
        sa.Column("semantic", sa.String(16), nullable=False),
        sa.Column("date_modify", sa.String(40)),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("fetched_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_crm_state_origin", "crm_state", ["origin_id"])
    # Where the next reconciliation of each entity starts: written by the reconciliation only.
    op.create_table(
        "crm_cursors",
        sa.Column("entity", sa.String(16), primary_key=True),
        sa.Column("since", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("crm_cursors")
    op.drop_table("crm_state")
    op.drop_table("crm_events")
