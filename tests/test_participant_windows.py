"""Receive windows per weekday through the participants API and the CSV import."""

import pytest

PARTICIPANTS = "/api/v1/participants"
IMPORT = "/api/v1/participants/import"


def _person(**address):
    return {
        "name": "Noor de Vries",
        "phone": "0612345678",
        "addresses": [{"postcode": "3511 AB", "house_number": "12", "lat": 52.09, "lon": 5.12, **address}],
    }


def test_windows_on_weekdays_are_stored_and_read_back(api):
    windows = [
        {"days": ["mo", "tu", "we", "th", "fr"], "start": "08:00", "end": "17:30"},
        {"days": ["sa"], "start": "22:00", "end": "02:00"},
    ]
    created = api.call("utrecht", "POST", PARTICIPANTS, expect=201, json=_person(windows=windows))
    assert created["addresses"][0]["windows"] == windows
    # The same as one line of text (the CSV column's syntax), Dutch day names too.
    text = api.call("utrecht", "POST", PARTICIPANTS, expect=201, json={**_person(windows="ma-vr 08:00-17:30; za 22:00-02:00"), "phone": "0687654321"})  # fmt: skip
    assert text["addresses"][0]["windows"] == windows


@pytest.mark.parametrize(
    "address,says",
    [
        ({"windows": [{"days": ["xx"], "start": "08:00", "end": "09:00"}]}, "'mo'"),
        ({"windows": [{"start": "8:00", "end": "09:00"}]}, "HH:MM"),
        ({"windows": [{"start": "08:00", "end": "08:00"}]}, "starts when it ends"),
        ({"windows": [{"days": [], "start": "08:00", "end": "09:00"}]}, "at least 1"),
        ({"windows": "mo-vr 08:00"}, "is not a window"),
        ({"windows": "mo 08:00-09:00", "window_start": "08:00", "window_end": "09:00"}, "not both"),
    ],
)
def test_bad_windows_get_a_422_that_says_why(api, address, says):
    r = api.client.post(PARTICIPANTS, json=_person(**address), headers=api.as_("utrecht"))
    assert r.status_code == 422 and says in r.text, r.text


def test_the_csv_windows_column(api):
    csv = (
        "name,phone,postcode,house_number,lat,lon,windows,window_start,window_end\n"
        'Noor,0612345678,3511 AB,12,52.09,5.12,"mo-fr 08:00-17:30; sa,su 10:00-14:00",,\n'
        "Piet,0612345679,3511 AB,14,52.09,5.12,,22:00,07:00\n"
        "Kees,0612345670,3511 AB,16,52.09,5.12,mo-zz 08:00-09:00,,\n"
    )
    report = api.call("utrecht", "POST", IMPORT, files={"file": ("p.csv", csv.encode(), "text/csv")})
    assert (report["created"], len(report["errors"])) == (2, 1)
    [error] = report["errors"]
    assert error["row"] == 4 and error["field"] == "windows" and "'zz' is not a day" in error["message"]
    people = {p["name"]: p for p in api.call("utrecht", "GET", PARTICIPANTS)}
    assert people["Noor"]["addresses"][0]["windows"] == [
        {"days": ["mo", "tu", "we", "th", "fr"], "start": "08:00", "end": "17:30"},
        {"days": ["sa", "su"], "start": "10:00", "end": "14:00"},
    ]
    assert people["Piet"]["addresses"][0]["windows"] == [
        {"days": ["mo", "tu", "we", "th", "fr", "sa", "su"], "start": "22:00", "end": "07:00"}
    ]
