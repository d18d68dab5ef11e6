"""The statistics service: resolve the filters, check who may see them, count, make the rates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import policy
from gateway.errors import Invalid
from gateway.stats import definitions as d
from gateway.stats import query
from gateway.storage.models import ActionType, Municipality, Role, User

DEFAULT_DAYS = 365
MAX_DAYS = 5 * 366


@dataclass(frozen=True, slots=True)
class Filters:
    """What the caller asked for (as given, for the answer's `filters`)."""

    start: date | None = None
    end: date | None = None
    municipality: str | None = None  # CBS code, e.g. GM0344
    region: str | None = None
    action_type: ActionType | None = None

    def period(self, today: date) -> d.Period:
        end = self.end or today
        start = self.start or end - timedelta(days=DEFAULT_DAYS - 1)
        if start > end:
            raise Invalid(f"from {start} is after to {end}", field="from")
        if (end - start).days >= MAX_DAYS:
            raise Invalid(f"a period of at most {MAX_DAYS} days, please", field="from")
        return d.Period(start, end)

    def public(self, period: d.Period) -> dict:
        return {
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "municipality": self.municipality,
            "region": self.region,
            "action_type": self.action_type.value if self.action_type else None,
        }


def _municipality(session: Session, cbs_code: str) -> Municipality:
    m = session.scalar(select(Municipality).where(Municipality.cbs_code == cbs_code))
    if m is None:
        raise Invalid(f"municipality {cbs_code} does not exist", field="municipality")
    return m


def _region_ids(session: Session, region: str) -> list[int]:
    ids = list(session.scalars(select(Municipality.id).where(Municipality.region == region)))
    if not ids:
        raise Invalid(f"no municipality lies in region {region!r}", field="region")
    return ids


def allow(session: Session, user: User, filters: Filters, *, group_figures: bool = True) -> None:
    """Whether `user` may see the figures `filters` select (the rules: gateway.policy)."""
    policy.require_figures_allowed(
        session, user, filters.municipality, filters.region, group_figures=group_figures
    )


def area(session: Session, filters: Filters) -> d.Area:
    """The municipalities the filters select (municipality and region together: both must hold)."""
    ids: set[int] | None = None
    if filters.municipality is not None:
        ids = {_municipality(session, filters.municipality).id}
    if filters.region is not None:
        in_region = set(_region_ids(session, filters.region))
        ids = in_region if ids is None else ids & in_region
    return d.Area(None if ids is None else tuple(sorted(ids)))


def summary(session: Session, filters: Filters, today: date) -> dict:
    period = filters.period(today)
    actions, messages = query.summary_counts(session, period, area(session, filters), filters.action_type)
    return {"filters": filters.public(period), **d.summary(actions, messages)}


def signups(session: Session, filters: Filters, bucket: str, today: date) -> dict:
    period = filters.period(today)
    before, registered, left = query.signup_counts(session, period, area(session, filters))
    return {
        "filters": filters.public(period),
        "bucket": bucket,
        "series": d.signup_series(period, bucket, before, registered, left),
    }


def _average(counts: d.ActionCounts) -> dict:
    return {"actions": counts.actions, "closed_actions": counts.closed, **d.success_rates(counts)}


def by_municipality(session: Session, user: User, filters: Filters, today: date) -> dict:
    """Per municipality (a municipality user: her own row only) with the regional and national
    averages: every action that reached the region (the country) counted once."""
    period = filters.period(today)
    stmt = select(Municipality).order_by(Municipality.region, Municipality.name)
    if filters.region is not None:
        stmt = stmt.where(Municipality.id.in_(_region_ids(session, filters.region)))
    if user.role == Role.municipality:
        stmt = stmt.where(Municipality.id == user.municipality_id)
    municipalities = list(session.scalars(stmt))
    counted = query.by_municipality(session, period, [m.id for m in municipalities], filters.action_type)
    rows = []
    for m in municipalities:
        counts, recipients = counted.get(m.id, (d.ActionCounts(), 0))
        rows.append(
            {
                "cbs_code": m.cbs_code,
                "name": m.name,
                "region": m.region,
                "actions": counts.actions,
                "recipients": recipients,
                "closed_actions": counts.closed,
                "actions_with_tip": counts.with_tip,
                "direct_success": counts.direct,
                "indirect_success": counts.indirect,
                **d.success_rates(counts),
            }
        )
    region = filters.region
    if region is None and user.role == Role.municipality:
        region = policy.own_municipality(session, user).region
    visible = policy.visible_groups(session, user)
    national = query.area_counts(session, period, d.Area(), filters.action_type)
    regional = (
        national
        if region is None
        else query.area_counts(
            session, period, d.Area(tuple(_region_ids(session, region))), filters.action_type
        )
    )
    return {
        "filters": {**filters.public(period), "region": region},
        "rows": rows,
        "region_average": _average(regional) if visible.region else None,
        "national_average": _average(national) if visible.national else None,
    }


def by_type(session: Session, filters: Filters, today: date) -> dict:
    period = filters.period(today)
    counted = query.by_type(session, period, area(session, filters))
    rows = []
    for action_type in ActionType:
        actions, messages = counted.get(action_type, (d.ActionCounts(), d.MessageCounts()))
        rows.append({"action_type": action_type.value, **d.summary(actions, messages)})
    return {"filters": filters.public(period), "rows": rows}
