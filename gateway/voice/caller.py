"""One voice message to the end: its audio, its calls (retried when busy), its outcome written.

Retries: a busy number (or no answer, congestion, a call Asterisk cut off as it stopped) keeps
the message `sending`; the caller calls again itself after VOICE_RETRY_DELAY_SECONDS, at most
VOICE_RETRIES more times. RULE: a retry holds no line while it waits; then it waits its flow's
turn for one among everything else waiting (gateway/voice/lines.py) — never ahead of another
action's first call. Each retry first counts its attempt in one guarded UPDATE that also requires
the action to be still open (gateway/voice/store.py `begin_retry`). Requeueing was not chosen:
`claim()` would count the attempt too, and a queued message is cancelled by a close, losing the
"busy" outcome. The final detail says what happened: "busy after 3 attempts", "no answer after 2
attempts; not retried: the action closed". `attempts` counts the Originates.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from .audio import BulletinAudio
from .dialer import OUTCOME_UNKNOWN, Dialer, OutcomeKind
from .lines import Line
from .outcomes import OutcomeWriter
from .store import RetryVerdict, VoiceCall

log = logging.getLogger(__name__)


class Caller:
    """Delivers one claimed message on the line the worker's loop gave it."""

    def __init__(
        self,
        audio: BulletinAudio,
        dialer: Dialer,
        outcomes: OutcomeWriter,
        stats: Counter[str],
        *,
        retries: int,
        retry_delay: float,
    ) -> None:
        self.audio, self.dialer, self.outcomes, self.stats = audio, dialer, outcomes, stats
        self.retries, self.retry_delay = retries, retry_delay

    async def deliver(self, call: VoiceCall, line: Line) -> None:
        """Call until there is an outcome (the line is held only while a call is up)."""
        try:
            audio = await self.audio.playback_name(call)
        except Exception as exc:
            await self.outcomes.failed(call, f"audio unavailable: {exc}")
            self.stats["failed"] += 1
            return
        tries = 0
        while True:
            tries += 1
            outcome = await self.dialer.call(call, audio)
            if outcome.kind is OutcomeKind.again:  # nobody was called: placed once Asterisk is back
                self.stats["again"] += 1
                tries -= 1
                continue
            if outcome.kind is OutcomeKind.answered:
                self.stats["answered"] += 1
                return  # recorded by the dialer, as soon as it was known
            if outcome.kind is OutcomeKind.failed:
                self.stats["unknown" if outcome.detail == OUTCOME_UNKNOWN else "failed"] += 1
                await self.outcomes.failed(call, outcome.detail, outcome.uniqueid)
                return
            done = f"{outcome.detail} after {tries} attempt{'s' if tries > 1 else ''}"
            if tries > self.retries:
                self.stats["failed"] += 1
                await self.outcomes.failed(call, done, outcome.uniqueid)
                return
            await self.outcomes.retrying(
                call, f"{outcome.detail} (attempt {tries}); retrying", outcome.uniqueid
            )
            # RULE: a retry holds no line while it waits; then it waits its flow's turn for one.
            await line.release()
            await asyncio.sleep(self.retry_delay)
            await line.wait(call.bulletin_id)
            verdict = await self.outcomes.begin_retry(call, call.attempts + tries - 1)
            if verdict is RetryVerdict.gone:  # finished or cancelled elsewhere
                return
            if verdict is RetryVerdict.closed:
                self.stats["failed"] += 1
                await self.outcomes.failed(call, f"{done}; not retried: the action closed")
                return
            self.stats["retries"] += 1
