"""Text to speech for Asterisk: audio as 8 kHz mono 16-bit WAV, written atomically.

Only the offline engine (espeak-ng) lives here so far; the spoken alerts add gTTS in front of it
with espeak-ng as the fallback. A file is written under a temporary name and renamed when
complete, so Asterisk (or a cache) never sees an empty or half-written file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import warnings

# We only read and write WAV, which pydub does itself; ffmpeg (which it warns about) is not needed.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Couldn't find ffmpeg", category=RuntimeWarning)
    from pydub import AudioSegment

ASTERISK_RATE = 8000


class TTSError(RuntimeError):
    pass


def espeak_wav(text: str, language: str = "nl") -> bytes:
    """Raw espeak-ng output (22,050 Hz WAV) for `text`."""
    if shutil.which("espeak-ng") is None:
        raise TTSError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    done = subprocess.run(["espeak-ng", "-v", language, "--stdout", text], capture_output=True, timeout=60)
    if done.returncode != 0 or len(done.stdout) <= 44:  # 44 bytes: a WAV header and no sound
        raise TTSError(f"espeak-ng failed: {done.stderr.decode(errors='replace').strip() or 'no audio'}")
    return done.stdout


def write_for_asterisk(wav: bytes, path: Path) -> float:
    """Convert to 8 kHz mono 16-bit and write atomically to `path`; returns the duration in seconds."""
    import io

    audio = AudioSegment.from_wav(io.BytesIO(wav)).set_channels(1).set_sample_width(2).set_frame_rate(ASTERISK_RATE)
    if len(audio) == 0:
        raise TTSError("no audio produced")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".wav")
    try:
        with os.fdopen(fd, "wb") as out:
            audio.export(out, format="wav")
        os.chmod(tmp, 0o644)  # Asterisk runs as its own user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(audio) / 1000


def speak_to_file(text: str, path: Path, language: str = "nl") -> float:
    """Speak `text` into an Asterisk-ready WAV at `path`; returns its duration in seconds."""
    return write_for_asterisk(espeak_wav(text, language), path)
