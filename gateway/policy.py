"""Who may do what — the ownership and privacy rules, written once (docs/security.md).

Roles say which routes a caller reaches (gateway.api.deps); these rules say which rows:
- an action is changed (edited, launched, updated, closed, its outcome set, its tips marked) by
  the centralist who owns it, or an admin; a municipality's own message by that municipality;
- a municipality sends its messages to areas inside its own boundary only;
- a municipality sees and changes only its own participants;
- a municipality never learns another municipality's figures: not by asking for them, and not by
  taking a regional or national figure apart. A group's figures are shown to a municipality
  only when, besides what she can already see, they hold at least MIN_OTHER_MUNICIPALITIES
  municipalities with participants.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from gateway.errors import Forbidden
from gateway.storage.models import Action, Municipality, Participant, Role, User
from gateway.targeting.geo import Polygon, polygon_inside

# Two others at least: with one, her own figures subtracted from the group's would be its figures.
MIN_OTHER_MUNICIPALITIES = 2


# --- actions ----------------------------------------------------------------------------------------


def require_action_owner(user: User, action: Action | None) -> None:
    """RULE: an action is changed, closed and marked by the centralist who owns it, or an admin."""
    if user.role == Role.admin:
        return
    if user.role == Role.municipality and action is not None and action.municipality_id is not None:
        if action.municipality_id == user.municipality_id:
            return
        raise Forbidden("this message belongs to another municipality", reason="not-owner")
    if user.role != Role.centralist or action is None or action.centralist_id != user.centralist_id:
        raise Forbidden(
            "only the centralist who owns the action (or an admin) may change it", reason="not-owner"
        )


def require_inside_municipality(area: list[tuple[float, float]], municipality: Municipality) -> None:
    """RULE: a municipality sends its own messages to areas inside its boundary only."""
    if municipality.boundary is None:
        raise Forbidden(
            f"no boundary on file for {municipality.name}: an admin sets it before it can send messages",
            reason="no-boundary",
        )
    if not polygon_inside(area, Polygon([(lat, lon) for lat, lon in municipality.boundary])):
        raise Forbidden(
            f"the area reaches outside {municipality.name}; a municipality sends messages inside its own "
            "boundary only",
            reason="outside-municipality",
        )


# --- participants ---------------------------------------------------------------------------------


def require_own_municipality(user: User, municipality_id: int) -> None:
    """RULE: a municipality sees and changes only its own participants."""
    if user.role == Role.municipality and user.municipality_id != municipality_id:
        raise Forbidden("this belongs to another municipality")


# --- statistics -------------------------------------------------------------------------------------


def own_municipality(session: Session, user: User) -> Municipality:
    """A municipality user's municipality (the user table's check constraint says she has one)."""
    return session.get_one(Municipality, user.municipality_id)


@dataclass(frozen=True, slots=True)
class VisibleGroups:
    """Which groups' figures a municipality user may see besides her own."""

    region: bool
    national: bool


def visible_groups(session: Session, user: User) -> VisibleGroups:
    """RULE: a group's figures reach a municipality only when they hold at least
    MIN_OTHER_MUNICIPALITIES others with participants beyond what she already sees — so that
    neither the group nor the group minus a smaller one she sees reveals a single municipality."""
    if user.role != Role.municipality:
        return VisibleGroups(region=True, national=True)
    own = own_municipality(session, user)
    # The region of every other municipality that has participants (a few hundred rows at most).
    regions = list(
        session.scalars(
            select(Municipality.region).where(
                Municipality.id != own.id, exists().where(Participant.municipality_id == Municipality.id)
            )
        )
    )
    in_region = sum(region == own.region for region in regions)
    elsewhere = len(regions) - in_region
    region = in_region >= MIN_OTHER_MUNICIPALITIES
    # The country minus the largest group below it that she sees (her region, else herself).
    national = (elsewhere if region else in_region + elsewhere) >= MIN_OTHER_MUNICIPALITIES
    return VisibleGroups(region=region, national=national)


def require_figures_allowed(
    session: Session, user: User, municipality: str | None, region: str | None, *, group_figures: bool
) -> None:
    """RULE: a municipality asks for her own municipality's figures and her own region's only, and
    gets a group's figures (`group_figures`: the answer is one figure for the whole selection)
    only when `visible_groups` allows it. Centralists and admins see everything."""
    if user.role != Role.municipality:
        return
    own = own_municipality(session, user)
    if municipality is not None:
        if municipality != own.cbs_code:
            raise Forbidden("a municipality sees its own figures and the regional and national averages only")
        return  # her own figures (a region besides can only narrow them)
    if region is not None and region != own.region:
        raise Forbidden(f"a municipality sees the figures of its own region ({own.region}) only")
    if not group_figures:
        return
    visible = visible_groups(session, user)
    if not (visible.region if region is not None else visible.national):
        raise Forbidden(
            f"too few municipalities with participants in {'the region' if region else 'the country'} to show "
            "its figures without revealing another municipality's; ask for your own (municipality=…)",
            reason="group-too-small",
        )
