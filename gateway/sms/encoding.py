"""How a text becomes SMS parts: which alphabet it needs and where it is cut.

Burgernet alerts are written in plain language ("Gezocht: man, ongeveer 40 jaar, rode jas")
rather than in cryptic abbreviations, so they regularly exceed one SMS and go out as a
concatenated SMS: several parts, each carrying a 6-byte user data header that lets the phone
glue them back into one message. That header takes room, so a part holds less than a single
SMS does.

The alphabet decides the room. The GSM 7-bit default alphabet (GSM 03.38) packs a character
into 7 bits: 160 per single SMS, 153 per part. Any character outside it — an emoji, but also
the Dutch "ë" of "België" — forces the whole message into UCS-2 at 16 bits per character:
70 per single SMS, 67 per part. A single character therefore can more than double the number
of parts, and so the cost of an alert sent to thousands of phones; `check_parts` exists to
tell the author before that happens.

The splitting is plain greedy, character by character: a part is filled until the next
character no longer fits. It does not look for word boundaries, because the phone reassembles
the parts into one message and the cut is invisible to the reader, while breaking at words
would cost extra parts. The only rule is that nothing that must travel together is torn apart:
an extension character's ESC + char pair, and a UTF-16 surrogate pair (an emoji).
"""

from dataclasses import dataclass
from typing import Literal

# GSM 03.38 default alphabet in code-point order; position 0x1B is ESC, which introduces the
# extension table and is not a character of its own, so it is left out of the set.
_GSM7_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(_GSM7_TABLE) == 128

GSM7_BASIC: frozenset[str] = frozenset(_GSM7_TABLE) - {"\x1b"}
# Each of these is sent as ESC + char, so it costs two septets.
GSM7_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|€")

SINGLE_GSM7 = 160
SINGLE_UCS2 = 70
# A concatenated part gives up 6 bytes to the header: 7 septets (GSM 7-bit, with fill bits)
# or 3 UTF-16 units.
PART_GSM7 = 153
PART_UCS2 = 67

Encoding = Literal["gsm7", "ucs2"]


@dataclass(frozen=True)
class EncodedText:
    """A text cut into SMS parts; `units` is septets (gsm7) or UTF-16 code units (ucs2)."""

    encoding: Encoding
    parts: list[str]
    units: int

    @property
    def part_count(self) -> int:
        """The number of SMS parts, which is what the operator pays for."""
        return len(self.parts)


class TextTooLong(ValueError):
    """The text needs more SMS parts than allowed."""

    def __init__(self, encoded: EncodedText, text: str, max_parts: int) -> None:
        label = "GSM 7-bit" if encoded.encoding == "gsm7" else "UCS-2"
        super().__init__(
            f"the text needs {encoded.part_count} SMS parts ({label}, {len(text)} characters); "
            f"the maximum is {max_parts}"
        )
        self.encoded = encoded
        self.max_parts = max_parts


def _septet_cost(char: str) -> int | None:
    if char in GSM7_BASIC:
        return 1
    if char in GSM7_EXTENSION:
        return 2
    return None


def _utf16_cost(char: str) -> int:
    # Characters beyond the BMP (most emoji) travel as a surrogate pair.
    return 2 if ord(char) > 0xFFFF else 1


def gsm7_septets(text: str) -> int | None:
    """The number of septets `text` takes in GSM 7-bit, or None if it is not GSM-encodable."""
    total = 0
    for char in text:
        cost = _septet_cost(char)
        if cost is None:
            return None
        total += cost
    return total


def _greedy_split(text: str, costs: list[int], limit: int) -> list[str]:
    parts: list[str] = []
    start = used = 0
    for i, cost in enumerate(costs):
        # A two-unit character that does not fit starts the next part whole.
        if used + cost > limit:
            parts.append(text[start:i])
            start, used = i, 0
        used += cost
    parts.append(text[start:])
    return parts


def split_sms(text: str) -> EncodedText:
    """Choose GSM 7-bit or UCS-2 for `text` and cut it into SMS parts; raises ValueError if empty."""
    # An empty SMS is always a bug upstream; sending it would still cost a part.
    if not text:
        raise ValueError("empty text")
    if gsm7_septets(text) is not None:
        encoding: Encoding = "gsm7"
        costs = [1 if char in GSM7_BASIC else 2 for char in text]
        single, per_part = SINGLE_GSM7, PART_GSM7
    else:
        # Fail here, not at the SMSC, on text that cannot be UTF-16 encoded (a lone surrogate).
        text.encode("utf-16-be")
        encoding = "ucs2"
        costs = [_utf16_cost(char) for char in text]
        single, per_part = SINGLE_UCS2, PART_UCS2
    units = sum(costs)
    if units <= single:
        return EncodedText(encoding, [text], units)
    return EncodedText(encoding, _greedy_split(text, costs, per_part), units)


def check_parts(text: str, max_parts: int) -> EncodedText:
    """Split `text` like `split_sms`, raising TextTooLong if it needs more than `max_parts` parts."""
    if max_parts < 1:
        raise ValueError(f"max_parts must be at least 1, not {max_parts}")
    encoded = split_sms(text)
    if encoded.part_count > max_parts:
        raise TextTooLong(encoded, text, max_parts)
    return encoded
