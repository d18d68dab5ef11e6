"""What handlers need from the rest of the system: the database, the route cache, settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from gateway.tipline import lookup
from gateway.tipline.lookup import RouteCache
from gateway.tipline.routing import OpenAlert
from ivr.tiplog import TipWriter


@dataclass
class IvrContext:
    sessions: sessionmaker[Session]
    cache: RouteCache | None  # None without Redis: every lookup goes to SQL
    tips: TipWriter = field(default=None)  # type: ignore[assignment]  # made from `sessions` when not given

    def __post_init__(self) -> None:
        if self.tips is None:
            self.tips = TipWriter(self.sessions)

    def alerts_for(self, phone: str | None) -> list[OpenAlert]:
        """The open actions that alerted `phone`: from the cache, else from SQL."""
        if phone is None:
            return []
        cached = self.cache.alerts_for(phone) if self.cache else None
        if cached is not None:
            return cached
        with self.sessions() as session:
            return lookup.alerts_for_sql(session, phone)

    def open_by_code(self) -> dict[str, OpenAlert]:
        cached = self.cache.open_by_code() if self.cache else None
        if cached is not None:
            return cached
        with self.sessions() as session:
            return lookup.open_by_code_sql(session)
