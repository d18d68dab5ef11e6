"""`alert_call`: a participant answered a spoken alert — play it, offer 1 and 2, record the outcome.

Entered from dialplans/alert.conf (the voice worker's AMI Originate) with the channel variables
BN_MESSAGE_ID (the Message row) and BN_AUDIO (the bulletin's audio, path without extension).
AGI argument: the meldkamer's dial string, for a participant who presses 2 after the action closed.

The message plays with 1 and 2 as escape keys, then the handler waits a few seconds for a key
(the spoken script ends with the instructions): 1 = hear it again (at most MAX_REPLAYS times),
2 = be put through to the action's centralist — BN_DIAL is set and a tip is opened, which the
dialplan's hangup handler finishes like a tip-line call (AGI `tipline_hangup`). Anything else, or
no key, ends the call. BN_ALERT_RESULT is set last on every path the handler completes, so the
dialplan can tell a failed IVR (empty: [agi_fail]) from a normal end.

How far the participant listened is recorded on the Message (status `answered`, `detail` such as
"listened to the end" or "listened 7.2 s of 12.0 s") from STREAM FILE's `endpos`, also when the
participant hangs up in the middle. A missing audio file (STREAM FILE: result=-1 endpos=0 on a
live channel) sets the Message `failed` with "audio missing" and ends the call. Reads and writes go
through ivr.data (writes by the tip writer, off the participant's path); playing the message and
measuring how far it was heard through ivr.message, shared with `alert_voicemail`.
"""

from __future__ import annotations

import logging
import uuid

from asterisk.agi import AGIAppError

from gateway.storage.models import MessageStatus
from ivr import data
from ivr import variables as var
from ivr.agi import AGIResultHangup, AGISession
from ivr.context import IvrContext
from ivr.message import Listening, alert_and_audio, audio_missing, audio_samples, stream_file

log = logging.getLogger(__name__)

MAX_REPLAYS = 3  # 1 = hear it again, at most this often
KEY_WAIT_MS = 5000  # after the message: time to press 1 or 2


def alert_call(agi: AGISession, ctx: IvrContext) -> None:
    meldkamer = (agi.args() + [""])[0]
    call_id = agi.env.get("agi_uniqueid") or f"no-uniqueid-{uuid.uuid4().hex}"
    found = alert_and_audio(agi, ctx)
    if found is None:
        return
    alert, audio = found

    listening = Listening(audio_samples(agi, audio))
    try:
        key = _listen(agi, audio, listening)
    except AGIAppError as exc:  # the participant hung up (or the channel failed) mid-call
        data.record_outcome(ctx, alert.message_id, MessageStatus.answered, listening.describe())
        raise AGIResultHangup(f"participant hung up: {exc}") from exc
    if key is None:
        audio_missing(agi, ctx, alert, f"STREAM FILE {audio}: no such file")
        return

    if key == "2":
        dial = alert.centralist_dial if alert.action_open or not meldkamer else meldkamer
        # The decision goes out first: the participant should hear ringing before we write.
        agi.set_variable(var.CALL_TOKEN, ctx.call_token(call_id))  # for the tip's hangup handler
        agi.set_variable(var.DIAL, dial)
        agi.set_variable(var.ALERT_RESULT, "dial")
        data.record_outcome(
            ctx, alert.message_id, MessageStatus.answered, f"pressed 2 (put through); {listening.describe()}"
        )
        data.open_tip(ctx, call_id, alert, dial)
    else:
        agi.set_variable(var.ALERT_RESULT, "listened")
        data.record_outcome(ctx, alert.message_id, MessageStatus.answered, listening.describe())


def _listen(agi: AGISession, audio: str, listening: Listening) -> str | None:
    """Play the message with its menu; the final key ('' for none), or None when the file is missing."""
    key = ""
    for _ in range(1 + MAX_REPLAYS):
        result, endpos = stream_file(agi, audio)
        if result < 0:  # a hangup (endpos: how far it got) or a file Asterisk cannot open
            if endpos > 0:
                listening.heard(endpos, finished=False)
            agi.channel_status()  # raises AGIResultHangup when the participant hung up
            # A live channel: nothing played means there is no file; else end as after the message.
            return None if listening.plays == 0 else ""
        listening.heard(endpos, finished=result == 0)
        key = chr(result) if result > 0 else agi.wait_for_digit(KEY_WAIT_MS)
        if key != "1":
            return key
    return key  # 1 once more after the last replay: the call ends
