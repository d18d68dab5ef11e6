"""Typed errors that carry their HTTP status and a stable `error_id`; one handler renders them.
And `brief`: how any error reads in a log line."""

from typing import Any


class GatewayError(Exception):
    """Base of every error the API reports on purpose."""

    status_code = 400
    error_id = "bad-request"

    def __init__(self, message: str, **details: Any):
        super().__init__(message)
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        return {"error_id": self.error_id, "message": self.message, "details": self.details}

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries besides the body."""
        return {}


class NotFound(GatewayError):
    status_code = 404
    error_id = "not-found"


class Conflict(GatewayError):
    """The request is valid but the resource is in the wrong state for it."""

    status_code = 409
    error_id = "conflict"


class Invalid(GatewayError):
    """Input that passed the schema but breaks a business rule (names the field in details)."""

    status_code = 422
    error_id = "invalid"


class Unauthenticated(GatewayError):
    status_code = 401
    error_id = "unauthenticated"


class Forbidden(GatewayError):
    status_code = 403
    error_id = "forbidden"


class TooManyRequests(GatewayError):
    """Too many attempts from one client; `retry_after` seconds until the next is taken."""

    status_code = 429
    error_id = "too-many-requests"

    def __init__(self, message: str, retry_after: int, **details: Any):
        super().__init__(message, retry_after=retry_after, **details)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


def brief(exc: BaseException) -> str:
    """The first line of an error, for a log line (a driver's message can span a page)."""
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
