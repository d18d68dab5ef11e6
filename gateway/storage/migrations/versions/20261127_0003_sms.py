"""SMS: message leases, the dispatch mark, and the SMSC ids of submitted parts

Revision ID: 0003_sms
Revises: 0002_stats
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

import gateway.storage.models

revision = "0003_sms"
down_revision = "0002_stats"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("claimed_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("dispatched_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_message_status_claimed", ["status", "claimed_at"], unique=False)
    op.create_table(
        "sms_part",
        sa.Column("operator", sa.String(length=32), nullable=False),
        sa.Column("smsc_message_id", sa.String(length=65), nullable=False),
        sa.Column("message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("part", sa.SmallInteger(), nullable=False),
        sa.Column("parts", sa.SmallInteger(), nullable=False),
        sa.Column("bind", sa.String(length=32), nullable=False),
        sa.Column("submitted_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stat", sa.String(length=8), nullable=True),
        sa.Column("done_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"], ["message.id"], name=op.f("fk_sms_part_message_id_message"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("operator", "smsc_message_id", name=op.f("pk_sms_part")),
    )
    with op.batch_alter_table("sms_part", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sms_part_message_id"), ["message_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sms_part", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sms_part_message_id"))
    op.drop_table("sms_part")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_status_claimed")
        batch_op.drop_column("dispatched_at")
        batch_op.drop_column("claimed_at")
        batch_op.drop_column("claimed_by")
