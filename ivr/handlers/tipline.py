"""`tipline`: a call to 0800-0011 arrives — decide where it goes and log its tip record.

AGI arguments: the meldkamer's dial string, the prompts directory (dialplans/globals.conf).
Sets BN_DIAL, the decision; the dialplan dials, falls back to the meldkamer, and records a voice
tip when nobody answers. Which action the call is about is in the tip record, which is in the
log before BN_DIAL is set: with Redis, most calls' arrival record (written in the lookup's round
trip) already says it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from gateway import metrics
from gateway.tipline import tips
from gateway.tipline.routing import (
    CODE_TRIES,
    OpenAlert,
    Route,
    Step,
    caller_number,
    dial_for,
    route_by_caller,
    route_by_code,
    route_by_menu,
)
from ivr import variables as var
from ivr.agi import AGISession
from ivr.context import IvrContext

CODE_DIGITS_MAX = 8
DTMF_TIMEOUT_MS = 6000


def tipline(agi: AGISession, ctx: IvrContext) -> None:
    received = datetime.now(UTC)
    meldkamer, prompts = (agi.args() + ["", ""])[:2]
    caller = caller_number(agi.env.get("agi_callerid"), agi.env.get("agi_callingpres"))
    call_id = agi.env.get("agi_uniqueid") or f"no-uniqueid-{uuid.uuid4().hex}"
    # First, so that the hangup handler can finish this call's record whatever happens next.
    agi.set_variable(var.CALL_TOKEN, ctx.call_token(call_id))

    found = ctx.arrive(call_id, caller, received, meldkamer)
    route = route_by_caller(caller, found.alerts, found.any_open)
    asked = route.step in (Step.menu, Step.ask_code)
    if asked:
        if not found.logged:
            # RULE: every call is a tip record — logged before asking, in case the caller hangs up.
            ctx.log(tips.CallOpened(call_id, caller, route, None, received))
        if route.step is Step.menu:
            route = route_by_menu(route, _ask(agi, _prompt(prompts, "tipline-menu"), 1))
        else:
            route = _ask_code(agi, ctx, prompts, found.codes)

    dial = dial_for(route, meldkamer) or meldkamer
    elapsed = (datetime.now(UTC) - received).total_seconds()
    metrics.TIP_ROUTING_SECONDS.labels(route.matched_by.value).observe(elapsed)
    if asked or not found.logged:
        ctx.log(tips.CallOpened(call_id, caller, route, dial, received))
    agi.set_variable(var.DIAL, dial)


def _ask(agi: AGISession, prompt: str, max_digits: int) -> str:
    """Play `prompt` and collect up to `max_digits` keys ('' when none, '#' ends early)."""
    result = agi.get_data(prompt, DTMF_TIMEOUT_MS, max_digits)
    return result if isinstance(result, str) else ""


def _ask_code(agi: AGISession, ctx: IvrContext, prompts: str, codes: dict[str, OpenAlert] | None) -> Route:
    """Up to three tries to key an open action's code; then the meldkamer. `codes`: the open
    actions as the call arrived, if known; looked up (again) for keys they do not know."""
    for attempt in range(CODE_TRIES):
        digits = _ask(agi, _prompt(prompts, "tipline-enter-code"), CODE_DIGITS_MAX)
        route = route_by_code(digits, codes or {})
        if route is None and digits.strip().rstrip("#"):  # an action launched since, or none
            codes = ctx.open_by_code()
            route = route_by_code(digits, codes)
        if route is not None:
            return route
        if attempt < CODE_TRIES - 1:
            agi.stream_file(_prompt(prompts, "tipline-wrong-code"))
    return Route(Step.meldkamer)


def _prompt(prompts_dir: str, prompt_id: str) -> str:
    """A prompt as Asterisk plays it: a path without extension."""
    return f"{prompts_dir.rstrip('/')}/{prompt_id}" if prompts_dir else prompt_id
