"""Status writes as HOT updates: no status index on message, room on its pages; settled bulletins

Revision ID: 0006_hot_status
Revises: 0005_fanned_out
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

import gateway.storage.models

revision = "0006_hot_status"
down_revision = "0005_fanned_out"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bulletin", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("settled_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=True)
        )
    # Bulletins already done are settled now (the scans for open messages skip them).
    op.execute("""
        UPDATE bulletin SET settled_at = created_at
         WHERE fanned_out_at IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM message
                            WHERE message.bulletin_id = bulletin.id AND message.status IN ('queued', 'sending'))
    """)
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_open")
    if op.get_bind().dialect.name == "postgresql":
        # Applies to pages written from now on; existing ones keep their rows as they are.
        op.execute(f"ALTER TABLE message SET (fillfactor = {gateway.storage.models.MESSAGE_FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE message RESET (fillfactor)")
    open_only = sa.text("status IN ('queued', 'sending')")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_index(
            "ix_message_open",
            ["status", "claimed_at"],
            unique=False,
            postgresql_where=open_only,
            sqlite_where=open_only,
        )
    with op.batch_alter_table("bulletin", schema=None) as batch_op:
        batch_op.drop_column("settled_at")
