"""`alert_voicemail`: an answering machine took a spoken alert — leave the message once, record it.

Entered from dialplans/alert.conf [alert-voicemail] after AMD() said MACHINE and WaitForSilence()
let the greeting and its beep go by. Channel variables as for `alert_call` (BN_MESSAGE_ID,
BN_AUDIO). The message plays once, without escape keys (a machine presses nothing, and a menu
on a voicemail would only waste the recording), and the Message is recorded `answered` with
detail "voicemail: message left", or "voicemail: cut off after 4.1 s of 12.0 s" when the machine
hung up first. A missing audio file: failed "audio missing", as for a person. BN_ALERT_RESULT is
set last (voicemail | audio-missing | unknown-message); empty means the IVR failed, and the
dialplan then plays the message itself.
"""

from __future__ import annotations

import logging

from asterisk.agi import AGIAppError

from gateway.storage.models import MessageStatus
from gateway.tts.audio import ASTERISK_RATE
from ivr import variables as var
from ivr.agi import AGIResultHangup, AGISession
from ivr.context import IvrContext
from ivr.data import record_outcome
from ivr.message import Listening, alert_and_audio, audio_missing, audio_samples, stream_file

log = logging.getLogger(__name__)

LEFT = "voicemail: message left"


def alert_voicemail(agi: AGISession, ctx: IvrContext) -> None:
    found = alert_and_audio(agi, ctx)
    if found is None:
        return
    alert, audio = found
    listening = Listening(audio_samples(agi, audio))
    try:
        result, endpos = stream_file(agi, audio, keys="")
        if result < 0:  # the machine hung up (endpos: how far it got), or there is no file
            listening.heard(endpos, finished=False)
            agi.channel_status()  # raises AGIResultHangup when the line is gone
            audio_missing(agi, ctx, alert, f"STREAM FILE {audio}: no such file")
            return
    except AGIAppError as exc:
        record_outcome(ctx, alert.message_id, MessageStatus.answered, _cut_off(listening))
        raise AGIResultHangup(f"the answering machine hung up: {exc}") from exc
    agi.set_variable(var.ALERT_RESULT, "voicemail")
    record_outcome(ctx, alert.message_id, MessageStatus.answered, LEFT)


def _cut_off(listening: Listening) -> str:
    text = f"voicemail: cut off after {listening.furthest / ASTERISK_RATE:.1f} s"
    return text + (f" of {listening.total / ASTERISK_RATE:.1f} s" if listening.total else "")
