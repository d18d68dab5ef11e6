"""The voice worker (gateway/voice/worker.py) on the real parts: PostgreSQL, the real Asterisk 22
with dialplans/alert.conf, the real FastAGI server (the `alert_call` handler answers the call and
records how far the participant listened), espeak-ng audio written into Asterisk's chroot.

Participants' phones are [test-endpoints] Local channels chosen per number by the worker's
`dial_string` function: most answer, some are busy or never answer.
"""

import asyncio
import time

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from gateway.cli import app
from gateway.config import get_settings
from gateway.storage.models import Message, MessageStatus
from gateway.tts import AudioCache, make_engines
from gateway.voice.ami import AMIClient
from gateway.voice.worker import VoiceWorker
from ivr.context import IvrContext
from ivr.handlers import registry
from ivr.server import FastAGIServer

postgresql_only = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

AUDIO_DIR = "/var/lib/burgernet/audio"  # as Asterisk sees it, inside the chroot


class CountingCache(AudioCache):
    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.calls = 0

    def ensure(self, *args, **kw):
        self.calls += 1
        return super().ensure(*args, **kw)


def register(api, phones: list[str]) -> None:
    api.register(*phones, channel="voice")


def launch(api) -> dict:
    return api.launch("Man.", channels=("voice",))


def messages(api) -> dict[str, Message]:
    with api.sessions() as s:
        return {m.phone: m for m in s.scalars(select(Message))}


@pytest.fixture
def voice(api, asterisk):
    """Starts FastAGI servers on the host (`start_ivr`, any free port) and sets Asterisk globals."""
    from asterisk_harness import RawAMI

    servers = []

    def start_ivr(port: int = 0) -> int:
        ctx = IvrContext(api.sessions, cache=None)
        server = FastAGIServer(("127.0.0.1", port), registry(ctx))
        server.start_in_background()
        servers.append((server, ctx))
        return server.server_address[1]

    def set_globals(**values: str) -> None:
        ami = RawAMI(asterisk.ami_host, asterisk.ami_port, timeout=30)
        try:
            assert ami.login(asterisk.ami_user, asterisk.ami_secret)["Response"] == "Success"
            for name, value in values.items():
                assert ami.action("Setvar", ("Variable", name), ("Value", value))["Response"] == "Success"
        finally:
            ami.close()

    api.start_ivr, api.set_globals, api.asterisk = start_ivr, set_globals, asterisk
    for stale in (asterisk.chroot / AUDIO_DIR.lstrip("/")).glob("*.wav"):  # bulletin ids restart per test
        stale.unlink()
    api.audio = CountingCache(asterisk.chroot / AUDIO_DIR.lstrip("/"), engines=make_engines("espeak"))
    yield api
    set_globals(HOLD="")  # [test-endpoints] answer: back to its default for other tests
    for server, ctx in servers:
        ctx.tips.flush()
        server.shutdown()
        server.server_close()
        ctx.tips.close()


def worker_for(api, ami: AMIClient, endpoint_of: dict[str, str], **options) -> VoiceWorker:
    return VoiceWorker(
        api.sessions, api.queue, ami, api.audio,
        dial_string=lambda call: f"Local/{endpoint_of[call.phone]}@test-endpoints",
        asterisk_audio_dir=AUDIO_DIR,
        **options,
    )


async def until_all_final(api, count: int, timeout: float) -> dict[str, Message]:
    """Every message final and every answered one refined by the IVR ("listened …")."""
    deadline = time.monotonic() + timeout
    while True:
        got = await asyncio.to_thread(messages, api)
        done = [m for m in got.values() if m.final_at is not None and m.status in (MessageStatus.answered, MessageStatus.failed)]
        refined = all(m.detail != "answered" for m in done)
        if (len(done) == count and refined) or time.monotonic() > deadline:
            assert len(done) == count and refined, (
                f"{len(done)} of {count} final: {sorted((m.status.value, m.detail) for m in got.values())}\n"
                f"{api.asterisk._log_tail()}")
            return got
        await asyncio.sleep(0.3)


@postgresql_only
def test_thirty_recipients_with_a_cap_of_five(voice):
    port = voice.start_ivr()
    voice.set_globals(BN_IVR=f"agi://127.0.0.1:{port}", BN_MELDKAMER_DIAL="Local/answer@test-endpoints",
                      BN_RING_SECONDS="3", HOLD="40")  # the participant stays on until the IVR ends the call
    phones = [f"+3161000{n:04d}" for n in range(30)]
    endpoint_of = {p: "answer" for p in phones}
    busy, never = phones[:12], phones[12:14]
    endpoint_of.update({p: "busy" for p in busy} | {p: "noanswer" for p in never})
    register(voice, phones)
    launch(voice)

    async def scenario():
        ami = AMIClient(voice.asterisk.ami_host, voice.asterisk.ami_port, voice.asterisk.ami_user, voice.asterisk.ami_secret)
        await ami.connect()
        worker = worker_for(voice, ami, endpoint_of, max_calls=5, retries=2, retry_delay=1, ring_seconds=2)
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop, poll_ms=200))
        most = 0

        async def watch():
            nonlocal most
            while True:  # the worker's calls are the outgoing halves (;1) of Local channels
                listing = await ami.action("CoreShowChannels")
                up = [e for e in listing.events if e["Channel"].startswith("Local/") and e["Channel"].endswith(";1")]
                most = max(most, len(up))
                await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch())
        try:
            got = await until_all_final(voice, 30, timeout=120)
        finally:
            watcher.cancel()
            stop.set()
            await asyncio.wait_for(running, 30)
            await ami.close()
        return worker, most, got

    worker, most, got = asyncio.run(asyncio.wait_for(scenario(), 180))
    assert most == 5  # the cap was used, and never exceeded
    for phone in busy:
        m = got[phone]
        assert (m.status, m.detail, m.attempts) == (MessageStatus.failed, "busy after 3 attempts", 3)
    for phone in never:
        m = got[phone]
        assert (m.status, m.detail, m.attempts) == (MessageStatus.failed, "no answer after 3 attempts", 3)
    answered = [got[p] for p in phones[14:]]
    assert {(m.status, m.detail, m.attempts) for m in answered} == {(MessageStatus.answered, "listened to the end", 1)}
    assert len({m.provider_id for m in answered}) == 16 and all(m.provider_id for m in answered)
    assert all(m.sent_at for m in got.values())
    assert worker.stats["originates"] == 16 + 3 * 14
    assert voice.audio.calls == 1  # synthesized once for the bulletin, never per call


def test_the_worker_command_refuses_an_empty_ami_secret(monkeypatch, tmp_path):
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("AMI_SECRET", "")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["worker", "voice"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "AMI_SECRET is empty" in result.output + (result.stderr if result.stderr_bytes is not None else "")
