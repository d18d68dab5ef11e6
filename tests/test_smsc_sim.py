"""The SMSC simulator itself (tests/smsc/simulator.js), driven by a raw-socket ESME written here.

The project's own SMPP code is tested against this simulator, so the simulator is proven with a
client that shares nothing with it: a few struct.pack lines of SMPP 3.4.
"""

import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from polling import until
from smsc_sim import ControlError

BIND_TRANSCEIVER, BIND_TRANSMITTER, BIND_RECEIVER = 0x09, 0x02, 0x01
SUBMIT_SM, DELIVER_SM, ENQUIRE_LINK, GENERIC_NACK = 0x04, 0x05, 0x15, 0x80000000
RESP = 0x80000000
ESME_ROK, ESME_RINVBNDSTS, ESME_RINVPASWD, ESME_RBINDFAIL, ESME_RINVSYSID = 0x00, 0x04, 0x0E, 0x0D, 0x0F
ESME_RTHROTTLED, ESME_RMSGQFUL = 0x58, 0x14
TLV_RECEIPTED_MESSAGE_ID, TLV_MESSAGE_STATE = 0x001E, 0x0427


def cstring(value: str) -> bytes:
    return value.encode("latin-1") + b"\0"


class Pdu:
    def __init__(self, command_id: int, status: int, seq: int, body: bytes):
        self.command_id, self.status, self.seq, self.body = command_id, status, seq, body

    def __repr__(self) -> str:
        return f"Pdu(0x{self.command_id:08x}, status=0x{self.status:x}, seq={self.seq})"

    def message_id(self) -> str:
        return self.body.split(b"\0", 1)[0].decode()

    def deliver_sm(self) -> dict:
        """The fields of a deliver_sm body a test looks at, TLVs by tag."""
        body, fields = self.body, {}
        pos = 0

        def cstr():
            nonlocal pos
            end = body.index(b"\0", pos)
            value, pos = body[pos:end].decode("latin-1"), end + 1
            return value

        def byte():
            nonlocal pos
            pos += 1
            return body[pos - 1]

        cstr()  # service_type
        fields["source_ton"], _ = byte(), byte()
        fields["source_addr"] = cstr()
        byte(), byte()
        fields["destination_addr"] = cstr()
        fields["esm_class"], _, _ = byte(), byte(), byte()
        cstr(), cstr()  # schedule_delivery_time, validity_period
        byte(), byte()
        fields["data_coding"], _ = byte(), byte()
        length = byte()
        fields["short_message"], pos = body[pos : pos + length], pos + length
        tlvs = {}
        while pos + 4 <= len(body):
            tag, size = struct.unpack(">HH", body[pos : pos + 4])
            tlvs[tag], pos = body[pos + 4 : pos + 4 + size], pos + 4 + size
        fields["tlvs"] = tlvs
        return fields


