"""SMPP as real SMSCs behave: the parts of concatenated MO messages, kept until handled

Revision ID: 0011_smpp
Revises: 0010_security
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import gateway.storage.models

revision = "0011_smpp"
down_revision = "0010_security"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mo_part",
        sa.Column("sender", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.Integer(), nullable=False),
        sa.Column("total", sa.SmallInteger(), nullable=False),
        sa.Column("part", sa.SmallInteger(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("received_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("handled_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("sender", "reference", "total", "part", name=op.f("pk_mo_part")),
    )


def downgrade() -> None:
    op.drop_table("mo_part")
