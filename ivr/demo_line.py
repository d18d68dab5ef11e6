"""The demo's tip line: the real FastAGI server in the demo's process, Asterisk's side simulated.

`gateway.demo` plays an action through the API and is handed this (by `burgernet demo`), so the
gateway package never imports the IVR: the IVR depends on the gateway, not the other way round.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from ivr import simulator
from ivr.context import IvrContext
from ivr.handlers import registry
from ivr.server import FastAGIServer

MELDKAMER = "PJSIP/meldkamer@meldkamer"


class DemoTipLine:
    """What the demo's step 4 needs: two calls to 0800-0011, then their tips written to SQL."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._context = IvrContext(sessions, cache=None)
        self._server = FastAGIServer(("127.0.0.1", 0), registry(self._context))
        self._server.start_in_background()

    def call(self, caller: str, code: str, say: Callable[[str], None]) -> None:
        """A participant who got the alert calls, then a withheld number keys the action code."""
        port = self._server.server_address[1]
        args = {"agi_arg_1": MELDKAMER, "agi_arg_2": "/var/lib/burgernet/prompts"}
        for n, (who, callerid, answer) in enumerate(
            [
                ("a participant who got the alert", caller, simulator.default_answer),
                ("a withheld number, keying the action code", "anonymous", simulator.keys(code + "#")),
            ],
            1,
        ):
            call_id = f"demo-{n}"
            env = simulator.env_block("tipline", callerid=callerid, uniqueid=call_id, **args)
            set_by_ivr = simulator.variables(simulator.call(port, env, answer))
            routed = set_by_ivr.get("BN_DIAL")
            say(f"   call from {who}: put through to {routed}")
            # Asterisk's hangup handler: the centralist answered and they talked for a while.
            hangup = simulator.env_block("tipline_hangup", uniqueid=call_id)
            hangup.update(
                {
                    "agi_arg_1": "ANSWER",
                    "agi_arg_2": str(30 + 15 * n),
                    "agi_arg_3": routed or "",
                    "agi_arg_4": "",
                    "agi_arg_5": "",
                    "agi_arg_6": set_by_ivr.get("BN_CALL_TOKEN", ""),
                }
            )
            simulator.call(port, hangup)
        self._context.tips.flush()  # the tip records into SQL, for the API to show

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._context.tips.close()
