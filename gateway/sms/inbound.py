"""What comes back over SMPP: delivery receipts and MO messages (STOP, or a tip).

Pure parts first — reading a receipt, what its state means for the message, whether a text is a
STOP — then one thin database edge, `handle_mo`, that never commits so that the worker can
persist a batch of inbound messages in one transaction.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from gateway.actions import wording
from gateway.participants import unsubscribe_number
from gateway.storage.models import MessageStatus, Tip
from gateway.tipline import caller_number, sms_tip

# --- delivery receipts --------------------------------------------------------------------------


class BadReceipt(ValueError):
    """A deliver_sm flagged as a receipt that says neither which message nor what became of it."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a delivery receipt says; times are the SMSC's, read as UTC."""

    smsc_message_id: str
    stat: str  # DELIVRD, EXPIRED, UNDELIV, REJECTD, DELETED, UNKNOWN, ACCEPTD, ENROUTE, …
    done_at: datetime | None = None
    error: str | None = None  # the err: field, network-specific ("000" = none)
    submitted_at: datetime | None = None
    text: str | None = None  # the first characters of the message, when the SMSC echoes them

    def id_candidates(self) -> tuple[str, ...]:
        """The ids under which the submit_sm_resp may have named this message, most likely first.

        SMSCs disagree with themselves: the submit_sm_resp id in hex and the receipt's id: in
        decimal (or the other way round), upper- or lower-case, zero-padded. A correlator looks
        the candidates up in this order.
        """
        raw = self.smsc_message_id
        out = [raw, raw.lower()]
        if raw.isdigit():
            out += [str(int(raw)), format(int(raw), "x")]
        if re.fullmatch(r"[0-9A-Fa-f]+", raw):
            out += [format(int(raw, 16), "x"), str(int(raw, 16))]
        return tuple(dict.fromkeys(out))


# `key:value` fields before the free text; keys as SMSCs spell them ("submit date", "submit_date",
# "Submit Date", "DLVRD").
_FIELD = re.compile(r"(?i)(?<![a-z])(id|sub|dlvrd|submit[ _]?date|done[ _]?date|stat|err)\s*:\s*(\S*)")
_TEXT = re.compile(r"(?i)(?<![a-z])text\s*:")
_STAT_ALIASES = {
    "DELIVERED": "DELIVRD",
    "UNDELIVERABLE": "UNDELIV",
    "REJECTED": "REJECTD",
    "ACCEPTED": "ACCEPTD",
}
# SMPP 3.4 message_state (section 5.2.28) in the receipt text's spelling.
_MESSAGE_STATES = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
_TLV_TAGS = {0x001E: "receipted_message_id", 0x0427: "message_state"}


def parse_receipt(text: str | bytes, tlvs: dict | None = None) -> Receipt:
    """Read a delivery receipt (deliver_sm with esm_class 0x04): its text and optional TLVs.

    The `receipted_message_id` TLV wins over the text's `id:` (it is the id exactly as the
    submit_sm_resp gave it); `message_state` stands in for a missing `stat:`. TLVs may be keyed by
    name or by tag. Raises BadReceipt when no message id or no state can be found.
    """
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    text = text or ""
    tlv = _named_tlvs(tlvs or {})
    cut = _TEXT.search(text)
    head, echoed = (text[: cut.start()], text[cut.end() :]) if cut else (text, None)
    fields = {re.sub(r"[ _]", "", key.lower()): value for key, value in _FIELD.findall(head)}

    message_id = _tlv_text(tlv.get("receipted_message_id")) or fields.get("id", "")
    if not message_id:
        raise BadReceipt(f"delivery receipt without a message id: {text[:80]!r}")
    stat = fields.get("stat", "").upper()
    stat = _STAT_ALIASES.get(stat, stat)
    if not stat and tlv.get("message_state") is not None:
        stat = _MESSAGE_STATES.get(_tlv_int(tlv["message_state"]), "UNKNOWN")
    if not stat:
        raise BadReceipt(
            f"delivery receipt for {message_id} without a state (stat: or message_state): {text[:80]!r}"
        )
    return Receipt(
        smsc_message_id=message_id,
        stat=stat,
        done_at=_smsc_time(fields.get("donedate")),
        error=fields.get("err") or None,
        submitted_at=_smsc_time(fields.get("submitdate")),
        text=echoed,
    )


def _named_tlvs(tlvs: dict) -> dict:
    return {
        _TLV_TAGS.get(key, key) if isinstance(key, int) else str(key).lower(): value
        for key, value in tlvs.items()
    }


def _tlv_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return str(value).strip("\0 ")


def _tlv_int(value) -> int:
    if isinstance(value, bytes):
        return int.from_bytes(value, "big")
    return int(getattr(value, "value", value))  # an enum member or a plain int


