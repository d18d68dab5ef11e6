"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

import gateway.storage.models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "centralist",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("meldkamer", sa.String(length=100), nullable=False),
        sa.Column("dial_string", sa.String(length=200), nullable=False),
        sa.Column("created_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_centralist")),
    )
    op.create_table(
        "municipality",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cbs_code", sa.String(length=6), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("region", sa.String(length=100), nullable=False),
        sa.Column("created_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_municipality")),
        sa.UniqueConstraint("cbs_code", name=op.f("uq_municipality_cbs_code")),
    )
    op.create_table(
        "action",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "type",
            sa.Enum(
                "missing_person",
                "burglary",
                "robbery",
                "hit_and_run",
                "shop_theft",
                "other",
                name="action_type",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("radius_m", sa.Integer(), nullable=False),
        sa.Column("send_sms", sa.Boolean(), nullable=False),
        sa.Column("send_voice", sa.Boolean(), nullable=False),
        sa.Column("centralist_id", sa.Integer(), nullable=False),
        sa.Column("action_code", sa.String(length=8), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "open",
                "closed",
                name="action_status",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("created_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("launched_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expired", sa.Boolean(), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum(
                "direct",
                "indirect",
                "none",
                name="outcome",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=True,
        ),
        sa.Column("outcome_detail", sa.String(length=40), nullable=True),
        sa.Column("outcome_note", sa.Text(), nullable=True),
        sa.CheckConstraint("radius_m > 0", name=op.f("ck_action_radius")),
        sa.CheckConstraint("send_sms OR send_voice", name=op.f("ck_action_channels")),
        sa.ForeignKeyConstraint(
            ["centralist_id"], ["centralist.id"], name=op.f("fk_action_centralist_id_centralist")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action")),
    )
    with op.batch_alter_table("action", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_action_centralist_id"), ["centralist_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_action_status"), ["status"], unique=False)
        batch_op.create_index(
            "uq_action_open_code",
            ["action_code"],
            unique=True,
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        )

    op.create_table(
        "api_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "admin",
                "centralist",
                "municipality",
                name="role",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("municipality_id", sa.Integer(), nullable=True),
        sa.Column("centralist_id", sa.Integer(), nullable=True),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_prefix", sa.String(length=12), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(role != 'municipality' OR municipality_id IS NOT NULL) AND (role != 'centralist' OR centralist_id IS NOT NULL)",
            name=op.f("ck_api_user_role_scope"),
        ),
        sa.ForeignKeyConstraint(
            ["centralist_id"], ["centralist.id"], name=op.f("fk_api_user_centralist_id_centralist")
        ),
        sa.ForeignKeyConstraint(
            ["municipality_id"], ["municipality.id"], name=op.f("fk_api_user_municipality_id_municipality")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_user")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_user_key_hash")),
        sa.UniqueConstraint("name", name=op.f("uq_api_user_name")),
    )
    op.create_table(
        "participant",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("municipality_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("pause_from", sa.Date(), nullable=True),
        sa.Column("pause_until", sa.Date(), nullable=True),
        sa.Column("unsubscribed_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("language IN ('nl','en','de','fr')", name=op.f("ck_participant_language")),
        sa.ForeignKeyConstraint(
            ["municipality_id"], ["municipality.id"], name=op.f("fk_participant_municipality_id_municipality")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participant")),
    )
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_participant_municipality_id"), ["municipality_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_participant_phone"), ["phone"], unique=False)

    op.create_table(
        "address",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("participant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("postcode", sa.String(length=8), nullable=False),
        sa.Column("house_number", sa.String(length=10), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("tile", sa.Integer(), nullable=False),
        sa.Column(
            "channel",
            sa.Enum("sms", "voice", name="channel", native_enum=False, create_constraint=True, length=24),
            nullable=False,
        ),
        sa.Column("window_start", sa.SmallInteger(), nullable=True),
        sa.Column("window_end", sa.SmallInteger(), nullable=True),
        sa.CheckConstraint(
            "(window_start IS NULL AND window_end IS NULL) OR (window_start BETWEEN 0 AND 1439 AND window_end BETWEEN 0 AND 1440)",
            name=op.f("ck_address_window"),
        ),
        sa.CheckConstraint(
            "lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name=op.f("ck_address_latlon")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_address_participant_id_participant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_address")),
    )
    with op.batch_alter_table("address", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_address_participant_id"), ["participant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_address_tile"), ["tile"], unique=False)

    op.create_table(
        "bulletin",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "alert",
                "update",
                "closing",
                name="bulletin_kind",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("sms_text", sa.Text(), nullable=False),
        sa.Column("spoken_text", sa.Text(), nullable=False),
        sa.Column("created_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["action_id"], ["action.id"], name=op.f("fk_bulletin_action_id_action")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulletin")),
        sa.UniqueConstraint("action_id", "kind", "seq", name="uq_bulletin_action_kind_seq"),
    )
    op.create_table(
        "tip",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "channel",
            sa.Enum("call", "sms", name="tip_channel", native_enum=False, create_constraint=True, length=24),
            nullable=False,
        ),
        sa.Column("received_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("caller_number", sa.String(length=16), nullable=True),
        sa.Column("participant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("action_id", sa.Integer(), nullable=True),
        sa.Column(
            "matched_by",
            sa.Enum(
                "caller_id",
                "action_code",
                "none",
                name="matched_by",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("routed_to", sa.String(length=200), nullable=True),
        sa.Column("dial_status", sa.String(length=20), nullable=True),
        sa.Column("talk_seconds", sa.Integer(), nullable=True),
        sa.Column("recording_path", sa.String(length=300), nullable=True),
        sa.Column("sms_text", sa.Text(), nullable=True),
        sa.Column("call_id", sa.String(length=64), nullable=True),
        sa.Column("useful", sa.Boolean(), nullable=True),
        sa.Column("led_to_success", sa.Boolean(), nullable=True),
        sa.Column("marked_by", sa.Integer(), nullable=True),
        sa.Column("marked_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["action_id"], ["action.id"], name=op.f("fk_tip_action_id_action")),
        sa.ForeignKeyConstraint(["marked_by"], ["api_user.id"], name=op.f("fk_tip_marked_by_api_user")),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_tip_participant_id_participant"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tip")),
        sa.UniqueConstraint("call_id", name=op.f("uq_tip_call_id")),
    )
    with op.batch_alter_table("tip", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tip_action_id"), ["action_id"], unique=False)

    op.create_table(
        "message",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("bulletin_id", sa.Integer(), nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("participant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "channel",
            sa.Enum("sms", "voice", name="channel", native_enum=False, create_constraint=True, length=24),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "sending",
                "submitted",
                "delivered",
                "answered",
                "failed",
                "cancelled",
                name="message_status",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.Column("attempts", sa.SmallInteger(), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("enqueued_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sent_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("final_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["action_id"], ["action.id"], name=op.f("fk_message_action_id_action")),
        sa.ForeignKeyConstraint(
            ["bulletin_id"], ["bulletin.id"], name=op.f("fk_message_bulletin_id_bulletin")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_message_participant_id_participant"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message")),
        sa.UniqueConstraint("bulletin_id", "phone", name="uq_message_bulletin_phone"),
    )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_message_action_id"), ["action_id"], unique=False)
        batch_op.create_index("ix_message_phone", ["phone"], unique=False)
        batch_op.create_index("ix_message_status_enqueued", ["status", "enqueued_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_status_enqueued")
        batch_op.drop_index("ix_message_phone")
        batch_op.drop_index(batch_op.f("ix_message_action_id"))

    op.drop_table("message")
    with op.batch_alter_table("tip", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tip_action_id"))

    op.drop_table("tip")
    op.drop_table("bulletin")
    with op.batch_alter_table("address", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_address_tile"))
        batch_op.drop_index(batch_op.f("ix_address_participant_id"))

    op.drop_table("address")
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_participant_phone"))
        batch_op.drop_index(batch_op.f("ix_participant_municipality_id"))

    op.drop_table("participant")
    op.drop_table("api_user")
    with op.batch_alter_table("action", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_action_open_code",
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        )
        batch_op.drop_index(batch_op.f("ix_action_status"))
        batch_op.drop_index(batch_op.f("ix_action_centralist_id"))

    op.drop_table("action")
    op.drop_table("municipality")
    op.drop_table("centralist")
