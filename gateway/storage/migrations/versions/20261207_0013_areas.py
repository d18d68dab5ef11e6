"""Areas: an action's drawn polygon

Revision ID: 0013_areas
Revises: 0011_smpp
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_areas"
down_revision = "0011_smpp"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("action") as batch:
        batch.add_column(sa.Column("polygon", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("action") as batch:
        batch.drop_column("polygon")
