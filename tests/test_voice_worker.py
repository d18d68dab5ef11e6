"""The voice worker (gateway/voice/) on the real parts: PostgreSQL, the real Asterisk 22
with dialplans/alert.conf, the real FastAGI server (the `alert_call` handler answers the call and
records how far the participant listened), espeak-ng audio written into Asterisk's chroot.

Participants' phones are [test-endpoints] Local channels chosen per number by the worker's
`dial_string` function: most answer, some are busy or never answer. One test speaks to test_ami's
fake Asterisk instead, to deliver events in an order the real one produces only when loaded.
"""

import asyncio
import logging
import time
from collections import Counter

import pytest
from polling import until_async
from sqlalchemy import select, text
from typer.testing import CliRunner

from gateway.cli import app
from gateway.config import get_settings
from gateway.storage.models import Message, MessageStatus
from gateway.tts import AudioCache, make_engines
from gateway.voice.ami import AMIClient
from gateway.voice.lines import RedisPool
from gateway.voice.store import RetryVerdict
from gateway.voice.worker import CUT_OFF, OUTCOME_UNKNOWN, VoiceWorker, line_key
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
        api.sessions,
        api.queue,
        ami,
        api.audio,
        dial_string=lambda call: f"Local/{endpoint_of[call.phone]}@test-endpoints",
        asterisk_audio_dir=AUDIO_DIR,
        **options,
    )


async def until_final(api, count: int, timeout: float) -> dict[str, Message]:
    """Every message final (status and final_at set)."""
    got: dict[str, Message] = {}

    def all_final() -> bool:
        got.clear()
        got.update(messages(api))
        return sum(m.final_at is not None for m in got.values()) == count

    await until_async(
        all_final,
        timeout,
        lambda: (
            f"{count} final, {sum(m.final_at is not None for m in got.values())} so far: "
            f"{sorted((m.status.value, m.detail) for m in got.values())}"
        ),
        every=0.3,
        blocking=True,
    )
    return got


async def until_all_final(api, count: int, timeout: float) -> dict[str, Message]:
    """Every message final and every answered one refined by the IVR ("listened …")."""
    got: dict[str, Message] = {}

    def final() -> list[Message]:
        return [
            m
            for m in got.values()
            if m.final_at is not None and m.status in (MessageStatus.answered, MessageStatus.failed)
        ]

    def all_final_and_refined() -> bool:
        got.clear()
        got.update(messages(api))
        done = final()
        return len(done) == count and all(m.detail != "answered" for m in done)

    await until_async(
        all_final_and_refined,
        timeout,
        lambda: (
            f"{count} final and refined, {len(final())} final so far: "
            f"{sorted((m.status.value, m.detail) for m in got.values())}\n"
            f"{api.asterisk._log_tail()}"
        ),
        every=0.3,
        blocking=True,
    )
    return got


def run_worker(api, make_worker, count: int, timeout: float = 90, during=None):
    """Runs `make_worker(ami)` until `count` messages are final and refined by the IVR (meanwhile
    `during(worker)`, if given); returns (worker, messages)."""

    async def scenario():
        ami = AMIClient(
            api.asterisk.ami_host, api.asterisk.ami_port, api.asterisk.ami_user, api.asterisk.ami_secret
        )
        await ami.connect()
        worker = make_worker(ami)
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop, poll_ms=200))
        side = asyncio.create_task(during(worker)) if during else None
        try:
            return worker, await until_all_final(api, count, timeout=timeout)
        finally:
            if side:
                side.cancel()
            stop.set()
            await asyncio.wait_for(running, 30)
            await ami.close()

    return asyncio.run(asyncio.wait_for(scenario(), timeout + 60))


def answering(api, phones: list[str]) -> None:
    port = api.start_ivr()
    api.set_globals(
        BN_IVR=f"agi://127.0.0.1:{port}",
        BN_MELDKAMER_DIAL="Local/answer@test-endpoints",
        BN_RING_SECONDS="3",
        HOLD="40",
        BN_AMD="no",
    )
    register(api, phones)
    launch(api)


