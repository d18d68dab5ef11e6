"""Phone numbers: one home for parsing to E.164 and for keeping full numbers out of logs."""

import re

import phonenumbers

# Numbers without a country prefix (06…, 030…) are Dutch.
DEFAULT_REGION = "NL"


class BadPhoneNumber(ValueError):
    pass


def to_e164(raw: str, region: str = DEFAULT_REGION) -> str:
    """Parse 06…, +316…, 00316…, +32…, +49… into E.164, or raise BadPhoneNumber saying why."""
    text = (raw or "").strip()
    if not text:
        raise BadPhoneNumber("empty phone number")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise BadPhoneNumber(f"not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise BadPhoneNumber("not a valid phone number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_mobile(e164: str) -> bool:
    """Whether the number can receive SMS (mobile, or a number type that may be mobile)."""
    kind = phonenumbers.number_type(phonenumbers.parse(e164))
    return kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


def masked(e164: str | None) -> str:
    """A number fit for logs: country prefix and last two digits only (+316******78)."""
    if not e164:
        return "<none>"
    keep_head = 4 if len(e164) > 8 else 2
    return e164[:keep_head] + "*" * max(0, len(e164) - keep_head - 2) + e164[-2:]


# Anything that may be a phone number in free text: +…, 00… or a Dutch 0… number of 10 digits,
# with the separators people type. Ids (no leading 0 or +) are left alone.
_NUMBER_IN_TEXT = re.compile(r"(?<![\w+])(?:\+|00|0(?=[1-9]))[0-9][0-9 ()./-]{6,18}[0-9](?!\w)")


def mask_numbers(text: str) -> str:
    """`text` (a URL, a log line, an error) with every phone number in it masked (see `masked`)."""
    return _NUMBER_IN_TEXT.sub(lambda m: masked(re.sub(r"[^0-9+]", "", m.group())), text)
