"""Bulletins: published_at, one publish mark per bulletin instead of one per message

Revision ID: 0004_published
Revises: 0003_sms
Create Date: 2026-11-27
"""

from alembic import op
import sqlalchemy as sa
import gateway.storage.models


revision = '0004_published'
down_revision = '0003_sms'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('bulletin', schema=None) as batch_op:
        batch_op.add_column(sa.Column('published_at', gateway.storage.models.UTCDateTime(timezone=True), nullable=True))
    # Existing bulletins were published under the old rule (each message's enqueued_at says so).
    op.execute("UPDATE bulletin SET published_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table('bulletin', schema=None) as batch_op:
        batch_op.drop_column('published_at')