@postgresql_only
def test_thirty_recipients_with_a_cap_of_five(voice):
    phones = [f"+3161000{n:04d}" for n in range(30)]
    endpoint_of = dict.fromkeys(phones, "answer")
    busy, never = phones[:12], phones[12:14]
    endpoint_of.update(dict.fromkeys(busy, "busy") | dict.fromkeys(never, "noanswer"))
    answering(voice, phones)  # the participant stays on until the IVR ends the call; no AMD
    most = 0

    async def watch(worker):
        # The calls are the outgoing halves (;1) of Local channels, counted from Asterisk's events in
        # wire order, the order they happened in. (A CoreShowChannels listing is not a snapshot:
        # Asterisk builds it channel by channel while calls start and end.)
        nonlocal most
        up = set()
        async for event in worker.ami.events("Newchannel", "Hangup"):
            if event["Channel"].startswith("Local/") and event["Channel"].endswith(";1"):
                (up.add if event.name == "Newchannel" else up.discard)(event["Uniqueid"])
                most = max(most, len(up))

    worker, got = run_worker(
        voice,
        lambda ami: worker_for(
            voice, ami, endpoint_of, max_calls=5, retries=2, retry_delay=1, ring_seconds=2
        ),
        30,
        timeout=120,
        during=watch,
    )
    assert most == 5  # the cap was used, and never exceeded
    for phone in busy:
        m = got[phone]
        assert (m.status, m.detail, m.attempts) == (MessageStatus.failed, "busy after 3 attempts", 3)
    for phone in never:
        m = got[phone]
        assert (m.status, m.detail, m.attempts) == (MessageStatus.failed, "no answer after 3 attempts", 3)
    answered = [got[p] for p in phones[14:]]
    assert {(m.status, m.detail, m.attempts) for m in answered} == {
        (MessageStatus.answered, "listened to the end", 1)
    }
    assert len({m.provider_id for m in answered}) == 16 and all(m.provider_id for m in answered)
    assert all(m.sent_at for m in got.values())
    assert worker.stats["originates"] == 16 + 3 * 14
    assert voice.audio.calls == 1  # synthesized once for the bulletin, never per call


