"""Pure parts of the SMS channel: bind configuration, routing, correlator, window, retry policy,
PDUs. No sockets, no database."""

import asyncio
import json

import pytest

from gateway.sms import pdu as P
from gateway.sms.binds import BindConfigError, load_sms_config
from gateway.sms.correlator import MAX_SEQUENCE, Correlator
from gateway.sms.encoding import split_sms
from gateway.sms.flow import AdaptiveRate, Backoff, Verdict, Window, judge, status_name
from gateway.sms.routing import NoRoute, PrefixFilter, Route, Router, router_from_config

BIND = {"name": "kpn1", "operator": "kpn", "system_id": "bn", "password": "s3cret"}


def config(*binds, default=""):
    return load_sms_config(json.dumps(list(binds)), "", default)


# --- configuration ------------------------------------------------------------------------------


def test_a_bind_gets_the_documented_defaults():
    bind = config(BIND).binds[0]
    assert (bind.port, bind.window, bind.rate_per_second, bind.mode) == (2775, 100, 0, "transceiver")
    assert bind.source_address == ("Burgernet", 5, 0)  # alphanumeric: TON 5, NPI 0


@pytest.mark.parametrize(
    "source, expected",
    [
        ("+31880000000", ("31880000000", 1, 1)),
        ("0880000000", ("0880000000", 2, 1)),
        ("Politie", ("Politie", 5, 0)),
    ],
)
def test_the_sender_decides_ton_and_npi(source, expected):
    assert config(BIND | {"source": source}).binds[0].source_address == expected


def test_ton_npi_can_be_configured():
    bind = config(BIND | {"source": "0880000000", "source_ton": 1, "source_npi": 1}).binds[0]
    assert bind.source_address == ("0880000000", 1, 1)


def test_keep_alive_defaults_from_the_settings_unless_a_bind_sets_its_own():
    binds = json.dumps([BIND, BIND | {"name": "kpn2", "enquire_link_seconds": 5}])
    loaded = load_sms_config(
        binds, "", "", defaults={"enquire_link_seconds": 12, "enquire_link_timeout_seconds": 3}
    )
    assert [(b.enquire_link_seconds, b.enquire_link_timeout_seconds) for b in loaded.binds] == [
        (12, 3),
        (5, 3),
    ]
    assert (
        config(BIND).binds[0].enquire_link_seconds,
        config(BIND).binds[0].enquire_link_timeout_seconds,
    ) == (30, 10)


def test_the_example_file_documents_a_valid_bind():
    loaded = load_sms_config("", "sms-binds.example.toml", "")
    assert loaded.binds[0].name == "kpn1" and loaded.default_bind == "kpn1"


@pytest.mark.parametrize(
    "binds, default, words",
    [
        ([BIND | {"password": "far-too-long"}], "", "password"),
        ([BIND, BIND], "", "unique"),
        ([BIND], "nope", "default bind"),
        ([BIND | {"prefixes": ["316"]}], "", "prefix"),
        ([BIND | {"source": "BurgernetNederland"}], "", "11 characters"),
        ([BIND | {"colour": "red"}], "", "colour"),
    ],
)
def test_bad_configuration_is_refused_with_the_option_named(binds, default, words):
    with pytest.raises(BindConfigError) as err:
        config(*binds, default=default)
    assert words in str(err.value)


def test_the_password_never_shows():
    bad = [BIND | {"password": "verysecretpw"}]
    with pytest.raises(BindConfigError) as err:
        config(*bad)
    assert "verysecretpw" not in str(err.value)
    bind = config(BIND).binds[0]
    assert "s3cret" not in repr(bind) and "s3cret" not in str(bind)


def test_no_bind_configured_says_what_to_set():
    with pytest.raises(BindConfigError, match="SMS_BINDS"):
        load_sms_config("", "", "")


# --- routing ------------------------------------------------------------------------------------


