"""One SMPP connection to the SMSC on a plain non-blocking socket: PDUs out, PDUs in.

What is sent over it, and what the answers mean, is gateway/sms/bind.py's business.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque

READ_LIMIT = 2**16 + 1024  # the largest PDU accepted: a 64 KiB message_payload and its fields


class ConnectionLost(Exception):
    """The SMSC closed the connection, or stopped answering enquire_link."""


class LinkSilent(ConnectionLost):
    """An enquire_link went unanswered: the connection is open but nobody answers (half-open)."""


class Link:
    """One bound TCP connection on a plain non-blocking socket, read by a callback.

    Not asyncio's streams: when a write fails because the SMSC has closed the connection, a
    stream transport closes at once and its reader raises before handing out what was already
    received — the responses the SMSC sent just before closing, whose submits it had accepted.
    Losing them means sending those messages twice. Here a write error only stops writing; the
    socket is read (one reader callback, registered once) until EOF.
    """

    HIGH_WATER = 256 * 1024

    def __init__(self, sock: socket.socket, mode: str) -> None:
        self.sock, self.mode = sock, mode
        self.loop = asyncio.get_running_loop()
        self.last_heard = time.monotonic()
        self.enquiry_sent: float | None = None
        self.sequence = 1  # for the link's own requests (bind, enquire_link, unbind)
        self._in = bytearray()
        self._pos = 0
        self._pdus: deque[bytes] = deque()
        self._arrived = asyncio.Event()
        self._eof: BaseException | None = None
        self._out = bytearray()
        self._writing = False
        self._sent = asyncio.Event()
        self._sent.set()
        self.broken: BaseException | None = None
        self._fd = sock.fileno()
        self.loop.add_reader(self._fd, self._readable)

    @classmethod
    async def open(cls, host: str, port: int, mode: str) -> Link:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await loop.sock_connect(sock, address)
        except BaseException:
            sock.close()
            raise
        return cls(sock, mode)

    # reading ----------------------------------------------------------------------------------

    def _readable(self) -> None:
        try:
            while True:
                data = self.sock.recv(262144)
                if not data:
                    self._end(ConnectionLost("the SMSC closed the connection"))
                    break
                self._in += data
                if len(data) < 262144:
                    break
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self._end(ConnectionLost(f"connection lost: {exc}"))
        self.last_heard = time.monotonic()
        self._split()

    def _split(self) -> None:
        buf, pos = self._in, self._pos
        while len(buf) - pos >= 16:
            length = int.from_bytes(buf[pos : pos + 4], "big")
            if length < 16 or length > READ_LIMIT:
                self._end(ConnectionLost(f"PDU length {length} out of range"))
                break
            if len(buf) - pos < length:
                break
            self._pdus.append(bytes(buf[pos : pos + length]))
            pos += length
        if pos > 65536 or pos == len(buf):
            del buf[:pos]
            pos = 0
        self._pos = pos
        if self._pdus:
            self._arrived.set()

    def _end(self, exc: BaseException) -> None:
        if self._eof is None:
            self._eof = exc
            self.loop.remove_reader(self._fd)
        self._arrived.set()

    async def _received(self) -> None:
        """Wait for a PDU; raises once the connection has ended and every PDU was read."""
        while not self._pdus:
            if self._eof is not None:
                raise self._eof
            self._arrived.clear()
            await self._arrived.wait()

    async def read_pdu(self) -> bytes:
        await self._received()
        return self._pdus.popleft()

    async def read_pdus(self) -> list[bytes]:
        """Every PDU received so far, at least one: one await for all (two arrive per message sent)."""
        await self._received()
        pdus = list(self._pdus)
        self._pdus.clear()
        return pdus

    # writing ----------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue `data`; everything written in one turn of the event loop goes out in one send."""
        if self.broken is not None:
            return
        self._out += data
        if not self._writing:
            self._writing = True
            self.loop.call_soon(self._first_send)
        if len(self._out) >= self.HIGH_WATER:
            self._sent.clear()

    def _first_send(self) -> None:
        if self.broken is not None or self.sock.fileno() < 0:
            return
        self._writable()
        if self._out and self.broken is None:
            self.loop.add_writer(self._fd, self._writable)

    def _writable(self) -> None:
        try:
            sent = self.sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._broke(exc)
            return
        del self._out[:sent]
        if not self._out:
            self.loop.remove_writer(self._fd)  # no-op when only _first_send ran
            self._writing = False
        if len(self._out) < self.HIGH_WATER:
            self._sent.set()

    def _broke(self, exc: BaseException) -> None:
        # Stop writing; keep reading what the SMSC sent before it closed.
        self.broken = exc
        self._out.clear()
        if self._writing:
            self.loop.remove_writer(self._fd)
            self._writing = False
        self._sent.set()

    async def drain(self) -> None:
        """Wait while much is waiting to be sent (flow control); raises once writing failed."""
        if self.broken is not None:
            raise ConnectionLost(f"writing failed: {self.broken}")
        await self._sent.wait()
        if self.broken is not None:
            raise ConnectionLost(f"writing failed: {self.broken}")

    async def sendall(self, data: bytes) -> None:
        """Write and wait until all of it is with the kernel (bind, unbind)."""
        self.write(data)
        while self._out and self.broken is None:
            await asyncio.sleep(0.01)
        if self.broken is not None:
            raise ConnectionLost(f"writing failed: {self.broken}")

    def next_sequence(self) -> int:
        # Requests of the link itself count down from the top, so they never meet the submits'.
        self.sequence += 1
        return 0x7FFFFFFF - (self.sequence % 0x10000)

    def close(self) -> None:
        if self._eof is None:
            self._end(ConnectionLost("closed"))
        if self._writing:
            self.loop.remove_writer(self._fd)
            self._writing = False
        self.broken = self.broken or ConnectionLost("closed")
        self.sock.close()
