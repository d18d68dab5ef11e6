"""Where a call to 0800-0011 goes: pure functions over plain data, no I/O.

The order of the product brief (§4.4): a caller whose number received an open action goes to the
centralist of that action (a short menu when several did); a withheld or unrecognised number is
asked for the action code (three tries); no match goes to the general meldkamer. What happens when
the centralist does not answer (meldkamer, then a recorded voice tip) is the dialplan's part.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from gateway.phone import BadPhoneNumber, to_e164
from gateway.storage.models import MatchedBy

CODE_TRIES = 3
MENU_MAX = 9  # one key per choice


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """An open action that alerted a number (or carries a code): enough to put a caller through."""

    action_id: int
    action_code: str
    dial_string: str  # the owning centralist's phone
    launched_at: datetime


class Step(str, Enum):
    centralist = "centralist"  # dial the action's centralist
    menu = "menu"  # ask which of several actions the call is about
    ask_code = "ask_code"  # ask for the action code by DTMF
    meldkamer = "meldkamer"  # the general control-room number


@dataclass(frozen=True, slots=True)
class Route:
    step: Step
    matched_by: MatchedBy = MatchedBy.none
    alert: OpenAlert | None = None
    choices: tuple[OpenAlert, ...] = field(default=())


# 061–066 and 068 + 7 digits, in the three spellings: the number ranges that phonenumbers
# accepts as Dutch mobile (tests/test_tipline.py checks the two agree).
_DUTCH_MOBILE = re.compile(r"^(?:\+31|0031|0)6([1-68]\d{7})$")
# What callers' phones and Asterisk put in the caller ID when there is no usable number.
_NO_NUMBER = {"", "anonymous", "unknown", "withheld", "private", "restricted", "unavailable", "asterisk"}


def caller_number(raw: str | None, presentation: str | int | None = None) -> str | None:
    """The caller's number in E.164, or None when withheld or not a phone number.

    `presentation` is Asterisk's agi_callingpres: values 32 and up mean the caller restricted it.
    """
    if presentation not in (None, ""):
        try:
            if int(presentation) >= 32:
                return None
        except ValueError:
            pass
    text = (raw or "").strip().strip('"')
    if text.lower() in _NO_NUMBER:
        return None
    if mobile := _DUTCH_MOBILE.match(text):  # most callers; phonenumbers costs ~0.1 ms a call
        return "+316" + mobile[1]
    try:
        return to_e164(text)
    except BadPhoneNumber:
        return None


def route_by_caller(caller: str | None, alerts: Sequence[OpenAlert], any_open: bool) -> Route:
    """The first decision for a call, from the alerts its number received (most recent first)."""
    if alerts:
        recent = tuple(sorted(alerts, key=lambda a: (a.launched_at, a.action_id), reverse=True))
        if len(recent) == 1:
            return Route(Step.centralist, MatchedBy.caller_id, recent[0])
        return Route(Step.menu, MatchedBy.caller_id, recent[0], recent[:MENU_MAX])
    # RULE: nothing to ask about when no action is open.
    return Route(Step.ask_code if any_open else Step.meldkamer)


def dial_for(route: Route, meldkamer: str) -> str | None:
    """Where a route puts the caller through; None while it still has to ask (menu, code)."""
    if route.step is Step.centralist and route.alert is not None:
        return route.alert.dial_string
    if route.step is Step.meldkamer:
        return meldkamer
    return None


def route_by_menu(route: Route, key: str) -> Route:
    """The caller's menu choice (1 = most recent); no or a wrong key keeps the most recent one."""
    if key.isdigit() and 1 <= int(key) <= len(route.choices):
        return Route(Step.centralist, MatchedBy.caller_id, route.choices[int(key) - 1])
    return Route(Step.centralist, MatchedBy.caller_id, route.alert)


def route_by_code(digits: str, open_by_code: dict[str, OpenAlert]) -> Route | None:
    """The action whose code the caller keyed, or None to ask again."""
    alert = open_by_code.get(digits.strip().rstrip("#"))
    return Route(Step.centralist, MatchedBy.action_code, alert) if alert else None
