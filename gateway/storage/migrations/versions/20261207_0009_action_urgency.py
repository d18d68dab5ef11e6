"""An action's urgency: how its alert shares the binds and voice lines

Revision ID: 0009_action_urgency
Revises: 0008_message_participant
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_action_urgency"
down_revision = "0008_message_participant"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("action", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "urgency",
                sa.Enum(
                    "critical",
                    "high",
                    "routine",
                    name="urgency",
                    native_enum=False,
                    create_constraint=True,
                    length=24,
                ),
                nullable=False,
                server_default="high",
            )
        )
    # Existing actions get what a new one of their type gets (models.Urgency.for_type).
    op.execute("UPDATE action SET urgency = 'critical' WHERE type = 'missing_person'")


def downgrade() -> None:
    with op.batch_alter_table("action", schema=None) as batch_op:
        batch_op.drop_constraint("urgency", type_="check")
        batch_op.drop_column("urgency")