HANGUP = """
Event: Hangup
Privilege: call,all
Channel: Local/busy@test-endpoints-00000000;1
Uniqueid: $UNIQUEID
Cause: 17
Cause-txt: User busy
"""


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_busy_calls_slot_is_held_until_its_channel_is_gone_though_its_outcome_came_first(api, tmp_path):
    """The OriginateResponse leaves Asterisk's originating thread at once, the channel's events pass
    through Stasis: on a loaded Asterisk a busy call's outcome can come before even its Newchannel.
    With one call slot, the second call is not placed while the first one's channel still exists —
    and a failure whose channel never existed frees its slot at once (not after the grace)."""
    from test_ami import NEWCHANNEL, ORIGINATE_BUSY, ORIGINATE_QUEUED, fake_asterisk, wire

    phones = ["+31612000001", "+31612000002", "+31612000003"]
    api.register(*phones, channel="voice")
    api.launch(channels=("voice",))
    alive: set[str] = set()
    hung_up_at: dict[str, float] = {}  # the first two calls' channels
    sent_at: list[float] = []
    later: set[asyncio.Task] = (
        set()
    )  # the fake's pending channel events (held: the loop keeps only weak references)

    async def originate(fake, action, writer):
        sent_at.append(time.monotonic())
        uniqueid = action.get("ChannelId") or f"1795344442.{len(sent_at)}"
        writer.write(
            wire(ORIGINATE_QUEUED, action_id=action["ActionID"])
            + wire(ORIGINATE_BUSY, action_id=action["ActionID"]).replace(b"<unknown>", uniqueid.encode())
        )
        if len(sent_at) > 2:
            return  # the third call failed before any channel was made

        async def channel_events():  # late, as from a Stasis queue that lags behind
            alive.add(uniqueid)
            await asyncio.sleep(0.3)
            writer.write(wire(NEWCHANNEL).replace(b"1795344442.0", uniqueid.encode()))
            await asyncio.sleep(0.5)
            alive.discard(uniqueid)
            hung_up_at[uniqueid] = time.monotonic()
            writer.write(wire(HANGUP, uniqueid=uniqueid))

        later.add(asyncio.ensure_future(channel_events()))

    async def getvar(fake, action, writer):
        if action["Channel"] in alive:
            writer.write(
                wire(
                    "Response: Success\nActionID: $ACTION_ID\nVariable: BN_MESSAGE_ID\nValue: 1",
                    action_id=action["ActionID"],
                )
            )
        else:
            writer.write(
                wire(
                    "Response: Error\nActionID: $ACTION_ID\nMessage: No such channel",
                    action_id=action["ActionID"],
                )
            )

    async def scenario():
        async with fake_asterisk() as (fake, ami):
            fake.script.update(Originate=originate, Getvar=getvar)
            worker = VoiceWorker(
                api.sessions,
                api.queue,
                ami,
                AudioCache(tmp_path, engines=make_engines("espeak")),
                max_calls=1,
                retries=0,
                failed_channel_grace=30,
            )
            stop = asyncio.Event()
            running = asyncio.create_task(worker.run(stop, poll_ms=100))
            got = await until_final(api, 3, timeout=20)
            done_at = time.monotonic()
            stop.set()
            await asyncio.wait_for(running, 10)
            return got, done_at

    got, done_at = asyncio.run(asyncio.wait_for(scenario(), 40))
    assert {m.detail for m in got.values()} == {"busy after 1 attempt"}
    assert len(sent_at) == 3
    first, second = sorted(hung_up_at.values()) + [float("inf")] * (
        2 - len(hung_up_at)
    )  # inf: not hung up yet
    assert sent_at[1] >= first and sent_at[2] >= second, (
        "a call was placed while the channel before it existed"
    )
    assert done_at - sent_at[2] < 5  # the third call ended with its outcome, not after the grace of 30 s


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_retry_written_twice_is_counted_once(api):
    """The worker writes again when the database did not answer (gateway/voice/outcomes.py), and a commit may have
    gone through whose answer was lost: the retry's attempt is then written twice, counted once."""
    api.register("+31612000009", channel="voice")
    api.launch(channels=("voice",))
    worker = VoiceWorker(api.sessions, api.queue, AMIClient("127.0.0.1", 9, "unused", "unused"), audio=None)
    [delivery] = api.queue.consume("voice", "test", count=10, block_ms=0)
    [call] = worker.store.claim([delivery.message_id]).calls
    assert call.attempts == 1
    assert worker.store.begin_retry(call.message_id, call.attempts) is RetryVerdict.allowed
    assert worker.store.begin_retry(call.message_id, call.attempts) is RetryVerdict.allowed  # the repeat
    assert messages(api)["+31612000009"].attempts == 2


@postgresql_only
def test_a_stopped_workers_messages_are_taken_over(voice):
    """A voice worker died holding four messages, one of them already dialled: once its lease ran
    out, a living worker calls the three nobody dialled and records the dialled one as unknown."""
    from datetime import timedelta

    from gateway.queue import claim, mark_dispatched, renew
    from gateway.storage.models import utcnow
    from gateway.voice.worker import WORKER_STOPPED

    phones = [f"+3161100{n:04d}" for n in range(4)]
    answering(voice, phones)
    deliveries = voice.queue.consume("voice", "dead-worker", count=10, block_ms=0)
    with voice.sessions() as s:
        owned = claim(s, [d.message_id for d in deliveries], worker="voice-dead")
        dialled = s.scalar(select(Message.id).where(Message.phone == phones[0]))
        mark_dispatched(s, [dialled], "voice-dead")
        renew(s, "voice-dead", now=utcnow() - timedelta(seconds=30))  # its last sign of life
        s.commit()
    voice.queue.ack("voice", [d.entry_id for d in deliveries])
    assert len(owned) == 4

    worker, got = run_worker(
        voice,
        lambda ami: worker_for(voice, ami, dict.fromkeys(phones, "answer"), ring_seconds=5, lease_seconds=5),
        4,
        timeout=60,
    )
    assert (got[phones[0]].status, got[phones[0]].detail) == (MessageStatus.failed, WORKER_STOPPED)
    assert {(got[p].status, got[p].detail, got[p].attempts) for p in phones[1:]} == {
        (MessageStatus.answered, "listened to the end", 2)
    }  # claimed twice: by the dead worker, then this one
    assert worker.stats["originates"] == 3  # the dialled one was not called again


