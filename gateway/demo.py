"""`make demo`: the main job on one machine with nothing installed — SQLite, in-process queue.

Seeds a synthetic region around Utrecht, starts the API on 127.0.0.1:8000, and plays one action
through the API as a centralist would: create, preview, launch, update, close. The spoken alert's
audio is generated as the voice worker does (TTS_ENGINES: gTTS, else espeak-ng, into AUDIO_DIR) and
its file and length are shown. Two tip calls go through the real FastAGI server (Asterisk's side
simulated). SMS go out through the real SMS worker to the local SMSC simulator (node-smpp, when
installed) and come back with delivery receipts. Voice messages are called through a real Asterisk
when one is configured (AMI_SECRET set: the voice worker runs in the background, dialling
VOICE_DIAL_TEMPLATE — the seeded numbers are synthetic, so point it at a test context). A channel
with neither goes to a dry-run outbox that records its messages as sent instead of sending them.
"""

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Protocol

import httpx
import uvicorn
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway import auth
from gateway.api.app import create_app
from gateway.config import Settings
from gateway.outbox import drain
from gateway.phone import masked
from gateway.queue import MemoryQueue
from gateway.seed import seed
from gateway.sms.demo_channel import DemoSms
from gateway.storage.db import make_engine, session_factory
from gateway.storage.migrate import upgrade
from gateway.storage.models import Bulletin, Centralist, Message, Role
from gateway.tts import AudioCache

UTRECHT_CENTRAAL = (52.0894, 5.1101)


class TipLine(Protocol):
    """The tip line the demo calls (ivr.demo_line.DemoTipLine: the IVR depends on the gateway, so
    the demo is handed it rather than importing it)."""

    def call(self, caller: str, code: str, say: Callable[[str], None]) -> None:
        """Two tip calls about the action with `code`, one from `caller`; their tips written."""

    def stop(self) -> None: ...


def _say(text: str = "") -> None:
    print(text, flush=True)


def run_demo(
    settings: Settings,
    tip_line: Callable[[sessionmaker[Session]], TipLine],
    *,
    participants: int = 5_000,
    keep_serving: bool = True,
) -> dict:
    """Run the scripted action; returns what the API answered at each step (for tests).
    `tip_line` starts the tip line on the demo's database (ivr.demo_line.DemoTipLine)."""
    db_file = settings.data_dir / "demo.db"
    for leftover in db_file.parent.glob(db_file.name + "*"):
        leftover.unlink()  # every demo starts from an empty database
    url = settings.database_url or f"sqlite:///{db_file}"
    settings = settings.model_copy(update={"database_url": url})
    _say(f"database: {url}")
    upgrade(url)

    engine = make_engine(url)
    summary = seed(engine, participants, around=(*UTRECHT_CENTRAAL, 20))
    _say(
        f"seeded {summary.participants:,} participants ({summary.addresses:,} addresses) in "
        f"{summary.municipalities} municipalities around Utrecht; {summary.shared_numbers} numbers "
        f"registered more than once, {summary.foreign_numbers} foreign numbers"
    )
    sessions = session_factory(engine)
    with sessions() as session:
        centralist = Centralist(
            name="Centralist Demo", meldkamer="Meldkamer Midden-Nederland", dial_string="PJSIP/4021@meldkamer"
        )
        session.add(centralist)
        session.flush()
        _, admin_key = auth.create_user(session, settings.secret_key, "demo-admin", Role.admin)
        _, centralist_key = auth.create_user(
            session, settings.secret_key, "demo-centralist", Role.centralist, centralist_id=centralist.id
        )
        session.commit()

    queue = MemoryQueue()
    app = create_app(settings, sessions=sessions, queue=queue)
    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.api_host, port=settings.api_port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://{settings.api_host}:{settings.api_port}"
    _wait_until_up(base, server)
    _say(f"API on {base} — OpenAPI docs at {base}/docs")

    tips = tip_line(sessions)
    sms = DemoSms.start(sessions, queue, settings.sms_sender, settings.sms_max_parts)
    if sms is not None:
        _say(f"SMS: the SMS worker bound to the SMSC simulator on 127.0.0.1:{sms.sim.port}")
    calls = _VoiceCalls(settings, sessions, queue) if settings.ami_secret else None
    if calls is not None:
        _say(
            f"voice: calls placed through Asterisk at {settings.ami_host}:{settings.ami_port} "
            f"(AMI user {settings.ami_user}), dialling {settings.voice_dial_template}"
        )
        calls.start()
    else:
        _say("voice: no Asterisk configured (AMI_SECRET empty): voice messages go to the dry-run outbox")
    try:
        steps = _scripted_action(
            base,
            centralist_key,
            sessions,
            queue,
            tips,
            AudioCache.from_settings(settings),
            sms,
            dry_run=_dry_run(sms, calls),
        )
    finally:
        if sms is not None:
            sms.stop()
        if calls is not None:
            calls.stop()
        tips.stop()

    _say()
    _say(f"admin API key for trying the API at {base}/docs (development only):\n  {admin_key}")
    _say(
        f"centralist key, to log in to the console at {base}/console/ (development only):\n  {centralist_key}"
    )
    if keep_serving:
        _say("serving; press Ctrl-C to stop")
        try:
            while thread.is_alive():
                thread.join(1)
        except KeyboardInterrupt:
            pass
    server.should_exit = True
    thread.join(10)
    engine.dispose()
    return steps


