"""statistics: rollups of settled actions' messages and of sign-ups per day, indexes for periods

Revision ID: 0002_stats
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

import gateway.storage.models

revision = "0002_stats"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "action_reach",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column("municipality_id", sa.Integer(), nullable=True),
        sa.Column(
            "channel",
            sa.Enum("sms", "voice", name="channel", native_enum=False, create_constraint=True, length=24),
            nullable=False,
        ),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("submitted", sa.Integer(), nullable=False),
        sa.Column("delivered", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["action_id"], ["action.id"], name=op.f("fk_action_reach_action_id_action"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["municipality_id"],
            ["municipality.id"],
            name=op.f("fk_action_reach_municipality_id_municipality"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_reach")),
    )
    with op.batch_alter_table("action_reach", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_action_reach_action_id"), ["action_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_action_reach_municipality_id"), ["municipality_id"], unique=False
        )

    op.create_table(
        "reach_rollup",
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column("rolled_up_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["action_id"], ["action.id"], name=op.f("fk_reach_rollup_action_id_action"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("action_id", name=op.f("pk_reach_rollup")),
    )
    op.create_table(
        "signup_day",
        sa.Column("municipality_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("registered", sa.Integer(), nullable=False),
        sa.Column("unsubscribed", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["municipality_id"],
            ["municipality.id"],
            name=op.f("fk_signup_day_municipality_id_municipality"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("municipality_id", "day", name=op.f("pk_signup_day")),
    )
    op.create_table(
        "signup_rollup",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("through", sa.Date(), nullable=False),
        sa.Column("rebuilt_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signup_rollup")),
    )
    with op.batch_alter_table("action", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_action_launched_at"), ["launched_at"], unique=False)
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.create_index("ix_participant_created", ["created_at"], unique=False)
        batch_op.create_index(
            "ix_participant_municipality_created", ["municipality_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_participant_unsubscribed", ["unsubscribed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.drop_index("ix_participant_unsubscribed")
        batch_op.drop_index("ix_participant_municipality_created")
        batch_op.drop_index("ix_participant_created")
    with op.batch_alter_table("action", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_action_launched_at"))
    op.drop_table("signup_rollup")
    op.drop_table("signup_day")
    op.drop_table("reach_rollup")
    with op.batch_alter_table("action_reach", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_action_reach_municipality_id"))
        batch_op.drop_index(batch_op.f("ix_action_reach_action_id"))
    op.drop_table("action_reach")