@postgresql_only
def test_a_claim_whose_answer_was_lost_is_called_once_its_lease_runs_out(voice):
    """A claim committed while its answer died with the connection: two messages are `sending` in
    the worker's own name, but it never had them. It renews only the leases of the calls in hand,
    so theirs run out and they are called — once."""
    from gateway.queue import claim

    phones = [f"+3161100{n:04d}" for n in range(4)]
    answering(voice, phones)
    with voice.sessions() as s:
        lost = list(s.scalars(select(Message.id).where(Message.phone.in_(phones[:2]))))
        assert len(claim(s, lost, worker="voice-test")) == 2  # the worker's claim; its answer lost
        s.commit()

    worker, got = run_worker(
        voice,
        lambda ami: worker_for(
            voice, ami, dict.fromkeys(phones, "answer"), ring_seconds=5, lease_seconds=1, worker="voice-test"
        ),
        4,
        timeout=60,
    )
    assert {(got[p].status, got[p].detail) for p in phones} == {
        (MessageStatus.answered, "listened to the end")
    }
    assert [got[p].attempts for p in phones] == [2, 2, 1, 1]  # the lost two claimed twice
    assert worker.stats["originates"] == 4  # nobody called twice


@postgresql_only
def test_the_database_dropping_the_workers_connections_loses_no_call(voice, caplog):
    """The database cuts the worker's connections twice while it calls (as a restart or a
    failover does): failed writes are tried again, the worker keeps running, nobody is called
    more than the retries allow and every outcome is recorded. Busy lines make the worker write
    often (the busy outcome, the retry, the next dispatch mark); its pool does not test
    connections before use here, so that each cut fails its next write."""
    from gateway.storage.db import make_engine, session_factory

    url = voice.sessions.kw["bind"].url.render_as_string(hide_password=False)
    engine = make_engine(
        url, pool_pre_ping=False, connect_args={"application_name": "voice-worker-under-test"}
    )
    admin = make_engine(url)
    phones = [f"+3161100{n:04d}" for n in range(8)]
    busy, answer = phones[:4], phones[4:]
    answering(voice, phones)
    cuts = []

    async def cut_connections(worker):
        while len(cuts) < 2:  # two separate cuts, 1 s apart, each of the connections it had then
            await asyncio.sleep(1)
            with admin.connect() as conn:  # the IVR's and the test's connections are left alone
                if cut := conn.scalar(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = 'voice-worker-under-test'"
                    )
                ):
                    cuts.append(cut)

    def make(ami):
        endpoint_of = dict.fromkeys(busy, "busy") | dict.fromkeys(answer, "answer")
        # A long lease: its upkeep (every quarter lease) does not take the cut connections first.
        worker = worker_for(
            voice, ami, endpoint_of, max_calls=4, ring_seconds=5, retries=2, retry_delay=1, lease_seconds=60
        )
        worker.store.sessions = session_factory(engine)
        return worker

    try:
        with caplog.at_level(logging.WARNING, logger="gateway.voice"):
            worker, got = run_worker(voice, make, len(phones), timeout=120, during=cut_connections)
    finally:
        engine.dispose()
        admin.dispose()
    assert len(cuts) == 2, cuts
    assert {(got[p].status, got[p].detail) for p in busy} == {(MessageStatus.failed, "busy after 3 attempts")}
    assert {(got[p].status, got[p].detail) for p in answer} == {
        (MessageStatus.answered, "listened to the end")
    }
    assert worker.stats["originates"] == 3 * len(busy) + len(answer)  # nobody called more than allowed
    logged = [r.getMessage() for r in caplog.records]
    # At least the first cut fails a write (busy lines write about every second); the second may
    # fall to the lease upkeep instead, when a slow machine has left the worker nothing to write.
    assert any("database write failed" in m for m in logged), (
        "the cuts failed no write: the test did not test it"
    )
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], (
        caplog.text
    )  # no call's task died, no traceback


