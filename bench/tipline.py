"""Tip-line benchmark: how long the real `tipline` handler takes to route a call, against a trivial one.

    .venv/bin/python -m bench.tipline [--calls 20000] [--concurrency 200] [--layout split|single]
                                      [--profile]

Data: the seeded national population in PostgreSQL (`burgernet_bench`, prepared and reused as in
bench.targeting) with three open actions (300 m around the centres of Utrecht, Amsterdam and
Rotterdam: ~2,100 numbers alerted in total), launched once through gateway.actions.lifecycle and
reused while they stay open for another quarter of an hour. A RouteCache with its own key prefix
(`bench-tipline:`) is filled by `rebuild`.

Servers: (a) the real FastAGIServer with the real handler registry over that database and cache;
(b) a FastAGIServer whose only handler `tipline` sets BN_DIAL and returns. Both are measured with
the same client, one after the other: a pool keeping `--concurrency` FastAGI sessions in flight,
playing Asterisk's side of a call to `tipline` (the dialplan's AGI arguments) and answering every
command as Asterisk does (`200 result=1`; GET DATA: `200 result= (timeout)`). Per call it times
from sending the environment block to receiving `SET VARIABLE "BN_DIAL" …` — the routing decision.
90% of the calls come from numbers that received exactly one open alert (the main figure); 10% from
unknown numbers, which the real handler asks for the action code three times (GET DATA) before it
decides, so they are reported apart. Warm-up calls (the first 10%) and the last `--concurrency`
calls (issued while the pool drains) are run but not counted: every counted call had the full
concurrency around it.

Layout (why the client is a separate process). The machine has 2 cores and CPython runs one
thread at a time per process. With the client's event loop in the servers' process, the client and
the server threads share one GIL: the client cannot read a decision while a handler thread runs,
and the GIL switch interval (5 ms) shows up in every latency. So each server runs in its own
subprocess (multiprocessing, spawn) and the client — one asyncio event loop, cheap per session —
in the main process; the server that is not being measured sits idle in `select`. Measured on this
machine (2 cores, 20,000 calls, 200 in flight; `--layout single` runs servers and client in one
process): see bench/README.md for the figures of both layouts. PostgreSQL and Redis share the same
two cores in either layout.

`--profile` wraps (in the real server's process only, never in the code under test on disk) the
steps of a call — accept → handler thread running → environment read → route lookup (Redis) →
BN_DIAL sent → tip row written — and prints where the time goes. The wrappers cost a little, so
the main figure comes from a run without them.
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
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bench.targeting import PG_ADMIN_URL, PG_DB, prepare_postgresql
from gateway.actions import lifecycle
from gateway.config import Settings
from gateway.storage.models import Action, ActionStatus, ActionType, Centralist, Tip
from gateway.tipline.lookup import RouteCache, alert_phones, open_alerts

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
    now = datetime.now(timezone.utc)
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
            action = Action(type=ActionType.robbery, description=f"{MARK}: man met rode jas, {place}.",
                            lat=lat, lon=lon, radius_m=RADIUS_M, send_sms=True, send_voice=True,
                            centralist_id=centralist.id)
            s.add(action)
            s.flush()
            lifecycle.launch(s, action.id, now, settings)
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


def _profiled(server_mod, agi_mod, context_mod, handler_mod) -> dict[str, list]:
    """Time the steps of each call by wrapping them in this process (the files are untouched)."""
    marks: dict[str, list] = {"accept→thread": [], "thread→env read": [], "env read→lookup done": [],
                              "lookup (alerts_for)": [], "lookup done→BN_DIAL sent": [],
                              "tip row (_log, after the decision)": []}
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
        now = time.perf_counter_ns()
        t = accepted.pop(id(request), None)
        if t is not None:
            marks["accept→thread"].append(now - t)
        local.t = now
        return finish_request(self, request, client_address)
    srv.finish_request = _finish_request

    get_env = agi_mod.AGISession._get_agi_env
    def _get_env(self):
        get_env(self)
        now = time.perf_counter_ns()
        marks["thread→env read"].append(now - local.t)
        local.t = now
    agi_mod.AGISession._get_agi_env = _get_env

    alerts_for = context_mod.IvrContext.alerts_for
    def _alerts_for(self, phone):
        start = time.perf_counter_ns()
        out = alerts_for(self, phone)
        now = time.perf_counter_ns()
        marks["lookup (alerts_for)"].append(now - start)
        marks["env read→lookup done"].append(now - local.t)
        local.t = now
        return out
    context_mod.IvrContext.alerts_for = _alerts_for

    set_variable = agi_mod.AGISession.set_variable
    def _set_variable(self, name, value):
        if name == "BN_DIAL" and getattr(local, "t", None) is not None:
            marks["lookup done→BN_DIAL sent"].append(time.perf_counter_ns() - local.t)
            local.t = None
        return set_variable(self, name, value)
    agi_mod.AGISession.set_variable = _set_variable

    log = handler_mod._log
    def _log(*a, **kw):
        start = time.perf_counter_ns()
        try:
            return log(*a, **kw)
        finally:
            marks["tip row (_log, after the decision)"].append(time.perf_counter_ns() - start)
    handler_mod._log = _log
    return marks


def serve(kind: str, conn, profile: bool) -> None:
    """A server process: send the port, serve until told to stop, send stats and CPU time back."""
    import ivr.agi
    import ivr.context
    import ivr.handlers.tipline
    import ivr.server
    from gateway.storage.db import make_engine, session_factory
    from ivr.handlers import registry

    # sys.modules: the package ivr.handlers exports the function `tipline` under the module's name.
    marks = _profiled(ivr.server, ivr.agi, ivr.context, sys.modules["ivr.handlers.tipline"]) if profile else {}
    if kind == "real":
        # As ivr.main.make_context builds it in production, with the bench's key prefix.
        engine = make_engine(PG_URL)
        cache = RouteCache(REDIS_URL, prefix=PREFIX)
        handlers = registry(ivr.context.IvrContext(session_factory(engine), cache))
    else:
        handlers = {"tipline": _trivial}
    server = ivr.server.FastAGIServer(("127.0.0.1", 0), handlers)
    server.start_in_background()
    conn.send(server.server_address[1])
    while (msg := conn.recv()) != "stop":
        if msg == "reset":
            for v in marks.values():
                v.clear()
            conn.send(os.times())
    conn.send((asdict(server.stats), os.times(), marks))
    server.shutdown()
    server.server_close()


class ServerProcess:
    def __init__(self, kind: str, profile: bool, layout: str):
        self.kind = kind
        if layout == "split":
            ctx = multiprocessing.get_context("spawn")
            self.conn, child = ctx.Pipe()
            self.proc = ctx.Process(target=serve, args=(kind, child, profile), name=f"fastagi-{kind}", daemon=True)
        else:  # the same process, a thread: for comparing layouts
            self.conn, child = multiprocessing.Pipe()
            self.proc = threading.Thread(target=serve, args=(kind, child, profile), name=f"fastagi-{kind}", daemon=True)
        self.proc.start()
        if layout == "split":
            child.close()  # so that a server that dies is an EOFError here, not a hang
        self.port = self.conn.recv()

    def reset(self):
        self.conn.send("reset")
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
    decision_ns: int | None = None
    session_ns: int = 0
    dial: str | None = None
    action_id: str | None = None
    get_data: int = 0


def env_bytes(callerid: str, uniqueid: str) -> bytes:
    from ivr.simulator import env_block

    env = env_block("tipline", callerid=callerid, uniqueid=uniqueid, agi_arg_1=MELDKAMER, agi_arg_2=PROMPTS)
    return ("\n".join(f"{k}: {v}" for k, v in env.items()) + "\n\n").encode()


_DIAL = b'SET VARIABLE "BN_DIAL" '
_ACTION = b'SET VARIABLE "BN_ACTION_ID" '


async def one_call(port: int, env: bytes, call: Call) -> Call:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        start = time.perf_counter_ns()
        writer.write(env)
        while line := await reader.readline():
            if call.decision_ns is None and line.startswith(_DIAL):
                call.decision_ns = time.perf_counter_ns() - start
                call.dial = line[len(_DIAL):].strip().strip(b'"').decode()
            elif line.startswith(_ACTION):
                call.action_id = line[len(_ACTION):].strip().strip(b'"').decode()
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


async def drive(server: ServerProcess, pop: Population, calls: int, warmup: int, concurrency: int,
                seed: int, token: str) -> Run:
    """Keep `concurrency` sessions in flight; count calls [warmup, warmup + calls)."""
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
    next_i = 0
    t_first = cpu_first = None
    srv_cpu_first = None
    counted_done = 0

    async def worker():
        nonlocal next_i, t_first, cpu_first, srv_cpu_first, counted_done
        while next_i < total:
            i = next_i
            next_i += 1
            if i == warmup:  # the measured window opens when the first counted call starts
                t_first, cpu_first = time.perf_counter(), time.process_time()
                srv_cpu_first = server.reset() if server.kind else None
            kind, phone, env = plan[i]
            call = Call(kind)
            try:
                await asyncio.wait_for(one_call(server.port, env, call), CALL_TIMEOUT_S)
            except (OSError, asyncio.TimeoutError) as exc:
                run.errors.append(f"call {i}: {type(exc).__name__} {exc}")
                continue
            if warmup <= i < warmup + calls:
                run.counted.append(call)
                expect = MELDKAMER if kind == "unknown" else pop.single[phone][1]
                if server.kind == "trivial":
                    expect = TRIVIAL_DIAL
                if call.decision_ns is None or call.dial != expect:
                    run.errors.append(f"call {i} ({kind} {phone}): BN_DIAL {call.dial!r}, expected {expect!r}")
                elif server.kind == "real" and kind == "alerted" and call.action_id != str(pop.single[phone][0]):
                    run.errors.append(f"call {i}: BN_ACTION_ID {call.action_id!r}, expected {pop.single[phone][0]}")
                counted_done += 1
                if counted_done == calls:  # the window closes with the last counted call
                    run.wall_s = time.perf_counter() - t_first
                    run.client_cpu_s = time.process_time() - cpu_first

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    run.stats, end_times, run.marks = server.stop()
    # CPU of the server process over the whole run (warm-up included) per call: the user+system
    # times at the window's start are known; the end is approximated by the stop.
    run.server_cpu_s = (end_times.user + end_times.system) - (srv_cpu_first.user + srv_cpu_first.system)
    return run


# --- reporting ------------------------------------------------------------------------------------


def pct(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile, in ms."""
    k = max(0, min(len(sorted_ns) - 1, int(round(q / 100 * len(sorted_ns) + 0.5)) - 1))
    return sorted_ns[k] / 1e6


