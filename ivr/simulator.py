"""Asterisk's side of a FastAGI session, for the demo, tests and benchmarks: send the environment,
answer commands as Asterisk 22 does (the recorded transcripts in the project's shared fixtures)."""

from __future__ import annotations

import socket
from collections.abc import Callable

# Asterisk's answer to a command; `None` closes the connection (Asterisk went away).
Answer = Callable[[str], "str | list[str] | None"]


def env_block(
    script: str, callerid: str = "0612345678", uniqueid: str = "1795344376.14", **extra: str
) -> dict:
    env = {
        "agi_network": "yes",
        "agi_network_script": script,
        "agi_request": f"agi://127.0.0.1:4573/{script}",
        "agi_channel": "Local/s@tipline-00000005;2",
        "agi_language": "en",
        "agi_type": "Local",
        "agi_uniqueid": uniqueid,
        "agi_version": "22.10.1",
        "agi_callerid": callerid,
        "agi_calleridname": "Test Caller",
        "agi_callingpres": "0",
        "agi_context": "tipline",
        "agi_extension": "s",
        "agi_priority": "4",
    }
    env.update(extra)
    return env


def default_answer(command: str) -> str:
    if command.startswith("GET DATA"):
        return "200 result= (timeout)"
    if command.startswith("STREAM FILE"):
        return "200 result=0 endpos=8000"
    return "200 result=1"


def call(port: int, env: dict | list[str], answer: Answer = default_answer, timeout: float = 10) -> list[str]:
    """One FastAGI session; returns the commands the server sent, in order."""
    commands: list[str] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        lines = env if isinstance(env, list) else [f"{k}: {v}" for k, v in env.items()]
        sock.sendall(("\n".join(lines) + "\n\n").encode())
        reader = sock.makefile("rb")
        while True:
            raw = reader.readline()
            if not raw:
                return commands
            command = raw.decode().rstrip("\n")
            commands.append(command)
            reply = answer(command)
            if reply is None:
                return commands
            for line in [reply] if isinstance(reply, str) else reply:
                sock.sendall((line + "\n").encode())


def variables(commands: list[str]) -> dict[str, str]:
    """The channel variables a session set (SET VARIABLE name "value")."""
    out = {}
    for c in commands:
        if c.startswith("SET VARIABLE "):
            name, _, value = c[len("SET VARIABLE ") :].partition(" ")
            out[name.strip('"')] = value.strip('"')
    return out


def keys(*per_prompt: str) -> Answer:
    """Answers GET DATA prompts with these key sequences in turn (then timeouts)."""
    pending = list(per_prompt)

    def answer(command: str) -> str:
        if command.startswith("GET DATA"):
            return f"200 result={pending.pop(0)}" if pending else "200 result= (timeout)"
        return default_answer(command)

    return answer