PHONE_LOG = "tmp/test-phones.log"  # in the chroot: one line per call that reached a phone ([test-phones])


def rings(asterisk) -> list[str]:
    path = asterisk.chroot / PHONE_LOG
    return path.read_text().split() if path.exists() else []


@postgresql_only
@pytest.mark.parametrize("moment", ["ringing", "answered"])
def test_asterisk_restarted_mid_action(voice, moment):
    """Asterisk stops (`core stop now`) and starts again while the worker has calls ringing (or
    answered) and others not yet placed: the worker reconnects, places what was not placed, rings
    nobody twice (counted at Asterisk's side), and every recipient ends with an outcome."""
    asterisk = voice.asterisk
    port = voice.start_ivr()
    keep = {
        "BN_IVR": f"agi://127.0.0.1:{port}",
        "PHONE_RING": "2",
        "PHONE_HOLD": "2",
        "BN_AMD": "no",
    }  # silent phones
    asterisk.globals.update(keep)  # the restarted Asterisk reads them from its configuration
    voice.set_globals(**keep)
    (asterisk.chroot / PHONE_LOG).write_text("")
    asterisk.run_in_chroot("chown", "asterisk:asterisk", f"/{PHONE_LOG}")  # Asterisk appends to it
    phones = [f"+3161100{n:04d}" for n in range(12)]
    register(voice, phones)
    launch(voice)
    marker = "restart"

    def reached(moment: str) -> bool:  # the first three calls ring (PHONE_RING s), or were answered
        if moment == "ringing":
            return len(rings(asterisk)) >= 3
        return sum(m.status is MessageStatus.answered for m in messages(voice).values()) >= 3

    async def scenario():
        ami = AMIClient(
            asterisk.ami_host,
            asterisk.ami_port,
            asterisk.ami_user,
            asterisk.ami_secret,
            reconnect_delay=(0.2, 0.5),
        )
        await ami.connect()
        worker = VoiceWorker(
            voice.sessions,
            voice.queue,
            ami,
            voice.audio,
            max_calls=3,
            retries=0,
            ring_seconds=10,
            dial_string=lambda call: f"Local/{call.phone.lstrip('+')}@test-phones",
            asterisk_audio_dir=AUDIO_DIR,
        )
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop, poll_ms=200))
        try:
            await until_async(lambda: reached(moment), 60, f"three calls {moment}", blocking=True)

            def while_down():  # everything after this line in the log rang after the restart
                with open(asterisk.chroot / PHONE_LOG, "a") as log:
                    log.write(f"{marker}\n")

            await asyncio.to_thread(asterisk.restart, while_down)
            got = await until_final(voice, len(phones), timeout=120)
        finally:
            stop.set()
            await asyncio.wait_for(running, 60)
            await ami.close()
        return worker, ami.reconnects, got

    try:
        worker, reconnects, got = asyncio.run(asyncio.wait_for(scenario(), 240))
    finally:
        asterisk.globals.clear()
    log = rings(asterisk)
    before, after = log[: log.index(marker)], log[log.index(marker) + 1 :]
    rung = Counter(before + after)
    number = {p: p.lstrip("+") for p in phones}
    assert reconnects >= 1
    assert max(rung.values()) == 1, f"rang twice: {[n for n, c in rung.items() if c > 1]}"
    assert after, "nothing was left to place after the restart: the test did not test it"
    failed = {p for p, m in got.items() if m.status is MessageStatus.failed}
    unknown = {p for p in failed if got[p].detail == OUTCOME_UNKNOWN}
    cut_off = {p for p in failed if got[p].detail == f"{CUT_OFF} after 1 attempt"}  # retries=0
    report = "; ".join(f"{p} {m.status.value} {m.detail}" for p, m in sorted(got.items()))
    assert failed == unknown | cut_off, report
    assert len(failed) <= 3, report  # at most the calls under way when Asterisk stopped (the cap)
    assert all(number[p] in before for p in cut_off), report
    for phone in phones:
        if number[phone] in after:  # placed after the reconnect: answered, its outcome recorded
            assert got[phone].status is MessageStatus.answered and got[phone].attempts == 1, report
        elif number[phone] not in before:  # never rang: only an Originate whose outcome was lost
            assert phone in unknown, report
    assert all(number[p] in rung for p in phones if got[p].status is MessageStatus.answered)
    never_rang = sum(number[p] not in rung for p in unknown)
    assert worker.stats["originates"] == len(rung) + never_rang + worker.stats["again"], worker.stats
    assert worker.stats["again"] <= 2 * len(phones), (
        worker.stats
    )  # no Originates hammering a stopping Asterisk
    if len(cut_off) == worker.max_calls:  # every slot was freed by a call Asterisk's stop cut off: once known
        # to be stopping, it was sent nothing more (so nothing refused, nothing lost with the connection)
        assert worker.stats["again"] == 0 and not unknown, (worker.stats, report)


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


