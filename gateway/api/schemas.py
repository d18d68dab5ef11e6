"""What the HTTP API accepts and returns. Input types validate everything a user can get wrong
(the field types: gateway/fields.py; a participant's registration: gateway/registration.py)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.actions.wording import OutcomeDetail, template_problem
from gateway.fields import (
    Id,
    Latitude,
    Longitude,
    PolygonIn,
    Radius,
    Strict,
    Text100,
    Text200,
    Text500,
    Text1000,
)
from gateway.storage.models import (
    ActionStatus,
    ActionType,
    Channel,
    MatchedBy,
    Outcome,
    Role,
    TipChannel,
    Urgency,
)

# --- actions -------------------------------------------------------------------------------------


def _not_null(value: object, info: ValidationInfo) -> object:
    """An area field given as null is a mistake (leave it out for the other kind of area)."""
    if value is None:
        raise ValueError(
            f"{info.field_name} is null; give a value, or leave it out for the other kind of area"
        )
    return value


def _one_area(model):
    """RULE: an action's area is a circle (lat, lon, radius_m) or a polygon, never both."""
    circle = [name for name in ("lat", "lon", "radius_m") if getattr(model, name) is not None]
    if model.polygon is not None and circle:
        raise ValueError(
            f"give a circle (lat, lon, radius_m) or a polygon, not both ({', '.join(circle)} given)"
        )
    return circle


def _each_once(channels: list[Channel]) -> list[Channel]:
    return sorted(set(channels), key=list(Channel).index)


# The channels an action or message goes out on: each once, in Channel's order.
Channels = Annotated[list[Channel], Field(min_length=1, max_length=2), AfterValidator(_each_once)]


def _whole_area(model):
    """RULE: a new action or message names its whole area: a circle or a polygon."""
    given = _one_area(model)
    if model.polygon is None and len(given) < 3:
        missing = ", ".join(n for n in ("lat", "lon", "radius_m") if n not in given)
        raise ValueError(f"give the area: a circle (lat, lon, radius_m; missing {missing}) or a polygon")


class ActionCreate(Strict):
    type: ActionType
    description: Text1000 = Field(description="What to look out for, in plain language.")
    lat: Latitude | None = None
    lon: Longitude | None = None
    radius_m: Radius | None = None
    polygon: PolygonIn | None = None
    channels: Channels = Field(default=[Channel.sms, Channel.voice])
    centralist_id: Id | None = Field(
        None, description="Owner; admins must give it, centralists own their actions."
    )

    _given = field_validator("lat", "lon", "radius_m", "polygon", mode="before")(_not_null)

    @model_validator(mode="after")
    def _area(self) -> ActionCreate:
        _whole_area(self)
        return self


class ActionEdit(Strict):
    """Changes to a draft; fields left out stay as they are. A polygon replaces the circle; a
    circle's field (lat, lon, radius_m) replaces the polygon by the circle around it."""

    type: ActionType | None = None
    description: Text1000 | None = None
    lat: Latitude | None = None
    lon: Longitude | None = None
    radius_m: Radius | None = None
    polygon: PolygonIn | None = None
    channels: list[Channel] | None = Field(None, min_length=1, max_length=2)

    @model_validator(mode="after")
    def _area(self) -> ActionEdit:
        _one_area(self)
        return self


class ActionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    type: ActionType
    description: str
    lat: float
    lon: float
    radius_m: int
    polygon: list[tuple[float, float]] | None = None
    urgency: Urgency
    channels: list[Channel]
    centralist_id: int | None
    municipality_id: int | None = Field(None, description="Set for a municipality's own message.")
    tip_line: bool = Field(True, description="Whether its texts ask to call the tip line (with the code).")
    action_code: str | None
    status: ActionStatus
    created_at: datetime
    launched_at: datetime | None
    expires_at: datetime | None
    closed_at: datetime | None
    expired: bool
    outcome: Outcome | None
    outcome_detail: str | None
    outcome_note: str | None


