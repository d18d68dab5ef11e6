"""The `burgernet` command: serve the API, migrate, make the first admin, import, seed, demo."""

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from gateway.config import get_settings

app = typer.Typer(help="Burgernet telephony gateway.", no_args_is_help=True, add_completion=False)


@app.callback()
def _check_configuration() -> None:
    """Refuse to do anything with a configuration that is wrong (e.g. a default secret in production)."""
    try:
        get_settings()
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]).upper() or "configuration"
            typer.echo(f"configuration error: {where}: {err['msg'].removeprefix('Value error, ')}", err=True)
        raise typer.Exit(2) from None


def _sessions():
    from gateway.storage.db import make_engine, session_factory

    return session_factory(make_engine(get_settings().sqlalchemy_url))


def _logging() -> None:
    """Log lines as LOG_FORMAT says (text, or JSON for a collector)."""
    from gateway.logs import configure_logging

    configure_logging(get_settings().log_format)


def _metrics(role: str, port: int | None, *, sessions=None, queue=None) -> None:
    """Serve this process's Prometheus endpoint (METRICS_HOST, METRICS_PORT or --metrics-port)."""
    from gateway.metrics import collectors_for, serve_metrics

    settings = get_settings()
    serve_metrics(settings, role, collectors_for(role, settings, sessions, queue), port=port)


def _exit_cleanly(*_) -> None:
    """SIGTERM before a process installed its own drain: nothing under way yet, exit 0."""
    raise SystemExit(0)


MetricsPort = Annotated[
    int | None,
    typer.Option(help="Port of this process's /metrics and /livez (default METRICS_PORT; 0: none)"),
]


@app.command()
def migrate(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Bring the database schema up to date (Alembic)."""
    from gateway.storage.migrate import upgrade

    url = get_settings().sqlalchemy_url
    upgrade(url, revision)
    typer.echo(f"database at revision {revision}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (default API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default API_PORT)")] = None,
    metrics_port: MetricsPort = None,
) -> None:
    """Serve the HTTP API (and, with HOUSEKEEPING_IN_API or without Redis, the periodic jobs).
    SIGTERM: stop accepting, finish the requests under way and the jobs' current runs, exit."""
    import signal

    import uvicorn

    from gateway.api.app import create_app

    _logging()
    settings = get_settings()
    app = create_app(settings)
    _metrics("api", metrics_port, sessions=app.state.sessions, queue=app.state.queue)
    # uvicorn drains on SIGTERM, then raises the signal again to the handler it found: this one,
    # so that a drained API exits 0 (a SIGTERM before uvicorn listens ends it at once, also 0).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    # The app writes its own access log (gateway.api.accesslog): uvicorn's would hold full
    # phone numbers and search terms from query strings. log_config=None: uvicorn's own lines
    # go through our handler (LOG_FORMAT).
    uvicorn.run(
        app,
        host=host or settings.api_host,
        port=port or settings.api_port,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=30,
    )


@app.command()
def housekeeping(metrics_port: MetricsPort = None) -> None:
    """Run the periodic jobs (expiry, repair of launches and publishes, statistics roll-up,
    pruning) until SIGTERM; only one process at a time works (a PostgreSQL advisory lock), so
    two may run. Set HOUSEKEEPING_IN_API=false for the API when this runs."""
    import asyncio
    import signal

    from gateway import housekeeping as jobs
    from gateway.queue import MemoryQueue, make_queue
    from gateway.tipline.lookup import RouteCache

    signal.signal(signal.SIGTERM, _exit_cleanly)  # until the loop's own handler finishes the jobs
    settings = get_settings()
    queue = make_queue(settings.redis_url)
    if isinstance(queue, MemoryQueue):
        typer.echo(
            "configuration error: REDIS_URL is empty; with the in-process queue the API runs the jobs itself",
            err=True,
        )
        raise typer.Exit(2)
    _logging()
    sessions = _sessions()
    route_cache = RouteCache(settings.redis_url)
    _metrics("housekeeping", metrics_port)

    async def main() -> None:
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):  # finish the runs under way, then stop
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await jobs.run_housekeeping(
            jobs.HousekeepingLock(sessions.kw["bind"]),
            jobs.periodic_jobs(sessions, queue, settings, route_cache),
            stop,
            on_lead=lambda: asyncio.to_thread(jobs.startup_reconcile, sessions, queue, settings, route_cache),
        )

    asyncio.run(main())


