"""A bulletin's spoken audio for the calls, synthesized once per (bulletin, language) per process.

The first call of a bulletin runs `AudioCache.ensure` in a thread (text to speech, or the file
already on disk); every later call of that bulletin — also those waiting for the first — reuses
the result without touching the disk. A failure is not kept: the next call tries again.
"""

from __future__ import annotations

import asyncio
from pathlib import PurePosixPath

from gateway.tts import AudioCache, AudioResult

from .store import VoiceCall


class BulletinAudio:
    """Where Asterisk finds a call's audio (its Playback name), made once per bulletin and language.

    `asterisk_audio_dir`: the audio directory as Asterisk sees it, when it is not the cache's own
    path (Asterisk in a chroot or another container); empty: the cache's playback name.
    """

    def __init__(self, cache: AudioCache, asterisk_audio_dir: str = "") -> None:
        self.cache = cache
        self.asterisk_audio_dir = asterisk_audio_dir.rstrip("/")
        self._made: dict[tuple[int, str], asyncio.Future[AudioResult]] = {}

    async def playback_name(self, call: VoiceCall) -> str:
        key = (call.bulletin_id, call.language)
        future = self._made.get(key)
        if future is None:
            future = self._made[key] = asyncio.ensure_future(
                asyncio.to_thread(self.cache.ensure, call.bulletin_id, call.text, call.language)
            )
        try:
            result = await asyncio.shield(future)
        except Exception:
            if self._made.get(key) is future:
                del self._made[key]  # the next message of this bulletin tries again
            raise
        if self.asterisk_audio_dir:
            return str(PurePosixPath(self.asterisk_audio_dir) / result.path.stem)
        return result.playback_name