class MessageCreate(Strict):
    """A municipality's own message: not time-critical, to an area inside the municipality."""

    description: Text1000 = Field(description="The message, in plain language.")
    lat: Latitude | None = None
    lon: Longitude | None = None
    radius_m: Radius | None = None
    polygon: PolygonIn | None = None
    channels: Channels = Field(default=[Channel.sms, Channel.voice])
    tip_line: bool = Field(False, description="Ask for tips on 0800-0011 with an action code (default: no).")
    municipality_id: Id | None = Field(None, description="Admins only; a municipality sends for itself.")

    _given = field_validator("lat", "lon", "radius_m", "polygon", mode="before")(_not_null)

    @model_validator(mode="after")
    def _area(self) -> MessageCreate:
        _whole_area(self)
        return self


class MessagePublic(ActionPublic):
    waiting: int = Field(0, description="Recipients whose message waits for their receive window.")
    released: int = Field(0, description="Recipients whose message exists: sent, or on its way now.")


class MessagePreview(BaseModel):
    recipients: dict[str, int] = Field(description="Phone numbers it will reach per channel.")
    total: int
    waiting: int = Field(description="Of them, how many only when their receive window opens.")
    sms: SmsPreview
    spoken_text: str


def _template_body(value: str) -> str:
    problem = template_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class TemplateIn(Strict):
    action_type: ActionType
    name: Text100
    body: Annotated[Text1000, AfterValidator(_template_body)] = Field(
        description="The text, with placeholders {who} {what} {where} {vehicle} {direction}."
    )


class TemplatePublic(TemplateIn):
    model_config = ConfigDict(from_attributes=True)
    id: int
    placeholders: list[str] = Field(description="The placeholders it asks for, in order.")


class TemplateFill(Strict):
    """What the centralist fills in; placeholders left out are left empty."""

    who: Text200 | None = None
    what: Text500 | None = None
    where: Text200 | None = None
    vehicle: Text200 | None = None
    direction: Text200 | None = None


class TemplateFilled(BaseModel):
    description: str = Field(description="The filled-in text, for the action's description.")


class BoundaryIn(Strict):
    polygon: PolygonIn


class BoundaryPublic(BaseModel):
    id: int
    cbs_code: str
    boundary: list[list[float]] | None


class SmsPreview(BaseModel):
    text: str
    encoding: Literal["gsm7", "ucs2"]
    part_count: int
    parts: list[str]


class PreviewPublic(BaseModel):
    recipients: dict[str, int] = Field(description="Phone numbers reached per channel, if launched now.")
    total: int
    sms: SmsPreview
    spoken_text: str


class UpdateCreate(Strict):
    text: Text1000


class CloseRequest(Strict):
    outcome: Outcome
    outcome_detail: OutcomeDetail | None = Field(None, description="What happened.")
    note: Text500 | None = Field(None, description="Told to participants instead of the standard sentence.")


class OutcomeRequest(Strict):
    """The outcome of a closed action, set or corrected after the close."""

    outcome: Outcome
    outcome_detail: OutcomeDetail | None = Field(None, description="What happened.")
    note: Text500 | None = Field(None, description="Replaces the stored note when given.")


class TipMark(Strict):
    """Fields left out stay as they are; null clears a mark."""

    useful: bool | None = None
    led_to_success: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> TipMark:
        if not self.model_fields_set:
            raise ValueError("give useful and/or led_to_success")
        return self


class QueuedPublic(BaseModel):
    action: ActionPublic
    queued: dict[str, int] = Field(description="Messages queued per channel by this step.")


class UrgencyChange(BaseModel):
    urgency: Urgency


class ChannelBacklogPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    channel: Channel
    waiting: int
    # When the last of them should go at the action's current share; null: no estimate.
    eta_seconds: float | None


class ActionBacklogPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    action_id: int
    urgency: Urgency
    channels: list[ChannelBacklogPublic]


class ProgressRow(BaseModel):
    kind: str
    seq: int
    channel: Channel
    status: str
    count: int


class TipPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    channel: TipChannel
    received_at: datetime
    ended_at: datetime | None
    caller_number: str | None
    participant_id: int | None
    action_id: int | None
    matched_by: MatchedBy
    routed_to: str | None
    dial_status: str | None
    talk_seconds: int | None
    recording_path: str | None
    sms_text: str | None
    useful: bool | None
    led_to_success: bool | None
    marked_by: int | None = None
    marked_at: datetime | None = None