def test_routes_in_order_then_default_then_failover():
    router = Router(
        routes=(Route(PrefixFilter(("+3162",)), "b"), Route(PrefixFilter(("+316",)), "a")),
        default="a",
        failover=("a", "b", "c"),
    )
    assert router.candidates("+31623456789") == ["b", "a", "c"]
    assert router.candidates("+32470000000") == ["a", "b", "c"]
    assert router.choose("+31623456789", up={"a", "b"}) == "b"
    assert router.choose("+31623456789", up={"a"}) == "a"  # failover while b is down
    assert router.choose("+31623456789", up={"c"}) == "c"
    with pytest.raises(NoRoute):
        router.choose("+31623456789", up=set())


def test_longest_prefix_wins_whatever_the_order_of_binds():
    loaded = config(
        BIND | {"name": "a", "prefixes": ["+316"]},
        BIND | {"name": "b", "prefixes": ["+3162"], "failover": False},
        BIND | {"name": "c"},
        default="c",
    )
    router = router_from_config(loaded)
    assert router.choose("+31623456789", up={"a", "b", "c"}) == "b"
    assert router.choose("+31612345678", up={"a", "b", "c"}) == "a"
    assert router.choose("+32470000000", up={"a", "b", "c"}) == "c"
    # b takes no failover traffic: with a and c down, a Belgian number waits.
    with pytest.raises(NoRoute):
        router.choose("+32470000000", up={"b"})


# --- correlator ---------------------------------------------------------------------------------


def test_correlator_answers_by_sequence_and_expires_in_time_order():
    c: Correlator[str] = Correlator(timeout=10)
    for i, t in enumerate([0.0, 1.0, 2.0, 3.0]):
        c.put(c.next_sequence(), f"r{i}", now=t)
    assert c.pop(2) == "r1" and c.pop(2) is None
    assert c.expire(now=11.5) == ["r0"]  # r1 was answered; r2, r3 not due yet
    assert c.expire(now=13.0) == ["r2", "r3"]
    assert len(c) == 0


def test_correlator_sequence_wraps_and_skips_pending_numbers():
    c: Correlator[str] = Correlator(timeout=10)
    c._sequence = MAX_SEQUENCE - 1
    c.put(c.next_sequence(), "last", 0)
    c.put(1, "still pending", 0)
    assert c.next_sequence() == 2


def test_correlator_expiry_does_not_scan_everything():
    """100,000 outstanding, one due: expire touches the head of the deque only."""
    c: Correlator[int] = Correlator(timeout=10)
    for i in range(100_000):
        c.put(c.next_sequence(), i, now=float(i))
    assert c.expire(now=10.0) == [0]
    assert len(c._deadlines) == 99_999


# --- window and retry policy --------------------------------------------------------------------


def test_window_blocks_at_its_size_and_resumes_on_release():
    async def scenario():
        w = Window(2)
        assert await w.room() == 2
        w.in_flight += 2  # as the bind counts the submits it writes
        third = asyncio.create_task(w.room())
        await asyncio.sleep(0)
        assert not third.done()
        w.release()
        assert await asyncio.wait_for(third, 1) == 1
        w.in_flight += 1
        w.reset()
        assert w.in_flight == 0 and await w.room() == 2

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "status, verdict",
    [
        (0x00, Verdict.accepted),
        (0x58, Verdict.throttled),
        (0x14, Verdict.throttled),
        (0x08, Verdict.transient),
        (0x45, Verdict.transient),
        (0x0B, Verdict.rejected),
        (0x400, Verdict.rejected),
    ],
)
def test_submit_statuses_are_judged(status, verdict):
    assert judge(status) is verdict


def test_status_names_for_logs():
    assert status_name(0x58) == "ESME_RTHROTTLED" and status_name(0x400) == "0x00000400"


def test_backoff_grows_to_its_ceiling():
    b = Backoff(0.5, 2, 4)
    assert [b.delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 4, 4]


