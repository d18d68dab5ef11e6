"""The FastAPI application: wiring of settings, database, queue, routes and error handling."""

import asyncio
import logging
import traceback
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway import housekeeping
from gateway.api.accesslog import AccessLog
from gateway.api.deps import CALLER, authenticate_request
from gateway.api.routes import actions, admin, media, messages, participants, stats, templates, tips, web
from gateway.api.throttle import make_login_throttle
from gateway.config import Settings, get_settings
from gateway.errors import GatewayError
from gateway.phone import mask_numbers
from gateway.queue import MemoryQueue, RedisStreamQueue, WorkQueue, make_queue
from gateway.sms.health import read_bind_health
from gateway.storage.db import make_engine, session_factory
from gateway.tipline.lookup import RouteCache

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    sessions: sessionmaker[Session] | None = None,
    queue: WorkQueue | None = None,
    route_cache: RouteCache | None = None,
    housekeeping_jobs: bool = True,
) -> FastAPI:
    """The API; tests pass their own sessions, queue and cache and switch the periodic jobs off."""
    settings = settings or get_settings()
    sessions = sessions or session_factory(make_engine(settings.sqlalchemy_url))
    queue = queue or make_queue(settings.redis_url)
    if route_cache is None and settings.redis_url:
        route_cache = RouteCache(settings.redis_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        stop = asyncio.Event()
        runner = None
        if housekeeping_jobs and (settings.housekeeping_in_api or isinstance(queue, MemoryQueue)):
            # An in-process queue lives only here: its start-up reconcile and repairs must too.
            lock = housekeeping.HousekeepingLock(sessions.kw["bind"])
            jobs = housekeeping.periodic_jobs(sessions, queue, settings, route_cache)
            runner = asyncio.create_task(
                housekeeping.run_housekeeping(
                    lock,
                    jobs,
                    stop,
                    on_lead=lambda: asyncio.to_thread(
                        housekeeping.startup_reconcile, sessions, queue, settings, route_cache
                    ),
                )
            )
        yield
        stop.set()
        if runner is not None:
            await runner  # the jobs under way finish, the lock is released

    app = FastAPI(
        title="Burgernet telephony gateway",
        version="0.1.0",
        description=(
            "Alerts to participants by SMS and voice, tips back from 0800-0011. "
            "Authenticate with `Authorization: Bearer <API key>`."
        ),
        lifespan=lifespan,
    )
    app.state.settings, app.state.sessions, app.state.queue = settings, sessions, queue
    app.state.route_cache = route_cache
    app.state.login_throttle = make_login_throttle(settings)

    @app.exception_handler(GatewayError)
    async def _gateway_error(_: Request, exc: GatewayError):
        return JSONResponse(exc.to_json(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException):
        # The framework's own errors (unknown path, wrong method, unreadable body) in our shape.
        if exc.status_code == 400:  # a body that could not be parsed at all
            return _invalid([{"field": "body", "message": str(exc.detail)}])
        error_id = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        body = {"error_id": error_id, "message": str(exc.detail), "details": {}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected_error(request: Request, exc: Exception):
        # A bug, not bad input: the caller gets the error shape (never a traceback), the log the
        # rest — with phone numbers masked (a database error quotes the row it refused).
        trace = mask_numbers("".join(traceback.format_exception(exc)))
        log.error("%s %s failed:\n%s", request.method, mask_numbers(request.url.path), trace)
        body = {"error_id": "internal", "message": "internal error; it has been logged", "details": {}}
        return JSONResponse(body, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError):
        return _invalid(
            [
                {
                    "field": ".".join(str(p) for p in e["loc"]),
                    "message": e["msg"].removeprefix("Value error, "),
                }
                for e in exc.errors()
            ]
        )

    @app.get("/livez", tags=["health"])
    def livez():
        """Liveness: the process answers (no database, no Redis: a restart would not cure them)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz():
        """Readiness: the database and the queue answer, so requests can be served; 503 if not."""
        checks = {"database": _check(lambda: _ping_database(sessions))}
        if isinstance(queue, RedisStreamQueue):
            checks["redis"] = _check(queue.client.ping)
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "checks": checks}, 200 if ready else 503
        )

    @app.get("/health", tags=["health"])
    def health():
        """Status for people and load balancers (no credentials, no personal data); fails (500)
        when the database does not answer.
        `queue_backlog`: unacknowledged work-queue entries per channel (an SMS entry carries up
        to 100 message ids)."""
        with sessions() as session:
            session.execute(text("SELECT 1"))
        body = {"status": "ok", "queue_backlog": {c: queue.backlog(c) for c in ("sms", "voice")}}
        if isinstance(queue, RedisStreamQueue):
            # Each SMPP bind as its worker reports it (bound, unbound, auth_failed …).
            body["sms_binds"] = read_bind_health(queue.client, queue.prefix)
        return body

    for module in (actions, messages, templates, participants, admin, stats, tips, media):
        app.include_router(module.router)
    web.mount(app)
    app.add_middleware(RequireCredentials)
    app.add_middleware(AccessLog)  # outermost: it sees every answer, the 401s included
    return app


def _ping_database(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        session.execute(text("SELECT 1"))


def _check(probe) -> str:
    """ "ok", or the kind of error the probe raised (never its message: it may name hosts)."""
    try:
        probe()
    except Exception as exc:  # whatever it is, the answer is "not ready"
        return f"failed: {type(exc).__name__}"
    return "ok"


def _invalid(errors: list[dict]) -> JSONResponse:
    """422 in the error shape, naming every field that is wrong (the first in the message)."""
    first = errors[0] if errors else {"field": "", "message": "invalid request"}
    body = {
        "error_id": "invalid",
        "message": f"{first['field']}: {first['message']}",
        "details": {"errors": errors},
    }
    return JSONResponse(body, status_code=422)


class RequireCredentials:
    """Authenticates every API request — key or session cookie, and the CSRF header — before
    anything reads its body; 401 (403) otherwise.

    FastAPI parses a request body before it runs dependencies, so a check in a dependency alone
    would let any caller with `Bearer <anything>` have megabytes parsed first. The caller found
    here is what the routes' dependency (gateway.api.deps.current_user) hands them.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            request = Request(scope)
            try:
                user = await asyncio.to_thread(authenticate_request, request)
            except GatewayError as exc:
                await JSONResponse(exc.to_json(), status_code=exc.status_code, headers=exc.headers)(
                    scope, receive, send
                )
                return
            scope.setdefault("state", {})[CALLER] = user
        await self.app(scope, receive, send)
