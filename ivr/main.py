"""Running the IVR: wire settings to a context, keep the route cache complete, serve."""

from __future__ import annotations

import logging
import signal
import threading

from gateway.config import Settings
from gateway.storage.db import make_engine, session_factory
from gateway.tipline.lookup import RouteCache
from gateway.tipline.tipstream import TipStream
from ivr.context import IvrContext
from ivr.handlers import registry
from ivr.server import FastAGIServer

log = logging.getLogger(__name__)
CACHE_CHECK_SECONDS = 30
# On SIGTERM: how long the AGI sessions in progress may take to finish. A session lasts as long as
# a prompt or a code entry (the dialplan, not the IVR, holds the call while it rings a phone), and
# a hangup handler's session a few milliseconds; what is still running after this is cut off
# (the dialplan sends such a call to [agi_fail]).
DRAIN_SECONDS = 20


def make_context(settings: Settings) -> IvrContext:
    return IvrContext(
        sessions=session_factory(make_engine(settings.sqlalchemy_url)),
        cache=RouteCache(settings.redis_url) if settings.redis_url else None,
        # Tip records via Redis to `burgernet tip-writer` (which must run), not SQL from here.
        stream=TipStream(settings.redis_url) if settings.redis_url else None,
        call_secret=settings.secret_key,  # the same in every IVR process: a hangup may reach another
    )


def keep_cache_complete(ctx: IvrContext, stop: threading.Event, every: float = CACHE_CHECK_SECONDS) -> None:
    """Rebuild the route cache from SQL whenever it is incomplete (first start, Redis restart)."""
    while ctx.cache is not None and not stop.is_set():
        if not ctx.cache.is_complete():
            try:
                with ctx.sessions() as session:
                    log.info("route cache rebuilt: %d numbers", ctx.cache.rebuild(session))
            except Exception:  # the database may be restarting; lookups use SQL meanwhile
                log.exception("route cache rebuild failed; retrying in %.0f s", every)
        stop.wait(every)


def serve_ivr(settings: Settings, host: str, port: int) -> None:
    ctx = make_context(settings)
    stop = threading.Event()
    threading.Thread(target=keep_cache_complete, args=(ctx, stop), name="route-cache", daemon=True).start()
    allowed = settings.ivr_allowed_networks
    if allowed is None:
        log.warning(
            "IVR_ALLOWED_HOSTS is *: any address may use the FastAGI server; keep its port closed to all but Asterisk"
        )
    with FastAGIServer((host, port), registry(ctx), allowed=allowed) as server:
        log.info(
            "FastAGI server on %s:%d for %s: %s",
            host,
            port,
            settings.ivr_allowed_hosts,
            ", ".join(sorted(server.handlers)),
        )
        stop_on_sigterm(server)
        try:
            server.serve_forever()
            server.server_close()  # new connections are refused from here on
            log.info("stopping: %d AGI sessions in progress", server.in_progress)
            if left := server.drain(DRAIN_SECONDS):
                log.warning("stopping with %d AGI sessions still in progress after %d s", left, DRAIN_SECONDS)
        finally:
            stop.set()
            ctx.close()  # what is queued is written before the process ends


def stop_on_sigterm(server: FastAGIServer) -> None:
    """SIGTERM (and SIGINT) make `serve_forever` return: no new connection is accepted. The
    handler only starts the shutdown: `shutdown()` waits for the serving loop, which runs in the
    very thread the handler interrupts."""

    def stop(signum: int, _frame: object) -> None:
        log.info("%s received: accepting no more calls", signal.Signals(signum).name)
        threading.Thread(target=server.shutdown, name="ivr-shutdown", daemon=True).start()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
