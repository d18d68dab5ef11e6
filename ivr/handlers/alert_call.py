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
live channel) sets the Message `failed` with "audio missing" and ends the call. Every write goes
through the tip writer, off the participant's path.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from asterisk.agi import AGIAppError, AGIUnknownError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.storage.models import Action, ActionStatus, Centralist, MatchedBy, Message, MessageStatus
from gateway.tipline import tips
from gateway.tipline.routing import OpenAlert, Route, Step
from gateway.tts.audio import ASTERISK_RATE, ASTERISK_SAMPLE_WIDTH
from ivr import variables as var
from ivr.agi import AGIResultHangup, AGISession
from ivr.context import IvrContext

log = logging.getLogger(__name__)

MAX_REPLAYS = 3  # 1 = hear it again, at most this often
KEY_WAIT_MS = 5000  # after the message: time to press 1 or 2
_KEYS = "12"
_WAV_HEADER = 44  # bytes before the samples in the audio cache's WAV files (gateway/tts)
_MAX_ID = 2**63 - 1
_RESULT = re.compile(r"^(\d{3})(?: result=(-?\d+))?(?:.*?\bendpos=(-?\d+))?")


@dataclass(frozen=True)
class Alert:
    """What the call needs from the database, read once when it is answered."""

    message_id: int
    phone: str
    action_id: int
    action_code: str
    action_open: bool
    launched_at: datetime | None
    centralist_dial: str


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
        record_outcome(ctx, alert.message_id, MessageStatus.answered, listening.describe())
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
        record_outcome(
            ctx, alert.message_id, MessageStatus.answered, f"pressed 2 (put through); {listening.describe()}"
        )
        _open_tip(ctx, call_id, alert, dial)
    else:
        agi.set_variable(var.ALERT_RESULT, "listened")
        record_outcome(ctx, alert.message_id, MessageStatus.answered, listening.describe())


def alert_and_audio(agi: AGISession, ctx: IvrContext) -> tuple[Alert, str] | None:
    """The call's Message and audio from BN_MESSAGE_ID and BN_AUDIO; None (the call's end
    already set and recorded) for an unknown message or no audio."""
    raw_id, audio = agi.get_variable(var.MESSAGE_ID), agi.get_variable(var.AUDIO)
    alert = lookup_alert(ctx, raw_id)
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


def stream_file(agi: AGISession, audio: str, keys: str = _KEYS) -> tuple[int, int]:
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
    if code != 200 or match[2] is None:
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


def lookup_alert(ctx: IvrContext, raw_id: str) -> Alert | None:
    """The message, its action and the action's centralist; None for an id that is not a message."""
    raw_id = raw_id.strip()
    if not raw_id.isascii() or not raw_id.isdigit() or not 0 < int(raw_id) <= _MAX_ID:
        return None
    query = (
        select(
            Message.id,
            Message.phone,
            Action.id,
            Action.action_code,
            Action.status,
            Action.launched_at,
            Centralist.dial_string,
        )
        .join(Action, Action.id == Message.action_id)
        .join(Centralist, Centralist.id == Action.centralist_id)
        .where(Message.id == int(raw_id))
    )
    with ctx.sessions() as session:
        row = session.execute(query).one_or_none()
    if row is None:
        return None
    mid, phone, action_id, code, status, launched_at, dial = row
    return Alert(mid, phone, action_id, code or "", status is ActionStatus.open, launched_at, dial)


def audio_missing(agi: AGISession, ctx: IvrContext, alert: Alert, why: str) -> None:
    log.error("alert call for message %d: audio missing (%s)", alert.message_id, why)
    agi.set_variable(var.ALERT_RESULT, "audio-missing")
    record_outcome(ctx, alert.message_id, MessageStatus.failed, "audio missing")


def record_outcome(ctx: IvrContext, message_id: int, status: MessageStatus, detail: str) -> None:
    now = datetime.now(UTC)

    def write(session: Session) -> None:
        session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(status=status, detail=detail[:200], final_at=now)
        )

    ctx.tips.submit(write)


def _open_tip(ctx: IvrContext, call_id: str, alert: Alert, dial: str) -> None:
    """Pressing 2 is a tip about this action (docs/voice.md); matched by the number we called."""
    now = datetime.now(UTC)
    route = Route(
        Step.centralist,
        MatchedBy.caller_id,
        OpenAlert(alert.action_id, alert.action_code, dial, alert.launched_at or now),
    )
    ctx.tips.submit(tips.CallOpened(call_id, alert.phone, route, dial, now))
