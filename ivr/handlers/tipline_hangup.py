"""`tipline_hangup`: a call that may have been put through ended — finish its tip record.

Called from the hangup handler [put-through-hangup] (dialplans/lib.conf) with AGI arguments: the
last DIALSTATUS, a talk time in seconds (empty from the dialplan: the legs carry it; given by
callers without legs, such as the simulator), the dial string last rung (BN_ROUTED_TO),
RECORD_STATUS, the recording's path without extension (BN_RECORDING), the call's token
(BN_CALL_TOKEN, set by its first AGI) and its legs (BN_LEGS: every phone rung, see lib.conf).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from gateway.tipline.tips import CallEnded, parse_legs, talk_seconds
from ivr.agi import AGISession
from ivr.context import IvrContext

log = logging.getLogger(__name__)

# RECORD_STATUS values after which a file exists with the caller's words in it.
_RECORDED = {"SUCCESS", "HANGUP", "DTMF", "TIMEOUT"}


def tipline_hangup(agi: AGISession, ctx: IvrContext) -> None:
    dial_status, talk, routed_to, record_status, recording, token, legs_text = (agi.args() + [""] * 7)[:7]
    call_id = agi.env.get("agi_uniqueid", "")
    if not call_id:
        return  # nothing to finish: Asterisk always sends one
    if not ctx.is_call_token(call_id, token):
        # RULE: a hangup record belongs to the call it claims — anyone who reaches the port could
        # otherwise rewrite any tip's end by its call id.
        log.warning("tipline_hangup for call %s refused: its call token is missing or wrong", call_id[:40])
        return
    try:
        legs = parse_legs(legs_text)
    except ValueError:  # a dialplan out of step with this code: the tip still ends, without legs
        log.warning("tipline_hangup for call %s: legs not understood; kept without them", call_id[:40])
        legs = ()
    ctx.log(
        CallEnded(
            call_id,
            datetime.now(UTC),
            dial_status=dial_status or None,
            talk_seconds=talk_seconds(legs) if legs else _seconds(talk),
            routed_to=routed_to or None,
            recording_path=f"{recording}.wav" if record_status in _RECORDED and recording else None,
            legs=legs,
        )
    )


def _seconds(text: str) -> int | None:
    try:
        return max(0, round(float(text)))
    except (ValueError, OverflowError):  # not a number, or nan / inf
        return None
