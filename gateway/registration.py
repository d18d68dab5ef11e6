"""A participant's registration as a municipality enters it (form, API, CSV row) and as it is
shown back: addresses, channels, receive windows per weekday, holiday pause."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.fields import POSTCODE_FORMATS, Day, Id, Latitude, Longitude, Strict, Text200, minutes_of
from gateway.phone import BadPhoneNumber, is_mobile, to_e164
from gateway.storage.models import Channel
from gateway.targeting import windows as receive

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
        minutes_of(value)
        return value

    @model_validator(mode="after")
    def _check(self) -> AddressIn:
        start, end = minutes_of(self.window_start), minutes_of(self.window_end)
        if (start is None) != (end is None):
            raise ValueError("give both window_start and window_end, or neither")
        if start is not None and start == end:
            raise ValueError("window_start and window_end are equal; leave both out to receive always")
        if start is not None and self.windows is not None:
            raise ValueError("give windows, or window_start and window_end (one window every day), not both")
        return self

    def windows_text(self) -> str | None:
        """The windows as stored (gateway.targeting.windows); None: always."""
        start, end = minutes_of(self.window_start), minutes_of(self.window_end)
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
