"""TTS for spoken alerts: real espeak-ng, real gTTS (which cannot reach Google here and must fail fast)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gateway.actions.wording import alert_spoken
from gateway.config import Settings
from gateway.tts import (
    LANGUAGES,
    AudioCache,
    EspeakEngine,
    GTTSEngine,
    Synthesis,
    TTSError,
    engines_from_settings,
    espeak_wav,
    make_engines,
    speak_to_file,
)

SENTENCE = alert_spoken(
    "Gezocht: een man van ongeveer veertig jaar met een rode jas en een blauwe fiets.", "472"
)
SENTENCES = {
    "nl": "Er wordt een man met een rode jas gezocht.",
    "en": "The police are looking for a man in a red coat.",
    "de": "Die Polizei sucht einen Mann mit einer roten Jacke.",
    "fr": "La police recherche un homme avec un manteau rouge.",
}


class Counting:
    """Wraps a real engine and counts its syntheses (optionally slowed down to widen races)."""

    def __init__(self, engine, delay: float = 0.0) -> None:
        self.engine, self.delay, self.calls = engine, delay, 0
        self.name = engine.name
        self._lock = threading.Lock()

    def synthesize(self, text: str, language: str) -> Synthesis:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        return self.engine.synthesize(text, language)


def wav_format(path: Path) -> tuple[int, int, int, float]:
    with wave.open(str(path), "rb") as wav:
        return (
            wav.getframerate(),
            wav.getnchannels(),
            wav.getsampwidth(),
            wav.getnframes() / wav.getframerate(),
        )


def all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_audio_is_8khz_mono_16bit_and_as_long_as_the_sentence(tmp_path):
    result = AudioCache(tmp_path, make_engines("espeak")).ensure(12, SENTENCE, "nl")
    assert result.path == tmp_path / "bulletin-12-nl.wav"
    assert result.engine == "espeak" and not result.cached and result.failures == ()
    rate, channels, width, seconds = wav_format(result.path)
    assert (rate, channels, width) == (8000, 1, 2)
    assert seconds > 1 and seconds == pytest.approx(result.seconds, abs=0.01)
    assert result.playback_name == str(tmp_path / "bulletin-12-nl")
    assert all_files(tmp_path) == [result.path]  # no temporary file left next to it


def test_gtts_fails_here_and_espeak_takes_over_within_a_second(tmp_path):
    engines = make_engines("gtts,espeak", timeout=0.8)
    assert [e.name for e in engines] == ["gtts", "espeak"]
    start = time.monotonic()
    result = AudioCache(tmp_path, engines).ensure(3, SENTENCE, "nl")
    elapsed = time.monotonic() - start
    assert elapsed < 1.0, f"fallback took {elapsed:.3f} s"
    assert result.engine == "espeak"
    [(failed, error)] = result.failures
    assert failed == "gtts" and "gTTS failed" in error
    assert wav_format(result.path)[:3] == (8000, 1, 2) and result.seconds > 1
    files = all_files(tmp_path)
    assert files == [result.path]
    assert all(p.stat().st_size > 44 for p in files)


class StallingProxy:
    """A real HTTP proxy that never lets gTTS through: `silent` accepts and says nothing; `trickle`
    sends its answer one byte every 0.2 s, so no socket read ever times out (only a deadline helps)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.stop = threading.Event()
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.server.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            self.connections.append(conn)
            if self.mode == "trickle":
                threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        for byte in b"HTTP/1.1 200 Connection established, eventually...":
            if self.stop.wait(0.2):
                return
            try:
                conn.send(bytes([byte]))
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for conn in self.connections:
            conn.close()
        self.server.close()


@pytest.mark.parametrize("mode", ["silent", "trickle"])
def test_a_stalling_network_hands_over_to_espeak_within_a_second(tmp_path, monkeypatch, mode):
    proxy = StallingProxy(mode)
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    try:
        start = time.monotonic()
        result = AudioCache(tmp_path, make_engines("gtts,espeak")).ensure(10, SENTENCE, "nl")
        elapsed = time.monotonic() - start
    finally:
        proxy.close()
    assert proxy.connections, "gTTS did not go through the stalling proxy"
    assert 0.7 < elapsed < 1.0, f"fallback took {elapsed:.3f} s"
    assert result.engine == "espeak" and [name for name, _ in result.failures] == ["gtts"]
    assert all_files(tmp_path) == [result.path]


def test_gtts_alone_fails_fast_and_leaves_no_file(tmp_path):
    # Imported before the clock starts: the engine imports gtts on first use, and on a fresh clone
    # (no compiled bytecode yet) that import alone took a fair part of the second measured here.
    import gtts  # noqa: F401

    start = time.monotonic()
    with pytest.raises(TTSError, match="gTTS failed"):
        GTTSEngine(timeout=0.8).synthesize(SENTENCE, "nl")
    assert time.monotonic() - start < 1.0
    cache = AudioCache(tmp_path / "audio", make_engines("gtts"))
    with pytest.raises(TTSError, match=r"no TTS engine could speak bulletin-4-nl\.wav: gtts: "):
        cache.ensure(4, SENTENCE, "nl")
    assert all_files(tmp_path) == []


