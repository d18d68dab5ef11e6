"""Inbound SMS: delivery receipts, STOP, and SMS tips (pure parts, then the database on both backends)."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from gateway.actions import wording
from gateway.sms.inbound import BadReceipt, handle_mo, is_stop, mo_sender, parse_receipt, receipt_status
from gateway.sms.mo import Group, MoPart, assemble, due, keep_part, open_groups, take_group
from gateway.storage.models import MatchedBy, MessageStatus, Participant, Tip, TipChannel

STANDARD = "id:1a2b3c sub:001 dlvrd:001 submit date:2611270905 done date:2611270906 stat:DELIVRD err:000 text:Burgernet: Man met r"

# --- receipts -----------------------------------------------------------------------------------


def test_standard_receipt():
    r = parse_receipt(STANDARD)
    assert (r.smsc_message_id, r.stat, r.error) == ("1a2b3c", "DELIVRD", "000")
    assert r.submitted_at == datetime(2026, 11, 27, 9, 5, tzinfo=UTC)
    assert r.done_at == datetime(2026, 11, 27, 9, 6, tzinfo=UTC)
    assert r.text == "Burgernet: Man met r"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # upper-case keys, seconds in the dates, underscores
        (
            "ID:77 SUB:1 DLVRD:1 SUBMIT_DATE:261127090501 DONE_DATE:261127090659 STAT:UNDELIV ERR:034",
            ("77", "UNDELIV", "034", datetime(2026, 11, 27, 9, 6, 59, tzinfo=UTC)),
        ),
        # no text: at all, lower-case stat, long form
        (
            "id:abc sub:001 dlvrd:000 submit date:2611270905 done date:2611270910 stat:expired err:000",
            ("abc", "EXPIRED", "000", datetime(2026, 11, 27, 9, 10, tzinfo=UTC)),
        ),
        ("id:5 stat:Delivered", ("5", "DELIVRD", None, None)),
        # a text that itself contains key-like words does not confuse the fields
        (
            "id:9 sub:001 dlvrd:001 submit date:2611270905 done date:2611270906 stat:DELIVRD err:000 text:stat:REJECTD id:1",
            ("9", "DELIVRD", "000", datetime(2026, 11, 27, 9, 6, tzinfo=UTC)),
        ),
        # an unreadable date is left out rather than failing the receipt
        ("id:9 done date:2613999999 stat:DELIVRD", ("9", "DELIVRD", None, None)),
    ],
)
def test_receipt_variants(text, expected):
    r = parse_receipt(text)
    assert (r.smsc_message_id, r.stat, r.error, r.done_at) == expected


def test_receipted_message_id_tlv_wins_and_message_state_stands_in():
    # The text's id in decimal, the TLV in hex as the submit_sm_resp gave it.
    r = parse_receipt(STANDARD.replace("id:1a2b3c", "id:1715004"), {"receipted_message_id": "1a2b3c\0"})
    assert r.smsc_message_id == "1a2b3c"
    r = parse_receipt(b"", {0x001E: b"ff01\0", 0x0427: b"\x05"})  # by tag, raw bytes, no text at all
    assert (r.smsc_message_id, r.stat) == ("ff01", "UNDELIV")
    assert parse_receipt("id:1 done date:2611270906", {"message_state": 3}).stat == "EXPIRED"


def test_id_candidates_bridge_hex_and_decimal():
    # decimal in the receipt, hex in the submit_sm_resp: the hex form comes before the reverse guess
    assert parse_receipt("id:1715004 stat:DELIVRD").id_candidates() == ("1715004", "1a2b3c", str(0x1715004))
    candidates = parse_receipt("id:0001715004 stat:DELIVRD").id_candidates()
    assert candidates[0] == "0001715004" and "1715004" in candidates and "1a2b3c" in candidates
    assert "1715004" in parse_receipt("id:1A2B3C stat:DELIVRD").id_candidates()
    assert parse_receipt("id:1A2B3C stat:DELIVRD").id_candidates()[:2] == ("1A2B3C", "1a2b3c")
    assert parse_receipt("id:msg-42 stat:DELIVRD").id_candidates() == ("msg-42",)


@pytest.mark.parametrize(
    "garbage", ["", "hello world", "stat:DELIVRD err:000", "id: stat:DELIVRD", "id:42 err:000"]
)
def test_garbage_is_a_clear_error(garbage):
    with pytest.raises(BadReceipt, match=r"without a (message id|state)"):
        parse_receipt(garbage)


def test_receipt_status():
    assert receipt_status("DELIVRD") == (MessageStatus.delivered, None)
    assert receipt_status("EXPIRED", "000") == (MessageStatus.failed, "expired")
    assert receipt_status("UNDELIV", "001") == (MessageStatus.failed, "undeliverable (err 001)")
    assert receipt_status("rejectd") == (MessageStatus.failed, "rejected")
    assert receipt_status("DELETED") == (MessageStatus.failed, "deleted")
    assert receipt_status("UNKNOWN") == (MessageStatus.failed, "unknown")
    for not_final in ("ACCEPTD", "ENROUTE", "SOMETHING", ""):
        assert receipt_status(not_final) is None


# --- STOP and the sender ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        "Stop",
        " Stop. ",
        "S T O P",
        "stop!",
        "STOP\n",
        "AFMELDEN",
        "afmelden",
        "Af melden",
        "STOP BURGERNET",
        "stop burgernet.",
        "🛑 stop",
        "ｓｔｏｐ",
    ],
)
def test_stop_variants(text):
    assert is_stop(text)


@pytest.mark.parametrize(
    "text",
    [
        "stop met berichten",
        "stop de man bij de brug!",
        "Stopt u maar",
        "niet stoppen",
        "burgernet",
        "",
        "   ",
        "STOP STOP",
        "ik wil afmelden",
        "stop 3511",
    ],
)
def test_not_stop(text):
    assert not is_stop(text)


@pytest.mark.parametrize(
    ("addr", "ton", "expected"),
    [
        ("31612345678", 1, "+31612345678"),
        ("31612345678", 0, "+31612345678"),
        ("31612345678", None, "+31612345678"),
        ("+31612345678", 1, "+31612345678"),
        ("0612345678", 0, "+31612345678"),
        ("0031612345678", 0, "+31612345678"),
        ("32470123456", 1, "+32470123456"),
        ("Burgernet", 5, None),
        ("", 0, None),
    ],
)
def test_mo_sender(addr, ton, expected):
    assert mo_sender(addr, ton) == expected


# --- handle_mo on the database ------------------------------------------------------------------

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
PIETER, ANNA, STRANGER = "+31612345678", "+31687654321", "+31611112222"


def test_stop_ends_every_registration_of_the_number(api):
    api.register(PIETER, ANNA)
    with api.sessions() as s:
        s.add(Participant(municipality_id=api.zeist.id, name="P in Zeist", phone=PIETER))
        s.commit()
    with api.sessions() as s:
        outcome = handle_mo(s, PIETER, " Stop. ", NOW)
        assert (outcome.kind, outcome.unsubscribed, outcome.reply) == (
            "unsubscribed",
            2,
            wording.unsubscribed_sms(),
        )
        assert outcome.tip is None
        s.commit()
    with api.sessions() as s:
        gone = {(p.phone, p.unsubscribed_at is not None) for p in s.scalars(select(Participant))}
    assert gone == {(PIETER, True), (ANNA, False)}
    with api.sessions() as s:  # a second STOP (or one from a stranger) is confirmed all the same
        assert handle_mo(s, PIETER, "afmelden", NOW).unsubscribed == 0
        assert handle_mo(s, STRANGER, "STOP", NOW).reply == wording.unsubscribed_sms()


def test_an_sms_tip_during_an_open_action_goes_to_the_most_recent(api):
    api.register(PIETER, ANNA)
    first = api.launch("Man met rode jas.")
    second = api.launch("Vrouw met blauwe fiets.")
    with api.sessions() as s:
        outcome = handle_mo(s, PIETER, "Ik zie haar bij het station, richting centrum.", NOW)
        assert outcome.kind == "tip" and outcome.reply is None
        s.commit()
    tips = api.call("centralist", "GET", f"/api/v1/actions/{second['id']}/tips")
    assert len(tips) == 1
    assert tips[0]["sms_text"] == "Ik zie haar bij het station, richting centrum."
    assert api.call("centralist", "GET", f"/api/v1/actions/{first['id']}/tips") == []
    with api.sessions() as s:
        tip = s.scalars(select(Tip)).one()
        owner = s.scalars(select(Participant).where(Participant.phone == PIETER)).one()
        assert (tip.channel, tip.caller_number, tip.matched_by) == (
            TipChannel.sms,
            PIETER,
            MatchedBy.caller_id,
        )
        assert (tip.action_id, tip.participant_id, tip.received_at) == (second["id"], owner.id, NOW)


def test_an_sms_from_a_number_no_open_action_reached_is_kept_unmatched(api):
    api.register(PIETER)
    action = api.launch()
    api.call("centralist", "POST", f"/api/v1/actions/{action['id']}/close", json={"outcome": "none"})
    with api.sessions() as s:
        handle_mo(s, PIETER, "Ik zag hem gisteren nog.", NOW)  # the action is closed now
        handle_mo(s, STRANGER, "Er staat een verdachte auto in mijn straat.", NOW)
        assert handle_mo(s, STRANGER, "  ", NOW).kind == "ignored"
        s.commit()
    with api.sessions() as s:
        tips = {t.caller_number: t for t in s.scalars(select(Tip))}
        assert set(tips) == {PIETER, STRANGER}
        assert all(t.action_id is None and t.matched_by == MatchedBy.none for t in tips.values())
        assert tips[PIETER].participant_id is not None and tips[STRANGER].participant_id is None


def test_handle_mo_does_not_commit(api):
    api.register(PIETER)
    with api.sessions() as s:
        handle_mo(s, PIETER, "STOP", NOW)
        handle_mo(s, STRANGER, "een tip", NOW)
        s.rollback()
    with api.sessions() as s:
        assert s.scalars(select(Tip)).all() == []
        assert s.scalars(select(Participant)).one().unsubscribed_at is None


# --- the parts of long MO messages (gateway/sms/mo.py) -------------------------------------------

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_parts_assemble_in_order_and_a_gap_is_marked():
    assert assemble({2: "wereld", 1: "hallo "}, 2) == ("hallo wereld", True)
    text, complete = assemble({1: "een ", 3: " drie"}, 3)
    assert (text, complete) == ("[onvolledig: deel 2 van 3 ontbreekt] een […] drie", False)
    assert not is_stop(assemble({1: "STOP"}, 2)[0])  # an incomplete message is never a STOP


def test_a_group_is_due_when_complete_or_its_wait_is_over():
    whole, waiting, late = (
        Group("+31612345678", 1, 2),
        Group("+31612345678", 2, 2),
        Group("+31612345678", 3, 3),
    )
    groups = [(whole, 2, T0), (waiting, 1, T0), (late, 2, T0 - timedelta(seconds=61))]
    assert due(groups, T0, timedelta(seconds=60)) == [whole, late]


def _part(number: int, text: str, reference: int = 7, total: int = 2) -> MoPart:
    return MoPart("+31612345678", reference, total, number, text, T0)


def test_a_part_is_kept_once_and_its_message_taken_once(sessions):
    with sessions() as s, s.begin():
        assert keep_part(s, _part(1, "hallo "))
        assert not keep_part(s, _part(1, "hallo "))  # the same part again: a duplicate
        assert take_group(s, _part(1, "").group, T0, complete_only=True) is None  # not whole yet
        assert keep_part(s, _part(2, "wereld"))
        assert take_group(s, _part(1, "").group, T0, complete_only=True) == ("hallo wereld", True)
        assert take_group(s, _part(1, "").group, T0, complete_only=False) is None  # taken already
        assert not keep_part(s, _part(2, "wereld"))  # resent after it was handled: still a duplicate
        assert open_groups(s) == []


def test_a_reference_reused_for_a_new_text_starts_a_new_message(sessions):
    with sessions() as s, s.begin():
        keep_part(s, _part(1, "oud "))
        keep_part(s, _part(2, "bericht"))
        take_group(s, _part(1, "").group, T0, complete_only=True)
        assert keep_part(s, _part(1, "nieuw "))
        assert [(g, kept) for g, kept, _ in open_groups(s)] == [(_part(1, "").group, 1)]
        assert keep_part(s, _part(2, "bericht"))  # the old part 2 went with the old message
        assert take_group(s, _part(1, "").group, T0, complete_only=True) == ("nieuw bericht", True)


# --- the receipt map when SMSC ids repeat (gateway/sms/store.py) ---------------------------------


def test_two_submits_with_one_smsc_id_the_later_wins_its_receipts(sessions):
    from sms_world import open_action
    from sqlalchemy import insert

    from gateway.sms.receipts import judge_stat
    from gateway.sms.store import Batch, ReceiptIn, Submitted, write_batch
    from gateway.storage.models import Message, SmsPart

    action, bulletin = open_action(sessions)
    with sessions() as s, s.begin():
        s.execute(
            insert(Message),
            [
                {
                    "bulletin_id": bulletin,
                    "action_id": action,
                    "phone": f"+3161000000{i}",
                    "channel": "sms",
                    "status": MessageStatus.sending,
                }
                for i in range(4)
            ],
        )
        m1, m2, m3, m4 = s.execute(select(Message.id).order_by(Message.id)).scalars()

    def write(*rows):
        batch = Batch()
        for row in rows:
            if isinstance(row, Submitted):
                batch.add_submitted(row)
            else:
                batch.receipts.append(row)
        return write_batch(sessions, batch, "w", judge_stat)

    def delivered(smsc_id):
        return ReceiptIn("sim", smsc_id, "DELIVRD", MessageStatus.delivered, "delivered", T0, T0)

    write(Submitted(m1, "sim", "sim1", ("1", "2"), T0))
    write(Submitted(m2, "sim", "sim1", ("1", "3"), T0))  # the SMSC restarted: "1" again
    write(Submitted(m3, "sim", "sim1", ("9",), T0), Submitted(m4, "sim", "sim1", ("9",), T0))  # in one batch
    result = write(delivered("1"), delivered("3"), delivered("9"))
    assert (result.unknown, result.set_aside, result.delivered) == ([], [], 2)
    with sessions() as s:
        status = dict(s.execute(select(Message.id, Message.status)).all())
        owner = dict(s.execute(select(SmsPart.smsc_message_id, SmsPart.message_id)).all())
    assert owner == {"1": m2, "2": m1, "3": m2, "9": m4}
    assert status == {
        m1: MessageStatus.submitted,
        m2: MessageStatus.delivered,
        m3: MessageStatus.submitted,
        m4: MessageStatus.delivered,
    }
