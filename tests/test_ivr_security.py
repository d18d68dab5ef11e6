"""The FastAGI server's own guards (issue 17, defect 10): only allowed Asterisk addresses are
served, and a connection that says nothing is closed soon instead of holding a thread for 300 s.
(That a hangup record needs its call's token: tests/test_tipline.py.)"""

import ipaddress
import socket
import time

import pytest
from pydantic import ValidationError

from gateway.config import Settings
from ivr import simulator as agi_client
from ivr.context import IvrContext
from ivr.handlers import registry
from ivr.server import LOOPBACK, FastAGIServer, is_allowed


@pytest.fixture
def serve(api):
    """Start a FastAGI server with the given options on a free loopback port; stopped afterwards."""
    started = []

    def start(**options) -> FastAGIServer:
        server = FastAGIServer(("127.0.0.1", 0), registry(IvrContext(api.sessions, cache=None)), **options)
        server.start_in_background()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def test_a_silent_connection_is_closed_after_the_first_line_timeout(serve):
    server = serve(first_line_timeout=0.3)
    with socket.create_connection(server.server_address, timeout=10) as s:
        began = time.monotonic()
        assert s.recv(100) == b""  # closed by the server: nothing was sent
        assert time.monotonic() - began < 5
    assert server.stats.failures == 1
    # A real call is not hurried: the first line arrives at once, later commands may take long.
    env = agi_client.env_block("tipline", agi_arg_1="PJSIP/meldkamer@mk", agi_arg_2="")
    assert (
        agi_client.variables(agi_client.call(server.server_address[1], env))["BN_DIAL"]
        == "PJSIP/meldkamer@mk"
    )


def test_an_address_not_allowed_is_refused_before_any_handler_runs(serve):
    server = serve(allowed=[ipaddress.ip_network("192.0.2.0/24")])
    env = agi_client.env_block("tipline", agi_arg_1="PJSIP/meldkamer@mk", agi_arg_2="")
    assert agi_client.call(server.server_address[1], env) == []  # closed: no command, no decision
    assert (server.stats.refused, server.stats.calls) == (1, 0)
    assert serve().stats.refused == 0 and agi_client.call(
        serve().server_address[1], env
    )  # loopback by default


@pytest.mark.parametrize(
    "host, allowed",
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.5", False),
        ("192.0.2.1", False),
        ("fe80::1%eth0", False),
    ],
)
def test_loopback_is_allowed_and_nothing_else(host, allowed):
    assert is_allowed(host, LOOPBACK) is allowed


def test_the_allow_list_setting():
    assert Settings().ivr_allowed_networks == LOOPBACK
    assert Settings(ivr_allowed_hosts="*").ivr_allowed_networks is None
    assert Settings(ivr_allowed_hosts="10.1.2.3, 172.16.0.0/12").ivr_allowed_networks == (
        ipaddress.ip_network("10.1.2.3/32"),
        ipaddress.ip_network("172.16.0.0/12"),
    )
    for bad in ("", "asterisk.local", "10.0.0.0/33"):
        with pytest.raises(ValidationError, match="ivr_allowed_hosts"):
            Settings(ivr_allowed_hosts=bad)
