"""What the tests' far sides say on the real Asterisk, made with espeak-ng at run time (no audio
committed): an answering machine's greeting, its beep and silence; a person's "Hallo?" and silence.

Written into the chroot under SOUNDS_DIR, where tests/asterisk/extensions_test.conf plays them
([test-endpoints] machine and human; [test-phones] with PHONE_SAY). Used by tests/test_alert_call.py
and bench/voice.py. A plain module in tests/, like asterisk_harness.
"""

from __future__ import annotations

from pathlib import Path

SOUNDS_DIR = "/var/lib/burgernet/test-sounds"  # as Asterisk sees it
MACHINE = f"{SOUNDS_DIR}/machine"
HUMAN = f"{SOUNDS_DIR}/human"
GREETING = (
    "Goedendag, u spreekt met het antwoordapparaat van de familie De Vries. "
    "Wij zijn er op dit moment niet. Spreek uw bericht in na de piep."
)
BEEP_MS, GAP_MS, SILENCE_MS = 600, 300, 12000


def write_phone_sounds(chroot: Path) -> float:
    """Write machine.wav and human.wav into `chroot`; returns the seconds until the machine's beep ended."""
    from pydub import AudioSegment
    from pydub.generators import Sine

    from gateway.tts.audio import ASTERISK_RATE, ASTERISK_SAMPLE_WIDTH, espeak_wav, to_asterisk, write_audio

    def silent(ms: int) -> AudioSegment:
        return AudioSegment.silent(duration=ms, frame_rate=ASTERISK_RATE)

    beep = Sine(1000).to_audio_segment(duration=BEEP_MS, volume=-6)
    beep = beep.set_frame_rate(ASTERISK_RATE).set_channels(1).set_sample_width(ASTERISK_SAMPLE_WIDTH)
    greeting = to_asterisk(espeak_wav(GREETING, "nl"))
    target = chroot / SOUNDS_DIR.lstrip("/")
    write_audio(greeting + silent(GAP_MS) + beep + silent(SILENCE_MS), target / "machine.wav")
    write_audio(to_asterisk(espeak_wav("Hallo?", "nl")) + silent(SILENCE_MS), target / "human.wav")
    return (len(greeting) + GAP_MS + BEEP_MS) / 1000