def test_rate_halves_on_throttling_and_recovers_to_the_contract():
    rate = AdaptiveRate(contracted=200)
    assert rate.limit() == 200
    assert rate.throttled(now=0.0) and rate.limit() == 100
    assert not rate.throttled(now=0.5)  # one cut per cooldown: a burst of throttled answers is one event
    assert rate.throttled(now=1.5) and rate.limit() == 50
    rate.tick(now=3.5)  # two seconds without throttling
    assert rate.limit() == pytest.approx(50 * 1.25**2)
    rate.tick(now=30.0)
    assert rate.limit() == 200 and rate.current is None


def test_throttled_rate_is_kept_by_the_local_bucket():
    rate = AdaptiveRate(contracted=100)
    rate.throttled(now=0.0)  # 50/s
    granted, wait = rate.take(now=0.0, wanted=10)
    assert granted == 0 and wait == pytest.approx(0.02)
    sent = sum(rate.take(now=t / 100, wanted=10)[0] for t in range(1, 101))
    assert 45 <= sent <= 55


def test_an_unlimited_bind_gets_a_limit_from_what_it_sent():
    rate = AdaptiveRate()
    assert rate.limit() is None and rate.take(0, 7) == (7, 0.0)
    rate.note_sent(0.5, 400)
    rate.throttled(now=0.9)
    assert rate.limit() == 200


# --- PDUs ---------------------------------------------------------------------------------------


def test_a_long_text_goes_as_udh_parts_never_sar():
    text = "Gezocht: man met rode jas, € 50 beloning. " * 8
    encoded = split_sms(text)
    chunks = P.user_data(P.encode_parts(encoded), reference=7)
    pdus = P.submit_pdus(
        encoded.encoding, chunks, P.Address("Burgernet", 5, 0), P.Address.e164("+31612345678")
    )
    assert len(pdus) == encoded.part_count > 1
    for i, raw in enumerate(pdus, start=1):
        assert raw[4:8] == b"\x00\x00\x00\x04"  # submit_sm
        assert b"\x00\x05\x00Burgernet\x00\x01\x0131612345678\x00\x40" in raw  # esm_class 0x40
        assert bytes((5, 0, 3, 7, len(pdus), i)) in raw
        assert b"\x02\x0c" not in raw[-20:] and b"\x02\x0e" not in raw  # no sar_* TLVs
    stamped = P.with_sequence(pdus[0], 42)
    assert P.parse_header(stamped[:16])[3] == 42 and stamped[16:] == pdus[0][16:]


def _deliver_sm(esm_class: int, data_coding: int, short_message: bytes, tlvs: bytes = b"") -> bytes:
    """A deliver_sm from +31612345678 to "Burgernet", as an SMSC sends it."""
    body = (
        b"\x00"  # service_type
        + b"\x01\x0131612345678\x00"
        + b"\x05\x00Burgernet\x00"
        + bytes((esm_class, 0, 0))  # esm_class, protocol_id, priority_flag
        + b"\x00\x00"  # schedule_delivery_time, validity_period
        + bytes((0, 0, data_coding, 0, len(short_message)))
        + short_message
        + tlvs
    )
    return P.HEADER.pack(16 + len(body), 0x00000005, 0, 3) + body


def _tlv(tag: int, value: bytes) -> bytes:
    return tag.to_bytes(2, "big") + len(value).to_bytes(2, "big") + value


def test_a_receipt_is_read_with_its_tlvs_even_a_binary_network_error_code():
    text = b"id:6f3c2a sub:001 dlvrd:000 submit date:2612071830 done date:2612071831 stat:UNDELIV err:001"
    tlvs = _tlv(0x001E, b"6f3c2a\x00") + _tlv(0x0427, b"\x05") + _tlv(0x0423, b"\x03\x00\xff")
    message = P.read_deliver(_deliver_sm(0x04, 0, text, tlvs))
    assert message.is_receipt and (message.source, message.source_ton) == ("31612345678", 1)
    assert message.short_message == text
    assert message.tlvs[0x001E] == b"6f3c2a\x00" and message.tlvs[0x0423] == b"\x03\x00\xff"


