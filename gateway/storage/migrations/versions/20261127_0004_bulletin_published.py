"""Fewer writes per message: one publish mark per bulletin, one partial index for open messages

Revision ID: 0004_published
Revises: 0003_sms
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

import gateway.storage.models

revision = "0004_published"
down_revision = "0003_sms"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bulletin", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("published_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=True)
        )
    # Existing bulletins were published under the old rule (each message's enqueued_at says so).
    op.execute("UPDATE bulletin SET published_at = created_at")
    open_only = sa.text("status IN ('queued', 'sending')")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_status_enqueued")
        batch_op.drop_index("ix_message_status_claimed")
        batch_op.create_index(
            "ix_message_open",
            ["status", "claimed_at"],
            unique=False,
            postgresql_where=open_only,
            sqlite_where=open_only,
        )


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_open")
        batch_op.create_index("ix_message_status_claimed", ["status", "claimed_at"], unique=False)
        batch_op.create_index("ix_message_status_enqueued", ["status", "enqueued_at"], unique=False)
    with op.batch_alter_table("bulletin", schema=None) as batch_op:
        batch_op.drop_column("published_at")