def test_an_existing_gtts_mp3_is_converted_for_asterisk(tmp_path):
    """gTTS's success path (MP3 → pydub/ffmpeg → 8 kHz WAV), with real MP3 made by ffmpeg here."""
    assert shutil.which("ffmpeg"), "ffmpeg is needed to decode gTTS's MP3 (apt-get install ffmpeg)"
    mp3 = subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "wav", "-i", "-", "-f", "mp3", "-"],
        input=espeak_wav(SENTENCE, "nl"),
        capture_output=True,
        check=True,
    ).stdout

    class Mp3Engine:
        name = "gtts"

        def synthesize(self, text, language):
            return Synthesis(mp3, "mp3")

    result = AudioCache(tmp_path).ensure("mp3-check", SENTENCE, "nl", [Mp3Engine()])
    assert result.engine == "gtts"
    rate, channels, width, seconds = wav_format(result.path)
    assert (rate, channels, width) == (8000, 1, 2) and seconds > 1


def test_order_espeak_only(tmp_path):
    engines = make_engines("espeak")
    assert len(engines) == 1 and isinstance(engines[0], EspeakEngine)
    settings = Settings(_env_file=None, tts_engines=" Espeak ", audio_dir=tmp_path)
    cache = AudioCache.from_settings(settings)
    assert [e.name for e in cache.engines] == ["espeak"]
    assert cache.ensure(1, SENTENCE, "nl").engine == "espeak"


def test_defaults_from_settings(tmp_path):
    settings = Settings(_env_file=None)
    engines = engines_from_settings(settings)
    assert [e.name for e in engines] == ["gtts", "espeak"]
    assert engines[0].timeout == 0.8
    assert AudioCache.from_settings(settings).root == Path("var/audio")


@pytest.mark.parametrize(
    ("order", "message"),
    [
        ("gtts,polly", "unknown TTS engine 'polly'"),
        ("espeak,espeak", "listed twice"),
        (" , ", "no TTS engine configured"),
    ],
)
def test_bad_engine_order_is_a_clear_value_error(order, message):
    with pytest.raises(ValueError, match=message):
        make_engines(order)


def test_all_four_languages_produce_audio(tmp_path):
    cache = AudioCache(tmp_path, make_engines("espeak"))
    for language in LANGUAGES:
        result = cache.ensure(5, SENTENCES[language], language)
        assert result.path.name == f"bulletin-5-{language}.wav"
        assert wav_format(result.path)[:3] == (8000, 1, 2) and result.seconds > 1
    assert len(all_files(tmp_path)) == 4
    with pytest.raises(ValueError, match="unsupported language 'es'"):
        cache.ensure(5, "Hola", "es")


def test_ensure_twice_synthesizes_once(tmp_path):
    engine = Counting(EspeakEngine())
    cache = AudioCache(tmp_path, [engine])
    first = cache.ensure(6, SENTENCE, "nl")
    mtime = first.path.stat().st_mtime_ns
    second = cache.ensure(6, SENTENCE, "nl")
    assert engine.calls == 1
    assert first.engine == "espeak" and second.cached and second.engine is None
    assert second.path == first.path and second.seconds == pytest.approx(first.seconds, abs=0.01)
    assert first.path.stat().st_mtime_ns == mtime
    assert AudioCache(tmp_path, [engine]).ensure(6, SENTENCE, "nl").cached  # another process' view


@pytest.mark.parametrize("damage", ["empty", "truncated", "not-a-wav"])
def test_a_bad_file_in_the_cache_is_replaced(tmp_path, damage):
    cache = AudioCache(tmp_path, make_engines("espeak"))
    path = cache.path_for(7, "nl")
    if damage == "truncated":
        full = cache.ensure("full", SENTENCE, "nl").path.read_bytes()
        path.write_bytes(full[: len(full) // 2])
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"" if damage == "empty" else b"ID3" + b"\0" * 500)
    result = cache.ensure(7, SENTENCE, "nl")
    assert result.engine == "espeak"
    assert wav_format(path)[:3] == (8000, 1, 2) and result.seconds > 1


def test_concurrent_callers_synthesize_once(tmp_path):
    engine = Counting(EspeakEngine(), delay=0.2)
    cache = AudioCache(tmp_path, [engine])
    barrier = threading.Barrier(8)

    def call(_):
        barrier.wait()
        return cache.ensure(8, SENTENCE, "nl")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(8)))
    assert engine.calls == 1
    assert sum(not r.cached for r in results) == 1
    assert {r.path for r in results} == {tmp_path / "bulletin-8-nl.wav"}
    assert all_files(tmp_path) == [tmp_path / "bulletin-8-nl.wav"]
    assert cache._locks == {}


def test_every_engine_failing_is_reported_and_leaves_nothing(tmp_path):
    class Broken:
        name = "espeak"

        def synthesize(self, text, language):
            raise RuntimeError("voice missing")

    with pytest.raises(TTSError, match=r"gtts: TTSError: gTTS failed.*; espeak: RuntimeError: voice missing"):
        AudioCache(tmp_path).ensure(9, SENTENCE, "nl", [GTTSEngine(), Broken()])
    assert all_files(tmp_path) == []


@pytest.mark.parametrize("key", ["../escape", "a/b", "", ".hidden", True, 1.5, -1])
def test_bad_keys_are_refused(tmp_path, key):
    with pytest.raises((ValueError, TypeError)):
        AudioCache(tmp_path).path_for(key, "nl")


def test_speak_to_file_still_writes_prompts(tmp_path):
    path = tmp_path / "sounds" / "welcome.wav"
    seconds = speak_to_file("-- Welkom bij de tiplijn van Burgernet.", path, "nl")
    assert wav_format(path)[:3] == (8000, 1, 2) and seconds > 1
    assert all_files(tmp_path) == [path]
