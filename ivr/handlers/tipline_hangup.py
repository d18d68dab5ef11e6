"""`tipline_hangup`: the tip call ended — finish its record.

Called from the tip line's hangup handler with AGI arguments: the last DIALSTATUS, its
ANSWEREDTIME, the dial string it rang (BN_ROUTED_TO), RECORD_STATUS and the recording's path
without extension (BN_RECORDING).
"""

from __future__ import annotations

from datetime import datetime, timezone

from gateway.tipline.tips import CallEnded
from ivr.agi import AGISession
from ivr.context import IvrContext

# RECORD_STATUS values after which a file exists with the caller's words in it.
_RECORDED = {"SUCCESS", "HANGUP", "DTMF", "TIMEOUT"}


def tipline_hangup(agi: AGISession, ctx: IvrContext) -> None:
    dial_status, answered, routed_to, record_status, recording = (agi.args() + [""] * 5)[:5]
    call_id = agi.env.get("agi_uniqueid", "")
    if not call_id:
        return  # nothing to finish: Asterisk always sends one
    ctx.log(
        CallEnded(
            call_id,
            datetime.now(timezone.utc),
            dial_status=dial_status or None,
            talk_seconds=int(answered) if answered.isdigit() else None,
            routed_to=routed_to or None,
            recording_path=f"{recording}.wav" if record_status in _RECORDED and recording else None,
        )
    )
