"""pyst2's AGI command layer over one FastAGI connection — its quirks worked around here only.

pyst2 0.5.1 is written for AGI over stdin/stdout of a child process. Over a socket in a server
it needs three fixes (found with Asterisk 22): its constructor installs a SIGHUP handler (only possible in
the main thread) and writes the whole AGI environment, caller number included, to stderr; and the
bare `HANGUP` line Asterisk sends when the caller hangs up is not a command result. Commands then
answer `511` on the dead channel; here that becomes AGIResultHangup like any other hangup. And
its environment reader pretty-prints the whole environment for that log on every call, a good
part of a short session's CPU: the environment is read here without it.
"""

from __future__ import annotations

import io

from asterisk.agi import AGI, AGIResultHangup, AGIUnknownError

__all__ = ["AGIResultHangup", "AGISession"]


class _Lines:
    """Text lines from Asterisk: undecodable bytes replaced, `HANGUP` notices taken out."""

    def __init__(self, raw: io.BufferedReader, session: AGISession):
        self._raw, self._session = raw, session

    def readline(self) -> str:
        while True:
            line = self._raw.readline(8192)
            if not line:  # Asterisk closed the connection
                raise AGIResultHangup("connection closed by Asterisk")
            text = line.decode("utf-8", errors="replace")
            if text.strip() == "HANGUP":  # asynchronous notice, the command's result follows
                self._session.hung_up = True
                continue
            return text


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


class AGISession(AGI):
    """One call's AGI session: pyst2's commands (`stream_file`, `get_data`, `set_variable`, …)."""

    def __init__(self, rfile: io.BufferedReader, wfile: io.TextIOBase):
        # Deliberately not AGI.__init__ (SIGHUP handler, environment logged to stderr).
        self.stdin = _Lines(rfile, self)
        self.stdout = wfile
        self.stderr = _Discard()
        self._got_sighup = False
        self.hung_up = False
        self.env: dict[str, str] = {}
        self._get_agi_env()

    def _get_agi_env(self) -> None:
        """`key: value` lines up to a blank one (as pyst2 reads them, minus its log)."""
        while line := self.stdin.readline().strip():
            key, _, value = line.partition(":")
            if key := key.strip():
                self.env[key] = value.strip()

    def get_result(self, stdin=None):
        try:
            return super().get_result()
        except AGIUnknownError as exc:
            if exc.args and exc.args[0] == 511:  # "Command Not Permitted on a dead channel"
                self.hung_up = True
                raise AGIResultHangup("channel hung up") from None
            raise

    @property
    def script(self) -> str:
        """The handler name: the path of agi://host:port/<name>?… without slashes or query."""
        return self.env.get("agi_network_script", "").split("?", 1)[0].strip("/")

    def args(self) -> list[str]:
        """The AGI arguments (agi_arg_1, agi_arg_2, …) in order."""
        out, n = [], 1
        while f"agi_arg_{n}" in self.env:
            out.append(self.env[f"agi_arg_{n}"])
            n += 1
        return out
