"""Phone numbers: one home for parsing to E.164 and for keeping full numbers out of logs."""

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
