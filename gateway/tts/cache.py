"""Per-action-version audio: synthesized once, stored where Asterisk reads it, reused for every call.

The file for (key, language) is `<root>/<name>-<language>.wav`, with <name> `bulletin-<id>` for a
bulletin id (one bulletin = one action version; its spoken_text never changes) or the given string
key. `ensure()` returns the existing file when it is a complete 8 kHz mono 16-bit WAV; otherwise it
tries the engines in order, falling back on any error, and writes atomically. A zero-length,
truncated or wrongly formatted file (left by another tool) counts as missing and is replaced.

Within one process, callers asking for the same file wait for a single synthesis (a lock per
file). Across processes the worst case is a second, identical synthesis: the rename is atomic, so
a reader only ever sees a complete file.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.tts.audio import TTSError, asterisk_wav_seconds, check_language, to_asterisk, write_audio
from gateway.tts.engines import Engine, engines_from_settings

if TYPE_CHECKING:
    from gateway.config import Settings

log = logging.getLogger(__name__)

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")


@dataclass(frozen=True)
class AudioResult:
    path: Path
    # The engine that made the file now, or None when an existing file was reused.
    engine: str | None
    seconds: float
    # (engine name, error) for each engine that failed before `engine` took over.
    failures: tuple[tuple[str, str], ...] = field(default=())

    @property
    def cached(self) -> bool:
        return self.engine is None

    @property
    def playback_name(self) -> str:
        """The path without extension, as Asterisk's Playback()/Background() want it."""
        return str(self.path.with_suffix(""))


class AudioCache:
    def __init__(self, root: Path, engines: Sequence[Engine] | None = None) -> None:
        self.root = Path(root)
        self.engines = list(engines) if engines is not None else None
        self._guard = threading.Lock()
        self._locks: dict[Path, list] = {}  # path → [lock, users]

    @classmethod
    def from_settings(cls, settings: Settings) -> AudioCache:
        return cls(settings.audio_dir, engines_from_settings(settings))

    def path_for(self, key: int | str, language: str = "nl") -> Path:
        check_language(language)
        if isinstance(key, bool) or not isinstance(key, (int, str)):
            raise TypeError(f"audio key must be a bulletin id or a string, not {type(key).__name__}")
        if isinstance(key, int):
            if key < 0:
                raise ValueError(f"bad bulletin id {key}")
            name = f"bulletin-{key}"
        else:
            if not _KEY.fullmatch(key):
                raise ValueError(f"bad audio key {key!r}: letters, digits, '-' and '_' only")
            name = key
        return self.root / f"{name}-{language}.wav"

    def ensure(
        self, key: int | str, text: str, language: str = "nl", engines: Sequence[Engine] | None = None
    ) -> AudioResult:
        """The audio for `key` in `language`, synthesizing `text` if there is no good file yet."""
        path = self.path_for(key, language)
        if not text or not text.strip():
            raise ValueError("nothing to speak: the text is empty")
        engines = list(engines) if engines is not None else self.engines
        if not engines:
            raise ValueError("no TTS engines given")

        seconds = asterisk_wav_seconds(path)
        if seconds is not None:
            return AudioResult(path, None, seconds)
        with self._lock(path):
            seconds = asterisk_wav_seconds(path)  # made while we waited?
            if seconds is not None:
                return AudioResult(path, None, seconds)
            return self._synthesize(path, text, language, engines)

    def _synthesize(self, path: Path, text: str, language: str, engines: Sequence[Engine]) -> AudioResult:
        failures: list[tuple[str, str]] = []
        for engine in engines:
            try:
                synthesis = engine.synthesize(text, language)
                audio = to_asterisk(synthesis.data, synthesis.format)
            except Exception as exc:  # any engine error: the next engine takes over
                failures.append((engine.name, f"{type(exc).__name__}: {exc}"))
                log.warning("TTS engine %s failed for %s: %s", engine.name, path.name, exc)
                continue
            # Writing is not the engine's fault: a full disk or a bad directory is raised as it is.
            seconds = write_audio(audio, path)
            if failures:
                log.info(
                    "TTS %s: %s took over after %s", path.name, engine.name, ", ".join(n for n, _ in failures)
                )
            return AudioResult(path, engine.name, seconds, tuple(failures))
        raise TTSError(
            f"no TTS engine could speak {path.name}: " + "; ".join(f"{n}: {e}" for n, e in failures)
        )

    def _lock(self, path: Path) -> _KeyLock:
        return _KeyLock(self, path)


class _KeyLock:
    """One lock per file, dropped from the table when nobody holds or waits for it."""

    def __init__(self, cache: AudioCache, path: Path) -> None:
        self.cache, self.path = cache, path

    def __enter__(self) -> None:
        with self.cache._guard:
            entry = self.cache._locks.setdefault(self.path, [threading.Lock(), 0])
            entry[1] += 1
        self.entry = entry
        entry[0].acquire()

    def __exit__(self, *exc_info) -> None:
        self.entry[0].release()
        with self.cache._guard:
            self.entry[1] -= 1
            if self.entry[1] == 0:
                del self.cache._locks[self.path]
