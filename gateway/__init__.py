"""Burgernet telephony gateway: alerts out by SMS and voice, tips back in."""