@app.command("create-admin")
def create_admin(name: Annotated[str, typer.Argument(help="A name for the key's owner")] = "admin") -> None:
    """Make an admin API user and print its key (shown once)."""
    from gateway import auth
    from gateway.storage.models import Role

    with _sessions()() as session:
        _, key = auth.create_user(session, get_settings().secret_key, name, Role.admin)
        session.commit()
    typer.echo(f"admin {name!r} created; API key (store it now, it is not shown again):\n{key}")


@app.command("import-participants")
def import_participants(
    csv_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    municipality: Annotated[str, typer.Option(help="CBS code of the registering municipality, e.g. GM0344")],
) -> None:
    """Import participants from a CSV file, reporting every bad row."""
    from sqlalchemy import select

    from gateway import participants
    from gateway.storage.models import Municipality

    with _sessions()() as session:
        mid = session.scalar(select(Municipality.id).where(Municipality.cbs_code == municipality))
        if mid is None:
            raise typer.BadParameter(
                f"no municipality with CBS code {municipality}", param_hint="--municipality"
            )
        report = participants.import_csv(session, mid, csv_file.read_text(encoding="utf-8-sig"))
        session.commit()
    for err in report.errors:
        typer.echo(f"line {err.row}: {err.field or '-'}: {err.message}", err=True)
    typer.echo(
        f"{report.rows} rows: {report.created} participants created, {report.updated} updated, {len(report.errors)} errors"
    )
    raise typer.Exit(1 if report.errors else 0)


@app.command()
def seed(
    participants: Annotated[int, typer.Option(min=1, help="How many participants to generate")] = 10_000,
    around: Annotated[
        str | None, typer.Option(help="Only near LAT,LON,RADIUS_KM, e.g. 52.09,5.12,25")
    ] = None,
    rng_seed: Annotated[int, typer.Option(help="Random seed (same seed, same population)")] = 2026,
) -> None:
    """Generate a synthetic participant population (for demos and benchmarks)."""
    from gateway import seed as seeding
    from gateway.storage.db import make_engine

    where = None
    if around:
        try:
            lat, lon, km = (float(x) for x in around.split(","))
        except ValueError:
            raise typer.BadParameter("use LAT,LON,RADIUS_KM", param_hint="--around") from None
        where = (lat, lon, km)
    engine = make_engine(get_settings().sqlalchemy_url)
    summary = seeding.seed(
        engine,
        participants,
        around=where,
        rng_seed=rng_seed,
        progress=lambda n: typer.echo(f"  {n:,} participants", err=True),
    )
    typer.echo(f"seeded {summary}")


@app.command()
def ivr(
    host: Annotated[str | None, typer.Option(help="Listen address (default IVR_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default IVR_PORT)")] = None,
    metrics_port: MetricsPort = None,
) -> None:
    """Serve the FastAGI server for the tip line (Asterisk: AGI(agi://host:port/tipline)).
    SIGTERM: stop serving, write what is queued, exit 0."""
    import signal

    from ivr.main import serve_ivr

    _logging()
    settings = get_settings()
    _metrics("ivr", metrics_port, sessions=_sessions())
    # SIGTERM as Ctrl-C: serve_forever ends with KeyboardInterrupt and serve_ivr closes its
    # context on the way out (tip records still buffered are written).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        serve_ivr(settings, host or settings.ivr_host, port or settings.ivr_port)
    except KeyboardInterrupt:
        pass


@app.command("tip-writer")
def tip_writer(
    consumer: Annotated[
        str | None,
        typer.Option(
            help="This writer's name in the consumer group (default: the host "
            "name); restarted under the same name it finishes its last batch at once"
        ),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Only say whether the writer of this name is alive (health check)")
    ] = False,
    metrics_port: MetricsPort = None,
) -> None:
    """Write the tip line's tip records from Redis to the database until stopped (needed with REDIS_URL)."""
    import signal
    import socket
    import threading

    from gateway.tipline.tipstream import run_tip_writer, writer_alive

    settings = get_settings()
    if not settings.redis_url:
        typer.echo(
            "configuration error: REDIS_URL is empty; without Redis the IVR writes its tip records itself",
            err=True,
        )
        raise typer.Exit(2)
    name = consumer or socket.gethostname()
    if check:
        alive = writer_alive(settings.redis_url, name)
        typer.echo(f"tip writer {name}: {'alive' if alive else 'not seen lately'}")
        raise typer.Exit(0 if alive else 1)
    _logging()
    _metrics("tip-writer", metrics_port)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):  # finish the batch under way, then stop
        signal.signal(signum, lambda *_: stop.set())
    run_tip_writer(settings, name, stop)


