"""The routes the pages need beyond the core API: the spoken alert's audio, a tip's recording, the
live progress stream, the actions in a municipality's area, the pages' configuration."""

import json
import wave
from datetime import UTC, datetime, timedelta

import pytest
from conftest import UTRECHT
from sqlalchemy import select

from gateway.outbox import drain
from gateway.stats import rollup
from gateway.storage.models import Bulletin, Tip, TipChannel


@pytest.fixture
def offline_api(api, tmp_path):
    """The API with espeak-ng only (no network voice) and its own recordings directory."""
    api.settings.tts_engines = "espeak"
    api.settings.recordings_dir = tmp_path / "recordings"
    api.settings.recordings_dir.mkdir()
    return api


def _wav_seconds(data: bytes, tmp_path) -> float:
    path = tmp_path / "got.wav"
    path.write_bytes(data)
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels()) == (8000, 1)
        return w.getnframes() / w.getframerate()


def test_the_spoken_alert_of_a_draft_and_of_a_launched_action(offline_api, tmp_path):
    api = offline_api
    draft = api.call(
        "centralist",
        "POST",
        "/api/v1/actions",
        expect=201,
        json={
            "type": "burglary",
            "description": "Man met rode jas op een fiets.",
            "lat": UTRECHT[0],
            "lon": UTRECHT[1],
            "radius_m": 500,
        },
    )
    r = api.client.get(f"/api/v1/actions/{draft['id']}/audio", headers=api.as_("centralist"))
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    assert _wav_seconds(r.content, tmp_path) > 2  # a sentence, not a click

    api.register("+31611111111")
    launched = api.launch()
    r = api.client.get(f"/api/v1/actions/{launched['id']}/audio", headers=api.as_("centralist"))
    assert r.status_code == 200
    with api.sessions() as s:
        alert = s.scalars(select(Bulletin).where(Bulletin.action_id == launched["id"])).one()
    # The very file the voice worker plays: the bulletin's entry in the audio cache.
    assert (api.settings.audio_dir / f"bulletin-{alert.id}-nl.wav").read_bytes() == r.content
    missing = api.client.get(
        f"/api/v1/actions/{launched['id']}/audio?bulletin_id=999999", headers=api.as_("centralist")
    )
    assert missing.status_code == 404 and missing.json()["error_id"] == "not-found"


def _tip(api, recording_path: str | None) -> int:
    with api.sessions() as s:
        tip = Tip(channel=TipChannel.call, received_at=datetime.now(UTC), recording_path=recording_path)
        s.add(tip)
        s.commit()
        return tip.id


def test_a_tips_recording_is_served_from_recordings_dir_only(offline_api):
    api = offline_api
    (api.settings.recordings_dir / "tip-17.5.wav").write_bytes(b"RIFF-recorded")
    good = _tip(api, "/var/spool/asterisk/recording/burgernet/tip-17.5.wav")
    r = api.client.get(f"/api/v1/tips/{good}/recording", headers=api.as_("centralist"))
    assert r.status_code == 200 and r.content == b"RIFF-recorded"
    assert api.client.get(f"/api/v1/tips/{good}/recording", headers=api.as_("utrecht")).status_code == 403

    secret = api.settings.recordings_dir.parent / "secret.wav"
    secret.write_bytes(b"not a tip")
    for path in (None, str(secret), "/etc/passwd", "../secret.wav", "/x/tip-18.wav"):  # the last: not on disk
        tip = _tip(api, path)
        r = api.client.get(f"/api/v1/tips/{tip}/recording", headers=api.as_("centralist"))
        assert r.status_code == 404, (path, r.text)
    assert api.client.get("/api/v1/tips/424242/recording", headers=api.as_("centralist")).status_code == 404


def test_the_progress_stream_sends_the_action_and_its_counts(api):
    api.register("+31611111111", "+31611111112")
    action = api.launch()
    drain(api.sessions, api.queue, "sms")
    with api.client.stream(
        "GET", f"/api/v1/actions/{action['id']}/progress/stream", headers=api.as_("centralist")
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        assert next(lines) == "event: progress"
        data = json.loads(next(lines).removeprefix("data: "))
    assert data["action"]["status"] == "open"
    assert data["rows"] == [{"kind": "alert", "seq": 0, "channel": "sms", "status": "submitted", "count": 2}]
    assert (
        api.client.get("/api/v1/actions/999/progress/stream", headers=api.as_("centralist")).status_code
        == 404
    )


def test_a_municipality_sees_the_actions_that_reached_its_participants(api):
    api.register("+31611111111")  # Utrecht's
    mine = api.launch("Vermist: jongen van 8.")
    api.launch("Elders: niemand van Utrecht bereikt.", lat=53.2, lon=6.56)  # Groningen
    rows = api.call("utrecht", "GET", "/api/v1/area/actions")
    assert [(r["id"], r["reached"], r["tips"], r["status"]) for r in rows] == [(mine["id"], 1, 0, "open")]
    assert api.call("zeist", "GET", "/api/v1/area/actions") == []
    assert [
        r["id"] for r in api.call("admin", "GET", f"/api/v1/area/actions?municipality_id={api.utrecht.id}")
    ] == [mine["id"]]
    assert api.call("admin", "GET", "/api/v1/area/actions", expect=422)["details"] == {
        "field": "municipality_id"
    }

    # Once the action is closed and settled, its counts come from the statistics' rollup: the same answer.
    api.call("centralist", "POST", f"/api/v1/actions/{mine['id']}/close", json={"outcome": "none"})
    later = datetime.now(UTC) + timedelta(days=3)
    assert rollup.roll_up_settled(api.sessions, later, settle_hours=24) == 1  # the other one is still open
    rows = api.call("utrecht", "GET", "/api/v1/area/actions")
    assert [(r["id"], r["reached"], r["status"]) for r in rows] == [(mine["id"], 1, "closed")]


def test_the_pages_configuration(api):
    api.settings.map_tiles_url = "https://tiles.example.org/{z}/{x}/{y}.png"
    config = api.call("utrecht", "GET", "/api/v1/console/config")
    assert config["municipality"]["cbs_code"] == "GM0344" and config["map_tiles_url"].startswith(
        "https://tiles.example.org/"
    )
    assert api.call("centralist", "GET", "/api/v1/console/config")["municipality"] is None
    # The tile server is the one outside origin the pages may load images from.
    policy = api.client.get("/console/").headers["content-security-policy"]
    assert "img-src 'self' data: https://tiles.example.org;" in policy
