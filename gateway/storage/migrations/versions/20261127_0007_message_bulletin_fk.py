"""One foreign key from a message to its bulletin and the bulletin's action

Revision ID: 0007_message_bulletin_fk
Revises: 0006_hot_status
Create Date: 2026-11-27
"""

from alembic import op

revision = "0007_message_bulletin_fk"
down_revision = "0006_hot_status"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bulletin", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_bulletin_id_action", ["id", "action_id"])
    # A message whose action is not its bulletin's would fail the new key; none is written so
    # (lifecycle takes the action from the bulletin). Creating the key checks every row: PostgreSQL
    # at once, SQLite in the check after the migration (migrations/env.py).
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_constraint("fk_message_action_id_action", type_="foreignkey")
        batch_op.drop_constraint("fk_message_bulletin_id_bulletin", type_="foreignkey")
        batch_op.create_foreign_key(
            "fk_message_bulletin", "bulletin", ["bulletin_id", "action_id"], ["id", "action_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_constraint("fk_message_bulletin", type_="foreignkey")
        batch_op.create_foreign_key("fk_message_bulletin_id_bulletin", "bulletin", ["bulletin_id"], ["id"])
        batch_op.create_foreign_key("fk_message_action_id_action", "action", ["action_id"], ["id"])
    with op.batch_alter_table("bulletin", schema=None) as batch_op:
        batch_op.drop_constraint("uq_bulletin_id_action", type_="unique")
