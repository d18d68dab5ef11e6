"""Local stand-ins for the map's outside services, for tests: a tile server that draws a street
grid on every tile, and a PDOK Locatieserver compatible geocoder with a few addresses."""

from __future__ import annotations

import json
import re
import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TILE = 256


def _png(width: int, height: int, pixel) -> bytes:
    """A truecolour PNG of pixel(x, y) -> (r, g, b)."""
    rows = b"".join(b"\x00" + bytes(c for x in range(width) for c in pixel(x, y)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _street_tile(x: int, y: int) -> tuple[int, int, int]:
    if x % 64 < 5 or y % 64 < 5:  # streets
        return (255, 255, 255)
    if (x // 64 + y // 64) % 5 == 0:  # a park now and then
        return (196, 223, 180)
    return (238, 230, 214)  # built-up blocks


class _Server:
    def __init__(self, handler):
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                status, kind, body = handler(self.path)
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TileServer(_Server):
    """Serves /{z}/{x}/{y}.png: the same street grid on every tile."""

    def __init__(self):
        self.tile = _png(TILE, TILE, _street_tile)
        super().__init__(self._answer)
        self.url = self.base + "/{z}/{x}/{y}.png"

    def _answer(self, path: str):
        if re.fullmatch(r"/\d+/\d+/\d+\.png", path):
            return 200, "image/png", self.tile
        return 404, "text/plain", b"no such tile"


class Geocoder(_Server):
    """PDOK Locatieserver's free search, for the addresses given: {(postcode, number): (lat, lon)}."""

    def __init__(self, addresses: dict[tuple[str, str], tuple[float, float]]):
        self.addresses = addresses
        super().__init__(self._answer)
        self.url = self.base + "/bzk/locatieserver/search/v3_1/free"

    def _answer(self, path: str):
        parts = urlsplit(path)
        if parts.path != "/bzk/locatieserver/search/v3_1/free":
            return 404, "text/plain", b"not here"
        q = parse_qs(parts.query).get("q", [""])[0]
        match = re.fullmatch(r"postcode:(\w+) AND huisnummer:(\d+)", q)
        docs = []
        if match and (match[1], match[2]) in self.addresses:
            lat, lon = self.addresses[(match[1], match[2])]
            docs = [
                {
                    "weergavenaam": f"Teststraat {match[2]}, {match[1]} Utrecht",
                    "centroide_ll": f"POINT({lon} {lat})",
                }
            ]
        body = {"response": {"numFound": len(docs), "start": 0, "docs": docs}}
        return 200, "application/json", json.dumps(body).encode()
