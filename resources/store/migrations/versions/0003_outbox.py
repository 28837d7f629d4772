"""Outbox: durable orders, leads and activity logs from the bot, with per-target delivery state.

Revision ID: 0003_outbox
Revises: 0002_product_search
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_outbox"
down_revision = "0002_product_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(20), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("dedup_key", sa.String(255), nullable=True, unique=True),
        sa.Column("conversation_id", sa.String(128)),
        sa.Column("phone", sa.String(20)),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("replays", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime, nullable=False),
        sa.Column("claim_owner", sa.String(64)),
        sa.Column("lease_expires_at", sa.DateTime),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("done_at", sa.DateTime),
        sa.Column("onec_ref_key", sa.String(36)),
        sa.Column("onec_number", sa.String(64)),
        sa.Column("onec_posted", sa.Boolean, nullable=False),
        sa.Column("onec_error", sa.Text),
        sa.Column("b24_contact_id", sa.Integer),
        sa.Column("b24_lead_id", sa.Integer),
        sa.Column("b24_deal_id", sa.Integer),
        sa.Column("b24_rows_set", sa.Boolean, nullable=False),
        sa.Column("b24_number_written", sa.Boolean, nullable=False),
        sa.Column("b24_task_id", sa.Integer),
        sa.Column("b24_comment_id", sa.Integer),
        sa.Column("b24_error", sa.Text),
        sa.Column("intents", sa.Text),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])
    op.create_index("ix_outbox_conversation", "outbox", ["conversation_id"])
    op.create_index("ix_outbox_phone", "outbox", ["phone"])


def downgrade() -> None:
    op.drop_table("outbox")