# --- administration -------------------------------------------------------------------------


class MunicipalityIn(Strict):
    cbs_code: Annotated[str, StringConstraints(pattern=r"^GM[0-9]{4}$")]
    name: Text100
    region: Text100


class MunicipalityPublic(MunicipalityIn):
    model_config = ConfigDict(from_attributes=True)
    id: int


class CentralistIn(Strict):
    name: Text200
    meldkamer: Text100
    dial_string: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9/@._:+-]{3,200}$")] = Field(
        description="Where tip calls ring, e.g. PJSIP/4021@meldkamer"
    )


class CentralistPublic(CentralistIn):
    model_config = ConfigDict(from_attributes=True)
    id: int


class UserIn(Strict):
    name: Text200
    role: Role
    municipality_id: Id | None = None
    centralist_id: Id | None = None


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: Role
    municipality_id: int | None
    centralist_id: int | None
    key_prefix: str
    active: bool


class UserCreated(UserPublic):
    api_key: str = Field(description="Shown once; store it now.")


class AuditEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    user_id: int | None
    role: str | None
    event: str = Field(description="What happened, e.g. action.close or participant.read.")
    subject_type: str
    subject_id: int | None
    detail: str | None = Field(description="Counts or field names; never personal data.")


class SessionsEnded(BaseModel):
    ended: int = Field(description="Browser sessions that were live and have now ended.")


# --- statistics (definitions: gateway/stats/definitions.py) ---------------------------------------


class StatsFilters(BaseModel):
    """The filters as applied (defaults filled in)."""

    model_config = ConfigDict(populate_by_name=True)

    from_: date = Field(alias="from")
    to: date
    municipality: str | None
    region: str | None
    action_type: ActionType | None


class SuccessRates(BaseModel):
    actions_with_tip_share: float | None = Field(description="Actions with a tip while open / actions.")
    direct_success_rate: float | None = Field(description="Closed with outcome direct / closed actions.")
    indirect_success_rate: float | None = Field(description="Closed with outcome indirect / closed actions.")


class RecipientCounts(BaseModel):
    sms: int
    voice: int


class MessageCounts(BaseModel):
    submitted: int
    delivered: int
    answered: int
    failed: int
    cancelled: int
    pending: int


class Figures(SuccessRates):
    actions: int
    closed_actions: int
    expired_without_outcome: int
    recipients: RecipientCounts = Field(description="Numbers the alert went to, per channel.")
    messages: MessageCounts = Field(description="Every message (alert, updates, closing) by status.")
    delivery_rate: float | None = Field(description="SMS delivered / SMS submitted + delivered + failed.")
    answer_rate: float | None = Field(description="Calls answered / calls answered + failed.")
    actions_with_tip: int
    tips: int
    direct_success: int
    indirect_success: int


class StatsSummary(Figures):
    filters: StatsFilters


class TypeFigures(Figures):
    action_type: ActionType


class StatsByType(BaseModel):
    filters: StatsFilters
    rows: list[TypeFigures]


class MunicipalityFigures(SuccessRates):
    cbs_code: str
    name: str
    region: str
    actions: int = Field(description="Actions whose alert reached this municipality's participants.")
    recipients: int = Field(description="Its participants' numbers the alerts went to.")
    closed_actions: int
    actions_with_tip: int
    direct_success: int
    indirect_success: int


class AreaAverage(SuccessRates):
    actions: int
    closed_actions: int


class StatsByMunicipality(BaseModel):
    filters: StatsFilters
    rows: list[MunicipalityFigures]
    region_average: AreaAverage | None = Field(
        description="Every action that reached the region, counted once; null for a municipality when the "
        "region has too few other municipalities with participants to keep theirs private."
    )
    national_average: AreaAverage | None = Field(description="As region_average, for the country.")


class SignupPoint(BaseModel):
    period: str = Field(description="2026-01 (month) or the Monday 2026-01-05 (week).")
    new: int
    unsubscribed: int
    total: int = Field(description="Active participants at the end of the period.")


class SignupSeries(BaseModel):
    filters: StatsFilters
    bucket: Literal["month", "week"]
    series: list[SignupPoint]