class _VoiceCalls:
    """The voice worker (`burgernet worker voice`) on the demo's queue, in a thread of its own."""

    def __init__(self, settings: Settings, sessions, queue) -> None:
        self.settings, self.sessions, self.queue = settings, sessions, queue
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="demo-voice", daemon=True)

    def start(self) -> None:
        self.thread.start()
        self.ready.wait(30)

    def stop(self) -> None:
        """Place nothing new; the calls under way finish (at most VOICE_RING_SECONDS plus the call)."""
        loop = self.loop
        if loop is not None and self.stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing to stop
                loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        finally:
            self.loop = None  # closed: stop() has nothing left to tell
            self.ready.set()

    async def _main(self) -> None:
        from gateway.voice.ami import AMIClient, AMIError
        from gateway.voice.worker import VoiceWorker

        self.loop, self.stopping = asyncio.get_running_loop(), asyncio.Event()
        s = self.settings
        ami = AMIClient(s.ami_host, s.ami_port, s.ami_user, s.ami_secret)
        try:
            await ami.connect()
        except (AMIError, OSError) as exc:  # the demo goes on without calls, and says why
            _say(f"voice: cannot use Asterisk ({exc}); voice messages stay queued")
            return
        worker = VoiceWorker.from_settings(s, self.sessions, self.queue, ami, AudioCache.from_settings(s))
        self.ready.set()
        try:
            await worker.run(self.stopping, poll_ms=200)
        finally:
            await ami.close()
        _say(
            f"voice: the worker placed {worker.stats['originates']} call(s), {worker.stats['answered']} answered"
        )


