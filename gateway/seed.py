"""A synthetic but realistic participant population, for demos and benchmarks.

`seed(engine, 1_600_000)` fills the database with about as many participants as Burgernet has
nationally, spread over ~40 real municipalities (big cities, the Utrecht region, border towns)
by population. Each participant has a Dutch mobile number (a few a landline, which are voice-only;
~1% a Belgian or German mobile) and 1–3 addresses: a home near the city centre, often a work
address in a nearby city that people commute to. About 2% of participants share their number
with a housemate who registered separately. ~30% of addresses have a receive window (some crossing
midnight), ~1% of participants are on holiday pause and ~1% have unsubscribed. Sign-ups
(`created_at`) spread over eight years at a steadily growing rate, for the sign-up trend.

It never builds ORM objects: rows are generated as tuples in chunks, ids are assigned here (so
addresses refer to participants without a round trip) and written as Core executemany INSERTs,
all in one transaction.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, cast

from sqlalchemy import Engine, Table, func, insert, select, text

from gateway.storage.models import Address, Municipality, Participant
from gateway.targeting.geo import distance_m, tile_of
from gateway.targeting.select import LOCAL_TZ
from gateway.targeting.windows import every_day

__all__ = ["CITIES", "City", "SeedSummary", "seed"]


class City(NamedTuple):
    cbs: str  # CBS municipality code
    name: str
    region: str  # police region (eenheid)
    lat: float  # centre
    lon: float
    pop_k: int  # inhabitants, thousands (the participant weight)
    pc_lo: int  # 4-digit postcode range
    pc_hi: int
    area: str  # telephone area code without the trunk 0


_MN, _AMS, _NH, _DH, _ROT = "Midden-Nederland", "Amsterdam", "Noord-Holland", "Den Haag", "Rotterdam"
_ON, _NN, _LB, _OB, _ZWB = (
    "Oost-Nederland",
    "Noord-Nederland",
    "Limburg",
    "Oost-Brabant",
    "Zeeland-West-Brabant",
)

CITIES: tuple[City, ...] = (
    # Utrecht and its neighbours (the demo region)
    City("GM0344", "Utrecht", _MN, 52.0907, 5.1214, 374, 3511, 3585, "30"),
    City("GM0356", "Nieuwegein", _MN, 52.0290, 5.0806, 65, 3431, 3439, "30"),
    City("GM0355", "Zeist", _MN, 52.0894, 5.2330, 67, 3701, 3709, "30"),
    City("GM0321", "Houten", _MN, 52.0286, 5.1680, 51, 3991, 3997, "30"),
    City("GM0310", "De Bilt", _MN, 52.1104, 5.1810, 44, 3731, 3739, "30"),
    City("GM1904", "Stichtse Vecht", _MN, 52.1380, 5.0390, 66, 3601, 3621, "346"),
    City("GM0353", "IJsselstein", _MN, 52.0200, 5.0431, 35, 3401, 3404, "30"),
    City("GM0312", "Bunnik", _MN, 52.0667, 5.1972, 15, 3981, 3985, "30"),
    City("GM0307", "Amersfoort", _MN, 52.1561, 5.3878, 161, 3811, 3829, "33"),
    City("GM0034", "Almere", _MN, 52.3508, 5.2647, 226, 1311, 1364, "36"),
    # the big cities
    City("GM0363", "Amsterdam", _AMS, 52.3728, 4.8936, 931, 1011, 1109, "20"),
    City("GM0599", "Rotterdam", _ROT, 51.9225, 4.4792, 670, 3011, 3089, "10"),
    City("GM0518", "'s-Gravenhage", _DH, 52.0705, 4.3007, 567, 2491, 2599, "70"),
    City("GM0772", "Eindhoven", _OB, 51.4416, 5.4697, 246, 5611, 5658, "40"),
    City("GM0014", "Groningen", _NN, 53.2194, 6.5665, 238, 9711, 9747, "50"),
    City("GM0855", "Tilburg", _ZWB, 51.5555, 5.0913, 227, 5011, 5049, "13"),
    City("GM0758", "Breda", _ZWB, 51.5719, 4.7683, 188, 4811, 4839, "76"),
    City("GM0200", "Apeldoorn", _ON, 52.2112, 5.9699, 168, 7311, 7339, "55"),
    City("GM0202", "Arnhem", _ON, 51.9851, 5.8987, 167, 6811, 6846, "26"),
    City("GM0392", "Haarlem", _NH, 52.3874, 4.6462, 163, 2011, 2037, "23"),
    City("GM0796", "'s-Hertogenbosch", _OB, 51.6978, 5.3037, 160, 5211, 5249, "73"),
    City("GM0479", "Zaanstad", _NH, 52.4386, 4.8264, 159, 1501, 1567, "75"),
    City("GM0193", "Zwolle", _ON, 52.5168, 6.0830, 133, 8011, 8048, "38"),
    City("GM0546", "Leiden", _DH, 52.1601, 4.4970, 127, 2311, 2334, "71"),
    City("GM0080", "Leeuwarden", _NN, 53.2012, 5.7999, 127, 8911, 8941, "58"),
    City("GM0505", "Dordrecht", _ROT, 51.8133, 4.6901, 122, 3311, 3329, "78"),
    City("GM0503", "Delft", _DH, 52.0116, 4.3571, 105, 2611, 2629, "15"),
    City("GM0106", "Assen", _NN, 52.9925, 6.5649, 69, 9401, 9409, "592"),
    City("GM0687", "Middelburg", _ZWB, 51.4988, 3.6136, 49, 4331, 4339, "118"),
    # border towns
    City("GM0935", "Maastricht", _LB, 50.8514, 5.6910, 122, 6211, 6229, "43"),
    City("GM0268", "Nijmegen", _ON, 51.8126, 5.8372, 185, 6511, 6546, "24"),
    City("GM0153", "Enschede", _ON, 52.2215, 6.8937, 161, 7511, 7548, "53"),
    City("GM0114", "Emmen", _NN, 52.7858, 6.8976, 108, 7811, 7828, "591"),
    City("GM0983", "Venlo", _LB, 51.3704, 6.1724, 103, 5911, 5944, "77"),
    City("GM1883", "Sittard-Geleen", _LB, 50.9980, 5.8690, 91, 6131, 6166, "46"),
    City("GM0917", "Heerlen", _LB, 50.8882, 5.9795, 87, 6411, 6422, "45"),
    City("GM1674", "Roosendaal", _ZWB, 51.5308, 4.4653, 78, 4701, 4709, "165"),
    City("GM0715", "Terneuzen", _ZWB, 51.3358, 3.8276, 55, 4531, 4539, "115"),
    City("GM0928", "Kerkrade", _LB, 50.8659, 6.0627, 45, 6461, 6471, "45"),
    City("GM0294", "Winterswijk", _ON, 51.9725, 6.7194, 29, 7101, 7109, "543"),
    City("GM0981", "Vaals", _LB, 50.7711, 6.0186, 10, 6291, 6295, "43"),
)

_FIRST = [
    "Jan",
    "Piet",
    "Kees",
    "Henk",
    "Willem",
    "Bram",
    "Daan",
    "Sem",
    "Lucas",
    "Finn",
    "Luuk",
    "Thijs",
    "Jesse",
    "Ruben",
    "Mohamed",
    "Ahmed",
    "Emre",
    "Johan",
    "Gerrit",
    "Dirk",
    "Anna",
    "Emma",
    "Julia",
    "Sophie",
    "Tess",
    "Sara",
    "Lisa",
    "Eva",
    "Fleur",
    "Noor",
    "Fatima",
    "Sanne",
    "Anouk",
    "Ingrid",
    "Marieke",
    "Annemiek",
    "Wilma",
    "Petra",
    "Yasmina",
    "Lotte",
    "Iris",
    "Maria",
]
_LAST = [
    "de Jong",
    "Jansen",
    "de Vries",
    "van den Berg",
    "van Dijk",
    "Bakker",
    "Janssen",
    "Visser",
    "Smit",
    "Meijer",
    "de Boer",
    "Mulder",
    "de Groot",
    "Bos",
    "Vos",
    "Peters",
    "Hendriks",
    "van Leeuwen",
    "Dekker",
    "Brouwer",
    "de Wit",
    "Dijkstra",
    "Smits",
    "de Graaf",
    "van der Meer",
    "van der Linden",
    "Kok",
    "Jacobs",
    "de Haan",
    "Vermeulen",
    "van den Heuvel",
    "van der Veen",
    "van den Broek",
    "de Bruijn",
    "van der Heijden",
    "Schouten",
    "van Beek",
    "Willems",
    "van Vliet",
    "Hoekstra",
    "Maas",
    "Verhoeven",
    "Koster",
    "Prins",
    "Huisman",
    "El Amrani",
    "Yılmaz",
    "Öztürk",
    "Nguyen",
    "Peeters",
]
_FIRST_FOREIGN = {
    "en": ["James", "Emily", "Oliver", "Chloe"],
    "de": ["Lukas", "Anja", "Jonas", "Katrin"],
    "fr": ["Louis", "Camille", "Hugo", "Manon"],
}
_LAST_FOREIGN = {
    "en": ["Smith", "Taylor", "Brown", "Walsh"],
    "de": ["Müller", "Schmidt", "Becker", "Wagner"],
    "fr": ["Dubois", "Lambert", "Martin", "Leroy"],
}
# Dutch postcode letters never use F, I, O, Q, U or Y, and SA, SD and SS are not issued.
_LETTERS = [
    a + b for a in "ABCDEGHJKLMNPRSTVWXZ" for b in "ABCDEGHJKLMNPRSTVWXZ" if a + b not in ("SA", "SD", "SS")
]

# Receive windows (local minutes since midnight); 70% of addresses have none.
_WINDOWS = ((420, 1380), (480, 1320), (420, 1320), (540, 1260), (360, 1410), (1320, 420), (1380, 480))
_WINDOW_WEIGHTS = (10, 8, 4, 2, 2, 3, 1)  # the last two cross midnight (night-shift workers)

# Number spaces: (prefix, digits after the prefix). Each run walks each space with a
# multiplicative permutation, so numbers never collide by accident (sharing is deliberate).
_MOBILE = ("+316", 8)  # 06-1…06-5 are mobile: 1xxxxxxx … 5xxxxxxx below
_BE_MOBILE = ("+324", 8)  # 046x … 049x
_DE_MOBILE = (
    ("+49151", 8),
    ("+49152", 8),
    ("+49160", 7),
    ("+49162", 8),
    ("+49170", 8),
    ("+49172", 8),
    ("+49176", 8),
    ("+49177", 8),
)
_PERMUTE = 2_654_435_761  # prime, hence coprime with every space size (2^a·3^b·5^c)

_CHUNK = 50_000
_STAMPS = 16_384  # distinct sign-up moments, drawn once


@dataclass(frozen=True, slots=True)
class SeedSummary:
    municipalities: int  # municipalities the population was spread over (upserted by CBS code)
    participants: int  # participant rows written
    addresses: int  # address rows written
    shared_numbers: int  # distinct numbers that more than one participant row registered
    foreign_numbers: int  # distinct non-Dutch (+32/+49) numbers


def seed(
    engine: Engine,
    participants: int,
    *,
    around: tuple[float, float, float] | None = None,
    rng_seed: int = 2026,
    progress: Callable[[int], None] | None = None,
    now: datetime | None = None,
) -> SeedSummary:
    """Add `participants` synthetic participants (with their addresses) to the database.

    `around=(lat, lon, radius_km)` uses only the municipalities whose centre lies in that circle.
    The output is a function of `rng_seed`, `now` and the ids already in use; seeding again adds
    a new population with fresh numbers. `progress(n)` is called with the running total after each
    chunk. Municipalities are upserted by CBS code, so seeding twice does not duplicate them.
    """
    if participants < 0:
        raise ValueError("participants must be >= 0")
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("naive datetime given; use datetime.now(timezone.utc)")
    cities = list(CITIES)
    if around is not None:
        alat, alon, akm = around
        cities = [c for c in cities if distance_m(alat, alon, c.lat, c.lon) <= akm * 1000.0]
        if not cities:
            raise ValueError(f"no municipality within {akm} km of ({alat}, {alon})")

    # Ids are assigned here (addresses refer to participants without a round trip). PostgreSQL:
    # keep other writers out until its sequences are moved on past them (SQLite has none).
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if pg:
            conn.execute(text("LOCK TABLE participant, address IN SHARE ROW EXCLUSIVE MODE"))
        muni_ids = _upsert_municipalities(conn, cities, now)
        first_pid = (conn.scalar(select(func.max(Participant.id))) or 0) + 1
        first_aid = (conn.scalar(select(func.max(Address.id))) or 0) + 1
        gen = _Generator(cities, [muni_ids[c.cbs] for c in cities], rng_seed, now, first_pid, first_aid)
        for people, places in gen.chunks(participants):
            conn.execute(_PARTICIPANTS, [dict(zip(_P_COLS, row)) for row in people])
            conn.execute(_ADDRESSES, [dict(zip(_A_COLS, row)) for row in places])
            if progress is not None:
                progress(gen.participants)
        if pg and gen.participants:
            for table in ("participant", "address"):
                conn.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}")
                )
    return SeedSummary(len(cities), gen.participants, gen.addresses, gen.shared, gen.foreign)


def _upsert_municipalities(conn, cities: list[City], now: datetime) -> dict[str, int]:
    table = cast(Table, Municipality.__table__)
    have = dict(
        conn.execute(
            select(table.c.cbs_code, table.c.id).where(table.c.cbs_code.in_([c.cbs for c in cities]))
        ).all()
    )
    missing = [c for c in cities if c.cbs not in have]
    if missing:
        conn.execute(
            insert(table),
            [{"cbs_code": c.cbs, "name": c.name, "region": c.region, "created_at": now} for c in missing],
        )
        have = dict(
            conn.execute(
                select(table.c.cbs_code, table.c.id).where(table.c.cbs_code.in_([c.cbs for c in cities]))
            ).all()
        )
    return have


_P_COLS = (
    "id",
    "municipality_id",
    "name",
    "phone",
    "language",
    "pause_from",
    "pause_until",
    "unsubscribed_at",
    "created_at",
    "updated_at",
)
_A_COLS = (
    "id",
    "participant_id",
    "country",
    "postcode",
    "house_number",
    "lat",
    "lon",
    "tile",
    "channel",
    "windows",
)


_PARTICIPANTS = insert(cast(Table, Participant.__table__))
_ADDRESSES = insert(cast(Table, Address.__table__))


class _Space:
    """Hands out distinct numbers of one number space ("+316" + 8 digits …) in random-looking order."""

    def __init__(self, prefix: str, digits: int, lead: str, start: int, rng: random.Random):
        self.prefix, self.lead = prefix, lead  # `lead`: allowed first digits after the prefix
        self.rest = digits - 1
        self.size = len(lead) * 10**self.rest
        self.next = start
        self.offset = rng.randrange(self.size)

    def take(self) -> str:
        k = (self.next * _PERMUTE + self.offset) % self.size
        self.next += 1
        first, rest = divmod(k, 10**self.rest)
        return f"{self.prefix}{self.lead[first]}{rest:0{self.rest}d}"


class _Generator:
    """Rows for `chunks()`: participants in `_P_COLS` order, addresses in `_A_COLS` order."""

    def __init__(self, cities, muni_ids, rng_seed, now, first_pid, first_aid):
        self.rng = rng = random.Random(f"burgernet-seed:{rng_seed}:{first_pid}")
        self.cities, self.muni_ids = cities, muni_ids
        self.pid, self.aid = first_pid, first_aid
        self.participants = self.addresses = self.shared = self.foreign = 0
        cum, total = [], 0.0
        for c in cities:
            total += c.pop_k
            cum.append(total)
        self.cum, self.total = cum, total
        # Commuting: the work address is in city j with weight pop_j · exp(-distance / 25 km).
        self.commute = []
        for a in cities:
            acc, rows = 0.0, []
            for b in cities:
                acc += b.pop_k * math.exp(-distance_m(a.lat, a.lon, b.lat, b.lon) / 25_000.0)
                rows.append(acc)
            self.commute.append((rows, acc))
        # Spread of homes around the centre: a standard deviation of ~1–4 km by city size.
        self.spread = []
        for c in cities:
            sd_km = 0.5 + 1.1 * math.sqrt(c.pop_k / 100.0)
            self.spread.append((sd_km / 111.32, sd_km / (111.32 * math.cos(math.radians(c.lat)))))
        # Numbers: one permuted walk per space, starting at this run's first id so that seeding
        # again with the same rng_seed does not hand out the same numbers.
        self.mobile = _Space(*_MOBILE, "12345", first_pid, rng)
        self.be = _Space(*_BE_MOBILE, "6789", first_pid, rng)
        self.de = [_Space(p, d, "0123456789", first_pid, rng) for p, d in _DE_MOBILE]
        self.landline = {
            a: _Space("+31" + a, 9 - len(a), "23456789", first_pid, rng)
            for a in sorted({c.area for c in cities})
        }
        self.now = now
        # Sign-ups over eight years, at a rate that grew steadily (the sign-up trend's shape):
        # a creation time t in [0, T] with density ∝ t, i.e. T·sqrt(u).
        span = 8 * 365 * 86_400
        self.created = [
            now - timedelta(seconds=int(span * (1.0 - math.sqrt(rng.random())))) for _ in range(_STAMPS)
        ]
        self.today = now.astimezone(LOCAL_TZ).date()

    # --- one participant ------------------------------------------------------------------------

    def _phone(self, ci: int, r: float) -> tuple[str, str]:
        """(phone, kind) where kind is mobile, landline or foreign."""
        rng, city = self.rng, self.cities[ci]
        if r < 0.01:
            # Near the eastern border mostly German numbers, elsewhere mostly Belgian.
            german = rng.random() < (0.8 if city.lon > 5.8 else 0.3)
            space = self.de[rng.randrange(len(self.de))] if german else self.be
            return space.take(), "foreign"
        if r < 0.07:
            return self.landline[city.area].take(), "landline"
        return self.mobile.take(), "mobile"

    def _person(self, ci: int, phone: str, kind: str, last: str | None, people: list) -> str:
        rng = self.rng
        r = rng.random()
        if kind == "foreign":
            lang = "de" if phone.startswith("+49") else ("fr" if r < 0.5 else "nl")
        else:
            lang = "nl" if r < 0.965 else ("en" if r < 0.99 else ("de" if r < 0.995 else "fr"))
        if lang == "nl":
            first = _FIRST[rng.randrange(len(_FIRST))]
            last = last or _LAST[rng.randrange(len(_LAST))]
        else:
            first = rng.choice(_FIRST_FOREIGN[lang])
            last = last or rng.choice(_LAST_FOREIGN[lang])
        pause_from = pause_until = unsub = None
        r = rng.random()
        created = self.created[rng.randrange(_STAMPS)]
        updated = created
        if r < 0.01:  # on holiday: a pause around today
            start = self.today + timedelta(days=rng.randrange(-14, 8))
            pause_from, pause_until = start, start + timedelta(days=rng.randrange(3, 22))
            updated = max(created, self.now - timedelta(days=rng.randrange(1, 30)))
        elif r < 0.02:
            unsub = self.now - timedelta(seconds=rng.randrange(3 * 365 * 86_400))
            updated = max(created, unsub)
        people.append(
            (
                self.pid,
                self.muni_ids[ci],
                f"{first} {last}",
                phone,
                lang,
                pause_from,
                pause_until,
                unsub,
                created,
                updated,
            )
        )
        self.pid += 1
        self.participants += 1
        return last

    # --- one address ----------------------------------------------------------------------------

    def _place(self, ci: int) -> tuple[str, str, float, float]:
        """(postcode, house number, lat, lon) of a random address in city `ci`."""
        rng, city = self.rng, self.cities[ci]
        sy, sx = self.spread[ci]
        while True:
            gy, gx = rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0)
            rr = gy * gy + gx * gx
            if rr < 9.0:  # within three standard deviations
                break
        lat, lon = round(city.lat + gy * sy, 6), round(city.lon + gx * sx, 6)
        # Postcodes grow outwards from the centre, as they do in most Dutch cities.
        span = city.pc_hi - city.pc_lo + 1
        pc = city.pc_lo + int(math.sqrt(rr) / 3.0 * span)
        postcode = f"{pc} {_LETTERS[rng.randrange(len(_LETTERS))]}"
        house = str(min(250, 1 + int(rng.expovariate(1 / 35.0))))
        return postcode, house, lat, lon

    def _address(self, pid: int, place, channel: str, places: list) -> None:
        postcode, house, lat, lon = place
        rng = self.rng
        windows = every_day(*rng.choices(_WINDOWS, _WINDOW_WEIGHTS)[0]) if rng.random() < 0.3 else None
        places.append((self.aid, pid, "NL", postcode, house, lat, lon, tile_of(lat, lon), channel, windows))
        self.aid += 1
        self.addresses += 1

    def _registrations(self, pid: int, ci: int, home, kind: str, places: list) -> None:
        rng = self.rng
        # Per participant ~86% SMS on a mobile, which with the landlines gives ~80% SMS overall.
        main = "voice" if kind == "landline" or rng.random() < 0.14 else "sms"
        self._address(pid, home, main, places)
        r = rng.random()
        extra = 2 if r < 0.02 else (1 if r < 0.17 else 0)  # 1.19 addresses per participant
        for n in range(extra):
            if n == 0:  # work
                rows, total = self.commute[ci]
                wi = bisect(rows, rng.random() * total)
            else:  # family, a second home …
                wi = bisect(self.cum, rng.random() * self.total)
            wi = min(wi, len(self.cities) - 1)
            channel = (
                main if kind == "landline" or rng.random() < 0.9 else ("voice" if main == "sms" else "sms")
            )
            self._address(pid, self._place(wi), channel, places)

    # --- chunks ---------------------------------------------------------------------------------

    def chunks(self, n: int) -> Iterator[tuple[list, list]]:
        rng, cum, total, last_city = self.rng, self.cum, self.total, len(self.cities) - 1
        while self.participants < n:
            people: list = []
            places: list = []
            end = min(n, self.participants + _CHUNK)
            while self.participants < end:
                ci = min(bisect(cum, rng.random() * total), last_city)
                phone, kind = self._phone(ci, rng.random())
                self.foreign += kind == "foreign"
                home = self._place(ci)
                pid = self.pid
                last = self._person(ci, phone, kind, None, people)
                self._registrations(pid, ci, home, kind, places)
                # ~1% bring a housemate who registers the same number (mostly the landline)
                # separately: ~2% of participants share their number.
                if self.participants < end and rng.random() < (0.1 if kind == "landline" else 0.005):
                    pid = self.pid
                    self._person(ci, phone, kind, last if rng.random() < 0.7 else None, people)
                    self._registrations(pid, ci, home, kind, places)
                    self.shared += 1
            yield people, places
