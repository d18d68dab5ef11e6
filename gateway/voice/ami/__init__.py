"""Asterisk's manager interface (AMI), in three parts a reader can name:

- `wire`: messages, their parsing and encoding, the errors;
- `connection`: one logged-in connection, reconnected, kept alive by Ping, responses by ActionID;
- `client`: actions, Originates with their outcomes, event streams (`AMIClient`).
"""

from .client import AMIClient, EventCallback, EventStream
from .connection import DEFAULT_KEEPALIVE, DEFAULT_RECONNECT_DELAY, AMIConnection
from .wire import (
    LINE_LIMIT,
    ORIGINATE_REASONS,
    AMIActionError,
    AMIAuthError,
    AMIConnectionLost,
    AMIError,
    AMINotSent,
    Message,
    OriginateResult,
    encode_action,
    masked_channel,
    parse_line,
)

__all__ = [
    "DEFAULT_KEEPALIVE",
    "DEFAULT_RECONNECT_DELAY",
    "LINE_LIMIT",
    "ORIGINATE_REASONS",
    "AMIActionError",
    "AMIAuthError",
    "AMIClient",
    "AMIConnection",
    "AMIConnectionLost",
    "AMIError",
    "AMINotSent",
    "EventCallback",
    "EventStream",
    "Message",
    "OriginateResult",
    "encode_action",
    "masked_channel",
    "parse_line",
]
