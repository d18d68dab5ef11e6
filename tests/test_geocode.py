"""The console's address box: registered addresses first, then a PDOK Locatieserver compatible
geocoder (a local fake here); bad input 422, nothing found 404, a geocoder down 502."""

import pytest
from map_fakes import Geocoder

GEOCODE = "/api/v1/console/geocode"


@pytest.fixture
def geocoder():
    fake = Geocoder({("3512JE", "10"): (52.0911, 5.1223)})
    yield fake
    fake.stop()


def test_a_registered_address_is_found_without_a_geocoder(api):
    api.register("+31610000001", lat=52.0807, lon=5.1203)  # registered at 3511 AB 1
    place = api.call("centralist", "GET", GEOCODE, params={"postcode": "3511ab", "house_number": "1"})
    assert place == {"lat": 52.0807, "lon": 5.1203, "source": "registered", "label": "3511 AB 1"}
    r = api.client.get(
        GEOCODE, params={"postcode": "3512 JE", "house_number": "10"}, headers=api.as_("centralist")
    )
    assert r.status_code == 404 and "click the place on the map" in r.json()["message"]


def test_the_geocoder_finds_the_rest(api, geocoder):
    api.settings.geocoder_url = geocoder.url
    place = api.call("centralist", "GET", GEOCODE, params={"postcode": "3512 JE", "house_number": "10"})
    assert (place["lat"], place["lon"], place["source"]) == (52.0911, 5.1223, "geocoder")
    assert place["label"] == "Teststraat 10, 3512JE Utrecht"
    assert any("huisnummer%3A10" in p or "huisnummer:10" in p for p in geocoder.requests)
    r = api.client.get(
        GEOCODE, params={"postcode": "9999 ZZ", "house_number": "1"}, headers=api.as_("centralist")
    )
    assert r.status_code == 404
    assert api.call("admin", "GET", "/api/v1/console/config")["geocoder"] is True


def test_a_geocoder_that_is_down_is_a_502_with_advice(api, geocoder):
    api.settings.geocoder_url = geocoder.base + "/nothing-here"
    r = api.client.get(
        GEOCODE, params={"postcode": "3512 JE", "house_number": "10"}, headers=api.as_("centralist")
    )
    assert r.status_code == 502 and "click the place on the map" in r.json()["message"]


@pytest.mark.parametrize(
    "params,field",
    [
        ({"postcode": "35111AB", "house_number": "1"}, "postcode"),
        ({"postcode": "3511 AB", "house_number": "0"}, "house_number"),
        ({"postcode": "3511 AB", "house_number": "12; DROP"}, "house_number"),
        ({"postcode": "3511 AB"}, "house_number"),
    ],
)
def test_bad_addresses_are_422(api, params, field):
    r = api.client.get(GEOCODE, params=params, headers=api.as_("centralist"))
    assert r.status_code == 422 and field in r.text, r.text


def test_municipalities_do_not_search_addresses(api):
    r = api.client.get(
        GEOCODE, params={"postcode": "3511 AB", "house_number": "1"}, headers=api.as_("utrecht")
    )
    assert r.status_code == 403
