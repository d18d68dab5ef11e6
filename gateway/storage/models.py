"""The domain model as SQL tables. The database is the source of truth; queues only carry ids.

Names follow the domain: a `Participant` registers `Address`es, a `Centralist` owns an
`Action`, an action sends `Bulletin`s (the alert, each update, the closing message) and every
bulletin reaches each phone number through exactly one `Message`. Calls and SMS replies that
come back are `Tip`s.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names so that migrations can refer to them on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every database (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use datetime.now(timezone.utc)")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # VARCHAR + CHECK rather than a native enum type: identical on PostgreSQL and SQLite and
    # cheap to extend in a migration.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=24,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# --- enumerations -------------------------------------------------------------------------


class Channel(str, enum.Enum):
    sms = "sms"
    voice = "voice"


class Role(str, enum.Enum):
    admin = "admin"
    centralist = "centralist"
    municipality = "municipality"


class ActionType(str, enum.Enum):
    missing_person = "missing_person"
    burglary = "burglary"
    robbery = "robbery"
    hit_and_run = "hit_and_run"
    shop_theft = "shop_theft"
    other = "other"


class Urgency(str, enum.Enum):
    """How an action's alert shares the binds and voice lines with other open actions
    (gateway/queue/schedule.py weighs them)."""

    critical = "critical"  # a missing person: a child must not wait for a shop theft
    high = "high"  # every other time-critical action
    routine = "routine"  # not time-critical (a municipality's message)

    @classmethod
    def for_type(cls, action_type: ActionType) -> Urgency:
        """RULE: a missing person is critical from the start; an admin may raise any other."""
        return cls.critical if action_type == ActionType.missing_person else cls.high


class ActionStatus(str, enum.Enum):
    draft = "draft"
    open = "open"
    closed = "closed"


class Outcome(str, enum.Enum):
    direct = "direct"  # a participant's tip led directly to the arrest / finding
    indirect = "indirect"  # tips helped, but did not decide it
    none = "none"  # no success through Burgernet


class BulletinKind(str, enum.Enum):
    alert = "alert"
    update = "update"
    closing = "closing"


class MessageStatus(str, enum.Enum):
    queued = "queued"  # committed; waiting for a channel worker
    sending = "sending"  # claimed by a worker, outcome not yet known
    submitted = "submitted"  # SMS accepted by the SMSC
    delivered = "delivered"  # SMS delivery receipt says delivered
    answered = "answered"  # voice call answered (by a person or a voicemail)
    failed = "failed"  # gave up; `detail` says why
    cancelled = "cancelled"  # never sent because the action closed first


# RULE: a number counts as "reached" (and so gets the closing message) once its alert or update
# left our hands successfully.
REACHED_STATUSES = (MessageStatus.submitted, MessageStatus.delivered, MessageStatus.answered)
FINAL_STATUSES = (*REACHED_STATUSES, MessageStatus.failed, MessageStatus.cancelled)


class TipChannel(str, enum.Enum):
    call = "call"
    sms = "sms"


class MatchedBy(str, enum.Enum):
    caller_id = "caller_id"
    action_code = "action_code"
    none = "none"


# --- organisations and people ----------------------------------------------------------------


class Municipality(Base):
    __tablename__ = "municipality"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cbs_code: Mapped[str] = mapped_column(String(6), unique=True)  # e.g. GM0344
    name: Mapped[str] = mapped_column(String(100))
    region: Mapped[str] = mapped_column(String(100))  # police region / meldkamer area
    # Its territory, [[lat, lon], …] (an admin sets it, e.g. from PDOK's gemeentegrenzen): a
    # municipality's own messages go to areas inside it. NULL: it cannot send messages yet.
    boundary: Mapped[list[list[float]] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Participant(Base):
    """A classic participant: one phone number, registered by one municipality."""

    __tablename__ = "participant"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(16), index=True)  # E.164, e.g. +31612345678
    language: Mapped[str] = mapped_column(String(2), default="nl")
    # Holiday pause, inclusive local dates (Europe/Amsterdam).
    pause_from: Mapped[date | None] = mapped_column(Date)
    pause_until: Mapped[date | None] = mapped_column(Date)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    addresses: Mapped[list[Address]] = relationship(
        back_populates="participant", cascade="all, delete-orphan", order_by="Address.id"
    )

    __table_args__ = (
        CheckConstraint("language IN ('nl','en','de','fr')", name="language"),
        # The sign-up trend (gateway.stats): new and unsubscribed participants per period and area.
        Index("ix_participant_created", "created_at"),
        Index("ix_participant_municipality_created", "municipality_id", "created_at"),
        Index("ix_participant_unsubscribed", "unsubscribed_at"),
    )


class Address(Base):
    """Where a participant lives or works, with how and when to be alerted there."""

    __tablename__ = "address"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id", ondelete="CASCADE"), index=True)
    country: Mapped[str] = mapped_column(String(2), default="NL")
    postcode: Mapped[str] = mapped_column(String(8))
    house_number: Mapped[str] = mapped_column(String(10))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    # Spatial bucket for the radius search; see gateway.targeting.geo.tile_of.
    tile: Mapped[int] = mapped_column(Integer, index=True)
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"))
    # Receive windows per weekday in local time, as canonical text (gateway.targeting.windows),
    # e.g. "mo-fr 08:00-17:30; sa,su 10:00-14:00"; NULL means always. Text rather than a table of
    # windows: targeting reads it with the address row, and parses each distinct text once.
    windows: Mapped[str | None] = mapped_column(String(300))

    participant: Mapped[Participant] = relationship(back_populates="addresses")

    __table_args__ = (CheckConstraint("lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name="latlon"),)


class Centralist(Base):
    """A control-room operator; tip calls for her actions ring `dial_string`."""

    __tablename__ = "centralist"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    meldkamer: Mapped[str] = mapped_column(String(100))
    dial_string: Mapped[str] = mapped_column(String(200))  # e.g. PJSIP/4021@meldkamer-mn
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(Base):
    """Someone (or some system) that calls the API, with one role."""

    __tablename__ = "api_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("municipality.id"))
    centralist_id: Mapped[int | None] = mapped_column(ForeignKey("centralist.id"))
    # HMAC-SHA256 of the API key under SECRET_KEY; the key itself is shown once and never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(12))  # shown in listings to tell keys apart
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint(
            "(role != 'municipality' OR municipality_id IS NOT NULL) AND "
            "(role != 'centralist' OR centralist_id IS NOT NULL)",
            name="role_scope",
        ),
    )


# --- actions and what they send -----------------------------------------------------------------


class Action(Base):
    """A Burgernetactie: what to look out for, where, and who owns it."""

    __tablename__ = "action"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[ActionType] = mapped_column(_enum(ActionType, "action_type"))
    description: Mapped[str] = mapped_column(Text)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    radius_m: Mapped[int] = mapped_column(Integer)
    # A drawn area: [[lat, lon], …], the ring closing itself. NULL: the area is the circle. With a
    # polygon, (lat, lon) is its centre and radius_m the circle around it (the tile search and the
    # nearness of addresses start there; the polygon decides who is inside).
    polygon: Mapped[list[list[float]] | None] = mapped_column(JSON)
    urgency: Mapped[Urgency] = mapped_column(_enum(Urgency, "urgency"), default=Urgency.high)
    send_sms: Mapped[bool] = mapped_column(Boolean, default=True)
    send_voice: Mapped[bool] = mapped_column(Boolean, default=True)
    # Who owns it: a centralist (a police action), or a municipality (its own non-time-critical
    # message, docs/areas.md: routine urgency, waits for each address's window, no tip line
    # unless `tip_line`).
    centralist_id: Mapped[int | None] = mapped_column(ForeignKey("centralist.id"), index=True)
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("municipality.id"), index=True)
    tip_line: Mapped[bool] = mapped_column(Boolean, default=True)  # its texts ask to call 0800-0011
    action_code: Mapped[str | None] = mapped_column(String(8))
    status: Mapped[ActionStatus] = mapped_column(
        _enum(ActionStatus, "action_status"), default=ActionStatus.draft, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    launched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)  # statistics' period
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expired: Mapped[bool] = mapped_column(Boolean, default=False)  # closed by the clock
    outcome: Mapped[Outcome | None] = mapped_column(_enum(Outcome, "outcome"))
    outcome_detail: Mapped[str | None] = mapped_column(String(40))  # arrest, person_found, …
    outcome_note: Mapped[str | None] = mapped_column(Text)

    centralist: Mapped[Centralist | None] = relationship()
    bulletins: Mapped[list[Bulletin]] = relationship(back_populates="action", order_by="Bulletin.id")

    __table_args__ = (
        # RULE: an action code is unique among open actions (it is reused once closed).
        Index(
            "uq_action_open_code",
            "action_code",
            unique=True,
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
        CheckConstraint("radius_m > 0", name="radius"),
        CheckConstraint("send_sms OR send_voice", name="channels"),
        CheckConstraint("(centralist_id IS NULL) != (municipality_id IS NULL)", name="owner"),
    )

    @property
    def channels(self) -> list[Channel]:
        return [c for c, on in ((Channel.sms, self.send_sms), (Channel.voice, self.send_voice)) if on]


class Bulletin(Base):
    """One text sent to many: an action's alert, an update, or its closing message."""

    __tablename__ = "bulletin"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("action.id"))
    kind: Mapped[BulletinKind] = mapped_column(_enum(BulletinKind, "bulletin_kind"))
    seq: Mapped[int] = mapped_column(Integer, default=0)  # 0 for alert/closing, 1.. for updates
    sms_text: Mapped[str] = mapped_column(Text)
    spoken_text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set once all its messages are on the work queue: one mark per bulletin instead of one
    # UPDATE per message (100,000 for a big launch). NULL and older than the reconciler's grace:
    # the publish was lost, and the reconciler publishes its queued messages again.
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set once all its messages exist. A launch creates an alert's messages in chunks, each
    # committed and sent on at once (gateway/actions/fanout.py); NULL while that is under way, or
    # after the launching process died midway — then housekeeping completes it.
    fanned_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set once none of its messages is open (queued or sending) any more; they never open again.
    # The scans for open messages look only at unsettled bulletins (gateway/queue/settle.py):
    # `message` has no index on its status, so that status writes are HOT updates.
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    action: Mapped[Action] = relationship(back_populates="bulletins")

    __table_args__ = (
        UniqueConstraint("action_id", "kind", "seq", name="uq_bulletin_action_kind_seq"),
        # What a message's (bulletin_id, action_id) refers to (see Message).
        UniqueConstraint("id", "action_id", name="uq_bulletin_id_action"),
    )


