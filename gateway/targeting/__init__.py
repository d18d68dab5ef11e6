"""Targeting: who gets an action (pure core in `select`, the SQL edge in `query`)."""

from gateway.targeting.query import find_recipients, find_waiting, recipients_in_phone_order
from gateway.targeting.select import Recipient, Registration, select_recipients, select_waiting

__all__ = [
    "Recipient",
    "Registration",
    "find_recipients",
    "find_waiting",
    "recipients_in_phone_order",
    "select_recipients",
    "select_waiting",
]
