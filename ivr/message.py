"""The alert message on the line: played with STREAM FILE, how far it was heard, a missing file.

Shared by `alert_call` (a person, with the 1/2 menu) and `alert_voicemail` (an answering machine,
once, no menu).
"""

from __future__ import annotations

import logging
import re

from asterisk.agi import AGIUnknownError

from gateway.storage.models import MessageStatus
from gateway.tts.audio import ASTERISK_RATE, ASTERISK_SAMPLE_WIDTH
from ivr import data
from ivr import variables as var
from ivr.agi import AGIResultHangup, AGISession
from ivr.context import IvrContext
from ivr.data import Alert

log = logging.getLogger(__name__)

MENU_KEYS = "12"  # 1 = hear it again, 2 = be put through
_WAV_HEADER = 44  # bytes before the samples in the audio cache's WAV files (gateway/tts)
_RESULT = re.compile(r"^(\d{3})(?: result=(-?\d+))?(?:.*?\bendpos=(-?\d+))?")


class Listening:
    """How far the participant listened, over every playback of the message."""

    def __init__(self, total_samples: int | None):
        self.total = total_samples
        self.furthest = 0
        self.to_the_end = False
        self.plays = 0

    def heard(self, endpos: int, *, finished: bool) -> None:
        self.plays += 1
        self.furthest = max(self.furthest, endpos)
        if finished:
            self.to_the_end = True
            self.total = self.total or endpos  # at the end of the file endpos is its length

    def describe(self) -> str:
        if self.to_the_end:
            text = "listened to the end"
        else:
            text = f"listened {self.furthest / ASTERISK_RATE:.1f} s"
            if self.total:
                text += f" of {self.total / ASTERISK_RATE:.1f} s"
        if self.plays > 1:
            text += f", replayed {self.plays - 1} time{'s' if self.plays > 2 else ''}"
        return text


def alert_and_audio(agi: AGISession, ctx: IvrContext) -> tuple[Alert, str] | None:
    """The call's Message and audio from BN_MESSAGE_ID and BN_AUDIO; None (the call's end
    already set and recorded) for an unknown message or no audio."""
    raw_id, audio = agi.get_variable(var.MESSAGE_ID), agi.get_variable(var.AUDIO)
    alert = data.find_alert(ctx, raw_id)
    if alert is None:  # a bug upstream: nothing to play, nowhere to record it
        log.warning(
            "%s call %s for unknown message %r; ending it", agi.script, agi.env.get("agi_uniqueid"), raw_id
        )
        agi.verbose(f"burgernet: alert call for unknown message {raw_id!r}", 1)
        agi.set_variable(var.ALERT_RESULT, "unknown-message")
        return None
    if not audio:
        audio_missing(agi, ctx, alert, "BN_AUDIO empty")
        return None
    return alert, audio


def stream_file(agi: AGISession, audio: str, keys: str = MENU_KEYS) -> tuple[int, int]:
    """STREAM FILE with `keys` (1 and 2) as escape keys: (result, endpos in samples).

    result is 0 at the end of the file, the key's character code when one was pressed, -1 on a
    hangup or a missing file. Sent and read here rather than with pyst2's stream_file(), which
    returns only the key and raises on result=-1 before `endpos` (how far it played) can be read.
    """
    agi.send_command("STREAM FILE", audio, f'"{keys}"', 0)
    line = agi.stdin.readline().strip()
    match = _RESULT.match(line)
    code = int(match[1]) if match else 0
    if code == 511:  # "Command Not Permitted on a dead channel"
        agi.hung_up = True
        raise AGIResultHangup("channel hung up")
    if match is None or code != 200 or match[2] is None:
        raise AGIUnknownError(code, f"unexpected answer to STREAM FILE: {line!r}")
    return int(match[2]), max(0, int(match[3] or 0))


def audio_samples(agi: AGISession, audio: str) -> int | None:
    """The message's length in samples, when its file is a .wav Asterisk can stat (else None)."""
    size = agi.get_full_variable(f"${{STAT(s,{audio}.wav)}}")
    return (
        (int(size) - _WAV_HEADER) // ASTERISK_SAMPLE_WIDTH
        if size.isdigit() and int(size) > _WAV_HEADER
        else None
    )


def audio_missing(agi: AGISession, ctx: IvrContext, alert: Alert, why: str) -> None:
    log.error("alert call for message %d: audio missing (%s)", alert.message_id, why)
    agi.set_variable(var.ALERT_RESULT, "audio-missing")
    data.record_outcome(ctx, alert.message_id, MessageStatus.failed, "audio missing")
