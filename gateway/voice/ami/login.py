"""Opening an AMI connection: connect, read the banner, log in, wait until Asterisk has booted."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .wire import LINE_LIMIT, AMIAuthError, AMIConnectionLost, AMIError, Message, encode_action

Read = Callable[[asyncio.StreamReader], Awaitable[Message | None]]
Receive = Callable[[Message], None]


@dataclass(frozen=True)
class Login:
    """Where and as whom to log in, and how long each step may take."""

    host: str
    port: int
    username: str
    secret: str = field(repr=False)
    events: str = "on"  # the Login's event filter: "on", "off", or classes such as "call"
    connect_timeout: float = 10.0
    boot_timeout: float = 120.0

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def waits_for_boot(self) -> bool:
        """`FullyBooted` is a `system` event: waited for only when the filter lets it through."""
        return any(c.strip().lower() in ("on", "all", "system") for c in self.events.split(","))


async def log_in(
    login: Login, action_id: str, read: Read, receive: Receive
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """A logged-in connection (reader, writer) and Asterisk's banner. Events that come before
    the Login's response are handed to `receive`. Raises AMIConnectionLost when Asterisk cannot
    be reached, is no AMI or does not finish booting; AMIAuthError when it refuses the login."""
    try:
        async with asyncio.timeout(login.connect_timeout):
            reader, writer = await asyncio.open_connection(login.host, login.port, limit=LINE_LIMIT)
    except (OSError, TimeoutError) as exc:
        raise AMIConnectionLost(f"cannot reach AMI at {login.where}: {exc or type(exc).__name__}") from exc
    try:
        async with asyncio.timeout(login.connect_timeout):
            banner = (await reader.readline()).decode("utf-8", "replace").strip()
            if not banner.startswith("Asterisk Call Manager"):
                raise AMIConnectionLost(f"{login.where} is not an AMI (first line {banner[:40]!r})")
            response = await _send_login(login, action_id, reader, writer, read, receive)
        if response.ok and login.waits_for_boot:
            await _until_fully_booted(login, reader, read, receive)
    except BaseException as exc:
        writer.close()
        if isinstance(exc, (OSError, TimeoutError)) and not isinstance(exc, AMIError):
            raise AMIConnectionLost(
                f"AMI login at {login.where} failed: {exc or type(exc).__name__}"
            ) from exc
        raise
    if not response.ok:
        writer.close()
        raise AMIAuthError(
            f"AMI at {login.where} refused the login of user {login.username!r}: "
            f"{response.get('Message', 'no reason given')} — check the AMI username and secret "
            "(manager_users.conf) and the user's permit/deny"
        )
    return reader, writer, banner


async def _send_login(
    login: Login,
    action_id: str,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    read: Read,
    receive: Receive,
) -> Message:
    """Send the Login and return its response."""
    writer.write(
        encode_action(
            [
                ("Action", "Login"),
                ("ActionID", action_id),
                ("Username", login.username),
                ("Secret", login.secret),
                ("Events", login.events),
            ]
        )
    )
    await writer.drain()
    while True:
        message = await read(reader)
        if message is None:
            raise AMIConnectionLost(f"AMI at {login.where} closed the connection during login")
        if message.is_response and message.action_id == action_id:
            return message
        receive(message)


async def _until_fully_booted(
    login: Login, reader: asyncio.StreamReader, read: Read, receive: Receive
) -> None:
    """Wait for `FullyBooted`: sent right after the login once Asterisk has booted, else when it has.

    An Asterisk that was just started accepts AMI logins before its dialplan is loaded; an
    Originate then fails with "PBX requires Asterisk to be fully booted" (seen on 22.10.1
    after a restart), which would look like a failed call. Not connected until booted.
    """
    try:
        async with asyncio.timeout(login.boot_timeout):
            while True:
                message = await read(reader)
                if message is None:
                    raise AMIConnectionLost(
                        f"AMI at {login.where} closed the connection before Asterisk had booted"
                    )
                receive(message)
                if message.name == "FullyBooted":
                    return
    except TimeoutError:
        raise AMIConnectionLost(
            f"Asterisk at {login.where} did not finish booting within {login.boot_timeout:.0f} s"
        ) from None
