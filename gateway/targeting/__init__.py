"""Targeting: who gets an action (pure core in `select`, the SQL edge in `query`)."""

from gateway.targeting.query import find_recipients, recipients_in_phone_order
from gateway.targeting.select import Recipient, Registration, select_recipients

__all__ = ["Recipient", "Registration", "find_recipients", "recipients_in_phone_order", "select_recipients"]
