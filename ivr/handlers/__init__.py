"""The IVR's handlers, one per file, each named as in the dialplan's AGI(agi://…/<name>)."""

from __future__ import annotations

from ivr.context import IvrContext
from ivr.handlers.alert_call import alert_call
from ivr.handlers.alert_voicemail import alert_voicemail
from ivr.handlers.tipline import tipline
from ivr.handlers.tipline_hangup import tipline_hangup
from ivr.server import Handler


def registry(ctx: IvrContext) -> dict[str, Handler]:
    """Every handler the server answers to, bound to its context (explicit: no import magic)."""
    return {
        "tipline": lambda agi: tipline(agi, ctx),
        "alert_call": lambda agi: alert_call(agi, ctx),
        "alert_voicemail": lambda agi: alert_voicemail(agi, ctx),
        "tipline_hangup": lambda agi: tipline_hangup(agi, ctx),
    }
