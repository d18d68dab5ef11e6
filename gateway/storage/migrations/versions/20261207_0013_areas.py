"""Areas and windows: an action's drawn polygon; receive windows per weekday

An address's single window (window_start, window_end: local minutes) becomes the text
"HH:MM-HH:MM", every day (gateway/targeting/windows.py). A downgrade keeps what the old columns
can hold: one window every day; anything else becomes "always" (NULL).

Revision ID: 0013_areas
Revises: 0011_smpp
Create Date: 2026-12-07
"""

import re

import sqlalchemy as sa
from alembic import op

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
            sa.func.to_char(minutes / 60, "FM00")
            .op("||")(":")
            .op("||")(sa.func.to_char(minutes % 60, "FM00"))
        )
    return sa.func.printf("%02d:%02d", minutes / 60, minutes % 60)


def upgrade() -> None:
    with op.batch_alter_table("action") as batch:
        batch.add_column(sa.Column("polygon", sa.JSON(), nullable=True))
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


def downgrade() -> None:
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
    with op.batch_alter_table("action") as batch:
        batch.drop_column("polygon")