class TextTemplate(Base):
    """A ready text for one action type with placeholders ({who}, {what}, {where}, {vehicle},
    {direction}) the centralist fills in (gateway/actions/wording.py); admins edit them."""

    __tablename__ = "text_template"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action_type: Mapped[ActionType] = mapped_column(_enum(ActionType, "action_type"))
    name: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (UniqueConstraint("action_type", "name", name="uq_text_template_type_name"),)


class WaitingRecipient(Base):
    """A recipient of a municipality's message whose receive windows are all closed: her message
    is created when the first opens (`due_at`; gateway/actions/messages.py). The alert stays
    unfinished (`fanned_out_at` NULL) while any wait."""

    __tablename__ = "waiting_recipient"

    bulletin_id: Mapped[int] = mapped_column(ForeignKey("bulletin.id", ondelete="CASCADE"), primary_key=True)
    phone: Mapped[str] = mapped_column(String(16), primary_key=True)
    participant_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


# Percent of each `message` page filled by inserts: the rest is for the status writes' new row
# versions (see Message). 30: the claim and the outcome both fit beside the row.
MESSAGE_FILLFACTOR = 30


class Message(Base):
    """One bulletin on its way to one phone number."""

    __tablename__ = "message"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    bulletin_id: Mapped[int] = mapped_column(Integer)
    action_id: Mapped[int] = mapped_column(Integer, index=True)  # its bulletin's (fk_message_bulletin)
    phone: Mapped[str] = mapped_column(String(16))
    # Whom the message was for when it was created (the voice worker speaks in her language).
    # Not a foreign key: a deleted participant's messages keep the number and an id that no
    # longer resolves (ids are never reused). A key would check every inserted message — a
    # third of a launch's insert (bench/message_writes) — and make each deletion of a
    # participant scan every message for hers (a year is ~23 M; an index would cost each insert).
    participant_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"))
    status: Mapped[MessageStatus] = mapped_column(
        _enum(MessageStatus, "message_status"), default=MessageStatus.queued
    )
    detail: Mapped[str | None] = mapped_column(String(200))  # failure reason, call outcome, …
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    provider_id: Mapped[str | None] = mapped_column(String(64))  # SMSC message id / call id
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the message was handed to the work queue. A bulletin's messages are created with it
    # set, their publish confirmed by `Bulletin.published_at`; a message queued again on its own
    # (stale lease) has it NULL until that publish is done. NULL + queued: the publish may be lost.
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    final_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The lease of a `sending` message (gateway/queue/lease.py): which worker claimed it and when
    # it last renewed the claim; a lease not renewed in time means the worker died.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set (and committed) right before the worker hands the message to the provider: from then on
    # it may have reached the SMSC / Asterisk even if the worker dies before hearing back.
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        # RULE: one message per phone number per bulletin — the database backs the targeting rule.
        UniqueConstraint("bulletin_id", "phone", name="uq_message_bulletin_phone"),
        # One reference for both: the message's action is its bulletin's, and each inserted row
        # costs one foreign-key check instead of two (PostgreSQL runs a query per row and key;
        # bench/message_writes measures the launch's insert).
        ForeignKeyConstraint(
            ["bulletin_id", "action_id"], ["bulletin.id", "bulletin.action_id"], name="fk_message_bulletin"
        ),
        Index("ix_message_phone", "phone"),
        # A message's status is written two or three times (claim, outcome, receipt). No index
        # holds a column those writes change, and each page keeps room for them, so PostgreSQL
        # writes them as HOT updates: a new row version on the same page and no index entries.
        # bench/message_writes: claim + outcome of 100,000, 2.4 → 0.8 s of CPU. The open messages
        # are found through their bulletin instead (gateway/queue/settle.py).
        {"postgresql_with": {"fillfactor": MESSAGE_FILLFACTOR}},
    )


