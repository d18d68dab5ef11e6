"""SMPP bind configuration: which SMSC accounts the gateway binds to, and how.

Read from SMS_BINDS (a JSON list) or SMS_BINDS_FILE (a TOML file with `[[bind]]` tables; see
sms-binds.example.toml, which lists every option at its default). The password is a secret: it
is kept as a SecretStr and never appears in a log line or a repr.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

# SMPP 3.4 §5.2.5/5.2.6: type of number and numbering plan of source/destination addresses.
TON_INTERNATIONAL, TON_NATIONAL, TON_ALPHANUMERIC = 1, 2, 5
NPI_UNKNOWN, NPI_ISDN = 0, 1


class BindConfigError(ValueError):
    """The SMS bind configuration cannot be used; the message says which option and why."""


class BindConfig(BaseModel):
    """One SMPP account at one operator's SMSC."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    operator: str = Field(min_length=1, max_length=32)
    host: str = "127.0.0.1"
    port: int = Field(2775, gt=0, lt=65536)
    system_id: str = Field(min_length=1, max_length=15)
    password: SecretStr = Field(max_length=8)
    system_type: str = Field("", max_length=12)
    # transceiver: one connection both ways; transmitter+receiver: two connections.
    mode: Literal["transceiver", "transmitter+receiver"] = "transceiver"
    # Contracted messages (submit_sm PDUs) per second, shared by every gateway process; 0 = no limit.
    rate_per_second: int = Field(0, ge=0)
    # Submits written and not yet answered, at most.
    window: int = Field(100, ge=1, le=10_000)
    # Sender shown on the phone: letters → alphanumeric (TON 5, NPI 0); digits → a number.
    source: str = Field("Burgernet", min_length=1, max_length=20)
    source_ton: int | None = Field(None, ge=0, le=6)
    source_npi: int | None = Field(None, ge=0, le=18)
    # E.164 prefixes this bind serves ("+316", "+32"); none: only as default route or failover.
    prefixes: tuple[str, ...] = ()
    # Whether this bind takes other binds' traffic while all of theirs are down.
    failover: bool = True
    # Keep-alive: an enquire_link of our own after this long without a byte from the SMSC; one
    # unanswered for enquire_link_timeout_seconds drops the connection and binds again.
    enquire_link_seconds: float = Field(30, gt=0)
    enquire_link_timeout_seconds: float = Field(10, gt=0)
    response_timeout_seconds: float = Field(10, gt=0)

    @field_validator("prefixes")
    @classmethod
    def _e164_prefixes(cls, prefixes: tuple[str, ...]) -> tuple[str, ...]:
        for prefix in prefixes:
            if not (prefix.startswith("+") and prefix[1:].isdigit()):
                raise ValueError(f"prefix {prefix!r} must be '+' and digits, e.g. '+316'")
        return prefixes

    @model_validator(mode="after")
    def _source_fits(self) -> BindConfig:
        if not self.source.lstrip("+").isdigit() and len(self.source) > 11:
            raise ValueError(
                f"an alphanumeric sender has at most 11 characters, {self.source!r} has {len(self.source)}"
            )
        return self

    @property
    def source_address(self) -> tuple[str, int, int]:
        """(address, TON, NPI) of the sender: alphanumeric 5/0, a '+' number international 1/1."""
        digits = self.source.lstrip("+")
        if digits.isdigit():
            ton = TON_INTERNATIONAL if self.source.startswith("+") else TON_NATIONAL
            return (
                digits,
                self.source_ton if self.source_ton is not None else ton,
                (self.source_npi if self.source_npi is not None else NPI_ISDN),
            )
        return (
            self.source,
            (self.source_ton if self.source_ton is not None else TON_ALPHANUMERIC),
            self.source_npi if self.source_npi is not None else NPI_UNKNOWN,
        )

    def __repr__(self) -> str:  # the password stays out of every repr, log and traceback
        return f"BindConfig(name={self.name!r}, operator={self.operator!r}, {self.host}:{self.port})"


class SmsConfig(BaseModel):
    """Every bind, and the default route."""

    binds: tuple[BindConfig, ...]
    default_bind: str

    @model_validator(mode="after")
    def _consistent(self) -> SmsConfig:
        names = [b.name for b in self.binds]
        if len(set(names)) != len(names):
            raise ValueError(f"bind names must be unique: {names}")
        if self.default_bind not in names:
            raise ValueError(f"default bind {self.default_bind!r} is not one of {names}")
        return self

    def bind(self, name: str) -> BindConfig:
        return next(b for b in self.binds if b.name == name)


def load_sms_config(
    binds_json: str,
    binds_file: str,
    default_bind: str,
    sender: str = "Burgernet",
    defaults: Mapping[str, object] | None = None,
) -> SmsConfig:
    """Bind configuration from SMS_BINDS (JSON) or SMS_BINDS_FILE (TOML); raises BindConfigError.

    A bind without its own `source` sends as SMS_SENDER, and takes each option it leaves out from
    `defaults` (the SMS_ENQUIRE_LINK_* settings). The default route is SMS_DEFAULT_BIND, or the
    first bind.
    """
    if binds_json and binds_file:
        raise BindConfigError("set SMS_BINDS or SMS_BINDS_FILE, not both")
    try:
        if binds_file:
            raw = tomllib.loads(Path(binds_file).read_text(encoding="utf-8")).get("bind", [])
            where = f"SMS_BINDS_FILE {binds_file}"
        elif binds_json:
            raw = json.loads(binds_json)
            where = "SMS_BINDS"
        else:
            raise BindConfigError(
                "no SMPP bind configured: set SMS_BINDS or SMS_BINDS_FILE (see .env.example)"
            )
    except (OSError, ValueError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise BindConfigError(f"cannot read the bind configuration: {exc}") from None
    if not isinstance(raw, list) or not raw:
        raise BindConfigError(f"{where} must be a non-empty list of binds")
    try:
        binds = tuple(BindConfig(**{"source": sender, **(defaults or {}), **entry}) for entry in raw)
        return SmsConfig(binds=binds, default_bind=default_bind or binds[0].name)
    except (ValidationError, TypeError) as exc:
        raise BindConfigError(f"{where}: {_without_input(exc)}") from None


def _without_input(exc: Exception) -> str:
    # pydantic echoes the input in its message; that could be the password.
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return str(exc)
