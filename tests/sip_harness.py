"""SIPp (Debian's `sip-tester`) as the operator's trunk and as the phones behind it.

The scenarios live in tests/sip/; a few markers in them (@MEDIA@, @HOLD_MS@, @RING_MS@) are filled
in here per call, the rest is SIPp's own [keyword] syntax. Each SIPp process writes its messages
with timestamps (-trace_msg), which the tests read as the reference clock of a call: when the
phone's 200 OK went out, when the caller's BYE did.

The trunk itself comes from the shipped template asterisk/pjsip_trunk.conf.template, its
placeholders filled in by `trunk_config` — as an operator does with envsubst.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = REPO / "tests" / "sip"
TRUNK_TEMPLATE = REPO / "asterisk" / "pjsip_trunk.conf.template"
AUDIO_PCAP = Path("/usr/share/sip-tester/g711a.pcap")  # Debian's sip-tester: 7.1 s of A-law speech
AUDIO_PCAP_MS = 7100
_PLACEHOLDER = re.compile(r"\$\{(TRUNK_[A-Z_]+)\}")
# -trace_msg: each message starts with a line of dashes, the date and the time (local).
_STAMP = re.compile(r"^-+ (\d{4}-\d{2}-\d{2})[ \t](\d{2}:\d{2}:\d{2}\.\d+)")


def sipp_binary() -> str | None:
    return shutil.which("sipp")


def trunk_config(**values: str) -> str:
    """pjsip_local.conf from the shipped template: every ${TRUNK_…} filled in (KeyError if one
    is not given), nothing else changed."""
    return _PLACEHOLDER.sub(lambda m: values[m[1]], TRUNK_TEMPLATE.read_text())


def media(steps: Iterable[tuple[str, Any]], workdir: Path) -> str:
    """The caller's actions after the answer, as scenario XML: ("pause", ms), ("keys", "4821#")
    sent as RFC 4733 events (`keys_pcap`, written into `workdir`), ("audio", ms) speech from g711a.pcap
    (played `ms` long, repeated as needed), ("pcap", (path, ms)) another recording (`audio_pcap`)."""
    xml = []
    for kind, value in steps:
        if kind == "pause":
            xml.append(f'  <pause milliseconds="{value}"/>')
        elif kind == "keys":
            pcap = keys_pcap(str(value), workdir / f"keys-{len(xml)}.pcap")
            xml.append(_play(pcap))
            xml.append(f'  <pause milliseconds="{400 * len(str(value))}"/>')
        elif kind == "pcap":  # (path, ms it lasts)
            path, ms = value
            xml.append(_play(Path(path)))
            xml.append(f'  <pause milliseconds="{ms}"/>')
        elif kind == "audio":
            left = int(value)
            while left > 0:
                xml.append(_play(AUDIO_PCAP))
                xml.append(f'  <pause milliseconds="{min(left, AUDIO_PCAP_MS)}"/>')
                left -= AUDIO_PCAP_MS
        else:
            raise ValueError(f"unknown media step {kind!r}")
    return "\n".join(xml)


def audio_pcap(wav: Path, pcap: Path, keys: str = "", keys_at_ms: int = 0) -> Path:
    """`wav` as the RTP stream a phone sends: G.711 A-law (ffmpeg encodes), 20 ms per packet, in a
    pcap that SIPp's play_pcap_audio replays (it takes the RTP and its timing, not the addresses).
    `keys`, if any, are sent `keys_at_ms` into it as RFC 4733 events in place of the audio, in the
    same stream."""
    alaw = subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", str(wav), "-ar", "8000", "-ac", "1", "-f", "alaw", "-"],
        capture_output=True,
        check=True,
    ).stdout
    events = dict(_key_events(keys, 8 * keys_at_ms))
    packets, skip_until = [], -1
    for n, i in enumerate(range(0, len(alaw) - 159, 160)):
        if 160 * n in events:
            packets += events[160 * n]
            skip_until = 160 * n + 160 * 8
        if 160 * n >= skip_until:
            packets.append((20_000 * n, 8, n == 0, 160 * n, alaw[i : i + 160]))
    return _write_pcap(pcap, packets)


def keys_pcap(keys: str, pcap: Path) -> Path:
    """`keys` as RFC 4733 telephone events (payload type 101, as the scenarios offer it): each key
    160 ms, then 240 ms before the next; one stream (SSRC, rising sequence numbers and timestamps),
    the end packet sent three times as the RFC advises. Made here rather than chained from
    sip-tester's per-key pcaps, which share sequence numbers and repeat a key's timestamp."""
    return _write_pcap(pcap, [p for _, packets in _key_events(keys, 0) for p in packets])


def _key_events(keys: str, start: int) -> list[tuple[int, list[tuple[int, int, bool, int, bytes]]]]:
    """Per key: its start (8 kHz timestamp units from `start`, 400 ms apart) and its packets."""
    out = []
    for k, key in enumerate(keys):
        at = start + 3200 * k
        packets = []
        for n in range(1, 9):
            end = n == 8
            payload = struct.pack("!BBH", _EVENTS[key], (0x80 if end else 0) | 10, 160 * n)
            packets += [(125 * (at + 160 * n), 101, n == 1, at, payload)] * (3 if end else 1)
        out.append((at, packets))
    return out


_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}


def _write_pcap(pcap: Path, packets: Sequence[tuple[int, int, bool, int, bytes]]) -> Path:
    """RTP packets (microseconds from the start, payload type, marker, timestamp, payload) as a
    pcap of Ethernet/IPv4/UDP frames: SIPp replays their RTP with this timing."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for seq, (micros, payload_type, marker, timestamp, payload) in enumerate(packets):
        rtp = struct.pack("!BBHII", 0x80, payload_type | (0x80 if marker else 0), seq, timestamp, 0x42555247)
        udp = struct.pack("!HHHH", 16000, 16000, 8 + len(rtp) + len(payload), 0) + rtp + payload
        loopback = bytes([127, 0, 0, 1])
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), seq, 0, 64, 17, 0, loopback, loopback)
        frame = b"\0" * 12 + b"\x08\x00" + ip + udp
        out.append(
            struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame)) + frame
        )
    pcap.write_bytes(b"".join(out))
    return pcap