def _smsc_time(value: str | None) -> datetime | None:
    """YYMMDDhhmm (the standard), YYMMDDhhmmss or YYYYMMDDhhmmss; None when absent or unreadable."""
    if not value or not value.isdigit():
        return None
    formats = {10: "%y%m%d%H%M", 12: "%y%m%d%H%M%S", 14: "%Y%m%d%H%M%S"}
    if len(value) not in formats:
        return None
    try:
        return datetime.strptime(value, formats[len(value)]).replace(tzinfo=UTC)
    except ValueError:
        return None


# What a receipt's state means for the message: a final status and why, or None while the SMSC
# is still trying (ENROUTE) or merely took it (ACCEPTD).
_FINAL = {
    "DELIVRD": (MessageStatus.delivered, None),
    "EXPIRED": (MessageStatus.failed, "expired"),
    "UNDELIV": (MessageStatus.failed, "undeliverable"),
    "REJECTD": (MessageStatus.failed, "rejected"),
    "DELETED": (MessageStatus.failed, "deleted"),
    "UNKNOWN": (MessageStatus.failed, "unknown"),
}


def receipt_status(stat: str, error: str | None = None) -> tuple[MessageStatus, str | None] | None:
    """The message's final status and detail for a receipt state, or None when it is not final.

    A network error code other than 000 is kept in the detail ("undeliverable (err 001)"). A state
    this table does not know is not final either: the caller logs it and the message stays
    submitted rather than being called failed on a guess.
    """
    final = _FINAL.get((stat or "").upper())
    if final is None:
        return None
    status, detail = final
    if detail and error and error.strip("0"):
        detail = f"{detail} (err {error})"
    return status, detail


# --- MO messages --------------------------------------------------------------------------------

# RULE: STOP or AFMELDEN unsubscribes, in any case or spacing ("Stop.", " s t o p ", "AFMELDEN!"),
# also with the service's name after it ("STOP BURGERNET", as Dutch opt-out texts are usually
# worded). A sentence that merely contains the word ("stop met die berichten", "stop de man bij
# de brug!") is not an unsubscribe but a tip: during an alert a tip must never be lost to a
# keyword, while someone who meant to leave loses nothing by sending STOP once more. Letters and digits
# count, so punctuation, spaces and emoji around the word are ignored.
STOP_WORDS = frozenset({"stop", "afmelden"})
_SERVICE_NAME = "burgernet"


def is_stop(text: str) -> bool:
    """Whether an MO text asks to unsubscribe (see the rule above)."""
    # NFKC folds look-alikes a phone keyboard may produce (full-width letters) into plain ones.
    letters = "".join(ch for ch in unicodedata.normalize("NFKC", text or "").casefold() if ch.isalnum())
    if letters.endswith(_SERVICE_NAME) and letters != _SERVICE_NAME:
        letters = letters[: -len(_SERVICE_NAME)]
    return letters in STOP_WORDS


TON_INTERNATIONAL = 1


def mo_sender(source_addr: str, ton: int | None = None) -> str | None:
    """The MO sender in E.164 (or None when unusable), from the SMSC's source_addr and its TON.

    SMSCs write the sender as 316… with TON 1 (international, no "+"), as +316…, or nationally as
    06…; the parsing itself is the tip line's caller-number normalisation, the one home for it.
    """
    text = (source_addr or "").strip()
    if text.isdigit() and not text.startswith("0") and ton == TON_INTERNATIONAL:
        text = "+" + text
    number = caller_number(text)
    if number is None and text.isdigit() and not text.startswith("0"):
        number = caller_number("+" + text)  # international without its "+" and without TON 1
    return number


class MoKind(StrEnum):
    unsubscribed = "unsubscribed"  # a STOP
    tip = "tip"
    ignored = "ignored"  # an empty text


@dataclass(frozen=True, slots=True)
class MoOutcome:
    """What an MO message did: `reply` is the text to send back to the sender, if any."""

    kind: MoKind
    reply: str | None = None
    unsubscribed: int = 0  # registrations ended
    tip: Tip | None = None


def handle_mo(session: Session, sender_e164: str, text: str, now: datetime) -> MoOutcome:
    """STOP unsubscribes the number; any other text becomes an SMS tip. Does not commit.

    The tip line decides which action the tip goes to (gateway.tipline.sms_tip). An empty text is
    ignored.
    """
    if is_stop(text):
        ended = unsubscribe_number(session, sender_e164, now)
        return MoOutcome(MoKind.unsubscribed, reply=wording.unsubscribed_sms(), unsubscribed=ended)
    if not (text or "").strip():
        return MoOutcome(MoKind.ignored)
    return MoOutcome(MoKind.tip, tip=sms_tip(session, sender_e164, text, now))