@pytest.mark.parametrize(
    ("udh", "expected"),
    [
        (bytes((5, 0, 3, 7, 2, 1)), (7, 1, 2)),  # IE 0x00: 8-bit reference
        (bytes((6, 8, 4, 0x12, 0x34, 3, 2)), (0x1234, 2, 3)),  # IE 0x08: 16-bit reference
    ],
)
def test_an_mo_part_gives_its_text_and_its_place_in_the_message(udh, expected):
    message = P.read_deliver(_deliver_sm(0x40, 0, udh + b"Man bij de brug"))
    assert not message.is_receipt
    assert message.text() == "Man bij de brug" and message.concatenation() == expected


def test_an_mo_message_in_ucs2_in_message_payload_or_in_sar_parts():
    ucs2 = P.read_deliver(_deliver_sm(0, 8, "Kind 🙂".encode("utf-16-be")))
    assert ucs2.text() == "Kind 🙂" and ucs2.concatenation() is None
    payload = P.read_deliver(_deliver_sm(0, 0, b"", _tlv(0x0424, b"Lange tekst")))
    assert payload.text() == "Lange tekst"
    sar = _tlv(0x020C, b"\x00\x09") + _tlv(0x020E, b"\x02") + _tlv(0x020F, b"\x02")
    assert P.read_deliver(_deliver_sm(0, 0, b"deel twee", sar)).concatenation() == (9, 2, 2)


@pytest.mark.parametrize("cut", [20, 40])
def test_a_truncated_deliver_sm_is_refused_as_malformed(cut):
    with pytest.raises(ValueError):
        P.read_deliver(_deliver_sm(0x04, 0, b"id:1 stat:DELIVRD")[:cut])


@pytest.mark.parametrize(
    "text",
    [
        "Burgernet: man met rode jas. Actiecode 4821.",
        "Vermist: kind 🙂",
        "Gezocht: man met rode jas, € 50 beloning. " * 8,
        "Vermist 🙂 " * 40,
    ],
)
@pytest.mark.parametrize("source", [P.Address("Burgernet", 5, 0), P.Address("3197010000000", 1, 1)])
def test_submits_built_once_give_each_recipient_the_pdus_of_a_fresh_submit_sm(text, source):
    encoded = split_sms(text)
    chunks = P.encode_parts(encoded)
    submits = P.Submits(encoded.encoding, chunks, source)
    for phone, reference in (("+31612345678", 7), ("+3247012345", 255), ("+491701234567", 1)):
        expected = P.submit_pdus(
            encoded.encoding, P.user_data(chunks, reference), source, P.Address.e164(phone)
        )
        assert submits.pdus(P.Address.e164(phone), reference) == expected


def test_a_submit_sm_resp_gives_its_message_id():
    body = b"6f3c2a\x00"
    raw = P.HEADER.pack(16 + len(body), 0x80000004, 0, 9) + body
    assert P.parse_submit_resp(raw) == "6f3c2a"
    assert P.parse_submit_resp(raw[:-1]) == "6f3c2a"  # without its NUL (seen from some SMSCs)


def test_a_single_part_has_no_header_and_ucs2_has_data_coding_8():
    encoded = split_sms("Vermist: kind 🙂")
    chunks = P.user_data(P.encode_parts(encoded), 1)
    (raw,) = P.submit_pdus(
        encoded.encoding, chunks, P.Address("Burgernet", 5, 0), P.Address.e164("+31612345678")
    )
    assert encoded.encoding == "ucs2" and chunks[0] == "Vermist: kind 🙂".encode("utf-16-be")
    # registered_delivery 1, replace_if_present 0, data_coding 8, sm_default_msg_id 0, sm_length
    assert b"\x01\x00\x08\x00" + bytes([len(chunks[0])]) in raw
