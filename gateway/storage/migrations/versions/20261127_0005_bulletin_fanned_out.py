"""An alert's messages created in chunks: the bulletin records when all of them exist

Revision ID: 0005_fanned_out
Revises: 0004_published
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

import gateway.storage.models

revision = "0005_fanned_out"
down_revision = "0004_published"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bulletin", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("fanned_out_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=True)
        )
    # Existing bulletins were created in one transaction: complete.
    op.execute("UPDATE bulletin SET fanned_out_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("bulletin", schema=None) as batch_op:
        batch_op.drop_column("fanned_out_at")
