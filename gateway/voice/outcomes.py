"""The outcome writer: each call's outcome into the database, never lost to a dropped connection.

An answered call's outcome must not be lost to a database restart or failover (up to ~15 s): a
write the database refused for its connection is tried again (`WRITE_RETRY_DELAYS`). Every write
of gateway/voice/store.py is guarded, so a repeat whose first try did commit changes nothing.
Each write runs in a thread: the event loop keeps serving the other calls meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import OperationalError

from gateway.errors import brief
from gateway.storage.models import MessageStatus

from .store import RetryVerdict, VoiceCall, VoiceStore

log = logging.getLogger(__name__)

WRITE_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)  # seconds, between tries of a write the database refused

T = TypeVar("T")


class OutcomeWriter:
    """Writes what happened to a call, tried again while the database is unreachable."""

    def __init__(self, store: VoiceStore) -> None:
        self.store = store

    async def dispatched(self, call: VoiceCall) -> None:
        await self._write(self.store.mark_dispatched, call.message_id)

    async def answered(self, call: VoiceCall, uniqueid: str | None) -> None:
        await self._write(self.store.answered, call.message_id, uniqueid)

    async def failed(self, call: VoiceCall, detail: str, uniqueid: str | None = None) -> None:
        await self._write(self.store.finish, call.message_id, MessageStatus.failed, detail, uniqueid)

    async def retrying(self, call: VoiceCall, detail: str, uniqueid: str | None) -> None:
        await self._write(self.store.note, call.message_id, detail, uniqueid)

    async def begin_retry(self, call: VoiceCall, counted: int) -> RetryVerdict:
        return await self._write(self.store.begin_retry, call.message_id, counted)

    async def _write(self, fn: Callable[..., T], *args: object) -> T:
        for delay in WRITE_RETRY_DELAYS:
            try:
                return await asyncio.to_thread(fn, *args)
            except OperationalError as exc:
                log.warning(
                    "voice worker: database write failed (%s); trying again in %.1f s", brief(exc), delay
                )
                await asyncio.sleep(delay)
        return await asyncio.to_thread(fn, *args)  # the last try: its error goes to the caller
