"""The statistics' SQL. It only counts; what the counts mean and the rates made from them live in
`gateway.stats.definitions`. Everything here runs unchanged on PostgreSQL and SQLite.

Messages are counted per action, municipality (of the participant) and channel by one query,
`reach()`: settled actions come from the rollup table `action_reach` (gateway.stats.rollup),
all others are counted from their messages, so the figures are always current.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from sqlalchemy import and_, case, exists, func, or_, select, union_all
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.sql.functions import FunctionElement

from gateway.stats.definitions import ActionCounts, Area, MessageCounts, Period, bucket_of
from gateway.storage.models import (
    Action,
    ActionReach,
    ActionStatus,
    ActionType,
    Bulletin,
    BulletinKind,
    Channel,
    Message,
    MessageStatus,
    Outcome,
    Participant,
    ReachRollup,
    Tip,
)

_a, _m, _b, _p = Action.__table__, Message.__table__, Bulletin.__table__, Participant.__table__
_t, _r, _ru = Tip.__table__, ActionReach.__table__, ReachRollup.__table__

# The message columns of `reach()` and `action_reach`, each a condition on the message.
STATUS_COLUMNS: dict[str, ColumnElement[bool]] = {
    "submitted": _m.c.status == MessageStatus.submitted,
    "delivered": _m.c.status == MessageStatus.delivered,
    "answered": _m.c.status == MessageStatus.answered,
    "failed": _m.c.status == MessageStatus.failed,
    "cancelled": _m.c.status == MessageStatus.cancelled,
    "pending": _m.c.status.in_([MessageStatus.queued, MessageStatus.sending]),
}
REACH_COLUMNS = ("action_id", "municipality_id", "channel", "recipients", *STATUS_COLUMNS)


def _count_if(condition) -> ColumnElement[int]:
    return func.count(case((condition, 1)))


def _sum(column) -> ColumnElement[int]:
    return func.coalesce(func.sum(column), 0)


def launched(period: Period, action_type: ActionType | None = None) -> Select:
    """Ids of the actions launched in the period (of one type)."""
    q = select(_a.c.id).where(_a.c.launched_at >= period.lower, _a.c.launched_at < period.upper)
    return q if action_type is None else q.where(_a.c.type == action_type)


def counted_reach(action_ids: Select) -> Select:
    """Messages of these actions counted per action, municipality and channel (the rollup's rows)."""
    return (
        select(
            _m.c.action_id,
            _p.c.municipality_id,
            _m.c.channel,
            _count_if(_b.c.kind == BulletinKind.alert).label("recipients"),
            *(_count_if(condition).label(name) for name, condition in STATUS_COLUMNS.items()),
        )
        .select_from(_m.join(_b, _b.c.id == _m.c.bulletin_id).outerjoin(_p, _p.c.id == _m.c.participant_id))
        .where(_m.c.action_id.in_(action_ids))
        .group_by(_m.c.action_id, _p.c.municipality_id, _m.c.channel)
    )


# Above this many unsettled actions their ids stay a subquery instead of a list of values.
_UNSETTLED_AS_VALUES = 500


def reach(conn: Session | Connection, action_ids: Select):
    """`counted_reach` for these actions: rolled-up rows where there are, counted ones elsewhere.

    The unsettled actions (open or recently closed: a few dozen nationally) are looked up first,
    so that the usual case, a period without them, costs the plan nothing."""
    not_rolled_up = ~exists().where(_ru.c.action_id == _a.c.id)
    ids = list(conn.scalars(action_ids.where(not_rolled_up).limit(_UNSETTLED_AS_VALUES + 1)))
    settled = select(*(_r.c[name] for name in REACH_COLUMNS)).where(_r.c.action_id.in_(action_ids))
    if not ids:
        return settled.cte("reach")
    # The condition is repeated: an action rolled up since the look-up must not count twice.
    unsettled = (select(_a.c.id).where(_a.c.id.in_(ids), not_rolled_up) if len(ids) <= _UNSETTLED_AS_VALUES
                 else action_ids.where(not_rolled_up))
    return union_all(settled, counted_reach(unsettled)).cte("reach")


def _actions_reaching(reach_rows, area: Area) -> Select:
    """The actions whose alert reached a participant of the area."""
    return (
        select(reach_rows.c.action_id)
        .where(reach_rows.c.municipality_id.in_(area.municipality_ids), reach_rows.c.recipients > 0)
        .distinct()
    )


def action_flags(action_ids: Select, period: Period):
    """Per action: type, closed, outcome flags and counted tips (RULE: tips while it was open)."""
    tips = (
        select(_t.c.action_id, func.count().label("tips"))
        .select_from(_t.join(_a, _a.c.id == _t.c.action_id))
        .where(
            _t.c.received_at >= period.lower,  # a counted tip follows a launch in the period
            _t.c.received_at >= _a.c.launched_at,
            or_(_a.c.closed_at.is_(None), _t.c.received_at <= _a.c.closed_at),
        )
        .group_by(_t.c.action_id)
        .subquery("counted_tips")
    )
    closed = _a.c.status == ActionStatus.closed
    flag = lambda condition: case((condition, 1), else_=0)  # noqa: E731
    return (
        select(
            _a.c.id.label("action_id"),
            _a.c.type,
            flag(closed).label("closed"),
            flag(and_(closed, _a.c.outcome == Outcome.direct)).label("direct"),
            flag(and_(closed, _a.c.outcome == Outcome.indirect)).label("indirect"),
            flag(and_(closed, _a.c.outcome.is_(None), _a.c.expired)).label("expired_without_outcome"),
            flag(tips.c.tips.is_not(None)).label("with_tip"),
            func.coalesce(tips.c.tips, 0).label("tips"),
        )
        .select_from(_a.outerjoin(tips, tips.c.action_id == _a.c.id))
        .where(_a.c.id.in_(action_ids))
        .subquery("flags")
    )


def _action_aggregates(flags) -> list[ColumnElement[int]]:
    return [
        func.count().label("actions"),
        *(_sum(flags.c[name]).label(name) for name in ("closed", "direct", "indirect", "expired_without_outcome", "with_tip", "tips")),
    ]


def _counts(row) -> ActionCounts:
    return ActionCounts(**{k: int(v) for k, v in row._mapping.items() if k in ActionCounts.__slots__})


def _message_counts(rows) -> Select:
    sms, voice = rows.c.channel == Channel.sms, rows.c.channel == Channel.voice
    return select(
        _sum(case((sms, rows.c.recipients))).label("recipients_sms"),
        _sum(case((voice, rows.c.recipients))).label("recipients_voice"),
        _sum(case((sms, rows.c.submitted))).label("sms_submitted"),
        _sum(case((sms, rows.c.delivered))).label("sms_delivered"),
        _sum(case((sms, rows.c.failed))).label("sms_failed"),
        _sum(case((voice, rows.c.answered))).label("voice_answered"),
        _sum(case((voice, rows.c.failed))).label("voice_failed"),
        _sum(rows.c.cancelled).label("cancelled"),
        _sum(rows.c.pending).label("pending"),
    )


def summary_counts(
    conn: Session | Connection, period: Period, area: Area, action_type: ActionType | None
) -> tuple[ActionCounts, MessageCounts]:
    """Action-level and message-level counts for the summary."""
    scope = launched(period, action_type)
    rows = reach(conn, scope)
    if area.municipality_ids is None:
        actions, mine = scope, rows
    else:
        actions = _actions_reaching(rows, area)
        mine = select(rows).where(rows.c.municipality_id.in_(area.municipality_ids)).subquery("mine")
    flags = action_flags(actions, period)
    action_row = conn.execute(select(*_action_aggregates(flags))).one()
    message_row = conn.execute(_message_counts(mine)).one()
    return _counts(action_row), MessageCounts(**{k: int(v) for k, v in message_row._mapping.items()})


def area_counts(conn: Session | Connection, period: Period, area: Area, action_type: ActionType | None) -> ActionCounts:
    """Action-level counts over every action that reached the area (the regional average)."""
    scope = launched(period, action_type)
    actions = scope if area.municipality_ids is None else _actions_reaching(reach(conn, scope), area)
    return _counts(conn.execute(select(*_action_aggregates(action_flags(actions, period)))).one())


def by_municipality(
    conn: Session | Connection, period: Period, municipality_ids: Iterable[int], action_type: ActionType | None
) -> dict[int, tuple[ActionCounts, int]]:
    """Per municipality: action counts over the actions that reached it, and its recipients."""
    ids = list(municipality_ids)
    scope = launched(period, action_type)
    rows = reach(conn, scope)
    pairs = (
        select(rows.c.municipality_id, rows.c.action_id, func.sum(rows.c.recipients).label("recipients"))
        .where(rows.c.municipality_id.in_(ids))
        .group_by(rows.c.municipality_id, rows.c.action_id)
        .having(func.sum(rows.c.recipients) > 0)
        .subquery("pairs")
    )
    flags = action_flags(scope, period)
    stmt = (
        select(pairs.c.municipality_id, _sum(pairs.c.recipients).label("recipients"), *_action_aggregates(flags))
        .select_from(pairs.join(flags, flags.c.action_id == pairs.c.action_id))
        .group_by(pairs.c.municipality_id)
    )
    return {row.municipality_id: (_counts(row), int(row.recipients)) for row in conn.execute(stmt)}


def by_type(
    conn: Session | Connection, period: Period, area: Area
) -> dict[ActionType, tuple[ActionCounts, MessageCounts]]:
    """Per action type: action counts and message counts (within the area)."""
    scope = launched(period)
    rows = reach(conn, scope)
    if area.municipality_ids is None:
        actions, mine = scope, rows
    else:
        actions = _actions_reaching(rows, area)
        mine = select(rows).where(rows.c.municipality_id.in_(area.municipality_ids)).subquery("mine")
    flags = action_flags(actions, period)
    per_action = conn.execute(select(flags.c.type, *_action_aggregates(flags)).group_by(flags.c.type)).all()
    typed = select(mine, _a.c.type).join(_a, _a.c.id == mine.c.action_id).where(_a.c.id.in_(actions)).subquery("typed")
    messages = _message_counts(typed).add_columns(typed.c.type).group_by(typed.c.type)
    per_message = {
        row.type: MessageCounts(**{k: int(v) for k, v in row._mapping.items() if k != "type"})
        for row in conn.execute(messages)
    }
    return {ActionType(row.type): (_counts(row), per_message.get(row.type, MessageCounts())) for row in per_action}


# --- the sign-up trend -----------------------------------------------------------------------


class month_of(FunctionElement):  # noqa: N801 — used like a SQL function
    """The first day of a UTC timestamp's month (as a timestamp or text: read it with `first_day`)."""

    inherit_cache = True


class week_of(FunctionElement):  # noqa: N801
    """The Monday of a UTC timestamp's week (as a timestamp or text: read it with `first_day`)."""

    inherit_cache = True


# PostgreSQL: date_trunc is ~3x cheaper per row than to_char, so the label is made in Python.
# SQLite stores UTCDateTime as 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC.
_BUCKET_SQL = {
    (month_of, "postgresql"): "date_trunc('month', {} AT TIME ZONE 'UTC')",
    (week_of, "postgresql"): "date_trunc('week', {} AT TIME ZONE 'UTC')",
    (month_of, "sqlite"): "substr({}, 1, 7) || '-01'",
    (week_of, "sqlite"): "date({}, 'weekday 0', '-6 days')",
}


def _register(function, dialect: str, template: str) -> None:
    @compiles(function, dialect)
    def _compile(element, compiler, **kw):
        return template.format(compiler.process(element.clauses, **kw))


for (_function, _dialect), _template in _BUCKET_SQL.items():
    _register(_function, _dialect, _template)


def first_day(value) -> date:
    """The bucket's first day from what either database returns (a timestamp or 'YYYY-MM-DD…')."""
    return date.fromisoformat(str(value)[:10])


BUCKET_FUNCTIONS = {"month": month_of, "week": week_of}


def signup_counts(
    conn: Session | Connection, period: Period, area: Area, bucket: str
) -> tuple[int, dict[str, int], dict[str, int]]:
    """(active before the period, new per bucket, unsubscribed per bucket) of the area's participants."""
    def scoped(q):
        return q if area.municipality_ids is None else q.where(_p.c.municipality_id.in_(area.municipality_ids))

    registered = scoped(select(func.count()).where(_p.c.created_at < period.lower)).scalar_subquery()
    left = scoped(select(func.count()).where(_p.c.unsubscribed_at < period.lower)).scalar_subquery()
    before = conn.execute(select(registered - left)).scalar_one()
    counts = []
    for column in (_p.c.created_at, _p.c.unsubscribed_at):
        label = BUCKET_FUNCTIONS[bucket](column).label("period")
        q = scoped(select(label, func.count()).where(column >= period.lower, column < period.upper)).group_by(label)
        counts.append({bucket_of(first_day(k), bucket): int(v) for k, v in conn.execute(q)})
    return int(before), counts[0], counts[1]
