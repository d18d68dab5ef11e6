"""A message's participant is no longer a foreign key

Revision ID: 0008_message_participant
Revises: 0007_message_bulletin_fk
Create Date: 2026-11-27
"""

from alembic import op

revision = "0008_message_participant"
down_revision = "0007_message_bulletin_fk"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Why: gateway/storage/models.py, Message.participant_id. Rows keep their value; ids that a
    # deletion had set NULL stay NULL.
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_constraint("fk_message_participant_id_participant", type_="foreignkey")


def downgrade() -> None:
    # The key needs every id to resolve: those of participants deleted meanwhile go first.
    op.execute(
        "UPDATE message SET participant_id = NULL WHERE participant_id IS NOT NULL "
        "AND participant_id NOT IN (SELECT id FROM participant)"
    )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_message_participant_id_participant",
            "participant",
            ["participant_id"],
            ["id"],
            ondelete="SET NULL",
        )
