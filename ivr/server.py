"""The FastAGI server: one thread per call, handlers looked up by name in an explicit registry.

Threads, not asyncio: pyst2's command layer is blocking, and a call spends nearly all its time
waiting on Asterisk, so hundreds of mostly idle threads are cheap. Whatever a handler does wrong,
the caller is never left in silence: the dialplan sends a call whose handler failed to the
`[agi_fail]` context (it checks the variables the handler should have set).

FastAGI has no authentication of its own, so the port must never be reachable from outside
(docs/security.md). Besides: only the allowed Asterisk addresses are served (loopback by
default), a connection that sends nothing for `first_line_timeout` seconds is closed, and a
hangup record must carry its call's token (ivr/handlers/tipline_hangup.py).
"""

from __future__ import annotations

import ipaddress
import logging
import socketserver
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from asterisk.agi import AGIException

from gateway import metrics
from ivr.agi import AGISession

log = logging.getLogger(__name__)

Handler = Callable[[AGISession], None]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclass
class ServerStats:
    calls: int = 0
    failures: int = 0
    hangups: int = 0
    refused: int = 0  # connections from addresses not allowed


class _Connection(socketserver.StreamRequestHandler):
    server: FastAGIServer

    def handle(self) -> None:
        # Asterisk sends the AGI environment at once: a connection silent for longer is no call.
        self.connection.settimeout(self.server.first_line_timeout)
        wfile = self.connection.makefile("w", encoding="utf-8", newline="\n")
        self.server.count("calls")
        held = metrics.CALLS_HELD.labels("agi")
        held.inc()
        try:
            agi = AGISession(self.rfile, wfile)
            self.connection.settimeout(self.server.command_timeout)
            handler = self.server.handlers.get(agi.script)
            if handler is None:
                log.warning("no handler %r; known: %s", agi.script, ", ".join(sorted(self.server.handlers)))
                agi.verbose(f"burgernet: no FastAGI handler named {agi.script!r}", 1)
                return
            handler(agi)
        except AGIException as exc:  # hangups (the caller went away) and AGI-level errors
            self.server.count("hangups" if "hangup" in type(exc).__name__.lower() else "failures")
            log.info("AGI session ended: %s", type(exc).__name__)
        except OSError as exc:  # the socket broke or timed out
            self.server.count("failures")
            log.info("AGI connection lost: %s", exc)
        except Exception:  # a bug in a handler must not take the server down
            self.server.count("failures")
            log.exception(
                "handler %r failed; the dialplan falls back to [agi_fail]",
                getattr(locals().get("agi"), "script", "?"),
            )
        finally:
            held.dec()
            try:
                wfile.close()
            except OSError:
                pass


class FastAGIServer(socketserver.ThreadingTCPServer):
    """Serves `handlers` (name → function of an AGISession) on host:port."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512  # bursts of hundreds of calls arriving at once

    def __init__(
        self,
        address: tuple[str, int],
        handlers: dict[str, Handler],
        command_timeout: float = 300,
        *,
        allowed: Sequence[Network] | None = LOOPBACK,
        first_line_timeout: float = 10,
    ):
        """`allowed`: the Asterisk addresses served (None: any — only on a closed network)."""
        self.handlers = dict(handlers)
        self.command_timeout = command_timeout
        self.first_line_timeout = first_line_timeout
        self.allowed = None if allowed is None else tuple(allowed)
        self.stats = ServerStats()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self.in_progress = 0  # AGI sessions being served now (a seam for a calls-in-progress gauge)
        super().__init__(address, _Connection)

    def process_request_thread(self, request, client_address) -> None:
        with self._lock:
            self.in_progress += 1
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self.in_progress -= 1
                self._idle.notify_all()

    def drain(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for the sessions in progress to end (after `shutdown()`:
        no new ones start); the number still running then."""
        with self._idle:
            self._idle.wait_for(lambda: self.in_progress == 0, timeout)
            return self.in_progress

    def verify_request(self, request, client_address) -> bool:
        """RULE: only the allowed Asterisk addresses reach the handlers."""
        if self.allowed is None or is_allowed(client_address[0], self.allowed):
            return True
        self.count("refused")
        log.warning("FastAGI connection from %s refused: not in IVR_ALLOWED_HOSTS", client_address[0])
        return False

    def count(self, what: str) -> None:
        with self._lock:
            setattr(self.stats, what, getattr(self.stats, what) + 1)

    def start_in_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="fastagi", daemon=True)
        thread.start()
        return thread


def is_allowed(host: str, allowed: Sequence[Network]) -> bool:
    """Whether `host` lies in one of the `allowed` networks (an IPv4-mapped IPv6 address as IPv4)."""
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in allowed)
