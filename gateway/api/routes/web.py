"""The browser side: the console and dashboard pages, their static files, log in and log out.

The pages are static files (gateway/web/static) that read everything through the API; a page
itself holds no data, so it is served without credentials and sends the visitor to the login page
when the API answers 401. Logging in exchanges an API key, once, for an HttpOnly SameSite=Strict
session cookie (gateway.auth.start_session), which logging out ends on the server; scripts never
see the cookie or keep the key. Failed logins are rate-limited per client (gateway.api.throttle).
"""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, StringConstraints

from gateway import audit, auth, geocode
from gateway.api.deps import CentralistDep, SessionDep, SettingsDep, UserDep
from gateway.api.schemas import MunicipalityPublic, UserPublic
from gateway.config import Settings
from gateway.errors import Forbidden, GatewayError, Invalid, NotFound, Unauthenticated
from gateway.fields import POSTCODE_FORMATS, Strict
from gateway.storage.models import Municipality, Role, User

STATIC_DIR = Path(__file__).resolve().parents[2] / "web" / "static"
PAGES = {"login": "login.html", "console": "console.html", "dashboard": "dashboard.html"}
# Where each role lands after logging in.
HOME = {Role.centralist: "/console/", Role.municipality: "/dashboard/", Role.admin: "/console/"}

router = APIRouter(tags=["browser"])
config_router = APIRouter(prefix="/api/v1/console", tags=["browser"])


class LoginRequest(Strict):
    api_key: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class LoginPublic(BaseModel):
    user: UserPublic
    home: str = Field(description="The page for this role.")
    expires_at: int = Field(description="When the session ends (Unix seconds).")


class PlacePublic(BaseModel):
    lat: float
    lon: float
    source: str = Field(description="registered (a participant's address) or geocoder (GEOCODER_URL).")
    label: str


class GeocoderDown(GatewayError):
    status_code = 502
    error_id = "geocoder-unavailable"


class ConsoleConfig(BaseModel):
    map_tiles_url: str
    geocoder: bool = Field(
        False, description="Whether an address search beyond the registered addresses is configured."
    )
    max_radius_m: int
    tip_line: str
    municipality: MunicipalityPublic | None = Field(description="A municipality user's own municipality.")


def _content_security_policy(settings: Settings) -> str:
    """Our own files only; the configured tile server is the one outside origin allowed."""
    tiles = urlsplit(settings.map_tiles_url)
    tile_origin = (
        f" {tiles.scheme}://{tiles.netloc}" if tiles.scheme in ("http", "https") and tiles.netloc else ""
    )
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data:{tile_origin}; media-src 'self' blob:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


def _page(name: str, settings: Settings) -> FileResponse:
    headers = {
        "Content-Security-Policy": _content_security_policy(settings),
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    return FileResponse(STATIC_DIR / PAGES[name], media_type="text/html", headers=headers)


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/login/")


@router.get("/login/", include_in_schema=False)
def login_page(settings: SettingsDep) -> FileResponse:
    return _page("login", settings)


@router.get("/console/", include_in_schema=False)
def console_page(settings: SettingsDep) -> FileResponse:
    return _page("console", settings)


@router.get("/dashboard/", include_in_schema=False)
def dashboard_page(settings: SettingsDep) -> FileResponse:
    return _page("dashboard", settings)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/auth/login", response_model=LoginPublic)
def login(
    body: LoginRequest, request: Request, response: Response, session: SessionDep, settings: SettingsDep
):
    """Exchange an API key for a session cookie (HttpOnly, SameSite=Strict) for the pages."""
    if auth.CSRF_HEADER not in request.headers:
        raise Forbidden(
            f"log in from the login page (the {auth.CSRF_HEADER} header is missing)", reason="csrf"
        )
    throttle = request.app.state.login_throttle
    throttle.check(_client(request))
    try:
        user = auth.authenticate(session, settings.secret_key, body.api_key)
    except Unauthenticated:
        throttle.failed(_client(request))
        raise
    now, lifetime = datetime.now(UTC), timedelta(hours=settings.session_hours)
    token = auth.start_session(session, settings.secret_key, user, now, lifetime)
    audit.record(session, user, "user.login", "user", user.id)
    session.commit()
    public = UserPublic.model_validate(user)
    response.set_cookie(
        auth.SESSION_COOKIE,
        token,
        max_age=int(lifetime.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=settings.environment == "production",
    )
    return LoginPublic(user=public, home=HOME[public.role], expires_at=int((now + lifetime).timestamp()))


@router.post("/auth/logout", status_code=204)
def logout(request: Request, response: Response, session: SessionDep, settings: SettingsDep) -> Response:
    """End the browser session: on the server (every copy of the cookie stops working), and the
    cookie is removed."""
    cookie = request.cookies.get(auth.SESSION_COOKIE)
    if cookie:
        user_id = auth.end_session(session, settings.secret_key, cookie, datetime.now(UTC))
        if user_id is not None:
            audit.record(session, session.get(User, user_id), "user.logout", "user", user_id)
        session.commit()
    response.delete_cookie(
        auth.SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=settings.environment == "production",
    )
    response.status_code = 204
    return response


@config_router.get("/config", response_model=ConsoleConfig)
def console_config(user: UserDep, session: SessionDep, settings: SettingsDep):
    """What the pages need to know about this installation (and a municipality about itself)."""
    municipality = session.get(Municipality, user.municipality_id) if user.municipality_id else None
    return ConsoleConfig(
        map_tiles_url=settings.map_tiles_url,
        geocoder=bool(settings.geocoder_url),
        max_radius_m=settings.max_radius_m,
        tip_line=settings.tip_line,
        municipality=MunicipalityPublic.model_validate(municipality) if municipality else None,
    )


@config_router.get("/geocode", response_model=PlacePublic)
def find_address(
    user: CentralistDep,
    session: SessionDep,
    settings: SettingsDep,
    postcode: Annotated[str, Query(max_length=8)],
    house_number: Annotated[str, Query(max_length=10)],
):
    """Where an address (Dutch postcode + house number) is, to place the incident: a registered
    address first, then the configured geocoder (PDOK Locatieserver)."""
    postcode = postcode.strip().upper()
    pattern, example = POSTCODE_FORMATS["NL"]
    if not pattern.match(postcode):
        raise Invalid(f"{postcode!r} is not a Dutch postcode ({example})", field="postcode")
    postcode = f"{postcode[:4]} {postcode[-2:]}"
    house_number = house_number.strip()
    if not re.fullmatch(r"[1-9][0-9]{0,4}( ?[A-Za-z0-9-]{1,4})?", house_number):
        raise Invalid(f"{house_number!r} is not a house number (like 12 or 12A)", field="house_number")
    try:
        place = geocode.locate(session, settings.geocoder_url, postcode, house_number)
    except geocode.GeocoderUnavailable:
        raise GeocoderDown("the address search did not answer; click the place on the map") from None
    if place is None:
        raise NotFound(f"address {postcode} {house_number} not found; click the place on the map")
    return PlacePublic(lat=place.lat, lon=place.lon, source=place.source, label=place.label)


def mount(app: FastAPI) -> None:
    """The pages, their files under /static, and the login routes."""
    app.include_router(router)
    app.include_router(config_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