@postgresql_only
@pytest.mark.parametrize("shared", [False, True], ids=["lines-in-process", "lines-in-redis"])
def test_a_new_actions_first_call_takes_the_next_free_line(voice, shared, request):
    """Sixty calls queued for a robbery at a cap of five, the lines all busy; a missing person is
    launched: the very next call placed is hers, and while both wait she gets two lines in three
    (8 : 4). Each number called once. The same with the lines as leases in Redis."""
    theft = [f"+3161000{n:04d}" for n in range(60)]
    child = [f"+3162000{n:04d}" for n in range(6)]
    answering(voice, theft)  # launched: the robbery, at Utrecht
    voice.set_globals(HOLD="3")  # each call lasts the message plus three seconds, then hangs up
    voice.register(*child, channel="voice", lat=52.3, lon=5.5)
    placed: list[tuple[float, str]] = []

    def dial(call) -> str:
        placed.append((time.monotonic(), call.phone))
        return "Local/answer@test-endpoints"

    launched: list[float] = []

    async def launch_the_child(worker):
        while worker.lines.busy < 5 or len(placed) < 8:  # the lines full, a few calls done
            await asyncio.sleep(0.05)
        draft = await asyncio.to_thread(
            voice.call,
            "centralist",
            "POST",
            "/api/v1/actions",
            expect=201,
            json={
                "type": "missing_person",
                "description": "Meisje, 6 jaar.",
                "lat": 52.3,
                "lon": 5.5,
                "radius_m": 1000,
                "channels": ["voice"],
            },
        )
        await asyncio.to_thread(voice.call, "centralist", "POST", f"/api/v1/actions/{draft['id']}/launch")
        launched.append(time.monotonic())  # her calls are on the queue

    async def scenario():
        ami = AMIClient(
            voice.asterisk.ami_host,
            voice.asterisk.ami_port,
            voice.asterisk.ami_user,
            voice.asterisk.ami_secret,
        )
        await ami.connect()
        lines = None
        if shared:
            redis_url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("key_prefix")
            lines = RedisPool(redis_url, line_key(prefix), lease_seconds=60)
        worker = VoiceWorker.from_settings(
            voice.settings,
            voice.sessions,
            voice.queue,
            ami,
            voice.audio,
            max_calls=5,
            retries=0,
            dial_string=dial,
            asterisk_audio_dir=AUDIO_DIR,
            lines=lines,
        )
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop, poll_ms=200))
        try:
            await launch_the_child(worker)
            await until_async(
                lambda: sum(phone in child for _, phone in placed) >= len(child),
                120,
                lambda: f"all {len(child)} of the child's calls placed (the last placed: {placed[-10:]})",
                every=0.1,
            )
        finally:
            stop.set()
            await asyncio.wait_for(running, 90)
            await ami.close()

    asyncio.run(scenario())
    after = [phone for at, phone in placed if at > launched[0]]
    # The next free line is hers: at most one robbery call goes before, one whose take was under
    # way when her launch returned. (In the order of the queue, all 60 would go first.)
    assert any(phone in child for phone in after[:2]), f"the calls after the launch: {after[:6]}"
    # Two of every three lines to her while both wait (8 : 4).
    first_six = after[:6]
    assert sum(phone in child for phone in first_six) >= 4, first_six
    assert sorted(phone for _, phone in placed if phone in child) == child  # each called once
    assert len({phone for _, phone in placed}) == len(placed)
