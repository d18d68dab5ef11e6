"""Targeting: who gets an action (pure core in `select`, the SQL edge in `query`)."""

from gateway.targeting.query import Page, find_recipients, find_waiting, recipients_page
from gateway.targeting.select import Recipient, Registration, select_recipients, select_waiting

__all__ = [
    "Page",
    "Recipient",
    "Registration",
    "find_recipients",
    "find_waiting",
    "recipients_page",
    "select_recipients",
    "select_waiting",
]