def _play(pcap: Path) -> str:
    return f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>'


@dataclass(frozen=True)
class Message:
    at: datetime
    sent: bool
    first_line: str  # "INVITE sip:… SIP/2.0", "SIP/2.0 200 OK", …
    call_id: str
    cseq: str


class Sipp:
    """One SIPp process running one scenario; the messages it traced afterwards."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        scenario: str,
        *,
        port: int,
        media_port: int,
        markers: dict[str, str] | None = None,
        remote: str | None = None,
        service: str | None = None,
        callers: Sequence[tuple[str, str]] = (),
        calls: int = 1,
        rate: int = 10,
        limit: int | None = None,
        timeout_s: int = 120,
    ):
        """`remote` (host:port) makes it a UAC placing `calls` calls at `rate` per second, at
        most `limit` at a time, to `service`, one line of `callers` (From user, extra header) per
        call; without, a UAS taking `calls` calls."""
        self.workdir, self.name = workdir, name
        text = (SCENARIOS / scenario).read_text()
        for marker, value in (markers or {}).items():
            text = text.replace(f"@{marker}@", value)
        if left := re.findall(r"@[A-Z_]+@", text):
            raise ValueError(f"{scenario}: markers not filled in: {left}")
        self.scenario = workdir / f"{name}.xml"
        self.scenario.write_text(text)
        self.trace = workdir / f"{name}.messages.log"
        self.errors = workdir / f"{name}.errors.log"
        command = [
            sipp_binary() or "sipp",
            *([remote] if remote else []),
            "-sf", str(self.scenario),
            "-i", "127.0.0.1",
            "-p", str(port),
            "-mi", "127.0.0.1",
            "-mp", str(media_port),
            "-m", str(calls),
            "-l", str(limit or calls),
            "-nostdin",
            "-trace_msg", "-message_file", str(self.trace),
            "-trace_err", "-error_file", str(self.errors),
            "-timeout", f"{timeout_s}s", "-timeout_error",
        ]  # fmt: skip
        if remote:
            command += ["-r", str(rate), "-s", service or "s"]
        if callers:
            inf = workdir / f"{name}.callers.csv"
            inf.write_text("SEQUENTIAL\n" + "".join(f"{user};{header}\n" for user, header in callers))
            command += ["-inf", str(inf)]
        self.output = (workdir / f"{name}.out").open("w")
        self.process = subprocess.Popen(command, stdout=self.output, stderr=subprocess.STDOUT, cwd=workdir)

    def wait(self, timeout: float) -> int:
        """SIPp's exit status once it has made/taken its calls: 0 when every call succeeded."""
        try:
            return self.process.wait(timeout)
        finally:
            self.output.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.output.close()

    def report(self) -> str:
        """What went wrong, for an assertion message."""
        parts = [f"{self.name}: exit {self.process.poll()}"]
        for path in (self.errors, self.workdir / f"{self.name}.out"):
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text()[-3000:]}")
        return "\n".join(parts)

    def messages(self) -> list[Message]:
        """Every SIP message sent or received, in order, with SIPp's timestamp."""
        out: list[Message] = []
        if not self.trace.exists():
            return out
        blocks = re.split(r"\n(?=-{10,} \d{4}-)", self.trace.read_text())
        for block in blocks:
            lines = block.strip("\n").splitlines()
            if not lines or not (stamp := _STAMP.match(lines[0])):
                continue
            at = datetime.fromisoformat(f"{stamp[1]}T{stamp[2]}").astimezone()
            sent = "sent" in lines[1].lower() if len(lines) > 1 else False
            body = [line.strip() for line in lines[2:] if line.strip()]
            if not body:
                continue
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in body[1:])}
            out.append(Message(at, sent, body[0], headers.get("call-id", ""), headers.get("cseq", "")))
        return out
