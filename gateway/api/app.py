"""The FastAPI application: wiring of settings, database, queue, routes and error handling."""

import asyncio
import contextlib
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from gateway import housekeeping
from gateway.api.routes import actions, admin, participants
from gateway.config import Settings, get_settings
from gateway.errors import GatewayError
from gateway.queue import WorkQueue, make_queue, reconcile
from gateway.storage.db import make_engine, session_factory

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    sessions: sessionmaker[Session] | None = None,
    queue: WorkQueue | None = None,
    housekeeping_jobs: bool = True,
) -> FastAPI:
    """The API; tests pass their own sessions and queue and switch the periodic jobs off."""
    settings = settings or get_settings()
    sessions = sessions or session_factory(make_engine(settings.sqlalchemy_url))
    queue = queue or make_queue(settings.redis_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        tasks = []
        if housekeeping_jobs:
            await asyncio.to_thread(housekeeping.startup_reconcile, sessions, queue, settings)
            tasks = [
                asyncio.create_task(
                    housekeeping.run_periodically(
                        "expiry", settings.expiry_check_seconds, lambda: housekeeping.expire_actions(sessions, queue)
                    )
                ),
                asyncio.create_task(
                    housekeeping.run_periodically(
                        "reconcile",
                        settings.reconcile_interval_seconds,
                        lambda: reconcile(sessions, queue, settings.reconcile_grace_seconds),
                    )
                ),
            ]
        yield
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

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

    @app.exception_handler(GatewayError)
    async def _gateway_error(_: Request, exc: GatewayError):
        return JSONResponse(exc.to_json(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError):
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"].removeprefix("Value error, ")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        body = {"error_id": "invalid", "message": f"{first['field']}: {first['message']}", "details": {"errors": errors}}
        return JSONResponse(body, status_code=422)

    @app.get("/health", tags=["health"])
    def health():
        """Liveness for load balancers and compose (no credentials, no personal data)."""
        with sessions() as session:
            session.execute(text("SELECT 1"))
        return {"status": "ok", "queue_backlog": {c: queue.backlog(c) for c in ("sms", "voice")}}

    for module in (actions, participants, admin):
        app.include_router(module.router)
    return app
