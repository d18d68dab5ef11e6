"""What the messages say, in plain Dutch: the one home of every alert, update and closing text.

Participants complained about cryptic abbreviations squeezed into 160 characters, so texts are
written out in full and sent as concatenated SMS when needed. The spoken script follows the
historic voice alert ("Hier volgt een oproep voor Burgernet …") and reads the action code digit by
digit, so it can be typed on a keypad.
"""

import re
from typing import Literal

from gateway.storage.models import Outcome

# How the tip line is said aloud: "nul-achthonderd, nul-nul-elf" is how the Dutch say 0800-0011.
SPOKEN_TIP_LINE = "nul-achthonderd, nul-nul-elf"

# What happened (an action's outcome_detail), and as said in the closing message.
OutcomeDetail = Literal["arrest", "person_found", "vehicle_found", "goods_found", "other"]
OUTCOME_SENTENCES: dict[OutcomeDetail, str] = {
    "arrest": "Er is een verdachte aangehouden.",
    "person_found": "De vermiste persoon is gevonden.",
    "vehicle_found": "Het voertuig is gevonden.",
    "goods_found": "De gezochte goederen zijn gevonden.",
}


def spoken_digits(code: str) -> str:
    return ", ".join(code)


def _call_back(code: str) -> str:
    """How every spoken alert ends (the historic script: "… gratis terugbellen naar 0800-0011")."""
    return f"Heeft u iets gezien? Bel dan gratis terug naar {SPOKEN_TIP_LINE}, en noem actiecode {spoken_digits(code)}."


def alert_sms(description: str, code: str, tip_line: str) -> str:
    return f"Burgernet: {description.strip()} Ziet u iets? Bel gratis {tip_line}, actiecode {code}."


def alert_spoken(description: str, code: str) -> str:
    return f"Hier volgt een oproep voor Burgernet. {description.strip()} {_call_back(code)}"


def message_sms(description: str, municipality: str, code: str | None, tip_line: str) -> str:
    """A municipality's own message (not time-critical): no call to action unless it asks for
    tips (`code`)."""
    ask = f" Weet u meer? Bel gratis {tip_line}, actiecode {code}." if code else ""
    return f"Burgernet, gemeente {municipality}: {description.strip()}{ask}"


def message_spoken(description: str, municipality: str, code: str | None) -> str:
    ask = f" {_call_back(code)}" if code else ""
    return f"Hier volgt een bericht van Burgernet en de gemeente {municipality}. {description.strip()}{ask}"


def update_sms(text: str, code: str, tip_line: str) -> str:
    return f"Burgernet, aanvulling op actie {code}: {text.strip()} Ziet u iets? Bel gratis {tip_line}."


def update_spoken(text: str, code: str) -> str:
    return f"Hier volgt een aanvulling op een oproep van Burgernet. {text.strip()} {_call_back(code)}"


def closing_body(outcome: Outcome | None, detail: str | None, note: str | None) -> str:
    """The news of a closing message: the centralist's own words, else what happened."""
    if note and note.strip():
        return note.strip()
    if outcome in (Outcome.direct, Outcome.indirect) and detail in OUTCOME_SENTENCES:
        return OUTCOME_SENTENCES[detail]
    return ""


def closing_sms(code: str, body: str) -> str:
    news = f" {body}" if body else ""
    return f"Burgernet: de actie met actiecode {code} is beëindigd.{news} Bedankt voor het uitkijken."


def closing_spoken(body: str) -> str:
    news = f" {body}" if body else ""
    return f"Hier volgt een bericht van Burgernet. De actie waarvoor wij u eerder belden is beëindigd.{news} Bedankt voor het uitkijken."


def unsubscribed_sms() -> str:
    """The confirmation of an SMS STOP / AFMELDEN: every registration of the number has ended."""
    return (
        "Burgernet: u bent afgemeld en ontvangt op dit nummer geen berichten van Burgernet meer. "
        "Weer meedoen? Meld u opnieuw aan bij uw gemeente."
    )


# --- templates ------------------------------------------------------------------------------------

# What a template may ask the centralist for, as placeholders in its text ({who} …).
PLACEHOLDERS = {
    "who": "wie (signalement of naam)",
    "what": "wat (er gebeurde)",
    "where": "waar (plaats, straat)",
    "vehicle": "voertuig",
    "direction": "richting (vluchtrichting)",
}
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def template_problem(body: str) -> str | None:
    """What is wrong with a template's text (an unknown or unclosed placeholder), or None."""
    for name in _PLACEHOLDER.findall(body):
        if name not in PLACEHOLDERS:
            return f"unknown placeholder {{{name}}}; use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
    if "{" in _PLACEHOLDER.sub("", body) or "}" in _PLACEHOLDER.sub("", body):
        return "a { or } without its partner; placeholders look like {where}"
    return None


def fill_template(body: str, values: dict[str, str]) -> str:
    """The template with its placeholders filled in. A sentence whose placeholders are all left
    empty is left out (no "Gevlucht in richting ."); spaces are tidied."""
    kept = []
    for sentence in re.split(r"(?<=[.!?])\s+", body.strip()):
        names = _PLACEHOLDER.findall(sentence)
        if names and not any(values.get(n, "").strip() for n in names):
            continue
        kept.append(_PLACEHOLDER.sub(lambda m: values.get(m[1], "").strip(), sentence))
    text = re.sub(r"[ \t]{2,}", " ", " ".join(kept))
    return re.sub(r" +([.,;:!?])", r"\1", text).strip()
