"""SMPP delivery receipts as SMSCs really write them (issue 10, item 6).

SMSCs differ in how the ID of ``submit_sm_resp`` comes back in the receipt: hexadecimal in one,
decimal in the other, zero-padded, upper or lower case. The ``receipted_message_id`` and
``message_state`` TLVs (SMPP 3.4, 5.3.2.12 and 5.3.2.35) win where present; the receipt text
(SMPP 3.4 Appendix B: ``id:... sub:... dlvrd:... submit date:... done date:... stat:...
err:...``) is read otherwise. PDUs here are written byte by byte, then read with smpplib as
the session reads them; the end-to-end cases run against the smpp34 SMSC.
"""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest
import smpplib.smpp

from django_smsclub.exceptions import ConfigurationError
from django_smsclub.gateways.base import Outgoing
from django_smsclub.gateways.smpp import SmppGateway
from django_smsclub.gateways.smpp.pdu import (
    SAME_BASES,
    IdBases,
    canonical_id,
    id_bases,
    parse_receipt,
)
from tests.support.smpp_server import SmppTestServer

pytestmark = pytest.mark.timeout(60)

DELIVER_SM = 0x00000005
TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427
TEXT = (
    "id:{id} sub:001 dlvrd:001 submit date:2412031015 done date:2412031016 stat:{stat} "
    "err:000 text:Hello"
)


def cstring(value: str) -> bytes:
    return value.encode("latin-1") + b"\0"


def deliver_sm(
    short_message: str, *, receipted_id: str | None = None, state: int | None = None
) -> bytes:
    """A deliver_sm receipt as an SMSC writes it on the wire."""
    body = cstring("")  # service_type
    body += bytes((1, 1)) + cstring("380501112233")  # source TON, NPI, address
    body += bytes((5, 0)) + cstring("Shop")  # destination TON, NPI, address
    body += bytes((0x04, 0, 0)) + cstring("") + cstring("")  # esm_class, pid, priority, times
    body += bytes((0, 0, 0, 0))  # registered_delivery, replace, data_coding, default msg
    message = short_message.encode("latin-1")
    body += bytes((len(message),)) + message
    if receipted_id is not None:
        value = cstring(receipted_id)
        body += struct.pack(">HH", TLV_RECEIPTED_MESSAGE_ID, len(value)) + value
    if state is not None:
        body += struct.pack(">HHB", TLV_MESSAGE_STATE, 1, state)
    return struct.pack(">LLLL", 16 + len(body), DELIVER_SM, 0, 7) + body


def read(frame: bytes, bases: IdBases = SAME_BASES):
    client = SimpleNamespace(next_sequence=lambda: 1)
    pdu = smpplib.smpp.parse_pdu(frame, client=client, allow_unknown_opt_params=True)
    return parse_receipt(pdu, bases)


@pytest.mark.parametrize(
    ("raw", "base", "canonical"),
    [
        ("0000000042", None, "42"),
        ("42", None, "42"),
        ("00AB12", None, "ab12"),
        ("ab12", None, "ab12"),
        ("0", None, "0"),
        ("000", None, "0"),
        ("p0066a46dc", None, "p0066a46dc"),
        ("1A", 16, "26"),
        ("0000001a", 16, "26"),
        ("26", 10, "26"),
        ("0026", 10, "26"),
        ("not-hex", 16, "not-hex"),
        ("42\0", None, "42"),
    ],
)
def test_canonical_id(raw, base, canonical):
    assert canonical_id(raw, base) == canonical


def test_tlvs_win_over_the_text():
    frame = deliver_sm(TEXT.format(id="99", stat="ENROUTE"), receipted_id="0000000042", state=2)
    receipt = read(frame)
    assert (receipt.message_id, receipt.stat, receipt.error) == ("42", "DELIVRD", "000")


def test_text_only_receipt_is_read_from_its_fields():
    receipt = read(deliver_sm(TEXT.format(id="0000000042", stat="UNDELIV")))
    assert (receipt.message_id, receipt.stat) == ("42", "UNDELIV")


def test_state_tlv_without_a_stat_word():
    receipt = read(deliver_sm("", receipted_id="42", state=5))
    assert (receipt.message_id, receipt.stat) == ("42", "UNDELIV")