def summary(ns: list[int]) -> tuple[int, float, float, float]:
    s = sorted(ns)
    return len(s), pct(s, 50), pct(s, 99), s[-1] / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tipline", description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="counted calls per server")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--layout", choices=("split", "single"), default="split",
                        help="split: servers in subprocesses, client in this process (default); "
                             "single: all in this process")
    parser.add_argument("--profile", action="store_true", help="time the steps of a call in the real server")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    warmup = max(args.calls // 10, args.concurrency)

    start = time.perf_counter()
    engine = prepare_postgresql(1_600_000, reseed=False)
    pop, written = prepare(engine, random.Random(args.seed))
    engine.dispose()
    print(f"data: {'reused' if pop.reused else 'launched'} {len(pop.actions)} open actions "
          f"({', '.join(f'#{a} code {c}: {n:,}' for a, c, n in pop.actions)} numbers); "
          f"route cache {PREFIX!r}: {written:,} numbers; callers: {len(pop.single):,} with one alert, "
          f"{pop.several} with several (menu, not used), unknown {UNKNOWN_SHARE:.0%} of calls "
          f"({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    if len(pop.single) < 1000:
        print("too few alerted numbers: is another run's data in the way?", file=sys.stderr)
        return 2

    token = f"{MARK}-{int(time.time())}"
    runs = {}
    for kind in ("trivial", "real"):
        server = ServerProcess(kind, args.profile and kind == "real", args.layout)
        t = time.perf_counter()
        runs[kind] = asyncio.run(drive(server, pop, args.calls, warmup, args.concurrency, args.seed, token))
        print(f"{kind}: {warmup + args.calls + args.concurrency:,} sessions in {time.perf_counter() - t:.1f} s",
              file=sys.stderr)

    print(f"tip-line benchmark: {args.calls:,} counted calls per server ({warmup:,} warm-up), "
          f"{args.concurrency} sessions in flight, layout {args.layout}, "
          f"{len(pop.single):,} alerted callers + unknown callers ({UNKNOWN_SHARE:.0%})")
    header = (f"{'server':<8} {'callers':<8} {'calls':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
              f"{'session p50':>11} {'calls/s':>8} {'srv CPU/call':>12} {'client CPU':>10}")
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
            print(f"{kind:<8} {who:<8} {n:>6,} {p50:>8.2f} {p99:>8.2f} {mx:>8.1f} {session_p50:>11.2f} "
                  f"{args.calls / run.wall_s:>8,.0f} {run.server_cpu_s / (warmup + args.calls) * 1000:>9.2f} ms "
                  f"{run.client_cpu_s / run.wall_s:>9.0%}")
    for kind, run in runs.items():
        print(f"{kind}: server stats {run.stats}; {len(run.errors)} errors"
              + (f", first: {run.errors[0]}" if run.errors else ""))
    if args.profile and runs["real"].marks:
        print("real server, steps of a call (all calls incl. warm-up; alerted and unknown):")
        for step, ns in runs["real"].marks.items():
            if ns:
                n, p50, p99, mx = summary(ns)
                print(f"  {step:<36} n={n:>6,}  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  max {mx:7.1f} ms")
    total_errors = sum(len(r.errors) for r in runs.values())

    triv = figures[("trivial", "alerted")]
    real = figures[("real", "alerted")]
    unknown = figures.get(("real", "unknown"))
    ratio = real[1] / triv[1]
    if unknown:
        print(f"tipline, unknown callers (3 code prompts answered at once, then the meldkamer): "
              f"p99 {unknown[1]:.1f} ms, p50 {unknown[0]:.1f} ms (not part of the goal)")
    print(f"tipline: p99 {real[1]:.1f} ms vs trivial {triv[1]:.1f} ms, ratio {ratio:.1f} "
          f"(goal <= {GOAL_RATIO:g})")
    return 0 if ratio <= GOAL_RATIO and total_errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
