"""The browser session: an API key exchanged once for an expiring HttpOnly cookie, which the API
accepts in place of the key — with the same roles, and a CSRF header on changes — until it expires
or is ended on the server (logout, an admin). Failed logins are rate-limited per client."""

from datetime import UTC, datetime, timedelta

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from gateway import auth
from gateway.api.routes.web import STATIC_DIR
from gateway.api.throttle import LoginThrottle, RedisLoginThrottle
from gateway.errors import TooManyRequests
from gateway.storage.models import User, UserSession

CSRF = {auth.CSRF_HEADER: "1"}
PARTICIPANT = {
    "name": "Jan Jansen",
    "phone": "0612345678",
    "addresses": [{"postcode": "3511 AB", "house_number": "12", "lat": 52.09, "lon": 5.12, "channel": "sms"}],
}


def _login(api, who: str):
    return api.client.post("/auth/login", json={"api_key": api.keys[who]}, headers=CSRF)


def _token(api, who: str) -> str:
    r = _login(api, who)
    assert r.status_code == 200, r.text
    api.client.cookies.clear()  # each request below names its cookie itself
    return r.cookies[auth.SESSION_COOKIE]


def _as(token: str, **extra) -> dict:
    return {"Cookie": f"{auth.SESSION_COOKIE}={token}", **extra}


def _user(api, name: str) -> User:
    with api.sessions() as s:
        user = s.scalars(select(User).where(User.name == name)).one()
        s.expunge(user)
    return user


def test_login_sets_an_httponly_strict_cookie_that_the_api_accepts(api):
    r = _login(api, "centralist")
    assert r.status_code == 200, r.text
    assert r.json()["home"] == "/console/" and r.json()["user"]["name"] == "centralist"
    cookie = r.headers["set-cookie"]
    for attribute in (
        "HttpOnly",
        "SameSite=strict",
        "Path=/",
        f"Max-Age={int(api.settings.session_hours * 3600)}",
    ):
        assert attribute.lower() in cookie.lower(), cookie
    assert "secure" not in cookie.lower()  # plain HTTP outside production
    assert api.keys["centralist"] not in cookie  # the key itself never goes into the cookie
    api.client.cookies.clear()
    me = api.client.get("/api/v1/me", headers=_as(r.cookies[auth.SESSION_COOKIE]))
    assert me.status_code == 200 and me.json()["name"] == "centralist"


def test_a_municipality_lands_on_its_dashboard(api):
    assert _login(api, "utrecht").json()["home"] == "/dashboard/"


def test_login_refuses_unknown_keys_and_requests_without_the_header(api):
    r = api.client.post("/auth/login", json={"api_key": "bn_wrong"}, headers=CSRF)
    assert r.status_code == 401 and r.json()["error_id"] == "unauthenticated"
    assert auth.SESSION_COOKIE not in r.cookies
    r = api.client.post("/auth/login", json={"api_key": api.keys["admin"]})
    assert r.status_code == 403 and r.json()["details"] == {"reason": "csrf"}
    assert api.client.post("/auth/login", json={}, headers=CSRF).status_code == 422


