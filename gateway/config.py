"""All configuration in one place: every option, with its default, is listed in `.env.example`."""

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The one value that marks an unset secret. Allowed in development only.
DEFAULT_SECRET = "change-me"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _ip_networks(text: str) -> tuple[IPNetwork, ...] | None:
    """ "127.0.0.1, 10.0.0.0/8" as networks; None for "*" (any address)."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if items == ["*"]:
        return None
    if not items:
        raise ValueError('give the Asterisk addresses (e.g. 127.0.0.1,::1), or "*" for any')
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in items)
    except ValueError as exc:
        raise ValueError(f"not an address or network: {exc}") from None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    # Used as the HMAC key for stored API keys: a leaked database alone does not reveal keys.
    secret_key: str = DEFAULT_SECRET

    # Storage: an embedded SQLite file unless a server is configured.
    data_dir: Path = Path("var")
    database_url: str = ""
    # Queue: Redis Streams when set; otherwise an in-process substitute (single process only).
    redis_url: str = ""

    api_host: str = "127.0.0.1"
    api_port: int = 8000

    # Operations (docs/operations.md). Each process serves Prometheus metrics and /livez on
    # METRICS_HOST:METRICS_PORT (0: none) — never on the API's port; with a token, /metrics wants it.
    metrics_host: str = "127.0.0.1"
    metrics_port: Annotated[int, Field(ge=0, lt=65536)] = 0
    metrics_token: str = ""
    # "json": one JSON object per log line (for a log collector); "text": plain lines.
    log_format: Literal["text", "json"] = "text"
    # Whether `burgernet serve` runs the periodic jobs itself; false when `burgernet housekeeping`
    # runs as its own service (compose). The jobs take a lock, so two runners never work at once.
    housekeeping_in_api: bool = True

    # Actions
    max_radius_m: int = Field(50_000, gt=0)
    action_expiry_minutes: int = Field(120, gt=0)
    expiry_check_seconds: float = Field(30, gt=0)
    # Messages left `queued` but never handed to the queue (a crash between commit and publish)
    # are published again after this grace period.
    reconcile_grace_seconds: float = Field(60, ge=0)
    reconcile_interval_seconds: float = Field(30, gt=0)
    # How open actions share each bind's rate and the voice lines (gateway/queue/schedule.py):
    # a weight per urgency class; every class with messages waiting gets weight / sum of weights.
    schedule_weights: str = "critical=8,high=4,follow_up=2,routine=1"

    # Statistics (gateway/stats): an action's messages are rolled up once it has been closed this
    # long (closing messages sent, receipts in); before that they are counted one by one.
    stats_settle_hours: float = Field(48, ge=0)
    stats_rollup_seconds: float = Field(300, gt=0)

    # SMS
    sms_sender: str = "Burgernet"
    sms_max_parts: int = Field(6, ge=1, le=255)
    # SMPP binds (`burgernet worker sms`): a JSON list, or a TOML file (sms-binds.example.toml
    # documents every option of a bind at its default). Passwords are secrets: never logged.
    sms_binds: str = ""
    sms_binds_file: str = ""
    # The default route: the bind for numbers no bind's prefixes match (empty: the first bind).
    sms_default_bind: str = ""
    # Statuses and receipts are written in one transaction per this many milliseconds.
    sms_flush_ms: int = Field(100, ge=10, le=5000)
    # A worker renews the lease on its `sending` messages; one that stops renewing for this long is
    # presumed dead and its messages are queued again.
    sms_lease_seconds: float = Field(60, ge=1)
    # Extra attempts after a response timeout or a temporary SMSC error, before the message fails.
    sms_submit_retries: int = Field(3, ge=0, le=20)
    # A submit left unanswered by a dropped connection waits this long (while its bind is up) for
    # a delivery receipt proving the SMSC accepted it, before it is sent again; 0: at once.
    sms_unanswered_grace_seconds: float = Field(5, ge=0)
    # Keep-alive, for every bind that does not set its own: an enquire_link after this long without
    # a byte from the SMSC; unanswered for the timeout, the connection is dropped and bound again.
    sms_enquire_link_seconds: float = Field(30, gt=0)
    sms_enquire_link_timeout_seconds: float = Field(10, gt=0)
    # A concatenated MO message still missing parts this long after its first part arrived is
    # handled with what came, marked as incomplete (gateway/sms/mo.py).
    sms_mo_part_wait_seconds: float = Field(60, gt=0)

    # Telephony numbers shown in messages.
    tip_line: str = "0800-0011"
    # The sender of the CAP 1.2 alerts this gateway exports (GET /api/v1/actions/{id}/cap).
    cap_sender: str = "burgernet@politie.nl"

    # The tip line's IVR (FastAGI server `burgernet ivr`).
    ivr_host: str = "127.0.0.1"
    ivr_port: int = Field(4573, gt=0, lt=65536)
    # The Asterisk addresses the FastAGI server answers (addresses or networks, comma-separated).
    # FastAGI has no authentication: never make the port reachable from outside. "*" serves any
    # address — only on a network where nothing but Asterisk can reach the port.
    ivr_allowed_hosts: str = "127.0.0.0/8,::1"
    # The meldkamer's number, ring times, recording and prompt paths are Asterisk's side:
    # dialplans/globals.conf (they reach the IVR as AGI arguments).

    # Spoken alerts (gateway/tts): engines in the order tried, each falling back to the next.
    tts_engines: str = "gtts,espeak"
    # gTTS's timeout per request, in seconds: an unreachable server hands over to the next engine fast.
    tts_timeout_seconds: float = Field(0.8, gt=0)
    # Where each action version's audio is written (8 kHz mono WAV); Asterisk must be able to read it.
    audio_dir: Path = Path("var/audio")

    # Spoken alert calls: the voice worker (`burgernet worker voice`) and its AMI connection.
    ami_host: str = "127.0.0.1"
    ami_port: int = Field(5038, gt=0, lt=65536)
    ami_user: str = "burgernet"
    # The AMI user's secret (asterisk/manager_users.conf); the worker refuses to start without one.
    ami_secret: str = ""
    # How a participant is dialled; {number} is the E.164 number (+31612345678).
    voice_dial_template: str = "PJSIP/{number}@trunk"
    # The caller ID alert calls show: deliberately not the tip line 0800-0011 (that is the number
    # the message asks people to call; this one only identifies the alert call).
    voice_caller_id: str = "Burgernet <0880000000>"
    # A voice worker renews the lease on its `sending` messages; one that stops renewing for this
    # long (it died) loses them: not yet dialled → called by another worker; dialled → failed
    # "outcome unknown" (it may have rung).
    voice_lease_seconds: float = Field(60, ge=1)
    # Simultaneous alert calls at most (trunk capacity); a call holds its place until it ended.
    voice_max_calls: int = Field(20, ge=1)
    # How long a participant's phone rings before the attempt counts as "no answer".
    voice_ring_seconds: int = Field(30, gt=0)
    # Extra attempts after busy, no answer or congestion (only while the action is open).
    voice_retries: int = Field(2, ge=0)
    voice_retry_delay_seconds: float = Field(60, ge=0)
    # An alert call's usual length, ringing included: only for the console's estimate of when
    # everyone is reached (lines / this = calls a second).
    voice_call_seconds: float = Field(45, gt=0)
    # AUDIO_DIR as Asterisk sees it when that differs (container, chroot); empty: the same path.
    voice_asterisk_audio_dir: str = ""

    # The browser console and dashboard (/console/, /dashboard/): how long a login lasts, in hours.
    session_hours: float = Field(8, gt=0, le=24 * 7)
    # Failed logins (a wrong key at /auth/login) allowed per client address in the window; beyond
    # that the client's logins are refused with 429 until the window has passed.
    login_max_failures: int = Field(10, ge=1)
    login_window_seconds: float = Field(300, gt=0)
    # The audit trail (who changed actions, who read or changed participant data) is kept this
    # many days, then deleted by housekeeping (GDPR: no longer than needed; two years by default).
    audit_retention_days: int = Field(730, ge=1, le=36500)
    # Map tiles for the console, e.g. https://tiles.example.org/{z}/{x}/{y}.png; empty: the bundled
    # outline of NL/BE/DE only (no internet needed). Production: PDOK's BRT-Achtergrondkaart
    # (docs/areas.md).
    map_tiles_url: str = ""
    # A PDOK Locatieserver compatible address search (…/search/v3_1/free) for the console's
    # address box, after the registered addresses; empty: registered addresses only.
    geocoder_url: str = ""
    # Where the gateway reads the tip line's voice recordings (Asterisk's BN_RECORDINGS_DIR, shared).
    recordings_dir: Path = Path("/var/spool/asterisk/recording/burgernet")

    @field_validator("schedule_weights")
    @classmethod
    def _weights_parse(cls, value: str) -> str:
        from gateway.queue.schedule import parse_weights

        parse_weights(value)  # refused at start-up with what is wrong, not at the first launch
        return value

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> "Settings":
        if self.environment != "development" and self.secret_key == DEFAULT_SECRET:
            raise ValueError(
                "SECRET_KEY still has its default value; set a long random SECRET_KEY "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`) "
                "or run with ENVIRONMENT=development"
            )
        return self

    @field_validator("ivr_allowed_hosts")
    @classmethod
    def _networks(cls, value: str) -> str:
        _ip_networks(value)  # refused at start, not at the first call
        return value

    @property
    def ivr_allowed_networks(self) -> tuple[IPNetwork, ...] | None:
        """IVR_ALLOWED_HOSTS as networks; None when any address is allowed ("*")."""
        return _ip_networks(self.ivr_allowed_hosts)

    @property
    def sqlalchemy_url(self) -> str:
        """The configured database, or the embedded SQLite file in `data_dir`."""
        if self.database_url:
            url = self.database_url
            # Plain postgresql:// URLs get the psycopg 3 driver we ship.
            if url.startswith(("postgresql://", "postgres://")):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{self.data_dir / 'burgernet.db'}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment and `.env`."""
    return Settings()
