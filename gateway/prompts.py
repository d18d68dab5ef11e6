"""The static IVR prompts: text in prompts/prompts.toml, audio built from it."""

from __future__ import annotations

import tomllib
from pathlib import Path

from gateway.tts import speak_to_file

PROMPTS_FILE = Path(__file__).resolve().parent.parent / "prompts" / "prompts.toml"
SOUNDS_DIR = PROMPTS_FILE.parent / "sounds"
MIN_SECONDS = 0.5  # a real prompt is never shorter: anything less is a failed synthesis


def texts(language: str = "nl") -> dict[str, str]:
    """Prompt id → text."""
    return tomllib.loads(PROMPTS_FILE.read_text(encoding="utf-8"))[language]


def build(out_dir: Path = SOUNDS_DIR, language: str = "nl") -> dict[str, float]:
    """Generate every prompt's audio into `out_dir`; returns id → seconds. Raises when one is empty."""
    durations = {}
    for prompt_id, text in texts(language).items():
        seconds = speak_to_file(text, out_dir / f"{prompt_id}.wav", language)
        if seconds < MIN_SECONDS:
            raise ValueError(f"prompt {prompt_id} is only {seconds:.2f} s long")
        durations[prompt_id] = seconds
    return durations
