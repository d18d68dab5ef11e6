"""Audio for Asterisk: 8 kHz mono 16-bit WAV, written atomically; espeak-ng as the offline voice."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
import warnings
import wave
from pathlib import Path

# pydub reads and writes WAV itself; only gTTS's MP3 needs ffmpeg (checked where it is decoded).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Couldn't find ffmpeg", category=RuntimeWarning)
    warnings.filterwarnings("ignore", message="'audioop' is deprecated", category=DeprecationWarning)
    from pydub import AudioSegment

ASTERISK_RATE = 8000
ASTERISK_CHANNELS = 1
ASTERISK_SAMPLE_WIDTH = 2  # bytes: 16-bit signed PCM

# The participants' languages (participant.language) and the espeak-ng voice for each.
LANGUAGES = ("nl", "en", "de", "fr")
ESPEAK_VOICES = {"nl": "nl", "en": "en-gb", "de": "de", "fr": "fr-fr"}


class TTSError(RuntimeError):
    pass


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}; expected one of {', '.join(LANGUAGES)}")
    return language


def espeak_wav(text: str, language: str = "nl") -> bytes:
    """Raw espeak-ng output (22,050 Hz WAV) for `text`; `language` is nl/en/de/fr or an espeak-ng voice."""
    if shutil.which("espeak-ng") is None:
        raise TTSError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    voice = ESPEAK_VOICES.get(language, language)
    # The text goes in on stdin, so a text starting with "-" is never read as an option.
    done = subprocess.run(
        ["espeak-ng", "-v", voice, "--stdout", "--stdin"],
        input=text.encode("utf-8"),
        capture_output=True,
        timeout=60,
    )
    if done.returncode != 0 or len(done.stdout) <= 44:  # 44 bytes: a WAV header and no sound
        raise TTSError(f"espeak-ng failed: {done.stderr.decode(errors='replace').strip() or 'no audio'}")
    return done.stdout


def to_asterisk(data: bytes, audio_format: str = "wav") -> AudioSegment:
    """Decode WAV or MP3 bytes and convert to 8 kHz mono 16-bit. MP3 needs ffmpeg."""
    if audio_format == "wav":
        audio = AudioSegment.from_wav(io.BytesIO(data))
    elif audio_format == "mp3":
        if shutil.which("ffmpeg") is None:
            raise TTSError("ffmpeg is needed to decode MP3 (Debian: apt-get install ffmpeg)")
        audio = AudioSegment.from_file(io.BytesIO(data), format="mp3")
    else:
        raise ValueError(f"unknown audio format {audio_format!r}")
    audio = (
        audio.set_channels(ASTERISK_CHANNELS)
        .set_sample_width(ASTERISK_SAMPLE_WIDTH)
        .set_frame_rate(ASTERISK_RATE)
    )
    if len(audio) == 0:
        raise TTSError("no audio produced")
    return audio


def write_audio(audio: AudioSegment, path: Path) -> float:
    """Write converted audio to `path` atomically (temporary file, then rename); returns seconds."""
    if len(audio) == 0:
        raise TTSError("no audio produced")
    path.parent.mkdir(parents=True, exist_ok=True)
    # A hidden .tmp name: never taken for a finished file, by Asterisk or by the cache.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            audio.export(out, format="wav")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # Asterisk runs as its own user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(audio) / 1000


def write_for_asterisk(wav: bytes, path: Path) -> float:
    """Convert WAV bytes to 8 kHz mono 16-bit and write atomically to `path`; returns the duration in seconds."""
    return write_audio(to_asterisk(wav, "wav"), path)


def speak_to_file(text: str, path: Path, language: str = "nl") -> float:
    """Speak `text` with espeak-ng into an Asterisk-ready WAV at `path`; returns its duration in seconds."""
    return write_for_asterisk(espeak_wav(text, language), path)


def asterisk_wav_seconds(path: Path) -> float | None:
    """Duration of `path` if it is a complete, non-empty 8 kHz mono 16-bit WAV; None otherwise."""
    try:
        if path.stat().st_size <= 44:
            return None
        with wave.open(str(path), "rb") as wav:
            if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (
                ASTERISK_RATE,
                ASTERISK_CHANNELS,
                ASTERISK_SAMPLE_WIDTH,
            ):
                return None
            frames = wav.getnframes()
            # A truncated file claims more frames than it holds.
            if frames == 0 or path.stat().st_size < 44 + frames * ASTERISK_SAMPLE_WIDTH:
                return None
            return frames / ASTERISK_RATE
    except (OSError, EOFError, wave.Error):
        return None
