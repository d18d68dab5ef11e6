"""Text to speech for Asterisk: audio as 8 kHz mono 16-bit WAV, written atomically.

- `audio`: espeak-ng, conversion for Asterisk, the atomic writer (and the helpers prompts use).
- `engines`: gTTS (online, Dutch and the other participant languages) and espeak-ng (offline),
  built in the order of TTS_ENGINES; gTTS has a short timeout so the fallback takes over fast.
- `cache`: one file per action version (bulletin) and language under AUDIO_DIR, synthesized once.

A file is written under a temporary name and renamed when complete, so Asterisk (or the cache)
never sees an empty or half-written file.
"""

from __future__ import annotations

from gateway.tts.audio import (
    ASTERISK_RATE,
    ESPEAK_VOICES,
    LANGUAGES,
    TTSError,
    asterisk_wav_seconds,
    espeak_wav,
    speak_to_file,
    to_asterisk,
    write_audio,
    write_for_asterisk,
)
from gateway.tts.cache import AudioCache, AudioResult
from gateway.tts.engines import (
    ENGINE_NAMES,
    Engine,
    EspeakEngine,
    GTTSEngine,
    Synthesis,
    engines_from_settings,
    make_engines,
    parse_engine_order,
)

__all__ = [
    "ASTERISK_RATE",
    "ENGINE_NAMES",
    "ESPEAK_VOICES",
    "LANGUAGES",
    "AudioCache",
    "AudioResult",
    "Engine",
    "EspeakEngine",
    "GTTSEngine",
    "Synthesis",
    "TTSError",
    "asterisk_wav_seconds",
    "engines_from_settings",
    "espeak_wav",
    "make_engines",
    "parse_engine_order",
    "speak_to_file",
    "to_asterisk",
    "write_audio",
    "write_for_asterisk",
]
