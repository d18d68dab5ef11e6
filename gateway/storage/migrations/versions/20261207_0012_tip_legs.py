"""Tip legs: every phone rung for a tip call, with its status and talk time

Revision ID: 0012_tip_legs
Revises: 0011_smpp
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import gateway.storage.models

revision = "0012_tip_legs"
down_revision = "0011_smpp"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tip_leg",
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("leg", sa.SmallInteger(), nullable=False),
        sa.Column("dialed", sa.String(length=200), nullable=False),
        sa.Column("dial_status", sa.String(length=20), nullable=False),
        sa.Column("rung_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("answered_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("talk_seconds", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"], ["tip.call_id"], name=op.f("fk_tip_leg_call_id_tip"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("call_id", "leg", name=op.f("pk_tip_leg")),
    )


def downgrade() -> None:
    op.drop_table("tip_leg")
