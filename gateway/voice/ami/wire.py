"""The AMI wire format: messages, their parsing and encoding, and the errors of the client.

An AMI message is `Key: value` lines ended by a blank line; keys may repeat (`Output`,
`Variable`) and their order matters, so a `Message` keeps its fields as Asterisk sent them. An
action is encoded the same way; a line break inside a value would smuggle in fields, so it is
refused. Nothing here does I/O but `read_message`, which reads one message from a stream.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.phone import masked

log = logging.getLogger(__name__)

# OriginateResponse `Reason`: Asterisk's last control frame on the outgoing channel (AST_CONTROL_*).
ORIGINATE_REASONS = {
    0: "failed",  # no channel: unknown technology or extension, or the dial failed outright
    1: "hangup",  # the far end hung up before answering
    3: "no answer",  # still ringing when the Originate's Timeout ran out
    4: "answered",
    5: "busy",
    8: "congestion",
}

LINE_LIMIT = 1 << 20  # one AMI line; longer ones are dropped, not fatal

# --- errors ------------------------------------------------------------------------------------


class AMIError(Exception):
    """Base of every error this client raises on purpose."""


class AMIAuthError(AMIError):
    """Asterisk refused the login: the username or secret is wrong, or the user may not connect."""


class AMIConnectionLost(AMIError, ConnectionError):
    """There is no AMI connection (it dropped, could not be opened, or the client is closed).

    An action or Originate that was waiting may or may not have reached Asterisk; retry it only
    where doing it twice is acceptable.
    """


class AMINotSent(AMIConnectionLost):
    """The action was not sent: there was no connection. Asterisk never saw it."""


class AMIActionError(AMIError):
    """Asterisk answered an action with `Response: Error` where no error was acceptable."""

    def __init__(self, message: str, response: Message):
        super().__init__(message)
        self.response = response


# --- messages ----------------------------------------------------------------------------------


class Message(Mapping[str, str]):
    """One AMI message: its fields in wire order, keys case-sensitive as Asterisk sends them.

    `message[key]` is the first value of `key`; `getall(key)` keeps every value in order (the
    `Output` lines of a `Command` response, repeated `Variable`s). A response to an event-list
    action carries the list's events in `events` and its closing `...Complete` event in `complete`.
    """

    __slots__ = ("_fields", "complete", "events")

    def __init__(self, fields: Iterable[tuple[str, str]] = ()):
        self._fields: list[tuple[str, str]] = list(fields)
        self.events: list[Message] = []
        self.complete: Message | None = None

    @classmethod
    def parse(cls, text: str) -> Message:
        """A message from its wire text (CRLF or LF lines; lines without a colon are ignored)."""
        return cls(field for field in map(parse_line, text.splitlines()) if field is not None)

    def __getitem__(self, key: str) -> str:
        for name, value in self._fields:
            if name == key:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self._fields))

    def __len__(self) -> int:
        return len({name for name, _ in self._fields})

    def __contains__(self, key: object) -> bool:
        return any(name == key for name, _ in self._fields)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Message):
            return self._fields == other._fields
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]  # mutable-ish, like a dict

    def getall(self, key: str) -> list[str]:
        """Every value of `key`, in the order Asterisk sent them."""
        return [value for name, value in self._fields if name == key]

    @property
    def fields(self) -> list[tuple[str, str]]:
        """All (key, value) pairs in wire order, repeated keys included."""
        return list(self._fields)

    @property
    def name(self) -> str | None:
        """The event name, or None for a response."""
        return self.get("Event")

    @property
    def is_event(self) -> bool:
        return "Event" in self

    @property
    def is_response(self) -> bool:
        return "Response" in self and "Event" not in self

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    @property
    def ok(self) -> bool:
        """A response that is not an error (`Success`, `Goodbye` for Logoff, `Follows`)."""
        return self.get("Response") in ("Success", "Goodbye", "Follows")

    def __repr__(self) -> str:
        # Names only: values hold caller IDs and channel names, which do not belong in logs.
        kind = f"Event={self.name}" if self.is_event else f"Response={self.get('Response')}"
        return f"<Message {kind} ActionID={self.action_id} keys={list(self)}>"


def parse_line(line: str) -> tuple[str, str] | None:
    """`Key: value` → (key, value); the value keeps any further colons; None for a non-field line."""
    line = line.rstrip("\r\n")
    key, colon, value = line.partition(":")
    key = key.strip()
    if not colon or not key or " " in key:
        return None
    return key, value[1:] if value.startswith(" ") else value


def encode_action(fields: Iterable[tuple[str, Any]]) -> bytes:
    """The wire form of an action; refuses line breaks, which would smuggle in extra fields."""
    lines = []
    for key, value in fields:
        text = wire_value(value)
        if not re.fullmatch(r"[A-Za-z0-9_()-]+", key):
            raise ValueError(f"not an AMI field name: {key!r}")
        if "\r" in text or "\n" in text:
            raise ValueError(f"AMI field {key} contains a line break")
        lines.append(f"{key}: {text}\r\n")
    return ("".join(lines) + "\r\n").encode("utf-8")


def wire_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def masked_channel(channel: str | None) -> str:
    """A channel name fit for logs: numbers of 6+ digits masked (PJSIP/0612****78@trunk).

    The `-00000007` sequence suffix of a channel name is no phone number and stays readable.
    """
    if not channel:
        return "<none>"
    return re.sub(r"(?<![-\d])\+?\d{6,}", lambda m: masked(m.group()), channel)


@dataclass(frozen=True, slots=True)
class OriginateResult:
    """How an `Async` Originate ended, from its `OriginateResponse` event."""

    action_id: str
    response: str  # "Success" or "Failure"
    reason: int | None  # ORIGINATE_REASONS
    uniqueid: str | None  # of the outgoing channel; None when there was none (`<unknown>`)
    event: Message

    @classmethod
    def from_event(cls, event: Message) -> OriginateResult:
        reason = event.get("Reason", "")
        uniqueid = event.get("Uniqueid")
        return cls(
            action_id=event.get("ActionID", ""),
            response=event.get("Response", ""),
            reason=int(reason) if reason.lstrip("-").isdigit() else None,
            uniqueid=None if uniqueid in (None, "", "<unknown>", "<null>") else uniqueid,
            event=event,
        )

    @property
    def success(self) -> bool:
        return self.response == "Success"

    @property
    def reason_text(self) -> str:
        known = ORIGINATE_REASONS.get(self.reason) if self.reason is not None else None
        return known or f"reason {self.reason}"


async def read_message(reader: asyncio.StreamReader, skipped: Callable[[], None]) -> Message | None:
    """The next message (fields up to a blank line), or None at the end of the stream.

    A line that is not a field, or longer than LINE_LIMIT, is skipped (`skipped()` is called).
    """
    fields: list[tuple[str, str]] = []
    while True:
        try:
            raw = await reader.readline()
        except ValueError:  # longer than LINE_LIMIT; asyncio has discarded it
            skipped()
            log.warning("AMI sent a line over %d bytes; skipped", LINE_LIMIT)
            continue
        if not raw:
            return None
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line.strip():
            if fields:
                return Message(fields)
            continue
        field = parse_line(line)
        if field is None:
            skipped()
            log.debug("AMI line without a field skipped (%d bytes)", len(raw))
            continue
        fields.append(field)


def flatten(fields: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(key, value) pairs of an action's fields: a list is one line per item, None is left out."""
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            for item in value:
                yield key, item
        else:
            yield key, value


def channel_variable(name: str, value: Any) -> str:
    """One `Variable:` line for Originate: NAME=value, the value escaped for Asterisk's parser.

    Asterisk splits a `Variable:` value at commas like dialplan arguments, dropping quotes and
    backslashes (seen on 22.10.1: `a,b c` arrived as `a`); a backslash keeps the next character.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"not a channel variable name: {name!r}")
    return f"{name}=" + re.sub(r'([\\",()])', r"\\\1", wire_value(value))
