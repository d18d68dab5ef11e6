"""The statistics' SQL. It only counts; what the counts mean and the rates made from them live in
`gateway.stats.definitions`. Everything here runs unchanged on PostgreSQL and SQLite.

Messages are counted per action, municipality (of the participant) and channel by one query,
`reach()`: settled actions come from the rollup table `action_reach` (gateway.stats.rollup),
all others are counted from their messages, so the figures are always current.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import and_, case, exists, func, or_, select, union_all
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.sql.functions import FunctionElement

from gateway.stats.definitions import ActionCounts, Area, MessageCounts, Period
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
    SignupDay,
    SignupRollup,
    Tip,
)

_a, _m, _b, _p = Action.__table__, Message.__table__, Bulletin.__table__, Participant.__table__
_t, _r, _ru = Tip.__table__, ActionReach.__table__, ReachRollup.__table__
_sd, _sr = SignupDay.__table__, SignupRollup.__table__

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
    """Ids of the police actions launched in the period (of one type); a municipality's own
    messages are counted apart (GET /api/v1/messages)."""
    q = select(_a.c.id).where(
        _a.c.launched_at >= period.lower, _a.c.launched_at < period.upper, _a.c.municipality_id.is_(None)
    )
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
    unsettled = (
        select(_a.c.id).where(_a.c.id.in_(ids), not_rolled_up)
        if len(ids) <= _UNSETTLED_AS_VALUES
        else action_ids.where(not_rolled_up)
    )
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
        *(
            _sum(flags.c[name]).label(name)
            for name in ("closed", "direct", "indirect", "expired_without_outcome", "with_tip", "tips")
        ),
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


def _within(scope, rows, area: Area):
    """The actions of `scope` that reached the area, and the reach rows inside it."""
    if area.municipality_ids is None:
        return scope, rows
    mine = select(rows).where(rows.c.municipality_id.in_(area.municipality_ids)).subquery("mine")
    return _actions_reaching(rows, area), mine


def summary_counts(
    conn: Session | Connection, period: Period, area: Area, action_type: ActionType | None
) -> tuple[ActionCounts, MessageCounts]:
    """Action-level and message-level counts for the summary."""
    scope = launched(period, action_type)
    rows = reach(conn, scope)
    actions, mine = _within(scope, rows, area)
    flags = action_flags(actions, period)
    action_row = conn.execute(select(*_action_aggregates(flags))).one()
    message_row = conn.execute(_message_counts(mine)).one()
    return _counts(action_row), MessageCounts(**{k: int(v) for k, v in message_row._mapping.items()})


def area_counts(
    conn: Session | Connection, period: Period, area: Area, action_type: ActionType | None
) -> ActionCounts:
    """Action-level counts over every action that reached the area (the regional average)."""
    scope = launched(period, action_type)
    actions = scope if area.municipality_ids is None else _actions_reaching(reach(conn, scope), area)
    return _counts(conn.execute(select(*_action_aggregates(action_flags(actions, period)))).one())


def by_municipality(
    conn: Session | Connection,
    period: Period,
    municipality_ids: Iterable[int],
    action_type: ActionType | None,
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
        select(
            pairs.c.municipality_id, _sum(pairs.c.recipients).label("recipients"), *_action_aggregates(flags)
        )
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
    actions, mine = _within(scope, rows, area)
    flags = action_flags(actions, period)
    per_action = conn.execute(select(flags.c.type, *_action_aggregates(flags)).group_by(flags.c.type)).all()
    typed = (
        select(mine, _a.c.type)
        .join(_a, _a.c.id == mine.c.action_id)
        .where(_a.c.id.in_(actions))
        .subquery("typed")
    )
    messages = _message_counts(typed).add_columns(typed.c.type).group_by(typed.c.type)
    per_message = {
        row.type: MessageCounts(**{k: int(v) for k, v in row._mapping.items() if k != "type"})
        for row in conn.execute(messages)
    }
    return {
        ActionType(row.type): (_counts(row), per_message.get(row.type, MessageCounts())) for row in per_action
    }


# --- the sign-up trend -----------------------------------------------------------------------


class utc_day(FunctionElement):
    """The UTC calendar day of a timestamp (a date, or 'YYYY-MM-DD' text: read it with `as_day`)."""

    inherit_cache = True


@compiles(utc_day, "postgresql")
def _utc_day_pg(element, compiler, **kw):
    return f"CAST(({compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC') AS DATE)"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element, compiler, **kw):
    # SQLite stores UTCDateTime as 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC, Date as 'YYYY-MM-DD'.
    return f"substr({compiler.process(element.clauses, **kw)}, 1, 10)"


def as_day(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


def signup_counts(
    conn: Session | Connection, period: Period, area: Area
) -> tuple[int, dict[date, int], dict[date, int]]:
    """(active before the period, registered per UTC day, unsubscribed per UTC day) in the area.

    Days before the sign-up rollup's `through` come from `signup_day`; later ones (today, and
    everything while there is no rollup) are counted from the participants themselves."""
    ids = area.municipality_ids
    start, end = period.start, period.end + timedelta(days=1)  # days [start, end)
    through = conn.scalar(select(_sr.c.through)) or date.min
    registered: dict[date, int] = defaultdict(int)
    left: dict[date, int] = defaultdict(int)
    before = 0

    rolled = select(_sd.c.day, func.sum(_sd.c.registered), func.sum(_sd.c.unsubscribed)).group_by(_sd.c.day)
    if ids is not None:
        rolled = rolled.where(_sd.c.municipality_id.in_(ids))
    for day, n, u in conn.execute(rolled.where(_sd.c.day < min(end, through))):
        day = as_day(day)
        if day < start:
            before += int(n) - int(u)
        else:
            registered[day] += int(n)
            left[day] += int(u)

    live_from = _midnight(through) if through > date.min else None
    for column, into, sign in ((_p.c.created_at, registered, 1), (_p.c.unsubscribed_at, left, -1)):

        def live(q, column=column):
            q = q.where(column < period.upper)
            q = q if live_from is None else q.where(column >= live_from)
            return q if ids is None else q.where(_p.c.municipality_id.in_(ids))

        if live_from is None or live_from < period.lower:
            before += (
                sign * conn.execute(live(select(func.count()).where(column < period.lower))).scalar_one()
            )
        day = utc_day(column).label("day")
        for value, n in conn.execute(
            live(select(day, func.count()).where(column >= period.lower)).group_by(day)
        ):
            into[as_day(value)] += int(n)
    return before, dict(registered), dict(left)
