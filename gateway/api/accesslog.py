"""The API's access log, without personal data: one line per request — method, path, query,
status and duration — with phone numbers masked and search terms dropped.

Uvicorn's own access log writes the raw query string (`?q=+31612345678`), so `burgernet serve`
switches it off and this middleware writes the log instead.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qsl, unquote, urlencode

from gateway.phone import mask_numbers

log = logging.getLogger("gateway.access")

# RULE: no personal data in logs — the values of these parameters (free search text: a name, a
# number) are never written.
DROPPED_PARAMETERS = {"q"}


def loggable_target(path: str, query_string: bytes) -> str:
    """The request target as it may be logged: numbers masked, search terms dropped."""
    target = mask_numbers(unquote(path))
    if not query_string:
        return target
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    safe = [(name, "-" if name in DROPPED_PARAMETERS else mask_numbers(value)) for name, value in pairs]
    return f"{target}?{urlencode(safe, safe='-*+:,')}"


class AccessLog:
    """ASGI middleware: logs every HTTP request once its response has started."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def remember_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, remember_status)
        finally:
            log.info(
                "%s %s %d %.0f ms",
                scope["method"],
                loggable_target(scope["path"], scope.get("query_string", b"")),
                status[0],
                (time.perf_counter() - started) * 1000,
            )
