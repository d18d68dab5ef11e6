"""Statistics for dashboards: success, reach and the sign-up trend (definitions: gateway.stats)."""

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from gateway.api.deps import SessionDep, UserDep
from gateway.api.schemas import SignupSeries, StatsByMunicipality, StatsByType, StatsSummary
from gateway.fields import Day, Text100
from gateway.stats import report
from gateway.stats.report import Filters
from gateway.storage.models import ActionType

router = APIRouter(prefix="/api/v1/stats", tags=["statistics"])


def filters(
    from_: Annotated[
        Day | None, Query(alias="from", description="First UTC day (default: a year before `to`).")
    ] = None,
    to: Annotated[Day | None, Query(description="Last UTC day, inclusive (default: today).")] = None,
    municipality: Annotated[
        str | None, Query(pattern=r"^GM[0-9]{4}$", description="CBS code, e.g. GM0344")
    ] = None,
    region: Annotated[Text100 | None, Query(description="Police region (Municipality.region)")] = None,
    action_type: Annotated[ActionType | None, Query()] = None,
) -> Filters:
    return Filters(from_, to, municipality, region, action_type)


FiltersDep = Annotated[Filters, Depends(filters)]


def _today() -> date:
    return datetime.now(UTC).date()


@router.get("/summary", response_model=StatsSummary)
def summary(f: FiltersDep, session: SessionDep, user: UserDep):
    """Actions, recipients, delivery and answer rates, tips and success rates for the filters."""
    report.allow(session, user, f)
    return report.summary(session, f, _today())


@router.get("/signups", response_model=SignupSeries)
def signups(
    f: FiltersDep,
    session: SessionDep,
    user: UserDep,
    bucket: Annotated[Literal["month", "week"], Query()] = "month",
):
    """Participants registered and unsubscribed per month or week, and the active total."""
    report.allow(session, user, f)
    return report.signups(session, f, bucket, _today())


@router.get("/by-municipality", response_model=StatsByMunicipality)
def by_municipality(f: FiltersDep, session: SessionDep, user: UserDep):
    """One row per municipality (a municipality user: her own), with regional and national averages
    (for a municipality user each only when it cannot reveal another municipality: else null)."""
    report.allow(session, user, f, group_figures=False)
    return report.by_municipality(session, user, f, _today())


@router.get("/by-type", response_model=StatsByType)
def by_type(f: FiltersDep, session: SessionDep, user: UserDep):
    """One row per action type, with the summary's figures."""
    report.allow(session, user, f)
    return report.by_type(session, f, _today())