def test_unknown_state_tlv_falls_back_to_the_stat_word():
    receipt = read(deliver_sm(TEXT.format(id="42", stat="EXPIRED"), state=0))
    assert receipt.stat == "EXPIRED"


def test_hex_submit_ids_match_decimal_receipt_text():
    # submit_sm_resp said "1A2B3C"; the receipt text says id:1715004 (decimal).
    bases = IdBases(submit=16, receipt=10)
    stored = canonical_id("1A2B3C", bases.submit)
    assert read(deliver_sm(TEXT.format(id="1715004", stat="DELIVRD")), bases).message_id == stored
    # ...and the TLV repeats the submit_sm_resp form.
    assert read(deliver_sm("", receipted_id="001a2b3c", state=2), bases).message_id == stored


def test_decimal_submit_ids_match_hex_receipt_text():
    bases = IdBases(submit=10, receipt=16)
    stored = canonical_id("1715004", bases.submit)
    assert read(deliver_sm(TEXT.format(id="1A2B3C", stat="DELIVRD")), bases).message_id == stored


def test_case_and_zeros_do_not_matter_when_both_sides_use_one_base():
    stored = canonical_id("00AbC123")
    assert read(deliver_sm(TEXT.format(id="abc123", stat="DELIVRD"))).message_id == stored
    assert read(deliver_sm("", receipted_id="ABC123", state=2)).message_id == stored


@pytest.mark.parametrize("value", [(16,), (16, 8), "16,10", 16, (True, 10)])
def test_bad_message_id_bases_are_a_configuration_error_naming_them(value):
    with pytest.raises(ConfigurationError, match="MESSAGE_ID_BASES"):
        id_bases("smpp", value)


@pytest.mark.parametrize(("value", "bases"), [(None, IdBases()), ((16, 10), IdBases(16, 10))])
def test_message_id_bases_setting(value, bases):
    assert id_bases("smpp", value) == bases


# --- against smpp34 ----------------------------------------------------------------------------


@pytest.fixture
def smsc():
    with SmppTestServer() as server:
        yield server


def make_gateway(smsc, received, **options):
    gateway = SmppGateway(
        "smpp",
        HOST=smsc.host,
        PORT=smsc.port,
        USERNAME="380501234567",
        PASSWORD="s3cr#t",
        SENDER="Shop",
        TIMEOUT=5,
        CONNECT_TIMEOUT=2,
        **options,
    )
    gateway.set_receipt_handler(lambda message_id, stat: received.append((message_id, stat)))
    return gateway


def test_zero_padded_submit_ids_are_stored_canonical_and_match_unpadded_receipts(smsc):
    received: list[tuple[str, str]] = []
    gateway = make_gateway(smsc, received)
    try:
        [outcome] = gateway.send("Shop", [Outgoing("380501112233", "hi")])
        [submit] = smsc.accepted()
        assert submit.message_id.startswith("000")  # the SMSC pads to ten digits
        assert outcome.smsc_ids == (submit.message_id.lstrip("0"),)
        smsc.receipt_tlv = False
        assert smsc.send_receipt(submit.message_id.lstrip("0"), "DELIVRD") == 0
        assert smsc.send_receipt(submit.message_id, "UNDELIV") == 0
        assert smsc.wait_for(lambda: len(received) == 2)
        assert received == [(outcome.smsc_ids[0], "DELIVRD"), (outcome.smsc_ids[0], "UNDELIV")]
    finally:
        gateway.close()


def test_decimal_submit_ids_match_hex_receipts_when_so_configured(smsc):
    received: list[tuple[str, str]] = []
    gateway = make_gateway(smsc, received, MESSAGE_ID_BASES=(10, 16))
    try:
        [outcome] = gateway.send("Shop", [Outgoing("380501112233", "hi")])
        [submit] = smsc.accepted()
        smsc.receipt_tlv = False
        assert smsc.send_receipt(format(int(submit.message_id), "X"), "DELIVRD") == 0
        assert smsc.wait_for(lambda: len(received) == 1)
        assert received == [(outcome.smsc_ids[0], "DELIVRD")]
    finally:
        gateway.close()