class RawEsme:
    """An SMPP 3.4 client in a few lines: just enough to drive the simulator."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.seq = 0
        self.buffer = b""
        self.backlog: list[Pdu] = []

    def close(self) -> None:
        self.sock.close()

    def send(self, command_id: int, body: bytes = b"", status: int = 0, seq: int | None = None) -> int:
        if seq is None:
            self.seq += 1
            seq = self.seq
        self.sock.sendall(struct.pack(">IIII", 16 + len(body), command_id, status, seq) + body)
        return seq

    def read(self, timeout: float = 10.0) -> Pdu | None:
        """The next PDU, or None when the SMSC closed the connection."""
        self.sock.settimeout(timeout)
        while True:
            if len(self.buffer) >= 16:
                length, command_id, status, seq = struct.unpack(">IIII", self.buffer[:16])
                if len(self.buffer) >= length:
                    pdu = Pdu(command_id, status, seq, self.buffer[16:length])
                    self.buffer = self.buffer[length:]
                    return pdu
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self.buffer += chunk

    def read_command(self, command_id: int, timeout: float = 10.0) -> Pdu:
        """The next PDU of one kind; others that arrive first are kept for later calls."""
        for pdu in self.backlog:
            if pdu.command_id == command_id:
                self.backlog.remove(pdu)
                return pdu
        while True:
            pdu = self.read(timeout)
            assert pdu is not None, f"connection closed while waiting for 0x{command_id:08x}"
            if pdu.command_id == command_id:
                return pdu
            self.backlog.append(pdu)

    def bind(
        self,
        sim,
        command_id: int = BIND_TRANSCEIVER,
        password: str | None = None,
        system_id: str | None = None,
    ) -> int:
        body = (
            cstring(system_id or sim.system_id)
            + cstring(sim.password if password is None else password)
            + cstring("")
            + bytes([0x34, 0, 0])
            + cstring("")
        )
        self.send(command_id, body)
        return self.read_command(command_id | RESP).status

    def submit(
        self,
        destination: str,
        short_message: bytes,
        *,
        data_coding: int = 0,
        esm_class: int = 0,
        registered_delivery: int = 1,
        source: str = "Burgernet",
    ) -> int:
        body = (
            cstring("")
            + bytes([5, 0])
            + cstring(source)
            + bytes([1, 1])
            + cstring(destination)
            + bytes([esm_class, 0, 0])
            + cstring("")
            + cstring("")
            + bytes([registered_delivery, 0, data_coding, 0, len(short_message)])
            + short_message
        )
        return self.send(SUBMIT_SM, body)

    def ack(self, pdu: Pdu, status: int = 0) -> None:
        self.send(pdu.command_id | RESP, b"\0", status=status, seq=pdu.seq)


@pytest.fixture
def esme(smsc):
    clients = []

    def connect(bind: int | None = BIND_TRANSCEIVER) -> RawEsme:
        client = RawEsme(smsc.port)
        clients.append(client)
        if bind is not None:
            assert client.bind(smsc, bind) == ESME_ROK
        return client

    yield connect
    for client in clients:
        client.close()


def gsm(text: str) -> bytes:
    return text.encode("ascii")  # the plain ASCII letters used below have the same GSM codes


def ucs2(text: str) -> bytes:
    return text.encode("utf-16-be")


# --- binds --------------------------------------------------------------------------------------


def test_bind_checks_system_id_and_password(smsc, esme):
    assert RawEsme(smsc.port).bind(smsc, password="wrong") == ESME_RINVPASWD
    assert RawEsme(smsc.port).bind(smsc, system_id="stranger") == ESME_RINVSYSID
    bound = [esme(kind) for kind in (BIND_TRANSCEIVER, BIND_TRANSMITTER, BIND_RECEIVER)]
    modes = sorted(b["mode"] for b in smsc.wait_for(lambda s: len(s["binds"]) == 3)["binds"])
    assert modes == ["receiver", "transceiver", "transmitter"]
    assert smsc.stats()["binds_rejected"] == 2 and len(bound) == 3


def test_reject_bind_setting(smsc):
    smsc.configure(reject_bind="bindfail")
    assert RawEsme(smsc.port).bind(smsc) == ESME_RBINDFAIL
    smsc.configure(reject_bind="password")
    assert RawEsme(smsc.port).bind(smsc) == ESME_RINVPASWD
    smsc.configure(reject_bind=False)
    assert RawEsme(smsc.port).bind(smsc) == ESME_ROK


def test_bad_settings_are_refused(smsc):
    for bad in (
        {"reject_bind": "maybe"},
        {"throttle_ms": -1},
        {"no_such_thing": 1},
        {"receipt_stat": {"78": "LOST"}},
        {"drop_after": 0},
    ):
        with pytest.raises(ControlError) as caught:
            smsc.configure(**bad)
        assert caught.value.status == 400


def test_submit_before_bind_and_on_a_receiver_is_refused(smsc, esme):
    raw = esme(bind=None)
    raw.submit("31612345678", gsm("hi"))
    assert raw.read_command(SUBMIT_SM | RESP).status == ESME_RINVBNDSTS
    receiver = esme(BIND_RECEIVER)
    receiver.submit("31612345678", gsm("hi"))
    assert receiver.read_command(SUBMIT_SM | RESP).status == ESME_RINVBNDSTS
    assert smsc.stats()["submits_accepted"] == 0


def test_enquire_link_is_answered(esme):
    client = esme()
    seq = client.send(ENQUIRE_LINK)
    assert client.read_command(ENQUIRE_LINK | RESP).seq == seq


# --- submits and receipts -----------------------------------------------------------------------


def test_submit_gets_a_unique_id_and_a_standard_receipt(smsc, esme):
    client = esme()
    client.submit("31612345678", gsm("Gezocht: man met rode jas"))
    client.submit("31612345679", gsm("Tweede"))
    ids = [client.read_command(SUBMIT_SM | RESP).message_id() for _ in range(2)]
    assert len(set(ids)) == 2 and all(ids)

    receipts = [client.read_command(DELIVER_SM) for _ in range(2)]
    for pdu in receipts:
        client.ack(pdu)
    first = next(r.deliver_sm() for r in receipts if r.deliver_sm()["source_addr"] == "31612345678")
    assert first["esm_class"] == 0x04
    assert first["destination_addr"] == "Burgernet"
    text = first["short_message"].decode()
    assert text.startswith(f"id:{ids[0]} sub:001 dlvrd:001 submit date:")
    assert " stat:DELIVRD err:000 text:Gezocht: man met rod" in text
    assert first["tlvs"][TLV_RECEIPTED_MESSAGE_ID] == ids[0].encode() + b"\0"
    assert first["tlvs"][TLV_MESSAGE_STATE] == b"\x02"

    stats = smsc.wait_for(lambda s: s["receipts_acked"] == 2)
    assert stats["submits_accepted"] == 2 and stats["receipts_sent"] == 2
    assert stats["by_destination"]["+31612345678"] == {"submits": 1, "messages": 1}
    assert sum(stats["per_second"].values()) == 2


def test_no_receipt_unless_registered_delivery_asks(smsc, esme):
    client = esme()
    client.submit("31612345678", gsm("zonder"), registered_delivery=0)
    client.submit("31612345678", gsm("alleen fout"), registered_delivery=2)
    client.read_command(SUBMIT_SM | RESP), client.read_command(SUBMIT_SM | RESP)
    seq = client.send(ENQUIRE_LINK)
    pdu = client.read()
    assert (pdu.command_id, pdu.seq) == (ENQUIRE_LINK | RESP, seq)  # nothing was queued before it
    assert smsc.stats()["receipts_sent"] == 0


def test_receipt_stat_by_destination_suffix(smsc, esme):
    smsc.configure(receipt_stat={"01": "UNDELIV", "02": "EXPIRED"})
    client = esme()
    for dest in ("31612345601", "31612345602", "31612345603"):
        client.submit(dest, gsm("x"))
    got = {}
    for _ in range(3):
        pdu = client.read_command(DELIVER_SM)
        client.ack(pdu)
        fields = pdu.deliver_sm()
        got[fields["source_addr"]] = (
            fields["short_message"].decode().split("stat:")[1][:7],
            fields["tlvs"][TLV_MESSAGE_STATE],
        )
    assert got == {
        "31612345601": ("UNDELIV", b"\x05"),
        "31612345602": ("EXPIRED", b"\x03"),
        "31612345603": ("DELIVRD", b"\x02"),
    }


def test_withheld_receipts_wait_for_release(smsc, esme):
    smsc.configure(withhold_receipts=True)
    client = esme()
    for i in range(3):
        client.submit(f"3161234560{i}", gsm("x"))
    for _ in range(3):
        client.read_command(SUBMIT_SM | RESP)
    assert smsc.wait_for(lambda s: s["receipts_withheld"] == 3)["receipts_sent"] == 0
    assert smsc.release_receipts() == 3
    for _ in range(3):
        client.ack(client.read_command(DELIVER_SM))
    assert smsc.wait_for(lambda s: s["receipts_acked"] == 3)["receipts_withheld"] == 0


def test_receipt_goes_to_a_receiver_bind_and_is_resent_when_not_acknowledged(smsc, esme):
    transmitter = esme(BIND_TRANSMITTER)
    transmitter.submit("31612345678", gsm("x"))
    message_id = transmitter.read_command(SUBMIT_SM | RESP).message_id()
    assert smsc.wait_for(lambda s: s["receipts_waiting_for_receiver"] == 1)

    receiver = esme(BIND_RECEIVER)
    first = receiver.read_command(DELIVER_SM)
    assert first.deliver_sm()["tlvs"][TLV_RECEIPTED_MESSAGE_ID] == message_id.encode() + b"\0"
    receiver.close()  # never acknowledged: an SMSC sends it again to the next receiver

    again = esme(BIND_RECEIVER)
    second = again.read_command(DELIVER_SM)
    assert second.deliver_sm()["tlvs"][TLV_RECEIPTED_MESSAGE_ID] == message_id.encode() + b"\0"
    again.ack(second)
    stats = smsc.wait_for(lambda s: s["receipts_acked"] == 1)
    assert stats["receipts_sent"] == 2


def test_receipt_id_in_decimal_variant(smsc, esme):
    smsc.configure(receipt_id_decimal=True)
    client = esme()
    client.submit("31612345678", gsm("x"))
    message_id = client.read_command(SUBMIT_SM | RESP).message_id()
    fields = client.read_command(DELIVER_SM).deliver_sm()
    assert fields["short_message"].decode().startswith(f"id:{int(message_id, 16)} ")
    assert fields["tlvs"][TLV_RECEIPTED_MESSAGE_ID] == message_id.encode() + b"\0"


# --- encodings and concatenation ---------------------------------------------------------------


def concat_parts(payload: bytes, room: int, ref: int, sixteen_bit: bool = False) -> list[bytes]:
    chunks = [payload[i : i + room] for i in range(0, len(payload), room)]
    if sixteen_bit:
        return [bytes([6, 8, 4, ref >> 8, ref & 0xFF, len(chunks), n + 1]) + c for n, c in enumerate(chunks)]
    return [bytes([5, 0, 3, ref, len(chunks), n + 1]) + c for n, c in enumerate(chunks)]


def test_concatenated_messages_count_once_when_whole(smsc, esme):
    client = esme()
    text = "Gezocht: " + "man met rode jas, ongeveer 40 jaar. " * 8  # about 300 GSM characters
    gsm_parts = concat_parts(gsm(text), 153, ref=7)
    dutch = "Vermist: meisje (8) uit België, draagt € 5 munt en 🚲 fiets. " * 3
    ucs2_parts = concat_parts(ucs2(dutch), 134, ref=300, sixteen_bit=True)
    assert len(gsm_parts) == 2 and len(ucs2_parts) == 3
    for part in gsm_parts:
        client.submit("31611111111", part, esm_class=0x40)
    for part in ucs2_parts[:2]:
        client.submit("31622222222", part, esm_class=0x40, data_coding=8)
    client.submit("31633333333", ucs2("één"), data_coding=8)
    for _ in range(5):
        client.read_command(SUBMIT_SM | RESP)

    stats = smsc.stats()
    assert stats["by_destination"]["+31611111111"] == {"submits": 2, "messages": 1}
    assert stats["by_destination"]["+31622222222"] == {"submits": 2, "messages": 0}  # not whole yet
    assert stats["by_destination"]["+31633333333"] == {"submits": 1, "messages": 1}
    assert stats["incomplete_concatenated"] == 1
    client.submit("31622222222", ucs2_parts[2], esm_class=0x40, data_coding=8)
    client.read_command(SUBMIT_SM | RESP)
    assert smsc.stats()["by_destination"]["+31622222222"] == {"submits": 3, "messages": 1}
    assert smsc.texts("+31611111111") == [text]
    assert smsc.texts("+31622222222") == [dutch]  # the emoji's surrogate pair spans two parts
    assert smsc.texts("+31633333333") == ["één"]


def test_gsm_extension_characters_decode(smsc, esme):
    client = esme()
    client.submit(
        "31612345678", b"Prijs: \x1be5 \x1b<\x1b> \x5b\x7b"
    )  # ESC e = €, ESC < = [, 0x5B = Ä, 0x7B = ä
    client.read_command(SUBMIT_SM | RESP)
    assert smsc.texts("+31612345678") == ["Prijs: €5 [] Ää"]


def test_unreadable_udh_is_rejected_not_fatal(smsc, esme):
    client = esme()
    client.submit("31612345678", bytes([40, 0, 3]), esm_class=0x40)  # header longer than the data
    assert client.read_command(SUBMIT_SM | RESP).status != ESME_ROK
    client.submit("31612345678", gsm("ok"))
    assert client.read_command(SUBMIT_SM | RESP).status == ESME_ROK


# --- faults -------------------------------------------------------------------------------------


def submit_until_accepted(client: RawEsme, deadline_s: float) -> list[int]:
    statuses: list[int] = []

    def accepted() -> bool:
        client.submit("31612345678", gsm("x"), registered_delivery=0)
        statuses.append(client.read_command(SUBMIT_SM | RESP).status)
        return statuses[-1] == ESME_ROK

    until(accepted, deadline_s, lambda: f"an accepted submit, never accepted: {statuses[-5:]}", every=0)
    return statuses


@pytest.mark.parametrize(
    ("setting", "status"), [("throttle_ms", ESME_RTHROTTLED), ("msgqful_ms", ESME_RMSGQFUL)]
)
def test_throttle_and_queue_full_last_as_configured(smsc, esme, setting, status):
    client = esme()
    started = time.monotonic()
    smsc.configure(**{setting: 400})
    statuses = submit_until_accepted(client, 10)
    assert time.monotonic() - started >= 0.4
    assert statuses[0] == status and set(statuses[:-1]) == {status}
    stats = smsc.stats()
    assert stats["submits_rejected"] == len(statuses) - 1
    assert stats["rejected_by_status"] == {str(status): len(statuses) - 1}
    assert stats["submits_accepted"] == 1  # rejected submits are not counted per destination
    assert stats["by_destination"]["+31612345678"]["submits"] == 1


def test_drop_after_closes_the_bind_after_n_accepted(smsc, esme):
    client = esme()
    smsc.configure(drop_after=3)
    for i in range(6):
        client.submit(f"3161234567{i}", gsm("x"), registered_delivery=0)
    answered = []
    while (pdu := client.read()) is not None:
        if pdu.command_id == SUBMIT_SM | RESP:
            answered.append(pdu.status)
    assert answered == [ESME_ROK] * 3
    stats = smsc.stats()
    assert stats["submits_accepted"] == 3 and stats["drops"] == 1 and stats["binds"] == []
    # one-shot: the next bind keeps going
    again = esme()
    for i in range(5):
        again.submit(f"3161234567{i}", gsm("x"), registered_delivery=0)
    assert [again.read_command(SUBMIT_SM | RESP).status for _ in range(5)] == [ESME_ROK] * 5


def test_drop_before_resp_accepts_but_never_answers(smsc, esme):
    client = esme()
    smsc.configure(drop_after=2, drop_before_resp=True)
    client.submit("31612345670", gsm("x"), registered_delivery=0)
    client.submit("31612345671", gsm("x"), registered_delivery=0)
    answered = []
    while (pdu := client.read()) is not None:
        answered.append(pdu.status)
    assert answered == [ESME_ROK]
    assert smsc.stats()["submits_accepted"] == 2  # the handset got the second one all the same


def test_no_resp_every_loses_every_nth_submit(smsc, esme):
    client = esme()
    smsc.configure(no_resp_every=3)
    seqs = [client.submit(f"316123456{i:02d}", gsm("x"), registered_delivery=0) for i in range(9)]
    client.send(ENQUIRE_LINK)
    answered = []
    while (pdu := client.read_command(SUBMIT_SM | RESP)) and len(answered) < 6:
        answered.append(pdu.seq)
        if len(answered) == 6:
            break
    assert answered == [s for i, s in enumerate(seqs) if (i + 1) % 3]
    stats = smsc.stats()
    assert stats["submits_unanswered"] == 3 and stats["submits_accepted"] == 6


def test_resp_delay_shows_the_clients_window(smsc, esme):
    client = esme()
    smsc.configure(resp_delay_ms=200)
    for i in range(20):
        client.submit(f"316123456{i:02d}", gsm("x"), registered_delivery=0)
    for _ in range(20):
        assert client.read_command(SUBMIT_SM | RESP).status == ESME_ROK
    assert smsc.stats()["max_in_flight_seen"] == 20


def test_bad_pdus_do_not_stop_the_server(smsc, esme):
    good = esme()
    bad = esme(bind=None)
    bad.send(0x00000077)  # an unknown command: generic_nack, the session carries on
    nack = bad.read()
    assert nack.command_id == GENERIC_NACK and nack.status == 0x03
    bad.sock.sendall(struct.pack(">I", 0x7FFFFFFF) + b"garbage")  # a length no PDU has: connection goes
    assert bad.read() is None
    truncated = esme(bind=None)
    truncated.sock.sendall(struct.pack(">IIII", 8, SUBMIT_SM, 0, 1) + b"\0" * 4)  # shorter than a header
    assert truncated.read() is None
    good.submit("31612345678", gsm("still here"))
    assert good.read_command(SUBMIT_SM | RESP).status == ESME_ROK
    assert smsc.stats()["bad_pdus"] >= 2


# --- MO -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "data_coding", "encoded"),
    [
        ("STOP", 0, gsm("STOP")),
        ("Ik zag hem bij de brug naar België", 8, ucs2("Ik zag hem bij de brug naar België")),  # ë is not GSM
    ],
)
def test_mo_reaches_a_receiver_and_reports_its_acknowledgement(smsc, esme, text, data_coding, encoded):
    receiver = esme(BIND_RECEIVER)
    result = {}
    sender = threading.Thread(target=lambda: result.update(smsc.send_mo("+31612345678", "3000", text)))
    sender.start()
    pdu = receiver.read_command(DELIVER_SM)
    fields = pdu.deliver_sm()
    assert (fields["source_addr"], fields["source_ton"], fields["destination_addr"]) == (
        "31612345678",
        1,
        "3000",
    )
    assert (fields["esm_class"], fields["data_coding"], fields["short_message"]) == (0, data_coding, encoded)
    receiver.ack(pdu)
    sender.join(10)
    assert result["acked"] is True
    assert smsc.stats()["mo_acked"] == 1


def test_long_mo_is_concatenated(smsc, esme):
    receiver = esme(BIND_RECEIVER)
    text = "Ik zie de man met de rode jas nu bij het station lopen, richting centrum. " * 3
    assert smsc.send_mo("0612345678", "3000", text, wait=False)["parts"] == 2
    parts = [receiver.read_command(DELIVER_SM) for _ in range(2)]
    for pdu in parts:
        receiver.ack(pdu)
    payloads = [p.deliver_sm()["short_message"] for p in parts]
    assert all(p.deliver_sm()["esm_class"] == 0x40 and p.deliver_sm()["source_ton"] == 0 for p in parts)
    assert b"".join(p[6:] for p in payloads).decode("ascii") == text
    smsc.wait_for(lambda s: s["mo_acked"] == 1)


def test_mo_without_a_receiver_says_so(smsc, esme):
    esme(BIND_TRANSMITTER)
    with pytest.raises(ControlError) as caught:
        smsc.send_mo("+31612345678", "3000", "STOP")
    assert caught.value.status == 409


def test_mo_refused_by_the_esme_is_reported(smsc, esme):
    receiver = esme(BIND_RECEIVER)
    result = {}
    sender = threading.Thread(target=lambda: result.update(smsc.send_mo("+31612345678", "3000", "hallo")))
    sender.start()
    receiver.ack(receiver.read_command(DELIVER_SM), status=0x08)
    sender.join(10)
    assert result == {"acked": False, "command_status": 0x08, "parts": 1, "bind": result["bind"]}


def _in_thread(call) -> tuple[threading.Thread, dict]:
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(call()))
    thread.start()
    return thread, result


LONG_MO = "Ik zie de man met de rode jas nu bij het station lopen, richting centrum. " * 3  # two parts


def test_mo_parts_one_at_a_time_wait_for_each_answer_or_its_timer(smsc, esme):
    """A window of 1: part 2 comes only once part 1 is answered, or once its timer ran out (the
    SMSC then counts part 1 failed and goes on)."""
    receiver = esme(BIND_RECEIVER)
    thread, result = _in_thread(
        lambda: smsc.send_mo("0612345678", "3000", LONG_MO, one_at_a_time=True, part_timeout_ms=500)
    )
    first = receiver.read_command(DELIVER_SM)
    second = receiver.read_command(DELIVER_SM)  # not answered the first: comes after its timer
    receiver.ack(second)
    thread.join(10)
    assert [p.deliver_sm()["short_message"][5] for p in (first, second)] == [1, 2]  # UDH part numbers
    assert [r["status"] for r in result["results"]] == [None, 0]
    assert result["results"][0]["ms"] >= 500 and result["acked"] is False
    assert smsc.stats()["mo_timeouts"] == 1


def test_mo_only_some_parts_and_a_part_resent(smsc, esme):
    receiver = esme(BIND_RECEIVER)
    thread, result = _in_thread(
        lambda: smsc.send_mo("0612345678", "3000", LONG_MO, only_parts=[2], reference=42, resend_part=2)
    )
    pdus = []
    for _ in range(2):  # each only after the previous one's answer
        pdus.append(receiver.read_command(DELIVER_SM))
        receiver.ack(pdus[-1])
    thread.join(10)
    udh = [p.deliver_sm()["short_message"][:6] for p in pdus]
    assert udh == [bytes([5, 0, 3, 42, 2, 2])] * 2  # part 2 of 2, reference 42, twice
    assert pdus[0].seq != pdus[1].seq
    assert result["acked"] and result["resent"]["status"] == 0


def test_message_ids_from_a_counter_repeat_after_a_restart(make_smsc):
    sim = make_smsc(message_ids="counter")
    ids = []
    for _ in range(2):
        client = RawEsme(sim.port)
        assert client.bind(sim) == ESME_ROK
        client.submit("31612345678", gsm("x"), registered_delivery=0)
        client.submit("31612345679", gsm("y"), registered_delivery=0)
        ids.append([client.read_command(SUBMIT_SM | RESP).message_id() for _ in range(2)])
        client.close()
        sim.restart()
    assert ids == [["1", "2"], ["1", "2"]]


def test_the_smsc_probes_only_when_asked(smsc, esme):
    client = esme()
    smsc.configure(enquire_link_ms=100)
    probe = client.read_command(ENQUIRE_LINK, timeout=2)
    client.ack(probe)
    smsc.configure(enquire_link_ms=0)
    assert smsc.stats()["enquire_links_sent"] >= 1


def test_a_silenced_connection_stays_open_and_answers_nothing(smsc, esme):
    client = esme()
    assert smsc.silence() == 1
    client.send(ENQUIRE_LINK)
    client.submit("31612345678", gsm("x"))
    client.sock.settimeout(0.5)
    with pytest.raises(TimeoutError):  # open (no EOF), and silent
        client.sock.recv(1)
    smsc.wait_for(lambda s: s["ignored_while_silent"] == 2 and s["binds"][0]["silent"])
    fresh = esme()  # a new connection is served
    fresh.send(ENQUIRE_LINK)
    assert fresh.read_command(ENQUIRE_LINK | RESP).status == ESME_ROK
    assert smsc.stats()["submits_accepted"] == 0


# --- lifecycle ----------------------------------------------------------------------------------


def test_restart_keeps_the_port_and_never_reuses_an_id(smsc, esme):
    client = esme()
    client.submit("31612345678", gsm("x"), registered_delivery=0)
    before = client.read_command(SUBMIT_SM | RESP).message_id()
    port = smsc.port
    smsc.restart()
    assert smsc.port == port
    assert client.read() is None  # the old connection went with the old process
    again = esme()
    again.submit("31612345678", gsm("x"), registered_delivery=0)
    after = again.read_command(SUBMIT_SM | RESP).message_id()
    assert after != before and int(after, 16) > int(before, 16)
    assert smsc.stats()["submits_accepted"] == 1


def test_reset_clears_counters_and_settings(smsc, esme):
    client = esme()
    smsc.configure(withhold_receipts=True)
    client.submit("31612345678", gsm("x"))
    client.read_command(SUBMIT_SM | RESP)
    smsc.reset()
    stats = smsc.stats()
    assert (
        stats["submits_accepted"] == 0 and stats["by_destination"] == {} and stats["receipts_withheld"] == 0
    )
    assert smsc.configure()["withhold_receipts"] is False
    assert len(stats["binds"]) == 1  # the bind stays


# --- the benchmark's reference client (bench/smsc_reference.js via bench/smsc_reference.py) -----


def test_the_benchmark_reference_runs_against_the_simulator(smsc):
    root = Path(__file__).resolve().parent.parent
    code = "import sys; from bench.smsc_reference import run_reference as r; a = sys.argv; print(r(int(a[1]), int(a[2]), a[3], a[4]))"
    done = subprocess.run(
        [sys.executable, "-c", code, "300", str(smsc.port), smsc.system_id, smsc.password],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) > 0
    stats = smsc.stats()
    assert stats["submits_accepted"] == 300 and stats["receipts_acked"] == 300
    assert len(stats["by_destination"]) == 300


def test_two_simulators_are_independent(smsc, make_smsc):
    other = make_smsc(system_id="operator-b", password="pw-b")
    assert other.port != smsc.port
    client = RawEsme(other.port)
    assert client.bind(other) == ESME_ROK
    client.submit("31612345678", gsm("x"), registered_delivery=0)
    assert client.read_command(SUBMIT_SM | RESP).status == ESME_ROK
    client.close()
    assert other.stats()["submits_accepted"] == 1 and smsc.stats()["submits_accepted"] == 0
