"""Security: server-side browser sessions and the append-only audit trail

Revision ID: 0010_security
Revises: 0009_action_urgency
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_security"
down_revision = "0009_action_urgency"
branch_labels = None
depends_on = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_REFUSE_UPDATE = "audit_event is append-only"


def upgrade() -> None:
    op.create_table(
        "user_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["api_user.id"], name=op.f("fk_user_session_user_id_api_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_session")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_user_session_token_hash")),
    )
    op.create_index(op.f("ix_user_session_user_id"), "user_session", ["user_id"], unique=False)
    op.create_table(
        "audit_event",
        sa.Column("id", _BIGINT, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=24), nullable=True),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("subject_type", sa.String(length=24), nullable=False),
        sa.Column("subject_id", _BIGINT, nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
    )
    op.create_index(op.f("ix_audit_event_at"), "audit_event", ["at"], unique=False)
    op.create_index(op.f("ix_audit_event_user_id"), "audit_event", ["user_id"], unique=False)
    op.create_index(op.f("ix_audit_event_event"), "audit_event", ["event"], unique=False)
    # RULE: the audit trail is append-only — no row is ever changed (only deleted when its
    # retention period is over, by housekeeping).
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION audit_event_refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '{_REFUSE_UPDATE}'; END $$;
            CREATE TRIGGER audit_event_append_only BEFORE UPDATE ON audit_event
            FOR EACH ROW EXECUTE FUNCTION audit_event_refuse_update();
        """)
    else:
        op.execute(f"""
            CREATE TRIGGER audit_event_append_only BEFORE UPDATE ON audit_event
            BEGIN SELECT RAISE(ABORT, '{_REFUSE_UPDATE}'); END
        """)


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER IF EXISTS audit_event_append_only"
        + (" ON audit_event" if op.get_context().dialect.name == "postgresql" else "")
    )
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_event_refuse_update()")
    op.drop_index(op.f("ix_audit_event_event"), table_name="audit_event")
    op.drop_index(op.f("ix_audit_event_user_id"), table_name="audit_event")
    op.drop_index(op.f("ix_audit_event_at"), table_name="audit_event")
    op.drop_table("audit_event")
    op.drop_index(op.f("ix_user_session_user_id"), table_name="user_session")
    op.drop_table("user_session")
