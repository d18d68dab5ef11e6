"""Tip-line benchmark: how long the real `tipline` handler takes to route a call, against a trivial one.

    .venv/bin/python -m bench.tipline [--calls 20000] [--concurrency 200] [--rate CALLS_PER_S]
                                      [--layout split|single] [--profile]

Data: the seeded national population in PostgreSQL (`burgernet_bench`, prepared and reused as in
bench.targeting) with three open actions (300 m around the centres of Utrecht, Amsterdam and
Rotterdam: ~2,100 numbers alerted in total, no number by two of them), launched through
gateway.actions.lifecycle and reused while they stay open for another quarter of an hour (else
closed and launched afresh). A RouteCache with its own key prefix (`bench-tipline:`) is emptied and
filled by `rebuild`; the tip rows of earlier runs (call ids `bench-tipline-…`) are deleted.

Servers: (a) the real FastAGIServer with the real handler registry over that database, route
cache and tip stream (key prefix `bench-tipline:`), built as ivr.main does, with a tip-writer
process (gateway.tipline.tipstream, as `burgernet tip-writer`) writing the tips into PostgreSQL
alongside — its CPU and PostgreSQL's compete with the server's on this machine; after the run the
bench waits until the stream is empty and checks that every session of the real run has its tip
row, once, matched by caller ID exactly for the alerted callers (a line of its own; a gap is an
error); (b) a FastAGIServer whose only handler `tipline` sets BN_DIAL and returns.
Both are measured with the same client, one after the other: by default a closed loop keeping
`--concurrency` FastAGI sessions in flight (a session ends, the next starts at once); with `--rate`
an open loop (calls start at that rate, at most `--concurrency` in flight). The client plays
Asterisk's side of a call to `tipline` with the dialplan's AGI arguments and answers every command
`200 result=1` (GET DATA: `200 result= (timeout)`). Per call it times from sending the environment
block to receiving `SET VARIABLE "BN_DIAL" …` — the routing decision — and checks BN_DIAL
against the expected route. 90% of the calls come from numbers that received exactly
one open alert: the main figure. 10% come from unknown numbers, which the real handler asks for
the action code (three GET DATA) before it decides: reported apart, on the line before the last.
Warm-up calls (the first 10%) and the last `--concurrency` calls (started while the pool drains)
are run but not counted: every counted call had the full load around it.

Layout: each server in its own subprocess (multiprocessing, spawn), the client — one asyncio event
loop — in the main process. CPython runs one thread at a time per process, and the machine has
2 cores. With the client in the servers' process (`--layout single`), client and handler threads
share one GIL: the client reads decisions and starts calls only when it gets the GIL, so it paces
the load and part of every latency is the client's own waiting. Measured in session 1, before the
tip stream (20,000 calls, 200 in flight): single — trivial 1,607 calls/s, p99 180 ms; real 280 calls/s, p99 344 ms (ratio 1.9, but
the real server's sessions then queue after the decision, in the client: session p50 350 ms vs
decision p50 108 ms); split — trivial 2,403 calls/s, p99 141 ms, client process at 56% of a core;
real 352 calls/s, p99 712 ms (ratio 5.0). In the split layout the server process is the bottleneck
(~85-90% of one core, PostgreSQL and Redis a few %) and the client has a core of its own, so the
figure is the server's; in the single one it is partly the client's. Hence split.

`--profile` wraps, in the real server's process only (the files under test are untouched), the
steps of each call and stamps them with perf_counter_ns (CLOCK_MONOTONIC: the same clock as the
client's), then prints where the decision time of the counted alerted calls goes: waiting to be
accepted, thread start, environment, the lookup with the arrival logged (one Lua round trip),
BN_DIAL out, back to the client. The wrappers cost a little: the main figure comes from a run
without.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bench.targeting import PG_ADMIN_URL, PG_DB, prepare_postgresql
from gateway.actions import lifecycle
from gateway.config import Settings
from gateway.storage.db import make_engine
from gateway.storage.models import Action, ActionStatus, ActionType, Centralist, MatchedBy, Tip
from gateway.tipline.lookup import RouteCache, alert_phones, open_alerts
from gateway.tipline.tipstream import TipStream

PG_URL = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + PG_DB
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PREFIX = "bench-tipline:"
MARK = "bench-tipline"  # description prefix of the bench's actions, call ids of its tips
CENTRALIST = ("Bench Tipline", "Midden-Nederland", "PJSIP/4099@meldkamer-mn")
PLACES = (("Utrecht", 52.0907, 5.1214), ("Amsterdam", 52.3731, 4.8926), ("Rotterdam", 51.9225, 4.4792))
RADIUS_M = 300
MELDKAMER = "PJSIP/meldkamer@mk"  # the dialplan's AGI arguments (tests/test_tipline.py)
PROMPTS = "/var/lib/burgernet/prompts"
TRIVIAL_DIAL = "PJSIP/x@y"
UNKNOWN_SHARE = 0.10
GOAL_RATIO = 2.0
CALL_TIMEOUT_S = 60.0


# --- data ---------------------------------------------------------------------------------------


@dataclass
class Population:
    single: dict[str, tuple[int, str]]  # E.164 → (action id, dial string): one open alert
    several: int  # numbers alerted by more than one open action (menu: not timed)
    unknown: list[str]  # numbers no open action alerted
    actions: list[tuple[int, str, int]]  # (id, code, numbers)
    reused: bool


def ensure_actions(engine) -> bool:
    """Three open bench actions that stay open for the run; returns True when reused."""
    now = datetime.now(UTC)
    settings = Settings(_env_file=None, environment="development")
    with Session(engine) as s:
        mine = s.scalars(
            select(Action).where(Action.description.startswith(MARK), Action.status == ActionStatus.open)
        ).all()
        if len(mine) == len(PLACES) and all(a.expires_at > now + timedelta(minutes=15) for a in mine):
            return True
        for a in mine:  # too few, or about to expire: close them and launch afresh
            lifecycle.close(s, a.id, now, outcome=None, note="bench rerun")
        centralist = s.scalars(select(Centralist).where(Centralist.name == CENTRALIST[0])).first()
        if centralist is None:
            centralist = Centralist(name=CENTRALIST[0], meldkamer=CENTRALIST[1], dial_string=CENTRALIST[2])
            s.add(centralist)
            s.flush()
        for place, lat, lon in PLACES:
            action = Action(
                type=ActionType.robbery,
                description=f"{MARK}: man met rode jas, {place}.",
                lat=lat,
                lon=lon,
                radius_m=RADIUS_M,
                send_sms=True,
                send_voice=True,
                centralist_id=centralist.id,
            )
            s.add(action)
            s.flush()
            # Every recipient's message in this one transaction (nothing is published here).
            page: lifecycle.Queued | None = lifecycle.launch(s, action.id, now, settings)
            while page is not None and page.fan_out_after is not None:
                page = lifecycle.fan_out_step(
                    s, page.bulletin_id, page.fan_out_after, now, size=lifecycle.FAN_OUT_LARGEST
                )
        s.commit()
    return False


def prepare(engine, rng: random.Random) -> tuple[Population, int]:
    reused = ensure_actions(engine)
    with Session(engine) as s:
        by_phone: dict[str, list[tuple[int, str]]] = {}
        actions = []
        for alert, _expires in open_alerts(s):
            phones = s.scalars(alert_phones(alert.action_id)).all()
            for p in phones:
                by_phone.setdefault(p, []).append((alert.action_id, alert.dial_string))
            actions.append((alert.action_id, alert.action_code, len(phones)))
        # Tips of earlier runs: the tip log stays the size of one run.
        s.execute(delete(Tip).where(Tip.call_id.startswith(MARK)))
        s.commit()
        cache = RouteCache(REDIS_URL, prefix=PREFIX)
        for key in cache.redis.scan_iter(f"{PREFIX}*"):  # entries of actions closed since
            cache.redis.delete(key)
        written = cache.rebuild(s)
        assert cache.is_complete(), "the route cache must be complete after rebuild"
        cache.close()
    single = {p: a[0] for p, a in by_phone.items() if len(a) == 1}
    unknown: list[str] = []
    while len(unknown) < 1000:
        n = f"+3169{rng.randrange(10**7):07d}"
        if n not in by_phone:
            unknown.append(n)
    pop = Population(single, sum(len(a) > 1 for a in by_phone.values()), unknown, actions, reused)
    return pop, written


def asterisk_callerid(e164: str) -> str:
    """The caller ID as a Dutch trunk presents it: national format at home, 00… abroad."""
    return "0" + e164[3:] if e164.startswith("+31") else "00" + e164[1:]


# --- servers (subprocesses) ---------------------------------------------------------------------


def _trivial(agi) -> None:
    agi.set_variable("BN_DIAL", TRIVIAL_DIAL)


# The stamps the profile takes per call in the real server (perf_counter_ns: CLOCK_MONOTONIC, the
# same clock in every process, so they line up with the client's).
ACCEPTED, THREAD, ENV_READ, LOOKUP, LOOKED_UP, DIAL_SENT, REDIS = range(7)


def _profiled(server_mod, agi_mod, context_mod) -> dict[str, list]:
    """Stamp the steps of each call by wrapping them in this process (the files are untouched):
    agi_uniqueid → [accepted, thread running, env read, lookup start, lookup end, BN_DIAL sent,
    (Redis answered?, the Lua round trip's duration)]."""
    per_call: dict[str, list] = {}
    local = threading.local()
    accepted: dict[int, int] = {}  # id(socket) → when accepted (sockets take no attributes)
    srv = server_mod.FastAGIServer

    get_request = srv.get_request

    def _get_request(self):
        sock, addr = get_request(self)
        accepted[id(sock)] = time.perf_counter_ns()
        return sock, addr

    srv.get_request = _get_request

    finish_request = srv.finish_request

    def _finish_request(self, request, client_address):
        local.rec = [accepted.pop(id(request), None), time.perf_counter_ns(), None, None, None, None, None]
        return finish_request(self, request, client_address)

    srv.finish_request = _finish_request

    get_env = agi_mod.AGISession._get_agi_env

    def _get_env(self):
        get_env(self)
        local.rec[ENV_READ] = time.perf_counter_ns()
        per_call[self.env.get("agi_uniqueid", "")] = local.rec

    agi_mod.AGISession._get_agi_env = _get_env

    arrive = context_mod.IvrContext.arrive

    def _arrive(self, *a, **kw):
        local.rec[LOOKUP] = time.perf_counter_ns()
        out = arrive(self, *a, **kw)
        local.rec[LOOKED_UP] = time.perf_counter_ns()
        return out

    context_mod.IvrContext.arrive = _arrive

    lua = TipStream.arrive

    def _lua(self, *a, **kw):  # raises: Redis could not answer (error, timeout), the lookup goes to SQL
        start = time.perf_counter_ns()
        local.rec[REDIS] = (False, 0)
        out = lua(self, *a, **kw)
        local.rec[REDIS] = (True, time.perf_counter_ns() - start)
        return out

    TipStream.arrive = _lua

    set_variable = agi_mod.AGISession.set_variable

    def _set_variable(self, name, value):
        if name == "BN_DIAL":
            local.rec[DIAL_SENT] = time.perf_counter_ns()  # set_variable writes before it waits
        return set_variable(self, name, value)

    agi_mod.AGISession.set_variable = _set_variable
    return per_call


def write_tips(conn) -> None:
    """The tip-writer process of the real server's run: as `burgernet tip-writer`, with the
    bench's key prefix; sends its CPU times when asked, stops when told."""
    from gateway.storage.db import make_engine, session_factory
    from gateway.tipline.tipstream import TipStreamWriter

    engine = make_engine(PG_URL)
    stream = TipStream(REDIS_URL, prefix=PREFIX)
    writer = TipStreamWriter(stream, session_factory(engine), "bench-writer")
    stop = threading.Event()
    thread = threading.Thread(target=writer.run, args=(stop,), kwargs={"block_ms": 100}, daemon=True)
    thread.start()
    conn.send("ready")
    while conn.recv() != "stop":
        conn.send(os.times())
    stop.set()
    thread.join(10)
    conn.send(os.times())


class WriterProcess:
    def __init__(self):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=write_tips, args=(child,), name="tip-writer", daemon=True)
        self.proc.start()
        child.close()
        assert self.conn.recv() == "ready"

    def cpu(self) -> float:
        self.conn.send("times")
        t = self.conn.recv()
        return t.user + t.system

    def stop(self) -> float:
        self.conn.send("stop")
        t = self.conn.recv()
        self.proc.join(10)
        return t.user + t.system


def serve(kind: str, conn, profile: bool) -> None:
    """A server process: send the port, serve until told to stop, send stats and CPU time back."""
    import ivr.agi
    import ivr.context
    import ivr.server
    from gateway.storage.db import make_engine, session_factory
    from ivr.handlers import registry

    marks = _profiled(ivr.server, ivr.agi, ivr.context) if profile else {}
    if kind == "real":
        # As ivr.main.make_context builds it in production, with the bench's key prefix.
        engine = make_engine(PG_URL)
        cache = RouteCache(REDIS_URL, prefix=PREFIX)
        stream = TipStream(REDIS_URL, prefix=PREFIX)
        handlers = registry(ivr.context.IvrContext(session_factory(engine), cache, stream=stream))
    else:
        handlers = {"tipline": _trivial}
    server = ivr.server.FastAGIServer(("127.0.0.1", 0), handlers)
    server.start_in_background()
    conn.send(server.server_address[1])
    while conn.recv() != "stop":  # "times": the process's CPU times so far
        conn.send(os.times())
    conn.send((asdict(server.stats), marks))
    server.shutdown()
    server.server_close()


class ServerProcess:
    def __init__(self, kind: str, profile: bool, layout: str):
        self.kind = kind
        if layout == "split":
            ctx = multiprocessing.get_context("spawn")
            self.conn, child = ctx.Pipe()
            self.proc = ctx.Process(
                target=serve, args=(kind, child, profile), name=f"fastagi-{kind}", daemon=True
            )
        else:  # the same process, a thread: for comparing layouts
            self.conn, child = multiprocessing.Pipe()
            self.proc = threading.Thread(
                target=serve, args=(kind, child, profile), name=f"fastagi-{kind}", daemon=True
            )
        self.proc.start()
        if layout == "split":
            child.close()  # so that a server that dies is an EOFError here, not a hang
        self.port = self.conn.recv()

    def times(self):
        """The server process's os.times()."""
        self.conn.send("times")
        return self.conn.recv()

    def stop(self):
        self.conn.send("stop")
        out = self.conn.recv()
        self.proc.join(10)
        return out


# --- the client: Asterisk's side ------------------------------------------------------------------


@dataclass
class Call:
    kind: str  # "alerted" or "unknown"
    uniqueid: str = ""
    sent_ns: int = 0  # perf_counter_ns when the environment went out
    decision_ns: int | None = None
    session_ns: int = 0
    dial: str | None = None
    get_data: int = 0


def env_bytes(callerid: str, uniqueid: str) -> bytes:
    from ivr.simulator import env_block

    env = env_block("tipline", callerid=callerid, uniqueid=uniqueid, agi_arg_1=MELDKAMER, agi_arg_2=PROMPTS)
    return ("\n".join(f"{k}: {v}" for k, v in env.items()) + "\n\n").encode()


_DIAL = b'SET VARIABLE "BN_DIAL" '


async def one_call(port: int, env: bytes, call: Call) -> Call:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        start = call.sent_ns = time.perf_counter_ns()
        writer.write(env)
        while line := await reader.readline():
            if call.decision_ns is None and line.startswith(_DIAL):
                call.decision_ns = time.perf_counter_ns() - start
                call.dial = line[len(_DIAL) :].strip().strip(b'"').decode()
            if line.startswith(b"GET DATA"):
                call.get_data += 1
                writer.write(b"200 result= (timeout)\n")
            else:
                writer.write(b"200 result=1\n")
        call.session_ns = time.perf_counter_ns() - start
    finally:
        writer.close()
    return call


@dataclass
class Run:
    server: str
    counted: list[Call] = field(default_factory=list)
    wall_s: float = 0.0
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    marks: dict = field(default_factory=dict)
    planned: dict = field(default_factory=dict)  # sessions started, by kind of caller


async def drive(
    server: ServerProcess,
    pop: Population,
    calls: int,
    warmup: int,
    concurrency: int,
    seed: int,
    token: str,
    rate: float | None = None,
) -> Run:
    """Keep `concurrency` sessions in flight (or, with `rate`, start calls at that rate with at most
    `concurrency` in flight); count calls [warmup, warmup + calls)."""
    rng = random.Random(seed)
    singles = sorted(pop.single)
    total = warmup + calls + concurrency
    plan = []
    for i in range(total):
        if rng.random() < UNKNOWN_SHARE:
            phone, kind = rng.choice(pop.unknown), "unknown"
        else:
            phone, kind = rng.choice(singles), "alerted"
        plan.append((kind, phone, env_bytes(asterisk_callerid(phone), f"{token}-{server.kind}-{i}")))
    run = Run(server.kind)
    for kind, _phone, _env in plan:
        run.planned[kind] = run.planned.get(kind, 0) + 1
    window: dict[str, object] = {}
    counted_done = 0

    async def one(i: int) -> None:
        nonlocal counted_done
        if i == warmup:  # the measured window opens when the first counted call starts
            window["cpu"], window["srv"] = time.process_time(), server.times()
            window["t"] = time.perf_counter()
        kind, phone, env = plan[i]
        call = Call(kind, f"{token}-{server.kind}-{i}")
        try:
            await asyncio.wait_for(one_call(server.port, env, call), CALL_TIMEOUT_S)
        except (TimeoutError, OSError) as exc:
            run.errors.append(f"call {i}: {type(exc).__name__} {exc}")
            call.decision_ns = None
        if not warmup <= i < warmup + calls:
            return
        run.counted.append(call)
        expect = (
            TRIVIAL_DIAL
            if server.kind == "trivial"
            else MELDKAMER
            if kind == "unknown"
            else pop.single[phone][1]
        )
        if call.decision_ns is None or call.dial != expect:
            run.errors.append(f"call {i} ({kind} {phone}): BN_DIAL {call.dial!r}, expected {expect!r}")
        counted_done += 1
        if counted_done == calls:  # the window closes with the last counted call
            run.wall_s = time.perf_counter() - window["t"]
            run.client_cpu_s = time.process_time() - window["cpu"]
            end = server.times()
            run.server_cpu_s = (end.user + end.system) - (window["srv"].user + window["srv"].system)

    if rate is None:  # closed loop: each of `concurrency` workers starts its next call at once
        next_i = 0

        async def worker() -> None:
            nonlocal next_i
            while next_i < total:
                next_i += 1
                await one(next_i - 1)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    else:  # open loop: arrivals at a fixed rate, whatever the server does
        loop, slots, tasks = asyncio.get_running_loop(), asyncio.Semaphore(concurrency), []
        t0 = loop.time()

        async def limited(i: int) -> None:
            try:
                await one(i)
            finally:
                slots.release()

        for i in range(total):
            await asyncio.sleep(max(0.0, t0 + i / rate - loop.time()))
            await slots.acquire()
            tasks.append(asyncio.create_task(limited(i)))
        await asyncio.gather(*tasks)
    run.stats, run.marks = server.stop()
    return run


@dataclass
class TipLogCheck:
    line: str
    errors: list[str]


def check_tip_log(writer: WriterProcess, token: str, run: Run, timeout_s: float = 120.0) -> TipLogCheck:
    """Wait for the tip writer to empty the stream, then check that every session of the real
    server's run has its tip row, once, matched by caller ID exactly for the alerted callers."""
    client = RouteCache(REDIS_URL, prefix=PREFIX).redis
    stream = TipStream(REDIS_URL, prefix=PREFIX)
    t, deadline = time.perf_counter(), time.perf_counter() + timeout_s
    while client.xlen(stream.key) and time.perf_counter() < deadline:
        time.sleep(0.05)
    caught_up, left = time.perf_counter() - t, client.xlen(stream.key)
    cpu_s = writer.stop()
    dead = client.xlen(stream.dead_key)
    stream.close()
    client.close()
    sessions = sum(run.planned.values())
    engine = make_engine(PG_URL)
    with Session(engine) as s:
        rows, distinct, by_caller = s.execute(
            select(
                func.count(Tip.id),
                func.count(func.distinct(Tip.call_id)),
                func.count(Tip.id).filter(Tip.matched_by == MatchedBy.caller_id),
            ).where(Tip.call_id.startswith(f"{token}-real-"))
        ).one()
    engine.dispose()
    errors = []
    if left or dead:
        errors.append(f"tip stream: {left} records not written after {timeout_s:.0f} s, {dead} refused")
    if rows != sessions or distinct != sessions or by_caller != run.planned.get("alerted", 0):
        errors.append(
            f"tip rows: {rows} ({distinct} calls, {by_caller} matched by caller ID) for {sessions} sessions "
            f"({run.planned.get('alerted', 0)} alerted)"
        )
    line = (
        f"real: tip log {rows:,} rows for {sessions:,} sessions ({by_caller:,} matched by caller ID), "
        f"{'complete' if not errors else 'INCOMPLETE'}; tip writer caught up {caught_up:.1f} s after the "
        f"last call, its CPU {cpu_s / sessions * 1000:.2f} ms per call (own process, PostgreSQL's not counted)"
    )
    return TipLogCheck(line, errors)


# --- reporting ------------------------------------------------------------------------------------


def pct(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile, in ms."""
    k = max(0, min(len(sorted_ns) - 1, round(q / 100 * len(sorted_ns) + 0.5) - 1))
    return sorted_ns[k] / 1e6


def summary(ns: list[int]) -> tuple[int, float, float, float]:
    s = sorted(ns)
    return len(s), pct(s, 50), pct(s, 99), s[-1] / 1e6


def print_profile(run: Run) -> None:
    """Where the decision time of the counted alerted calls goes, from the real server's stamps."""
    steps: dict[str, list[int]] = {
        "waiting to be accepted (backlog)": [],
        "accept → handler thread running": [],
        "thread running → environment read": [],
        "environment read → lookup starts": [],
        "lookup + arrival logged (ctx.arrive)": [],
        "lookup done → BN_DIAL written": [],
        "BN_DIAL written → read by the client": [],
    }
    cache: dict[bool, list[int]] = {True: [], False: []}  # the Lua round trip answered or not
    for call in run.counted:
        rec = run.marks.get(call.uniqueid)
        if call.kind != "alerted" or rec is None or call.decision_ns is None or None in rec[: DIAL_SENT + 1]:
            continue
        # Stamps before the environment was sent (an early accept) count from the send.
        t = (
            [call.sent_ns]
            + [max(x, call.sent_ns) for x in rec[: DIAL_SENT + 1]]
            + [call.sent_ns + call.decision_ns]
        )
        for name, a, b in zip(steps, t, t[1:]):
            steps[name].append(b - a)
        if rec[REDIS] is not None:
            cache[rec[REDIS][0]].append(rec[REDIS][1])
    print("real server, where the decision time goes (counted alerted calls; the steps add up to it):")
    for name, ns in steps.items():
        if ns:
            n, p50, p99, mx = summary(ns)
            print(
                f"  {name:<38} mean {sum(ns) / n / 1e6:7.2f} ms  p50 {p50:7.2f}  p99 {p99:7.2f}  max {mx:7.1f}"
            )
    for answered, ns in cache.items():
        if ns:
            n, p50, p99, mx = summary(ns)
            what = "Redis answered" if answered else "Redis gave up (timeout/error) → SQL fallback"
            print(
                f"  lookup + log script: {what:<44} {n:>6,} calls, Redis part p50 {p50:.2f} p99 {p99:.2f} max {mx:.1f} ms"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tipline", description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="counted calls per server")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument(
        "--layout",
        choices=("split", "single"),
        default="split",
        help="split: servers in subprocesses, client in this process (default); single: all in this process",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="open loop: start calls at this rate (calls/s), at most --concurrency in flight",
    )
    parser.add_argument("--profile", action="store_true", help="time the steps of a call in the real server")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    warmup = max(args.calls // 10, args.concurrency)

    start = time.perf_counter()
    engine = prepare_postgresql(1_600_000, reseed=False)
    pop, written = prepare(engine, random.Random(args.seed))
    engine.dispose()
    print(
        f"data: {'reused' if pop.reused else 'launched'} {len(pop.actions)} open actions "
        f"({', '.join(f'#{a} code {c}: {n:,}' for a, c, n in pop.actions)} numbers); "
        f"route cache {PREFIX!r}: {written:,} numbers; callers: {len(pop.single):,} with one alert, "
        f"{pop.several} with several (menu, not used), unknown {UNKNOWN_SHARE:.0%} of calls "
        f"({time.perf_counter() - start:.1f} s)",
        file=sys.stderr,
    )
    if len(pop.single) < 1000:
        print("too few alerted numbers: is another run's data in the way?", file=sys.stderr)
        return 2

    token = f"{MARK}-{int(time.time())}"
    runs = {}
    for kind in ("trivial", "real"):
        # The real server's tip records go to the tip stream; its writer process runs alongside,
        # as in production, and its CPU competes with the servers' on this machine.
        writer = WriterProcess() if kind == "real" else None
        server = ServerProcess(kind, args.profile and kind == "real", args.layout)
        t = time.perf_counter()
        runs[kind] = asyncio.run(
            drive(server, pop, args.calls, warmup, args.concurrency, args.seed, token, args.rate)
        )
        print(
            f"{kind}: {warmup + args.calls + args.concurrency:,} sessions in {time.perf_counter() - t:.1f} s",
            file=sys.stderr,
        )
    tip_log = check_tip_log(writer, token, runs["real"])

    print(
        f"tip-line benchmark: {args.calls:,} counted calls per server ({warmup:,} warm-up), "
        + (
            f"arrivals at {args.rate:g}/s, at most {args.concurrency} in flight"
            if args.rate
            else f"{args.concurrency} sessions in flight"
        )
        + f", layout {args.layout}, "
        f"{len(pop.single):,} alerted callers + unknown callers ({UNKNOWN_SHARE:.0%})"
    )
    header = (
        f"{'server':<8} {'callers':<8} {'calls':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'session p50':>11} {'calls/s':>8} {'srv CPU/call':>12} {'client CPU':>10}"
    )
    if args.layout == "single":
        header += "  (single: CPU of the one process, client included)"
    print(header)
    print("-" * len(header))
    figures = {}
    for kind, run in runs.items():
        for who in ("alerted", "unknown"):
            calls = [c for c in run.counted if c.kind == who and c.decision_ns is not None]
            if not calls:
                continue
            n, p50, p99, mx = summary([c.decision_ns for c in calls])
            session_p50 = summary([c.session_ns for c in calls])[1]
            figures[(kind, who)] = (p50, p99, mx)
            print(
                f"{kind:<8} {who:<8} {n:>6,} {p50:>8.2f} {p99:>8.2f} {mx:>8.1f} {session_p50:>11.2f} "
                f"{args.calls / run.wall_s:>8,.0f} {run.server_cpu_s / args.calls * 1000:>9.2f} ms "
                f"{run.client_cpu_s / run.wall_s:>9.0%}"
            )
    for kind, run in runs.items():
        print(
            f"{kind}: server stats {run.stats}; {len(run.errors)} errors"
            + (f", first: {run.errors[0]}" if run.errors else "")
        )
    print(tip_log.line)
    if args.profile:
        print_profile(runs["real"])
    total_errors = sum(len(r.errors) for r in runs.values()) + len(tip_log.errors)

    triv = figures[("trivial", "alerted")]
    real = figures[("real", "alerted")]
    unknown = figures.get(("real", "unknown"))
    ratio = real[1] / triv[1]
    if unknown:
        print(
            f"tipline, unknown callers (3 code prompts answered at once, then the meldkamer): "
            f"p99 {unknown[1]:.1f} ms, p50 {unknown[0]:.1f} ms (not part of the goal)"
        )
    print(
        f"tipline: p99 {real[1]:.1f} ms vs trivial {triv[1]:.1f} ms, ratio {ratio:.1f} "
        f"(goal <= {GOAL_RATIO:g})"
    )
    return 0 if ratio <= GOAL_RATIO and total_errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
