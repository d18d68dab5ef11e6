"""Speech engines: gTTS (Google, online, MP3) and espeak-ng (offline, WAV), tried in a configured order.

An engine turns text into audio bytes in memory and raises on any failure; it never writes a file.
Conversion for Asterisk and the atomic write are the cache's job (gateway/tts/cache.py).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from gateway.tts.audio import TTSError, check_language, espeak_wav

if TYPE_CHECKING:
    from gateway.config import Settings

AudioFormat = Literal["wav", "mp3"]
DEFAULT_TIMEOUT_SECONDS = 0.8
_DONE = object()


@dataclass(frozen=True)
class Synthesis:
    """Audio bytes as an engine produced them, with their format."""

    data: bytes
    format: AudioFormat


@runtime_checkable
class Engine(Protocol):
    name: str

    def synthesize(self, text: str, language: str) -> Synthesis:
        """Speak `text` in `language` (nl/en/de/fr); raises on failure."""
        ...


class GTTSEngine:
    """Google Translate's voice via gTTS: MP3, needs network (and ffmpeg to decode).

    `timeout` (seconds) bounds how long the first audio may take to arrive: gTTS runs in a worker
    thread and is abandoned when it is late, whatever holds it up (a silent server, a hanging DNS
    lookup, a proxy trickling bytes), so an unreachable Google hands over to the next engine fast.
    It is also requests' timeout for each of gTTS's requests (one per ~100 characters). Once the
    first part has arrived, each further part may take up to `part_timeout` seconds.
    """

    name = "gtts"

    def __init__(
        self, timeout: float = DEFAULT_TIMEOUT_SECONDS, tld: str = "com", part_timeout: float = 10.0
    ) -> None:
        if timeout <= 0 or part_timeout <= 0:
            raise ValueError("the gTTS timeouts must be positive")
        self.timeout = timeout
        self.part_timeout = part_timeout
        self.tld = tld

    def synthesize(self, text: str, language: str) -> Synthesis:
        check_language(language)
        try:
            from gtts import gTTS
        except ImportError as exc:
            raise TTSError("gtts is not installed (pip install gtts)") from exc
        try:
            tts = gTTS(text, lang=language, tld=self.tld, timeout=self.timeout)
        except Exception as exc:  # e.g. AssertionError for an empty text
            raise TTSError(f"gTTS failed: {exc}") from exc

        # Parts arrive through a queue from a daemon thread; nothing is written to any file, so an
        # abandoned or failed run leaves nothing behind.
        parts: queue.Queue = queue.Queue()

        def run() -> None:
            try:
                for part in tts.stream():
                    parts.put(part)
                parts.put(_DONE)
            except BaseException as exc:  # handed to the caller
                parts.put(exc)

        threading.Thread(target=run, name="gtts", daemon=True).start()
        audio = bytearray()
        wait = self.timeout
        while True:
            try:
                item = parts.get(timeout=wait)
            except queue.Empty:
                raise TTSError(f"gTTS failed: no answer within {wait:g} s") from None
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise TTSError(f"gTTS failed: {item}") from item
            audio += item
            wait = self.part_timeout
        if not audio:
            raise TTSError("gTTS returned no audio")
        return Synthesis(bytes(audio), "mp3")

    def __repr__(self) -> str:
        return f"GTTSEngine(timeout={self.timeout})"


class EspeakEngine:
    """espeak-ng, offline: WAV at 22,050 Hz; voices nl, en-gb, de, fr-fr."""

    name = "espeak"

    def synthesize(self, text: str, language: str) -> Synthesis:
        return Synthesis(espeak_wav(text, check_language(language)), "wav")

    def __repr__(self) -> str:
        return "EspeakEngine()"


ENGINE_NAMES = ("gtts", "espeak")


def parse_engine_order(order: str | Sequence[str]) -> list[str]:
    """ "gtts,espeak" → ["gtts", "espeak"]; raises ValueError on unknown, duplicate or no names."""
    names = order.split(",") if isinstance(order, str) else list(order)
    names = [name.strip().lower() for name in names if name.strip()]
    if not names:
        raise ValueError(
            f"no TTS engine configured; TTS_ENGINES is a comma-separated list of {', '.join(ENGINE_NAMES)}"
        )
    for name in names:
        if name not in ENGINE_NAMES:
            raise ValueError(
                f"unknown TTS engine {name!r} in TTS_ENGINES; known engines: {', '.join(ENGINE_NAMES)}"
            )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"TTS engine listed twice in TTS_ENGINES: {', '.join(duplicates)}")
    return names


def make_engines(
    order: str | Sequence[str] = "gtts,espeak", *, timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> list[Engine]:
    """The engines named in `order`, in that order (`timeout` is gTTS's per-request timeout)."""
    engines: list[Engine] = []
    for name in parse_engine_order(order):
        engines.append(GTTSEngine(timeout=timeout) if name == "gtts" else EspeakEngine())
    return engines


def engines_from_settings(settings: Settings) -> list[Engine]:
    return make_engines(settings.tts_engines, timeout=settings.tts_timeout_seconds)