def test_an_expired_cookie_is_refused(api):
    token = _token(api, "centralist")
    with api.sessions() as s:
        s.execute(update(UserSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        s.commit()
    r = api.client.get("/api/v1/me", headers=_as(token))
    assert r.status_code == 401 and "expired" in r.json()["message"]


def test_forged_cookies_are_refused(api):
    good = _token(api, "utrecht")
    with api.sessions() as s:  # a session of the admin's, its token made with another secret
        other_secret = auth.start_session(
            s, "another-secret", _user(api, "admin"), datetime.now(UTC), timedelta(hours=1)
        )
        s.commit()
    forged = [
        good[:-1] + ("A" if good[-1] != "A" else "B"),  # one character changed
        good + "x",
        other_secret,
        auth.hash_key(api.settings.secret_key, good),  # what the database stores is no cookie
        "garbage",
        "1.2",
        "x.y.z",
        "9" * 300,
    ]
    for token in forged:
        r = api.client.get("/api/v1/me", headers=_as(token))
        assert r.status_code == 401, (token, r.text)
        assert r.json()["error_id"] == "unauthenticated"


def test_the_cookie_carries_the_users_role_and_no_more(api):
    token = _token(api, "utrecht")
    assert api.client.get("/api/v1/actions", headers=_as(token)).status_code == 403
    assert api.client.get("/api/v1/participants", headers=_as(token)).status_code == 200


def test_changes_through_the_cookie_need_the_csrf_header(api):
    token = _token(api, "utrecht")
    r = api.client.post("/api/v1/participants", json=PARTICIPANT, headers=_as(token))
    assert r.status_code == 403 and r.json()["details"] == {"reason": "csrf"}
    assert api.client.get("/api/v1/participants", headers=_as(token)).json() == []  # nothing written
    r = api.client.post("/api/v1/participants", json=PARTICIPANT, headers=_as(token, **CSRF))
    assert r.status_code == 201, r.text
    # The API key needs no such header: it is not sent by browsers on their own.
    assert (
        api.client.get("/api/v1/participants", headers=api.as_("utrecht")).json()[0]["name"] == "Jan Jansen"
    )


def test_a_new_key_or_deactivation_ends_the_session(api):
    token = _token(api, "utrecht")
    with api.sessions() as s:
        user = s.scalars(select(User).where(User.name == "utrecht")).one()
        user.key_hash = auth.new_key(api.settings.secret_key).key_hash
        s.commit()
    assert api.client.get("/api/v1/me", headers=_as(token)).status_code == 401

    token = _token(api, "zeist")
    with api.sessions() as s:
        s.scalars(select(User).where(User.name == "zeist")).one().active = False
        s.commit()
    assert api.client.get("/api/v1/me", headers=_as(token)).status_code == 401


def test_logout_removes_the_cookie(api):
    assert _login(api, "centralist").status_code == 200
    assert api.client.get("/api/v1/me").status_code == 200  # the client kept the cookie
    r = api.client.post("/auth/logout", headers=CSRF)
    assert r.status_code == 204
    assert "max-age=0" in r.headers["set-cookie"].lower()
    assert api.client.get("/api/v1/me").status_code == 401


def test_logout_ends_the_session_wherever_the_cookie_was_copied(api):
    token = _token(api, "utrecht")  # the value an attacker copied
    assert api.client.get("/api/v1/me", headers=_as(token)).status_code == 200
    assert api.client.post("/auth/logout", headers=_as(token, **CSRF)).status_code == 204
    r = api.client.get("/api/v1/participants", headers=_as(token))
    assert r.status_code == 401 and "ended" in r.json()["message"]
    assert (
        api.client.post("/api/v1/participants", json=PARTICIPANT, headers=_as(token, **CSRF)).status_code
        == 401
    )
    # Another session of the same user lives on; logging out twice is harmless.
    other = _token(api, "utrecht")
    assert api.client.post("/auth/logout", headers=_as(token, **CSRF)).status_code == 204
    assert api.client.get("/api/v1/me", headers=_as(other)).status_code == 200


def test_an_admin_ends_every_session_of_a_user(api):
    laptop, phone, mine = _token(api, "utrecht"), _token(api, "utrecht"), _token(api, "zeist")
    utrecht = _user(api, "utrecht")
    api.call("zeist", "DELETE", f"/api/v1/users/{utrecht.id}/sessions", expect=403)
    assert api.call("admin", "DELETE", f"/api/v1/users/{utrecht.id}/sessions") == {"ended": 2}
    for token in (laptop, phone):
        assert api.client.get("/api/v1/me", headers=_as(token)).status_code == 401
    assert api.client.get("/api/v1/me", headers=_as(mine)).status_code == 200  # other users keep theirs
    assert api.call("utrecht", "GET", "/api/v1/me")["name"] == "utrecht"  # the key itself still works
    assert api.call("admin", "DELETE", f"/api/v1/users/{utrecht.id}/sessions") == {"ended": 0}
    api.call("admin", "DELETE", "/api/v1/users/999999/sessions", expect=404)


def test_failed_logins_are_rate_limited_per_client(api):
    limit = api.settings.login_max_failures
    for _ in range(limit):
        assert api.client.post("/auth/login", json={"api_key": "bn_guess"}, headers=CSRF).status_code == 401
    r = _login(api, "admin")  # even the right key, until the window has passed
    assert r.status_code == 429 and r.json()["error_id"] == "too-many-requests"
    assert 1 <= int(r.headers["Retry-After"]) <= api.settings.login_window_seconds
    assert auth.SESSION_COOKIE not in r.cookies
    elsewhere = TestClient(api.client.app, client=("192.0.2.7", 40000))
    assert elsewhere.post("/auth/login", json={"api_key": api.keys["admin"]}, headers=CSRF).status_code == 200


@pytest.fixture(params=["in-process", "redis"])
def make_throttle(request):
    """A throttle of each kind, on a clock the test moves: (throttle, now)."""
    now = [1000.0]
    if request.param == "in-process":
        return lambda **kw: LoginThrottle(clock=lambda: now[0], **kw), now
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    prefix = request.getfixturevalue("key_prefix")
    return lambda **kw: RedisLoginThrottle(client, prefix=prefix, clock=lambda: now[0], **kw), now


def test_the_login_window_slides(make_throttle):
    make, now = make_throttle
    throttle = make(limit=2, window=60)
    throttle.failed("a")
    now[0] += 30
    throttle.failed("a")
    with pytest.raises(TooManyRequests) as refused:
        throttle.check("a")
    assert refused.value.retry_after == 30  # the first failure leaves the window in 30 s
    throttle.check("b")
    now[0] += 30
    throttle.check("a")  # one failure left in the window
    throttle.failed("a")
    with pytest.raises(TooManyRequests):
        throttle.check("a")


def test_with_redis_every_api_process_shares_the_window(redis_url, key_prefix):
    client = redis.Redis.from_url(redis_url)
    one, other = (RedisLoginThrottle(client, limit=3, window=60, prefix=key_prefix) for _ in range(2))
    one.failed("192.0.2.1")
    other.failed("192.0.2.1")
    one.failed("192.0.2.1")
    with pytest.raises(TooManyRequests):
        other.check("192.0.2.1")
    other.check("192.0.2.2")


def test_the_in_process_window_forgets_clients_without_recent_failures():
    now = [1000.0]
    throttle = LoginThrottle(limit=2, window=60, clock=lambda: now[0])
    throttle.failed("a")
    now[0] += 61
    throttle.check("a")
    assert throttle._failures == {}


def test_pages_are_served_with_a_strict_content_security_policy(api):
    for page in ("/login/", "/console/", "/dashboard/"):
        r = api.client.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        policy = r.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert api.client.get("/", follow_redirects=False).headers["location"] == "/login/"
    # The bundled files: the map's outline and the vendored libraries with their licences.
    assert api.client.get("/static/geo/nl-be-de.geojson").json()["features"][0]["type"] == "Feature"
    for licence in ("leaflet/LICENSE", "chart.js/LICENSE.md", "world-atlas/LICENSE"):
        assert (STATIC_DIR / "vendor" / licence).is_file()


def test_the_login_form_cannot_send_the_key_before_its_script_runs(api):
    """Submitted by the browser itself (no script yet, or none), the form would be a GET with the
    key in the URL — in the history and the server's logs. Its button starts disabled."""
    import re

    html = api.client.get("/login/").text
    button = re.search(r"<button[^>]*type=\"submit\"[^>]*>", html).group(0)
    assert "disabled" in button and 'id="login-submit"' in button
    assert '$("#login-submit").disabled = false' in (STATIC_DIR / "app" / "login.js").read_text()


def test_in_production_the_cookie_is_secure(api):
    from gateway.api.app import create_app
    from gateway.queue import MemoryQueue

    settings = api.settings.model_copy(update={"environment": "production"})
    app = create_app(settings, sessions=api.sessions, queue=MemoryQueue(), housekeeping_jobs=False)
    with TestClient(app, base_url="https://testserver") as client:
        r = client.post("/auth/login", json={"api_key": api.keys["centralist"]}, headers=CSRF)
    assert r.status_code == 200 and "secure" in r.headers["set-cookie"].lower()


def test_the_bundled_packages_are_pinned_and_carry_no_download_addresses():
    import json

    web = STATIC_DIR.parent
    pinned = json.loads((web / "package.json").read_text())["devDependencies"]
    assert all(v[0].isdigit() for v in pinned.values()), pinned  # exact versions, no ranges
    lock = json.loads((web / "package-lock.json").read_text())
    assert not [p for p, entry in lock["packages"].items() if "resolved" in entry]
    for name in pinned:
        assert (STATIC_DIR / "vendor" / name.replace("@", "").replace("/", "-")).is_dir(), (
            f"`make web` did not copy {name}"
        )