class SmsPart(Base):
    """One submitted SMS part: the SMSC's message id, so that its delivery receipt finds the message.

    Written in the same transaction that records the message as submitted, so it survives a
    restart of the gateway; receipts of every part of a concatenated message map to one message.
    """

    __tablename__ = "sms_part"

    # SMSC message ids are unique per SMSC, not across operators.
    operator: Mapped[str] = mapped_column(String(32), primary_key=True)
    smsc_message_id: Mapped[str] = mapped_column(String(65), primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"), index=True)
    part: Mapped[int] = mapped_column(SmallInteger)  # 1-based
    parts: Mapped[int] = mapped_column(SmallInteger)
    bind: Mapped[str] = mapped_column(String(32))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The receipt's stat (DELIVRD, UNDELIV, …) once it came; NULL while none did.
    stat: Mapped[str | None] = mapped_column(String(8))
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Tip(Base):
    """A call to 0800-0011 or an SMS reply: the raw material of success counting."""

    __tablename__ = "tip"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[TipChannel] = mapped_column(_enum(TipChannel, "tip_channel"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    caller_number: Mapped[str | None] = mapped_column(String(16))  # NULL when withheld
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participant.id", ondelete="SET NULL"))
    action_id: Mapped[int | None] = mapped_column(ForeignKey("action.id"), index=True)
    matched_by: Mapped[MatchedBy] = mapped_column(_enum(MatchedBy, "matched_by"), default=MatchedBy.none)
    routed_to: Mapped[str | None] = mapped_column(String(200))
    dial_status: Mapped[str | None] = mapped_column(String(20))  # ANSWER, BUSY, NOANSWER, …
    talk_seconds: Mapped[int | None] = mapped_column(Integer)
    recording_path: Mapped[str | None] = mapped_column(String(300))
    sms_text: Mapped[str | None] = mapped_column(Text)
    call_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # Asterisk uniqueid
    useful: Mapped[bool | None] = mapped_column(Boolean)
    led_to_success: Mapped[bool | None] = mapped_column(Boolean)
    marked_by: Mapped[int | None] = mapped_column(ForeignKey("api_user.id"))
    marked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- statistics ---------------------------------------------------------------------------------


class ActionReach(Base):
    """Rollup of a settled action's messages per municipality (of the participant) and channel.

    Written by gateway.stats.rollup once an action has been closed for STATS_SETTLE_HOURS; until
    then the statistics count the action's messages directly (see gateway.stats.query).
    """

    __tablename__ = "action_reach"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("action.id", ondelete="CASCADE"), index=True)
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("municipality.id"), index=True)
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"))
    recipients: Mapped[int] = mapped_column(Integer)  # alert messages: numbers the alert went to
    submitted: Mapped[int] = mapped_column(Integer)
    delivered: Mapped[int] = mapped_column(Integer)
    answered: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    cancelled: Mapped[int] = mapped_column(Integer)
    pending: Mapped[int] = mapped_column(Integer)  # queued or sending


class ReachRollup(Base):
    """Marks an action whose messages are in `action_reach` (and so no longer counted raw)."""

    __tablename__ = "reach_rollup"

    action_id: Mapped[int] = mapped_column(ForeignKey("action.id", ondelete="CASCADE"), primary_key=True)
    rolled_up_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SignupDay(Base):
    """Rollup of the sign-up trend: participants registered and unsubscribed per municipality and
    UTC day, for the days before `SignupRollup.through` (gateway.stats.rollup.rebuild_signups)."""

    __tablename__ = "signup_day"

    municipality_id: Mapped[int] = mapped_column(
        ForeignKey("municipality.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    registered: Mapped[int] = mapped_column(Integer)
    unsubscribed: Mapped[int] = mapped_column(Integer)


class SignupRollup(Base):
    """The one row that says up to which day (exclusive) `signup_day` holds, and when it was made."""

    __tablename__ = "signup_rollup"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    through: Mapped[date] = mapped_column(Date)
    rebuilt_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --- security (gateway/auth.py, gateway/audit.py) --------------------------------------------------


class UserSession(Base):
    """A browser session. The cookie carries a random token and only its HMAC is stored here, so
    that logging out (or an admin) ends the session wherever the cookie was copied to."""

    __tablename__ = "user_session"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("api_user.id", ondelete="CASCADE"), index=True)
    # The user's key when she logged in: a new key ends her sessions.
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEvent(Base):
    """Who did what to which action or participant, and when (GDPR art. 30/32). Append-only (a
    trigger refuses UPDATE); rows older than AUDIT_RETENTION_DAYS are deleted by housekeeping.
    Never the data itself: ids, counts and field names only."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    user_id: Mapped[int | None] = mapped_column(
        Integer, index=True
    )  # no foreign key: the trail outlives users
    role: Mapped[str | None] = mapped_column(String(24))
    event: Mapped[str] = mapped_column(String(40), index=True)  # e.g. action.close, participant.read
    subject_type: Mapped[str] = mapped_column(String(24))  # action, participant, tip, user
    subject_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    detail: Mapped[str | None] = mapped_column(String(500))


# --- SMS in (gateway/sms/mo.py) ------------------------------------------------------------------


class MoPart(Base):
    """One part of a concatenated MO SMS, kept until its message is handled (gateway/sms/mo.py).

    Stored before the part is acknowledged to the SMSC, so a crash loses none; `handled_at` is set
    in the transaction that records the message's effect (tip or unsubscription), so it happens
    once. Handled parts are kept a day to recognise a part the SMSC sends again.
    """

    __tablename__ = "mo_part"

    sender: Mapped[str] = mapped_column(String(16), primary_key=True)  # E.164
    reference: Mapped[int] = mapped_column(Integer, primary_key=True)  # the UDH's concatenation reference
    total: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    part: Mapped[int] = mapped_column(SmallInteger, primary_key=True)  # 1-based
    text: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
