"""`tipline_hangup`: the tip call ended — finish its record.

Called from the tip line's hangup handler with AGI arguments: the last DIALSTATUS, its
ANSWEREDTIME, the dial string it rang (BN_ROUTED_TO), RECORD_STATUS, the recording's path
without extension (BN_RECORDING) and the call's token (BN_CALL_TOKEN, set by its first AGI).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from gateway.tipline.tips import CallEnded
from ivr.agi import AGISession
from ivr.context import IvrContext

log = logging.getLogger(__name__)

# RECORD_STATUS values after which a file exists with the caller's words in it.
_RECORDED = {"SUCCESS", "HANGUP", "DTMF", "TIMEOUT"}


def tipline_hangup(agi: AGISession, ctx: IvrContext) -> None:
    dial_status, answered, routed_to, record_status, recording, token = (agi.args() + [""] * 6)[:6]
    call_id = agi.env.get("agi_uniqueid", "")
    if not call_id:
        return  # nothing to finish: Asterisk always sends one
    if not ctx.is_call_token(call_id, token):
        # RULE: a hangup record belongs to the call it claims — anyone who reaches the port could
        # otherwise rewrite any tip's end by its call id.
        log.warning("tipline_hangup for call %s refused: its call token is missing or wrong", call_id[:40])
        return
    ctx.log(
        CallEnded(
            call_id,
            datetime.now(UTC),
            dial_status=dial_status or None,
            talk_seconds=int(answered) if answered.isdigit() else None,
            routed_to=routed_to or None,
            recording_path=f"{recording}.wav" if record_status in _RECORDED and recording else None,
        )
    )
