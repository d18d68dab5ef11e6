"""The AMI client (gateway/voice/ami/) at three depths: message parsing without I/O; a fake
Asterisk on a real loopback socket that answers with shapes recorded from Asterisk 22.10.1 (the
ami-originate-*.txt transcripts); and the real Asterisk 22 of tests/asterisk_harness.py, restart
included.

pytest-asyncio is not a dependency: each test runs its scenario with `asyncio.run`, bounded by
`run()` so that a bug fails the test instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from polling import until_async

from gateway.voice.ami import (
    LINE_LIMIT,
    AMIActionError,
    AMIAuthError,
    AMIClient,
    AMIConnectionLost,
    Message,
    encode_action,
    masked_channel,
    parse_line,
)

SECRET = "fake-ami-secret-Zq8"  # the fake's; the real Asterisk's is random per test run
CALLER = "0612345678"


def run(scenario: Awaitable[None], timeout: float = 20) -> None:
    asyncio.run(asyncio.wait_for(scenario, timeout))


# --- messages, no I/O --------------------------------------------------------------------------


def test_a_message_keeps_every_value_in_order_and_colons_inside_values():
    message = Message.parse(
        "Response: Success\r\n"
        "ActionID: a-1\r\n"
        "Message: Command output follows\r\n"
        "Output: [ Context 'test-endpoints' created by 'pbx_config' ]\r\n"
        "Output:   'answer' =>       1. Answer()       [extensions_test.conf:36]\r\n"
        "AccountCode: \r\n"
        "Output: last: line\n"  # an LF-only line is read as well
    )
    assert message["Response"] == "Success" and message.action_id == "a-1"
    assert message.getall("Output") == [
        "[ Context 'test-endpoints' created by 'pbx_config' ]",
        "  'answer' =>       1. Answer()       [extensions_test.conf:36]",
        "last: line",
    ]
    assert message["Output"] == message.getall("Output")[0]
    assert message["AccountCode"] == ""
    assert list(message) == ["Response", "ActionID", "Message", "Output", "AccountCode"]
    assert "output" not in message  # keys are case-sensitive, as Asterisk sends them
    assert message.is_response and not message.is_event and message.ok


def test_lines_that_are_not_fields_are_not_parsed():
    assert parse_line("Asterisk Call Manager/11.0.0") is None
    assert parse_line("\x00\xff garbage") is None
    assert parse_line(": no key") is None
    assert parse_line("Uniqueid: 1795344442.0\r\n") == ("Uniqueid", "1795344442.0")


def test_an_action_cannot_smuggle_in_fields_through_a_line_break():
    with pytest.raises(ValueError, match="line break"):
        encode_action([("Action", "Originate"), ("Channel", "Local/x\r\nAction: Command")])
    assert encode_action([("Action", "Ping"), ("Async", True)]) == b"Action: Ping\r\nAsync: true\r\n\r\n"


def test_channel_names_are_masked_for_logs():
    assert masked_channel("PJSIP/0612345678@trunk") == "PJSIP/0612****78@trunk"  # gateway.phone.masked
    assert (
        masked_channel("Local/answer@test-endpoints-00000007;1") == "Local/answer@test-endpoints-00000007;1"
    )
    assert (
        masked_channel(f"Local/+31{CALLER[1:]}@alerts-00000007;2") == "Local/+316******78@alerts-00000007;2"
    )


# --- a fake Asterisk on a real loopback socket --------------------------------------------------

# Shapes recorded from Asterisk 22.10.1 (ami-originate-local.txt; the busy OriginateResponse, the
# CoreShowChannel events and the refused login from this project's harness). $ACTION_ID is replaced.
LOGIN_OK = """
Response: Success
ActionID: $ACTION_ID
Message: Authentication accepted
"""
LOGIN_REFUSED = """
Response: Error
ActionID: $ACTION_ID
Message: Authentication failed
"""
FULLY_BOOTED = """
Event: FullyBooted
Privilege: system,all
Uptime: 10
LastReload: 10
Status: Fully Booted
"""
SUCCESSFUL_AUTH = """
Event: SuccessfulAuth
Privilege: security,all
EventTV: 2026-11-22T10:47:21.802+0000
Severity: Informational
Service: AMI
EventVersion: 1
AccountID: test
SessionID: 0x7f79700017d0
LocalAddress: IPV4/TCP/127.0.0.1/5038
RemoteAddress: IPV4/TCP/127.0.0.1/44902
UsingPassword: 0
SessionTV: 2026-11-22T10:47:21.802+0000
"""
PONG = """
Response: Success
ActionID: $ACTION_ID
Ping: Pong
Timestamp: 1795350518.663831
"""
GOODBYE = """
Response: Goodbye
ActionID: $ACTION_ID
Message: Thanks for all the fish.
"""
UNKNOWN_ACTION = """
Response: Error
ActionID: $ACTION_ID
Message: Invalid/unknown command
"""
ORIGINATE_QUEUED = """
Response: Success
ActionID: $ACTION_ID
Message: Originate successfully queued
"""
NEWCHANNEL = """
Event: Newchannel
Privilege: call,all
Channel: Local/s@test-ctx-00000000;1
ChannelState: 0
ChannelStateDesc: Down
CallerIDNum: <unknown>
CallerIDName: <unknown>
ConnectedLineNum: <unknown>
ConnectedLineName: <unknown>
Language: en
AccountCode: 
Context: test-ctx
Exten: s
Priority: 1
Uniqueid: 1795344442.0
Linkedid: 1795344442.0
"""
VARSET = """
Event: VarSet
Privilege: dialplan,all
Channel: Local/s@test-ctx-00000000;1
ChannelState: 0
ChannelStateDesc: Down
CallerIDNum: <unknown>
CallerIDName: <unknown>
Language: en
AccountCode: 
Context: test-ctx
Exten: s
Priority: 1
Uniqueid: 1795344442.0
Linkedid: 1795344442.0
Variable: ORIG_VAR
Value: fromami
"""
DIALEND = """
Event: DialEnd
Privilege: call,all
DestChannel: Local/s@test-ctx-00000000;1
DestChannelState: 6
DestChannelStateDesc: Up
DestCallerIDNum: 0612345678
DestCallerIDName: Test Caller
DestContext: test-ctx
DestExten: s
DestPriority: 1
DestUniqueid: 1795344442.0
DestLinkedid: 1795344442.0
DialStatus: ANSWER
"""
ORIGINATE_ANSWERED = """
Event: OriginateResponse
Privilege: call,all
ActionID: $ACTION_ID
Response: Success
Channel: Local/s@test-ctx-00000000;1
Application: Wait
Data: 5
Reason: 4
Uniqueid: 1795344442.0
CallerIDNum: 0612345678
CallerIDName: Test Caller
"""
ORIGINATE_BUSY = """
Event: OriginateResponse
Privilege: call,all
ActionID: $ACTION_ID
Response: Failure
Channel: Local/busy@test-endpoints
Application: Wait
Data: 1
Reason: 5
Uniqueid: <unknown>
CallerIDNum: 0612345678
CallerIDName: Burgernet
"""
CHANNELS_FOLLOW = """
Response: Success
ActionID: $ACTION_ID
EventList: start
Message: Channels will follow
"""
CORE_SHOW_CHANNEL = """
Event: CoreShowChannel
ActionID: $ACTION_ID
Channel: Local/answer@test-endpoints-00000000;$HALF
ChannelState: 6
ChannelStateDesc: Up
CallerIDNum: 0612345678
CallerIDName: Burgernet
ConnectedLineNum: 0612345678
ConnectedLineName: Burgernet
Language: en
AccountCode: 
Context: test-endpoints
Exten: answer
Priority: 2
Uniqueid: 1795350518.$HALF
Linkedid: 1795350518.0
Application: Wait
ApplicationData: 3
Duration: 00:00:00
BridgeId: 
"""
CHANNELS_COMPLETE = """
Event: CoreShowChannelsComplete
ActionID: $ACTION_ID
EventList: Complete
ListItems: 2
"""
COMMAND_OUTPUT = """
Response: Success
ActionID: $ACTION_ID
Message: Command output follows
Output: [ Context 'test-endpoints' created by 'pbx_config' ]
Output:   'answer' =>       1. Answer()                                   [extensions_test.conf:36]
Output:                     2. Wait(${IF($["${HOLD}" = ""]?10:${HOLD})})  [extensions_test.conf:37]
"""


def wire(shape: str, **values: str) -> bytes:
    """A recorded shape as Asterisk sends it: CRLF lines, a blank line after the message."""
    text = shape.strip("\n")
    for key, value in values.items():
        text = text.replace(f"${key.upper()}", value)
    return (text.replace("\n", "\r\n") + "\r\n\r\n").encode()


Handler = Callable[["FakeAsterisk", Message, asyncio.StreamWriter], Awaitable[None]]


class FakeAsterisk:
    """An AMI server on 127.0.0.1 that answers like Asterisk 22.10.1 (panoramisk-style fake).

    `script[action]` replaces the answer to one action; `received` holds every action in order.
    """

    def __init__(self, secret: str = SECRET):
        self.secret, self.port = secret, 0
        self.received: list[Message] = []
        self.logins = 0  # accepted ones
        self.script: dict[str, Handler] = {}
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def listen(self) -> None:
        """Listen (again, on the same port once it had one)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def go_down(self) -> None:
        """Stop listening and cut every connection, like an Asterisk that stops."""
        self._server.close()
        await self._server.wait_closed()
        self.drop_connections()

    def drop_connections(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()

    def actions(self, name: str) -> list[Message]:
        return [m for m in self.received if m["Action"] == name]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            writer.write(b"Asterisk Call Manager/11.0.0\r\n")
            while (action := await self._read_action(reader)) is not None:
                self.received.append(action)
                name = action["Action"]
                handler = self.script.get(name) or getattr(
                    FakeAsterisk, f"_on_{name.lower()}", FakeAsterisk._on_unknown
                )
                await handler(self, action, writer)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    @staticmethod
    async def _read_action(reader: asyncio.StreamReader) -> Message | None:
        fields = []
        while line := (await reader.readline()).decode():
            if line in ("\r\n", "\n"):
                return Message(fields)
            key, _, value = line.rstrip("\r\n").partition(": ")
            fields.append((key, value))
        return None

    @staticmethod
    async def send_in_pieces(writer: asyncio.StreamWriter, data: bytes, size: int = 37) -> None:
        """Write `data` in small pieces, so that lines arrive split across reads."""
        for start in range(0, len(data), size):
            writer.write(data[start : start + size])
            await writer.drain()

    async def _on_login(self, action: Message, writer: asyncio.StreamWriter) -> None:
        if action.get("Secret") != self.secret:
            writer.write(wire(LOGIN_REFUSED, action_id=action["ActionID"]))
            await writer.drain()
            writer.close()  # as Asterisk does, after the error
            return
        self.logins += 1
        writer.write(
            wire(LOGIN_OK, action_id=action["ActionID"]) + wire(FULLY_BOOTED) + wire(SUCCESSFUL_AUTH)
        )

    async def _on_ping(self, action: Message, writer: asyncio.StreamWriter) -> None:
        writer.write(wire(PONG, action_id=action["ActionID"]))

    async def _on_logoff(self, action: Message, writer: asyncio.StreamWriter) -> None:
        writer.write(wire(GOODBYE, action_id=action["ActionID"]))
        await writer.drain()
        writer.close()

    async def _on_unknown(self, action: Message, writer: asyncio.StreamWriter) -> None:
        writer.write(wire(UNKNOWN_ACTION, action_id=action["ActionID"]))

    async def _on_originate(self, action: Message, writer: asyncio.StreamWriter) -> None:
        action_id = action["ActionID"]
        writer.write(wire(ORIGINATE_QUEUED, action_id=action_id))
        await writer.drain()
        await asyncio.sleep(0.01)  # the call starts: events of its own and of other calls first
        unrelated = (
            wire(NEWCHANNEL)
            + wire(VARSET)
            + wire(ORIGINATE_BUSY, action_id="someone-elses-call")
            + wire(DIALEND)
        )
        await self.send_in_pieces(writer, unrelated)
        outcome = ORIGINATE_BUSY if "busy" in action["Channel"] else ORIGINATE_ANSWERED
        await self.send_in_pieces(writer, wire(outcome, action_id=action_id))

    async def _on_coreshowchannels(self, action: Message, writer: asyncio.StreamWriter) -> None:
        action_id = action["ActionID"]
        await self.send_in_pieces(
            writer,
            wire(CHANNELS_FOLLOW, action_id=action_id)
            + wire(CORE_SHOW_CHANNEL, action_id=action_id, half="1")
            + wire(NEWCHANNEL)  # an event of another call, in the middle of the list
            + wire(CORE_SHOW_CHANNEL, action_id=action_id, half="2")
            + wire(CHANNELS_COMPLETE, action_id=action_id),
        )

    async def _on_command(self, action: Message, writer: asyncio.StreamWriter) -> None:
        writer.write(wire(COMMAND_OUTPUT, action_id=action["ActionID"]))


@contextlib.asynccontextmanager
async def fake_asterisk(**client_options) -> AsyncIterator[tuple[FakeAsterisk, AMIClient]]:
    """A listening fake and a client logged in to it (closed afterwards)."""
    fake = FakeAsterisk()
    await fake.listen()
    client = AMIClient("127.0.0.1", fake.port, "burgernet", SECRET, **client_options)
    await client.connect()
    try:
        yield fake, client
    finally:
        await client.close()
        await fake.go_down()


def test_logs_in_and_answers_an_action_by_its_action_id(caplog):
    caplog.set_level(logging.DEBUG, logger="gateway.voice.ami")

    async def scenario():
        async with fake_asterisk() as (fake, client):
            assert client.connected and client.banner == "Asterisk Call Manager/11.0.0"
            pong = await client.action("Ping")
            assert pong["Ping"] == "Pong" and pong.ok
            assert pong.action_id == fake.actions("Ping")[0]["ActionID"]
            login = fake.actions("Login")[0]
            assert (login["Username"], login["Events"]) == ("burgernet", "on")
            refused = await client.action("NoSuchAction")
            assert not refused.ok and refused["Message"] == "Invalid/unknown command"
        assert fake.actions("Logoff"), "close() logs off"

    run(scenario())
    assert SECRET not in caplog.text


def test_a_wrong_secret_raises_amiautherror_and_is_not_retried(caplog):
    caplog.set_level(logging.DEBUG, logger="gateway.voice.ami")

    async def scenario():
        fake = FakeAsterisk(secret="the-right-one")
        await fake.listen()
        client = AMIClient("127.0.0.1", fake.port, "burgernet", SECRET, reconnect_delay=(0.01,))
        with pytest.raises(AMIAuthError, match="Authentication failed") as refused:
            await client.connect(retry=True)  # retry waits out an absent Asterisk, not a refusal
        assert SECRET not in str(refused.value)
        assert len(fake.actions("Login")) == 1 and not client.connected
        await fake.go_down()

    run(scenario())
    assert SECRET not in caplog.text


def test_no_asterisk_listening_raises_amiconnectionlost():
    async def scenario():
        fake = FakeAsterisk()
        await fake.listen()
        await fake.go_down()  # a port that was just free
        with pytest.raises(AMIConnectionLost, match="cannot reach AMI"):
            await AMIClient("127.0.0.1", fake.port, "burgernet", SECRET).connect()

    run(scenario())


def test_an_originate_outcome_arrives_after_unrelated_events(caplog):
    caplog.set_level(logging.DEBUG, logger="gateway.voice.ami")

    async def scenario():
        seen: list[Message] = []
        async with fake_asterisk(on_event=seen.append) as (fake, client):
            stream = client.events("OriginateResponse", "Newchannel")
            answered = await client.originate(
                f"PJSIP/{CALLER}@trunk",
                application="Wait",
                data="5",
                caller_id=f'"Burgernet" <{CALLER}>',
                variables={"BN_ALERT": "42", "BN_TEXT": "Let op, vermist"},
                timeout_ms=25000,
            )
            busy = await client.originate(
                "Local/busy@test-endpoints", context="alerts", exten="s", action_id="my-busy-1"
            )
            assert busy == "my-busy-1"
            busy_result, answered_result = await asyncio.gather(
                client.wait_originate(busy, timeout=5), client.wait_originate(answered, timeout=5)
            )
            assert (answered_result.response, answered_result.reason, answered_result.uniqueid) == (
                "Success",
                4,
                "1795344442.0",
            )
            assert answered_result.success and answered_result.reason_text == "answered"
            assert (busy_result.response, busy_result.reason, busy_result.uniqueid) == ("Failure", 5, None)
            assert busy_result.reason_text == "busy" and busy_result.action_id == "my-busy-1"

            sent = fake.actions("Originate")[0]
            assert sent["Async"] == "true" and sent["Timeout"] == "25000" and sent["ActionID"] == answered
            assert sent.getall("Variable") == ["BN_ALERT=42", r"BN_TEXT=Let op\, vermist"]
            sent_busy = fake.actions("Originate")[1]
            assert (sent_busy["Context"], sent_busy["Exten"], sent_busy["Priority"]) == ("alerts", "s", "1")
            assert "Application" not in sent_busy

            # Every event reaches the subscribers, the other call's OriginateResponse included.
            names = [m.name for m in seen]
            assert names.count("OriginateResponse") == 4 and "VarSet" in names and "FullyBooted" in names
            first = [await anext(stream) for _ in range(3)]
            assert [(m.name, m.action_id) for m in first] == [
                ("Newchannel", None),
                ("OriginateResponse", "someone-elses-call"),
                ("OriginateResponse", answered),
            ]
        with pytest.raises(KeyError):
            await client.wait_originate(answered)  # handed out once

    run(scenario())
    assert CALLER not in caplog.text


def test_an_originate_needs_an_extension_or_an_application():
    async def scenario():
        async with fake_asterisk() as (fake, client):
            with pytest.raises(ValueError):
                await client.originate("Local/answer@test-endpoints")
            with pytest.raises(ValueError):
                await client.originate("Local/answer@test-endpoints", exten="s", application="Wait")
            with pytest.raises(ValueError, match="variable name"):
                await client.originate(
                    "Local/answer@test-endpoints", application="Wait", variables={"A=B": "1"}
                )
            fake.script["Originate"] = FakeAsterisk._on_unknown
            with pytest.raises(AMIActionError, match="refused"):
                await client.originate("Local/answer@test-endpoints", application="Wait")
            assert not fake.actions("Originate")[1:], "nothing invalid was sent"

    run(scenario())


def test_an_event_list_action_collects_its_events_until_complete():
    async def scenario():
        async with fake_asterisk() as (_fake, client):
            stream = client.events("Newchannel")
            channels = await client.action("CoreShowChannels")
            assert channels["EventList"] == "start"
            assert [e["Channel"] for e in channels.events] == [
                "Local/answer@test-endpoints-00000000;1",
                "Local/answer@test-endpoints-00000000;2",
            ]
            assert channels.complete["ListItems"] == "2"
            assert channels.events[0]["BridgeId"] == ""
            # The other call's event in the middle of the list is an event, not a list item.
            assert (await anext(stream))["Uniqueid"] == "1795344442.0"

    run(scenario())


def test_command_output_keeps_every_line():
    async def scenario():
        async with fake_asterisk() as (fake, client):
            lines = await client.command("dialplan show test-endpoints")
            assert len(lines) == 3 and lines[1].startswith("  'answer' =>") and lines[1].endswith(":36]")
            assert fake.actions("Command")[0]["Command"] == "dialplan show test-endpoints"

    run(scenario())


def test_a_dropped_connection_fails_what_waits_and_the_client_logs_in_again():
    async def hang_up_on_the_client(fake, action, writer):
        fake.drop_connections()

    async def scenario():
        reconnected = asyncio.Event()
        async with fake_asterisk(reconnect_delay=(0.05, 0.1), on_reconnect=reconnected.set) as (fake, client):
            call = await client.originate("Local/answer@test-endpoints", application="Wait", data="5")
            fake.script["Status"] = hang_up_on_the_client  # no answer: the connection drops
            with pytest.raises(AMIConnectionLost):
                await client.action("Status")
            assert not client.connected
            await asyncio.wait_for(reconnected.wait(), 5)
            assert client.connected and fake.logins == 2 and client.reconnects == 1
            assert (await client.action("Ping"))["Ping"] == "Pong"
            # The first Originate's outcome arrived before the drop and is still there.
            assert (await client.wait_originate(call, timeout=1)).success

    run(scenario())


def test_an_originate_waiting_for_its_outcome_fails_when_the_connection_drops():
    async def queue_and_drop(fake, action, writer):
        writer.write(wire(ORIGINATE_QUEUED, action_id=action["ActionID"]))
        await writer.drain()
        fake.script["Ping"] = drop

    async def drop(fake, action, writer):
        fake.drop_connections()

    async def scenario():
        async with fake_asterisk(reconnect_delay=(0.05,)) as (fake, client):
            fake.script["Originate"] = queue_and_drop
            call = await client.originate(
                "Local/noanswer@test-endpoints", application="Wait", timeout_ms=60000
            )
            with pytest.raises(AMIConnectionLost):
                await client.action("Ping")
            with pytest.raises(AMIConnectionLost):  # the outcome is unknown now: the caller decides
                await client.wait_originate(call, timeout=5)

    run(scenario())


def test_while_asterisk_is_down_actions_fail_at_once_and_the_client_comes_back():
    async def scenario():
        async with fake_asterisk(reconnect_delay=(0.05, 0.1, 0.2)) as (fake, client):
            await fake.go_down()
            await until_async(lambda: not client.connected, what="client notices the drop")
            with pytest.raises(AMIConnectionLost, match="not connected"):
                await client.action("Ping")
            await asyncio.sleep(0.3)  # let a few reconnection attempts fail against the closed port
            await fake.listen()
            await client.wait_connected(timeout=5)
            assert (await client.action("Ping"))["Ping"] == "Pong"

    run(scenario())


def test_a_connection_that_stops_answering_is_cut_by_the_keepalive_and_logged_in_again(caplog):
    """The fake keeps the connection open but answers nothing any more (a hung Asterisk, state a
    firewall dropped): the keepalive Ping goes unanswered, the connection is cut, what waited fails,
    and the client logs in again. While the fake answered, the Pings kept the connection as it was."""
    caplog.set_level(logging.WARNING, logger="gateway.voice.ami")

    async def say_nothing(fake, action, writer):
        pass

    async def scenario():
        reconnected = asyncio.Event()
        async with fake_asterisk(
            keepalive=0.2, keepalive_timeout=0.5, reconnect_delay=(0.05,), on_reconnect=reconnected.set
        ) as (fake, client):
            await until_async(lambda: len(fake.actions("Ping")) >= 3, what="three answered keepalive Pings")
            assert client.reconnects == 0 and fake.logins == 1
            fake.script.update(Ping=say_nothing, Command=say_nothing)
            silent_from = time.monotonic()
            with pytest.raises(AMIConnectionLost, match="keepalive"):  # waited without a timeout of its own
                await client.action("Command", Command="core show uptime", timeout=60)
            cut_after = time.monotonic() - silent_from
            del fake.script["Ping"]  # the next connection answers again
            await asyncio.wait_for(reconnected.wait(), 5)
            assert client.connected and client.reconnects == 1 and fake.logins == 2
            assert (await client.action("Ping"))["Ping"] == "Pong"
            return cut_after

    cut_after = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert cut_after < 0.2 + 0.5 + 0.5, cut_after  # one interval and one Ping's timeout, with room
    assert "no answer to a keepalive Ping within 0.5 s" in caplog.text


def test_after_a_restart_the_client_is_connected_only_once_asterisk_has_fully_booted():
    """A starting Asterisk accepts logins before its dialplan is loaded; FullyBooted comes later."""
    booted = asyncio.Event()

    async def login_while_booting(fake, action, writer):
        fake.logins += 1
        writer.write(wire(LOGIN_OK, action_id=action["ActionID"]) + wire(SUCCESSFUL_AUTH))
        await writer.drain()
        await booted.wait()
        writer.write(wire(FULLY_BOOTED))

    async def scenario():
        async with fake_asterisk(reconnect_delay=(0.05,)) as (fake, client):
            fake.script["Login"] = login_while_booting
            fake.drop_connections()
            await until_async(lambda: fake.logins == 2, what="the second login")
            assert not client.connected
            with pytest.raises(TimeoutError):
                await client.wait_connected(timeout=0.3)
            booted.set()
            await client.wait_connected(timeout=5)
            assert (await client.action("Ping"))["Ping"] == "Pong"

    run(scenario())


def test_a_client_without_system_events_does_not_wait_for_fully_booted():
    async def login_without_events(fake, action, writer):
        fake.logins += 1
        writer.write(wire(LOGIN_OK, action_id=action["ActionID"]))

    async def scenario():
        fake = FakeAsterisk()
        fake.script["Login"] = login_without_events
        await fake.listen()
        client = AMIClient("127.0.0.1", fake.port, "burgernet", SECRET, events="call")
        await asyncio.wait_for(client.connect(), 5)
        assert client.connected
        await client.close()
        await fake.go_down()

    run(scenario())


def test_a_refused_login_on_reconnect_stops_the_client():
    async def scenario():
        async with fake_asterisk(reconnect_delay=(0.05,)) as (fake, client):
            stream = client.events()
            fake.secret = "rotated"
            fake.drop_connections()
            await until_async(lambda: not client.connected, what="client notices the drop")
            with pytest.raises(AMIAuthError):
                await client.wait_connected(timeout=5)
            with pytest.raises(AMIAuthError):
                async for _ in stream:
                    pass
            with pytest.raises(AMIConnectionLost):
                await client.action("Ping")
            attempts = len(fake.actions("Login"))
            await asyncio.sleep(0.2)
            assert len(fake.actions("Login")) == attempts == 2, "no retry on a refused login"

    run(scenario())


def test_garbage_from_the_server_does_not_stop_the_reader():
    async def ping_after_garbage(fake, action, writer):
        writer.write(
            b"Asterisk Call Manager/11.0.0\r\n"
            b"\x00\xff\xfe not a field\r\n"
            b"\r\n\r\n"
            b": no key\r\n"
            + b"x" * 70000  # a long line, no colon
            + b"\r\n"
            + b"y" * (LINE_LIMIT + 5000)  # a line over the reader's limit
            + b"\r\n\r\n"
            b"Event: UserEvent\nUserEvent: AfterGarbage\nData: a: b: c\n\n"  # LF-only lines
            b"Response\r\n"
        )
        await fake._on_ping(action, writer)

    async def scenario():
        async with fake_asterisk() as (fake, client):
            stream = client.events("UserEvent")
            fake.script["Ping"] = ping_after_garbage
            assert (await client.action("Ping"))["Ping"] == "Pong"
            event = await anext(stream)
            assert (event["UserEvent"], event["Data"]) == ("AfterGarbage", "a: b: c")
            assert client.garbage_lines >= 4 and client.connected
            del fake.script["Ping"]
            assert (await client.action("Ping")).ok

    run(scenario())


def test_a_failing_event_hook_does_not_stop_the_reader(caplog):
    def broken(event: Message) -> None:
        raise RuntimeError("a bug in a hook")

    async def scenario():
        async with fake_asterisk(on_event=broken) as (_fake, client):
            call = await client.originate("Local/answer@test-endpoints", application="Wait")
            assert (await client.wait_originate(call, timeout=5)).success
            seen: list[str] = []

            async def collect(event: Message) -> None:  # a coroutine hook runs as a task
                seen.append(event.name)

            client.on_event = collect
            await client.originate("Local/answer@test-endpoints", application="Wait")
            await until_async(
                lambda: seen.count("OriginateResponse") == 2, what="async hook saw both outcomes"
            )

    run(scenario())
    assert "a bug in a hook" in caplog.text


def test_close_fails_waiting_actions_and_ends_event_streams():
    async def never_answer(fake, action, writer):
        pass

    async def scenario():
        async with fake_asterisk() as (fake, client):
            fake.script["Status"] = never_answer
            waiting = asyncio.ensure_future(client.action("Status"))
            stream = client.events()
            await until_async(lambda: fake.actions("Status"), what="Status sent")
            await client.close()
            with pytest.raises(AMIConnectionLost):
                await waiting
            assert [event async for event in stream if event.name == "Newchannel"] == []
            assert not client.connected

    run(scenario())


# --- the real Asterisk 22 (tests/asterisk_harness.py) -------------------------------------------


def _real_client(asterisk, **options) -> AMIClient:
    return AMIClient(asterisk.ami_host, asterisk.ami_port, asterisk.ami_user, asterisk.ami_secret, **options)


async def _channels(client: AMIClient) -> list[Message]:
    listing = await client.action("CoreShowChannels")
    assert listing.ok and int(listing.complete["ListItems"]) == len(listing.events)
    return listing.events


async def _no_channels_left(client: AMIClient) -> None:
    """Hang up whatever earlier tests left running, and wait until Asterisk has no channel."""
    await client.action("Hangup", Channel="/.*/")
    async with asyncio.timeout(10):
        while await _channels(client):
            await asyncio.sleep(0.1)


def test_real_login_and_a_refused_secret(asterisk, caplog):
    caplog.set_level(logging.DEBUG, logger="gateway.voice.ami")

    async def scenario():
        with pytest.raises(AMIAuthError, match="Authentication failed"):
            await AMIClient(
                asterisk.ami_host, asterisk.ami_port, asterisk.ami_user, "not-the-secret"
            ).connect()
        async with _real_client(asterisk) as client:
            assert client.banner.startswith("Asterisk Call Manager/")
            assert (await client.action("Ping"))["Ping"] == "Pong"
            assert any("Asterisk 22" in line for line in await client.command("core show version"))
            with pytest.raises(AMIActionError, match="No such command 'no such command'"):
                await client.command("no such command")

    run(scenario())
    assert asterisk.ami_secret not in caplog.text


def test_real_core_show_channels_with_no_channels(asterisk):
    async def scenario():
        async with _real_client(asterisk) as client:
            await _no_channels_left(client)
            listing = await client.action("CoreShowChannels")
            assert (listing["EventList"], listing["Message"]) == ("start", "Channels will follow")
            assert listing.events == []
            assert (listing.complete.name, listing.complete["ListItems"]) == ("CoreShowChannelsComplete", "0")

    run(scenario())


def test_real_originate_outcomes(asterisk, caplog):
    caplog.set_level(logging.DEBUG, logger="gateway.voice.ami")
    text = 'Let op, vermist: "Kees" (8) \\ 06'

    async def scenario():
        seen: list[Message] = []
        async with _real_client(asterisk, on_event=seen.append) as client:
            endpoints = ("answer", "busy", "congestion", "noanswer")
            calls = {
                name: await client.originate(
                    f"Local/{name}@test-endpoints",
                    application="Wait",
                    data="2",
                    caller_id=f'"Burgernet" <{CALLER}>',
                    variables={"HOLD": "2", "BN_TEXT": text},
                    timeout_ms=1500,
                )
                for name in endpoints
            }
            answered = await client.wait_originate(calls["answer"], 10)
            assert (answered.response, answered.reason) == ("Success", 4)
            assert answered.uniqueid and answered.event["Channel"].endswith(";1")
            # The variable arrived whole: Asterisk splits Variable values at commas unless escaped.
            # (VarSet events carry values C-escaped, so ask the channel, up for `Wait` seconds.)
            got = await client.action("Getvar", Channel=answered.event["Channel"], Variable="BN_TEXT")
            assert (got["Response"], got["Value"]) == ("Success", text)

            results = {n: await client.wait_originate(calls[n], 10) for n in endpoints[1:]}
            # What Asterisk 22.10.1 really sends for the failures (Uniqueid: <unknown>).
            assert [(results[n].response, results[n].reason, results[n].uniqueid) for n in endpoints[1:]] == [
                ("Failure", 5, None),
                ("Failure", 8, None),
                ("Failure", 3, None),  # still ringing when the 1.5 s Originate timeout ran out
            ]
            # The answered call's Uniqueid is the outgoing channel's, which hangs up after HOLD.
            async with asyncio.timeout(10):
                while not any(m.name == "Hangup" and m["Uniqueid"] == answered.uniqueid for m in seen):
                    await asyncio.sleep(0.05)

    run(scenario())
    assert CALLER not in caplog.text


def test_real_three_answered_calls_are_six_local_channels(asterisk):
    async def scenario():
        async with _real_client(asterisk, events="call") as client:
            await _no_channels_left(client)
            calls = [
                await client.originate(
                    "Local/answer@test-endpoints", application="Wait", data="20", variables={"HOLD": "20"}
                )
                for _ in range(3)
            ]
            results = await asyncio.gather(*(client.wait_originate(c, 10) for c in calls))
            assert all(r.success for r in results)
            channels = await _channels(client)
            assert len(channels) == 6  # each Local call has two halves, ;1 and ;2
            assert sorted(c["Channel"][-2:] for c in channels) == [";1"] * 3 + [";2"] * 3
            assert {r.uniqueid for r in results} <= {c["Uniqueid"] for c in channels}
            hangup = await client.action("Hangup", Channel=r"/^Local\/answer@test-endpoints-/")
            # Hanging up one half of a Local pair takes the other down too, so the regex reaches
            # 3 to 6 of the channels depending on timing; none may survive either way.
            assert hangup.complete.name == "ChannelsHungupListComplete"
            assert 3 <= len(hangup.events) == int(hangup.complete["ListItems"]) <= 6
            async with asyncio.timeout(10):
                while await _channels(client):
                    await asyncio.sleep(0.1)

    run(scenario())


def test_real_restart_the_client_reconnects_by_itself(asterisk):
    async def scenario():
        reconnected = asyncio.Event()
        async with _real_client(
            asterisk, reconnect_delay=(0.2, 0.5, 1), on_reconnect=reconnected.set
        ) as client:
            ringing = await client.originate(
                "Local/noanswer@test-endpoints", application="Wait", data="1", timeout_ms=60000
            )
            await asyncio.to_thread(asterisk.restart)
            # A clean shutdown hangs the call up and reports it before closing the connection.
            gone = await client.wait_originate(ringing, timeout=10)
            assert (gone.response, gone.reason) == ("Failure", 0)
            await asyncio.wait_for(reconnected.wait(), 20)
            assert client.connected and client.reconnects >= 1
            call = await client.originate(
                "Local/answer@test-endpoints", application="Wait", data="1", variables={"HOLD": "1"}
            )
            assert (await client.wait_originate(call, timeout=10)).success

    run(scenario(), timeout=45)


def test_real_a_frozen_asterisk_is_noticed_by_the_keepalive(asterisk):
    """Asterisk stopped dead (SIGSTOP: the socket stays open, nothing answers): the keepalive cuts
    the connection within an interval and a Ping's timeout; once Asterisk runs again the client is
    back by itself. Before that, over several intervals, the answered Pings changed nothing."""

    async def scenario():
        async with _real_client(
            asterisk, keepalive=0.5, keepalive_timeout=1, connect_timeout=1, reconnect_delay=(0.2,)
        ) as client:
            await asyncio.sleep(2)  # four keepalive Pings, answered
            assert client.connected and client.reconnects == 0
            with asterisk.frozen():
                frozen_at = time.monotonic()
                await until_async(
                    lambda: not client.connected, timeout=5, what="the keepalive cuts the connection"
                )
                noticed = time.monotonic() - frozen_at
            await client.wait_connected(timeout=30)
            assert client.reconnects == 1
            assert (await client.action("Ping"))["Ping"] == "Pong"
            return noticed

    noticed = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert noticed < 0.5 + 1 + 1, noticed
