"""Text that XML 1.0 can carry — one home for what it forbids.

Everything a user writes may end up in a CAP document (gateway/cap.py), which is XML 1.0. Its
`Char` production (§2.2) allows tab, LF, CR, U+0020–U+D7FF, U+E000–U+FFFD and U+10000–U+10FFFF:
an action text with U+FFFF in it would make every later export of the action fail. So the API
refuses such text at the way in (gateway/api/schemas.py), and the export cleans what older rows
may still hold.
"""

import re

# RULE: text XML 1.0 forbids is refused at the way in (C0 controls except tab/LF/CR, the
# surrogates, U+FFFE and U+FFFF).
FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
REPLACEMENT = "\ufffd"


def first_forbidden(text: str) -> str | None:
    """The first character of `text` XML 1.0 cannot carry, or None."""
    match = FORBIDDEN.search(text)
    return match.group() if match else None


def cleaned(text: str) -> str:
    """`text` with every character XML 1.0 forbids replaced by U+FFFD."""
    return FORBIDDEN.sub(REPLACEMENT, text)
