"""What the HTTP API accepts and returns. Input types validate everything a user can get wrong."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway import xmltext
from gateway.actions.wording import OutcomeDetail, template_problem
from gateway.phone import BadPhoneNumber, is_mobile, to_e164
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
from gateway.targeting import windows as receive
from gateway.targeting.geo import crossing_edges, ring_area_deg2


def _printable(value: str) -> str:
    # NUL and other control characters break SMS and PostgreSQL text alike; what XML 1.0 forbids
    # would break the action's CAP export (gateway/xmltext.py). DEL is allowed by XML, not by us.
    bad = xmltext.first_forbidden(value) or ("\x7f" if "\x7f" in value else None)
    if bad is not None:
        raise ValueError(f"contains the control or non-character U+{ord(bad):04X}; remove it")
    return value


def _trimmed(max_length: int) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)


# Non-empty printable text, trimmed, of at most so many characters. One alias per length: a type
# checker reads an annotation as written, it does not run a function that would build one.
Text100 = Annotated[str, _trimmed(100), AfterValidator(_printable)]
Text200 = Annotated[str, _trimmed(200), AfterValidator(_printable)]
Text500 = Annotated[str, _trimmed(500), AfterValidator(_printable)]
Text1000 = Annotated[str, _trimmed(1000), AfterValidator(_printable)]


Id = Annotated[int, Field(ge=1, le=2**31 - 1)]
# RULE: every number the API takes is bounded and finite.
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
# A whole number of metres, as JSON's integer: `true` or "100" is a mistake, not a radius.
Radius = Annotated[
    int, Field(strict=True, gt=0, le=1_000_000, description="Radius in metres (at most MAX_RADIUS_M).")
]
MAX_CORNERS = 200


def _ring(corners: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """A polygon with an inside: the closing corner dropped, 3+ corners, no crossing edges."""
    ring = corners[:-1] if len(corners) > 1 and corners[0] == corners[-1] else corners
    if len(set(ring)) < 3:
        raise ValueError("a polygon needs at least three different corners")
    crossing = crossing_edges(ring)
    if crossing is not None:
        i, j = crossing
        raise ValueError(
            f"edges {i + 1} and {j + 1} of the polygon cross each other; draw it without crossings"
        )
    if ring_area_deg2(ring) < 1e-12:
        raise ValueError("the polygon's corners lie on one line: it has no inside")
    return ring


PolygonIn = Annotated[
    list[tuple[Latitude, Longitude]],
    Field(
        min_length=3,
        max_length=MAX_CORNERS,
        description="The area as corners [[lat, lon], …] (the ring closes itself); instead of lat, lon and "
        "radius_m, which are then derived: its centre and the circle around it.",
    ),
    AfterValidator(_ring),
]
# Days the API accepts (statistics periods, pauses): date arithmetic near year 1 or 9999
# overflows, and no Burgernet data lies outside these.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2199, 12, 31)
Day = Annotated[date, Field(ge=FIRST_DAY, le=LAST_DAY)]

# Postcodes of the countries our border regions touch.
POSTCODE_FORMATS = {
    "NL": (re.compile(r"^[1-9][0-9]{3} ?[A-Z]{2}$"), "four digits and two letters, like 3511 AB"),
    "BE": (re.compile(r"^[1-9][0-9]{3}$"), "four digits, like 2000"),
    "DE": (re.compile(r"^[0-9]{5}$"), "five digits, like 52062"),
}
_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def _minutes(hhmm: str | None) -> int | None:
    if hhmm is None:
        return None
    match = _TIME.match(hhmm)
    if not match:
        raise ValueError("use 24-hour HH:MM, like 07:30")
    return int(match[1]) * 60 + int(match[2])


def hhmm(minutes: int | None) -> str | None:
    return None if minutes is None else f"{minutes // 60 % 24:02d}:{minutes % 60:02d}"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class ActionCreate(Strict):
    type: ActionType
    description: Text1000 = Field(description="What to look out for, in plain language.")
    lat: Latitude | None = None
    lon: Longitude | None = None
    radius_m: Radius | None = None
    polygon: PolygonIn | None = None
    channels: list[Channel] = Field(default=[Channel.sms, Channel.voice], min_length=1, max_length=2)
    centralist_id: Id | None = Field(
        None, description="Owner; admins must give it, centralists own their actions."
    )

    @field_validator("channels")
    @classmethod
    def _unique(cls, value: list[Channel]) -> list[Channel]:
        return sorted(set(value), key=list(Channel).index)

    _given = field_validator("lat", "lon", "radius_m", "polygon", mode="before")(_not_null)

    @model_validator(mode="after")
    def _area(self) -> ActionCreate:
        given = _one_area(self)
        if self.polygon is None and len(given) < 3:
            missing = ", ".join(n for n in ("lat", "lon", "radius_m") if n not in given)
            raise ValueError(f"give the area: a circle (lat, lon, radius_m; missing {missing}) or a polygon")
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
    channels: list[Channel] = Field(default=[Channel.sms, Channel.voice], min_length=1, max_length=2)
    tip_line: bool = Field(False, description="Ask for tips on 0800-0011 with an action code (default: no).")
    municipality_id: Id | None = Field(None, description="Admins only; a municipality sends for itself.")

    @field_validator("channels")
    @classmethod
    def _unique(cls, value: list[Channel]) -> list[Channel]:
        return sorted(set(value), key=list(Channel).index)

    _given = field_validator("lat", "lon", "radius_m", "polygon", mode="before")(_not_null)

    @model_validator(mode="after")
    def _area(self) -> MessageCreate:
        given = _one_area(self)
        if self.polygon is None and len(given) < 3:
            missing = ", ".join(n for n in ("lat", "lon", "radius_m") if n not in given)
            raise ValueError(f"give the area: a circle (lat, lon, radius_m; missing {missing}) or a polygon")
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


# --- participants ---------------------------------------------------------------------------


Weekday = Literal["mo", "tu", "we", "th", "fr", "sa", "su"]


class WindowIn(Strict):
    """One receive window on chosen weekdays, local time (Europe/Amsterdam)."""

    days: list[Weekday] = Field(
        default=["mo", "tu", "we", "th", "fr", "sa", "su"],
        min_length=1,
        max_length=7,
        description="The weekdays the window starts on (all when left out).",
    )
    start: str = Field(description="HH:MM, from.")
    end: str = Field(
        description="HH:MM, until (exclusive; 24:00 is midnight); earlier than start crosses midnight."
    )

    def window(self) -> receive.Window:
        mask = 0
        for day in self.days:
            mask |= 1 << receive.DAYS.index(day)
        [window] = receive.parse(f"{receive.format_days(mask)} {self.start}-{self.end}")
        return window

    @model_validator(mode="after")
    def _check(self) -> WindowIn:
        for name in ("start", "end"):
            if not re.fullmatch(r"[0-9]{2}:[0-9]{2}", getattr(self, name)):
                raise ValueError(f"{name}: use 24-hour HH:MM, like 07:30")
        self.window()  # ValueError says what is wrong
        return self


class WindowPublic(BaseModel):
    days: list[Weekday]
    start: str
    end: str


def window_dicts(text: str | None) -> list[dict]:
    """Windows written as text (gateway.targeting.windows, the CSV column) as WindowIn fields."""
    return [
        {
            "days": [day for k, day in enumerate(receive.DAYS) if w.days >> k & 1],
            "start": f"{w.start // 60:02d}:{w.start % 60:02d}",
            "end": f"{w.end // 60:02d}:{w.end % 60:02d}",
        }
        for w in receive.parse(text)
    ]


def _windows_from_text(value: object) -> object:
    return window_dicts(value) if isinstance(value, str) else value


class AddressIn(Strict):
    country: Literal["NL", "BE", "DE"] = "NL"
    postcode: Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True, max_length=8)]
    house_number: Annotated[
        str, StringConstraints(strip_whitespace=True, pattern=r"^[1-9][0-9]{0,4}( ?[A-Za-z0-9-]{1,4})?$")
    ]
    lat: Latitude
    lon: Longitude
    channel: Channel = Channel.sms
    windows: Annotated[list[WindowIn] | None, BeforeValidator(_windows_from_text)] = Field(
        None,
        max_length=receive.MAX_WINDOWS,
        description="When to receive: windows on chosen weekdays (none: always), or the same as one line "
        "of text, e.g. 'mo-fr 08:00-17:30; sa,su 10:00-14:00' (docs/areas.md).",
    )
    window_start: str | None = Field(
        None, description="Short for one window every day: receive from HH:MM local time (with window_end)."
    )
    window_end: str | None = Field(
        None, description="Receive until HH:MM; earlier than the start crosses midnight."
    )

    @field_validator("postcode")
    @classmethod
    def _postcode(cls, value: str, info: ValidationInfo) -> str:
        country = info.data.get("country", "NL")
        pattern, example = POSTCODE_FORMATS[country]
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not a {country} postcode ({example})")
        # One spelling, so that a re-import recognises the address.
        return f"{value[:4]} {value[-2:]}" if country == "NL" else value

    @field_validator("window_start", "window_end")
    @classmethod
    def _hhmm(cls, value: str | None) -> str | None:
        _minutes(value)
        return value

    @model_validator(mode="after")
    def _check(self) -> AddressIn:
        start, end = _minutes(self.window_start), _minutes(self.window_end)
        if (start is None) != (end is None):
            raise ValueError("give both window_start and window_end, or neither")
        if start is not None and start == end:
            raise ValueError("window_start and window_end are equal; leave both out to receive always")
        if start is not None and self.windows is not None:
            raise ValueError("give windows, or window_start and window_end (one window every day), not both")
        return self

    def windows_text(self) -> str | None:
        """The windows as stored (gateway.targeting.windows); None: always."""
        start, end = _minutes(self.window_start), _minutes(self.window_end)
        if start is not None and end is not None:
            return receive.every_day(start, end)
        return receive.format([w.window() for w in self.windows or []])


class ParticipantIn(Strict):
    name: Text200
    phone: str = Field(
        description="06…, +316…, 00316… or a foreign number with its country code.", max_length=32
    )
    language: Literal["nl", "en", "de", "fr"] = "nl"
    pause_from: Day | None = None
    pause_until: Day | None = None
    addresses: list[AddressIn] = Field(min_length=1, max_length=10)
    municipality_id: Id | None = Field(None, description="Admins only; a municipality registers for itself.")

    @field_validator("phone")
    @classmethod
    def _e164(cls, value: str) -> str:
        try:
            return to_e164(value)
        except BadPhoneNumber as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _check(self) -> ParticipantIn:
        if self.pause_from and self.pause_until and self.pause_from > self.pause_until:
            raise ValueError("pause_from is after pause_until")
        if not is_mobile(self.phone) and any(a.channel == Channel.sms for a in self.addresses):
            raise ValueError("this phone number cannot receive SMS (a landline); choose channel voice")
        return self


class AddressPublic(BaseModel):
    id: int
    country: str
    postcode: str
    house_number: str
    lat: float
    lon: float
    channel: Channel
    windows: list[WindowPublic] = Field(description="When to receive; empty: always.")


class ParticipantPublic(BaseModel):
    id: int
    municipality_id: int
    name: str
    phone: str
    language: str
    pause_from: date | None
    pause_until: date | None
    unsubscribed_at: datetime | None
    addresses: list[AddressPublic]


class ImportRowError(BaseModel):
    row: int = Field(description="Line number in the file, the header being line 1.")
    field: str | None
    message: str


class ImportReport(BaseModel):
    rows: int
    created: int
    updated: int
    errors: list[ImportRowError]


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