def _wait_until_up(base: str, server: uvicorn.Server, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.started:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    raise RuntimeError(f"the API did not come up on {base} (is the port taken?)")


def _dry_run(sms: "DemoSms | None", calls: "_VoiceCalls | None") -> tuple[str, ...]:
    """The channels with no real peer in this demo: their messages go to the dry-run outbox."""
    return tuple(channel for channel, real in (("sms", sms), ("voice", calls)) if real is None)


def _scripted_action(
    base: str,
    key: str,
    sessions,
    queue,
    tips: TipLine,
    audio: AudioCache,
    sms: "DemoSms | None",
    dry_run: tuple[str, ...],
) -> dict:
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)

    def call(method: str, path: str, **kw) -> dict:
        r = api.request(method, path, **kw)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path} answered {r.status_code}: {r.text}")
        return r.json()

    def outbox() -> str:
        said = []
        if dry_run:
            recorded = sum(drain(sessions, queue, channel) for channel in dry_run)
            said.append(f"dry-run outbox recorded {recorded:,} {' and '.join(dry_run)} messages as sent")
        if sms is not None:
            said.append(f"SMS via the SMSC simulator, all SMS so far: {sms.settle()}")
        return "; ".join(said)

    steps: dict = {}
    _say("\n1. create — a missing child near Utrecht Centraal, 2 km, SMS and voice")
    action = steps["create"] = call(
        "POST",
        "/api/v1/actions",
        json={
            "type": "missing_person",
            "description": "Vermist: Sanne, 6 jaar, blond haar, roze jas en blauwe laarsjes. "
            "Zij is voor het laatst gezien bij de ingang van Hoog Catharijne.",
            "lat": UTRECHT_CENTRAAL[0],
            "lon": UTRECHT_CENTRAAL[1],
            "radius_m": 2000,
            "channels": ["sms", "voice"],
        },
    )
    aid = action["id"]
    _say(f"   action {aid} is a {action['status']}")

    _say("2. preview")
    preview = steps["preview"] = call("GET", f"/api/v1/actions/{aid}/preview")
    _say(f"   would reach {preview['total']:,} numbers: {preview['recipients']}")
    _say(
        f"   SMS: {preview['sms']['encoding']}, {preview['sms']['part_count']} part(s): {preview['sms']['text']}"
    )
    _say(f"   spoken: {preview['spoken_text']}")

    _say("3. launch")
    launched = steps["launch"] = call("POST", f"/api/v1/actions/{aid}/launch")
    code = launched["action"]["action_code"]
    _say(f"   action code {code}; queued {launched['queued']}")
    with sessions() as session:
        alert = session.scalars(select(Bulletin).where(Bulletin.action_id == aid)).first()
        sample = session.scalars(select(Message.phone).where(Message.bulletin_id == alert.id).limit(3)).all()
    _say(f"   queued SMS text: {alert.sms_text}")
    _say(f"   e.g. to {', '.join(masked(p) for p in sample)} …")
    spoken = steps["audio"] = audio.ensure(alert.id, alert.spoken_text, "nl")  # as the voice worker makes it
    made = f"made by {spoken.engine}" if spoken.engine else "already made"
    fallback = f" after {', '.join(name for name, _ in spoken.failures)} failed" if spoken.failures else ""
    _say(f"   spoken alert audio: {spoken.path} ({spoken.seconds:.1f} s, 8 kHz mono; {made}{fallback})")
    _say(f"   {outbox()}")

    _say("4. tips — calls to 0800-0011 through the FastAGI server")
    tips.call(sample[0], code, _say)
    steps["tips"] = call("GET", f"/api/v1/actions/{aid}/tips")
    for t in steps["tips"]:
        _say(
            f"   tip {t['id']}: matched by {t['matched_by']}, {t['dial_status']}, {t['talk_seconds']} s talk"
        )

    _say("5. update")
    updated = steps["update"] = call(
        "POST",
        f"/api/v1/actions/{aid}/updates",
        json={"text": "Sanne heeft mogelijk een rood step bij zich."},
    )
    _say(f"   queued {updated['queued']}; {outbox()}")

    _say("6. close — Sanne was found thanks to a tip")
    closed = steps["close"] = call(
        "POST", f"/api/v1/actions/{aid}/close", json={"outcome": "direct", "outcome_detail": "person_found"}
    )
    _say(f"   closing message queued {closed['queued']}; {outbox()}")

    _say("7. progress (messages per bulletin, channel and status)")
    steps["progress"] = call("GET", f"/api/v1/actions/{aid}/progress")
    for row in steps["progress"]:
        _say(f"   {row['kind']:<8} {row['seq']} {row['channel']:<6} {row['status']:<10} {row['count']:>6,}")
    return steps
