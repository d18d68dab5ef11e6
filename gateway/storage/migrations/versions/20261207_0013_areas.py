"""Areas, windows, municipality messages, templates: an action's drawn polygon; receive windows
per weekday; a municipality's own messages (its boundary, the action's owner, the waiting list);
texts per action type with placeholders

An address's single window (window_start, window_end: local minutes) becomes the text
"HH:MM-HH:MM", every day (gateway/targeting/windows.py). A downgrade keeps what the old columns
can hold: one window every day; anything else becomes "always" (NULL).

Revision ID: 0013_areas
Revises: 0011_smpp
Create Date: 2026-12-07
"""

import re
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import gateway.storage.models

revision = "0013_areas"
down_revision = "0011_smpp"
branch_labels = None
depends_on = None

_address = sa.table(
    "address",
    sa.column("id", sa.BigInteger),
    sa.column("windows", sa.String),
    sa.column("window_start", sa.SmallInteger),
    sa.column("window_end", sa.SmallInteger),
)


def _hhmm(minutes, dialect: str):
    """HH:MM of a minute count, in SQL (one UPDATE for every address, not a round trip each)."""
    if dialect == "postgresql":
        return (
            sa.func.to_char(minutes // 60, "FM00")
            .op("||")(":")
            .op("||")(sa.func.to_char(minutes % 60, "FM00"))
        )
    return sa.func.printf("%02d:%02d", minutes // 60, minutes % 60)


def upgrade() -> None:
    with op.batch_alter_table("municipality") as batch:
        batch.add_column(sa.Column("boundary", sa.JSON(), nullable=True))
    with op.batch_alter_table("action") as batch:
        batch.add_column(sa.Column("polygon", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("municipality_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("tip_line", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.alter_column("centralist_id", existing_type=sa.Integer(), nullable=True)
        batch.create_foreign_key(
            op.f("fk_action_municipality_id_municipality"), "municipality", ["municipality_id"], ["id"]
        )
        batch.create_index(op.f("ix_action_municipality_id"), ["municipality_id"], unique=False)
        batch.create_check_constraint("owner", "(centralist_id IS NULL) != (municipality_id IS NULL)")
    op.create_table(
        "waiting_recipient",
        sa.Column("bulletin_id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("participant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "channel",
            sa.Enum("sms", "voice", name="channel", native_enum=False, create_constraint=True, length=24),
            nullable=False,
        ),
        sa.Column("due_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bulletin_id"],
            ["bulletin.id"],
            name=op.f("fk_waiting_recipient_bulletin_id_bulletin"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("bulletin_id", "phone", name=op.f("pk_waiting_recipient")),
    )
    with op.batch_alter_table("waiting_recipient") as batch:
        batch.create_index(op.f("ix_waiting_recipient_due_at"), ["due_at"], unique=False)
    templates = op.create_table(
        "text_template",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "action_type",
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
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_at", gateway.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_text_template")),
        sa.UniqueConstraint("action_type", "name", name="uq_text_template_type_name"),
    )
    # The shipped texts, as they are today (gateway/actions/wording.py may change later).
    now = datetime.now(UTC)
    op.bulk_insert(
        templates,
        [
            {"action_type": kind, "name": name, "body": body, "updated_at": now}
            for kind, (name, body) in _DEFAULT_TEMPLATES.items()
        ],
    )
    with op.batch_alter_table("address") as batch:
        batch.add_column(sa.Column("windows", sa.String(length=300), nullable=True))
    dialect = op.get_bind().dialect.name
    op.execute(
        _address.update()
        .where(_address.c.window_start.is_not(None))
        .values(
            windows=_hhmm(_address.c.window_start, dialect)
            .op("||")("-")
            .op("||")(_hhmm(_address.c.window_end, dialect))
        )
    )
    with op.batch_alter_table("address") as batch:
        batch.drop_constraint(op.f("ck_address_window"), type_="check")
        batch.drop_column("window_start")
        batch.drop_column("window_end")


_EVERY_DAY = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")


_DEFAULT_TEMPLATES = {
    "missing_person": ("Vermissing", "Vermist: {who}. Laatst gezien {where}. {what}"),
    "burglary": ("Inbraak", "Inbraak {where}. Gezocht: {who}. {what} Gevlucht {direction}, {vehicle}."),
    "robbery": ("Overval", "Overval {where}. Gezocht: {who}. Gevlucht {direction} {vehicle}. {what}"),
    "hit_and_run": (
        "Doorrijden na ongeval",
        "Doorgereden na een aanrijding {where}: {vehicle}, richting {direction}. {what}",
    ),
    "shop_theft": ("Winkeldiefstal", "Winkeldiefstal {where}. Gezocht: {who}, gevlucht {direction}. {what}"),
    "other": ("Algemeen", "{what} {where}. Gezocht: {who}."),
}


def downgrade() -> None:
    op.drop_table("text_template")
    with op.batch_alter_table("address") as batch:
        batch.add_column(sa.Column("window_start", sa.SmallInteger(), nullable=True))
        batch.add_column(sa.Column("window_end", sa.SmallInteger(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.select(_address.c.id, _address.c.windows).where(_address.c.windows.is_not(None)))
    for address_id, text in rows.all():
        match = _EVERY_DAY.match(text)
        if match:
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            conn.execute(
                _address.update()
                .where(_address.c.id == address_id)
                .values(window_start=h1 * 60 + m1, window_end=h2 * 60 + m2)
            )
    with op.batch_alter_table("address") as batch:
        batch.create_check_constraint(
            "window",
            "(window_start IS NULL AND window_end IS NULL) OR "
            "(window_start BETWEEN 0 AND 1439 AND window_end BETWEEN 0 AND 1440)",
        )
        batch.drop_column("windows")
    op.drop_table("waiting_recipient")
    # A municipality's messages have no centralist to fall back on: they go with the downgrade.
    action = sa.table("action", sa.column("id", sa.Integer), sa.column("municipality_id", sa.Integer))
    owned = sa.select(action.c.id).where(action.c.municipality_id.is_not(None))
    for table in ("tip", "action_reach", "reach_rollup"):
        op.execute(
            sa.text(
                f"DELETE FROM {table} WHERE action_id IN (SELECT id FROM action WHERE municipality_id IS NOT NULL)"
            )
        )
    op.execute(
        sa.text(
            "DELETE FROM sms_part WHERE message_id IN (SELECT id FROM message WHERE action_id IN (SELECT id FROM action WHERE municipality_id IS NOT NULL))"
        )
    )
    op.execute(
        sa.text(
            "DELETE FROM message WHERE action_id IN (SELECT id FROM action WHERE municipality_id IS NOT NULL)"
        )
    )
    op.execute(
        sa.text(
            "DELETE FROM bulletin WHERE action_id IN (SELECT id FROM action WHERE municipality_id IS NOT NULL)"
        )
    )
    op.execute(action.delete().where(action.c.id.in_(owned)))
    with op.batch_alter_table("action") as batch:
        batch.drop_constraint(op.f("ck_action_owner"), type_="check")
        batch.drop_index(op.f("ix_action_municipality_id"))
        batch.drop_constraint(op.f("fk_action_municipality_id_municipality"), type_="foreignkey")
        batch.alter_column("centralist_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("tip_line")
        batch.drop_column("municipality_id")
        batch.drop_column("polygon")
    with op.batch_alter_table("municipality") as batch:
        batch.drop_column("boundary")
