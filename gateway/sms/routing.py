"""Which bind an SMS goes out on: routing as plain objects, no I/O (after Jasmin's router).

A `Route` is a filter plus a bind; the `Router` tries its routes in order, then the default
route, then — while every bind the routes chose is down — the other binds that accept failover.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Protocol

from .binds import SmsConfig


class Filter(Protocol):
    def match(self, destination: str) -> bool:
        """Whether a message to this E.164 number takes the route."""


@dataclass(frozen=True)
class PrefixFilter:
    """Destinations starting with one of `prefixes` ("+316", "+32")."""

    prefixes: tuple[str, ...]

    def match(self, destination: str) -> bool:
        return destination.startswith(self.prefixes)


@dataclass(frozen=True)
class Route:
    filter: Filter
    bind: str


class NoRoute(LookupError):
    """No bind is up that may carry this message; it waits (or fails) — never goes out wrong."""


@dataclass(frozen=True)
class Router:
    routes: tuple[Route, ...]
    default: str
    failover: tuple[str, ...] = ()
    # Candidates by the destination's first `_significant` characters: with prefix routes only,
    # nothing after the longest prefix matters, so 100,000 numbers share a handful of answers.
    _memo: dict[str, list[str]] = field(default_factory=dict, compare=False, repr=False)

    @functools.cached_property
    def _significant(self) -> int | None:
        prefix_filters = [route.filter for route in self.routes if isinstance(route.filter, PrefixFilter)]
        if len(prefix_filters) < len(self.routes):
            return None
        return max((len(p) for f in prefix_filters for p in f.prefixes), default=0)

    def candidates(self, destination: str) -> list[str]:
        """Every bind that may carry a message to `destination`, best first."""
        if self._significant is None:
            return self._candidates(destination)
        key = destination[: self._significant]
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) >= 10_000:
                self._memo.clear()
            found = self._memo[key] = self._candidates(key)
        return found

    def _candidates(self, destination: str) -> list[str]:
        out: list[str] = []
        for route in self.routes:
            if route.filter.match(destination) and route.bind not in out:
                out.append(route.bind)
        if self.default not in out:
            out.append(self.default)
        out.extend(b for b in self.failover if b not in out)
        return out

    def choose(self, destination: str, up: Collection[str]) -> str:
        """The first candidate bind that is up; raises NoRoute when none is."""
        for name in self.candidates(destination):
            if name in up:
                return name
        raise NoRoute(f"no bind up for {destination[:4]}…")


def router_from_config(config: SmsConfig) -> Router:
    """Routes by prefix, longest prefix first, so "+3162" beats "+316" whatever the order of binds."""
    pairs: list[tuple[str, str]] = [(p, b.name) for b in config.binds for p in b.prefixes]
    pairs.sort(key=lambda pair: -len(pair[0]))
    return Router(
        routes=tuple(Route(PrefixFilter((prefix,)), bind) for prefix, bind in pairs),
        default=config.default_bind,
        failover=tuple(b.name for b in config.binds if b.failover),
    )