prompts_app = typer.Typer(help="The static IVR prompts (prompts/prompts.toml).", no_args_is_help=True)
app.add_typer(prompts_app, name="prompts")


@prompts_app.command("build")
def prompts_build(
    out: Annotated[
        Path | None, typer.Option(help="Where to write the audio (default prompts/sounds)")
    ] = None,
) -> None:
    """Generate every prompt's audio (8 kHz WAV, espeak-ng) and check each has a real duration."""
    from gateway import prompts

    durations = prompts.build(out or prompts.SOUNDS_DIR)
    for prompt_id, seconds in durations.items():
        typer.echo(f"{prompt_id:<24} {seconds:5.1f} s")


@app.command()
def expire() -> None:
    """Close open actions whose time has run out (the server also does this by itself)."""
    from gateway.housekeeping import expire_actions
    from gateway.queue import make_queue

    count = expire_actions(_sessions(), make_queue(get_settings().redis_url))
    typer.echo(f"expired {count} action(s)")


@app.command()
def demo(
    participants: Annotated[int, typer.Option(min=100, help="Synthetic participants around Utrecht")] = 5_000,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Keep serving the API afterwards")
    ] = True,
) -> None:
    """Run the demo: a synthetic region around Utrecht and one action from create to close."""
    from gateway.demo import run_demo
    from ivr.demo_line import DemoTipLine  # the IVR depends on the gateway: wired here, at the top

    run_demo(get_settings(), DemoTipLine, participants=participants, keep_serving=serve_after)


worker_app = typer.Typer(help="The channel workers (one process each).", no_args_is_help=True)
app.add_typer(worker_app, name="worker")


@worker_app.command("voice")
def worker_voice(metrics_port: MetricsPort = None) -> None:
    """Place the spoken alert calls through Asterisk (AMI_HOST…; VOICE_* settings) until stopped."""
    import asyncio
    import signal

    from gateway.queue import make_queue
    from gateway.voice.worker import run_voice_worker

    signal.signal(signal.SIGTERM, _exit_cleanly)  # until the worker's own handler drains
    settings = get_settings()
    if not settings.ami_secret:
        typer.echo(
            "configuration error: AMI_SECRET is empty; set the secret of the AMI user "
            f"{settings.ami_user!r} (asterisk/manager_users.conf)",
            err=True,
        )
        raise typer.Exit(2)
    if not settings.redis_url:
        typer.echo(
            "configuration error: REDIS_URL is empty; the voice worker runs in its own process "
            "and needs the Redis queue",
            err=True,
        )
        raise typer.Exit(2)
    _logging()
    _metrics("voice-worker", metrics_port, sessions=_sessions(), queue=make_queue(settings.redis_url))
    try:
        asyncio.run(run_voice_worker(settings))
    except KeyboardInterrupt:
        pass


@worker_app.command("sms")
def worker_sms(
    name: Annotated[
        str | None, typer.Option(help="Worker id in leases and the queue (default: sms-<host>-<pid>)")
    ] = None,
    metrics_port: MetricsPort = None,
) -> None:
    """Send SMS over the SMPP binds (SMS_BINDS / SMS_BINDS_FILE) and handle receipts and replies until stopped."""
    import asyncio
    import signal

    from gateway.queue import make_queue
    from gateway.sms.binds import BindConfigError
    from gateway.sms.worker import run_sms_worker

    signal.signal(signal.SIGTERM, _exit_cleanly)  # until the worker's own handler drains
    _logging()
    settings = get_settings()
    if settings.redis_url:
        _metrics("sms-worker", metrics_port, queue=make_queue(settings.redis_url))
    try:
        asyncio.run(run_sms_worker(get_settings(), worker_id=name))
    except BindConfigError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    app()
