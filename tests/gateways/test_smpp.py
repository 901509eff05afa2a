"""The SMPP gateway against smpp34, an SMPP 3.4 server that is not ours, on 127.0.0.1."""

from __future__ import annotations

import logging
import threading
import time
from types import SimpleNamespace

import pytest
import smpplib.consts as c

from django_smsclub import text
from django_smsclub.exceptions import (
    AmbiguousSend,
    AuthenticationError,
    ConfigurationError,
    GatewayUnavailable,
    InvalidMessage,
    ProviderRefused,
    RateLimited,
)
from django_smsclub.gateways.base import Outgoing
from django_smsclub.gateways.smpp import (
    NotSubmitted,
    OperationNotSupported,
    SmppGateway,
    parse_receipt,
)
from django_smsclub.gateways.smpp.connection import WIRE_LOGGER
from django_smsclub.gateways.smpp.pdu import RECEIPT_RETRY_STATUS, canonical_id, encode_text
from tests.support.smpp_server import ENQUIRE_LINK, SmppTestServer

pytestmark = pytest.mark.timeout(60)

PASSWORD = "s3cr#t"
CYRILLIC = "Ваше замовлення готове. Дякуємо, що обрали наш магазин!"
LONG_CYRILLIC = "Шановний клієнте, ваше замовлення №4521 вже чекає на вас у відділенні. " * 4


@pytest.fixture
def receipts():
    return []


@pytest.fixture
def gateway(smsc, receipts):
    gateway = make_gateway(smsc)
    gateway.set_receipt_handler(lambda message_id, stat: receipts.append((message_id, stat)))
    yield gateway
    gateway.close()


def make_gateway(smsc: SmppTestServer, **options) -> SmppGateway:
    settings = {
        "HOST": smsc.host,
        "PORT": smsc.port,
        "USERNAME": "380501234567",
        "PASSWORD": PASSWORD,
        "SENDER": "Shop",
        "TIMEOUT": 5,
        "CONNECT_TIMEOUT": 2,
        **options,
    }
    return SmppGateway("smpp", **settings)


def test_latin_text_goes_as_default_alphabet_with_receipt_requested(gateway, smsc):
    [outcome] = gateway.send("Shop", [Outgoing("+380 (50) 111-22-33", "Your code is 4521")])

    assert outcome.accepted and len(outcome.smsc_ids) == 1
    [submit] = smsc.accepted("380501112233")
    assert canonical_id(submit.message_id) == outcome.smsc_ids[0]
    assert (submit.data_coding, submit.esm_class, submit.registered_delivery) == (0, 0, 1)
    assert submit.source_addr == "Shop"
    assert smsc.texts("380501112233") == ["Your code is 4521"]


def test_cyrillic_single_part_goes_as_ucs2(gateway, smsc):
    [outcome] = gateway.send("Shop", [Outgoing("380501112233", CYRILLIC)])

    assert len(outcome.smsc_ids) == 1
    [submit] = smsc.accepted("380501112233")
    assert (submit.data_coding, submit.esm_class) == (8, 0)
    assert smsc.texts("380501112233") == [CYRILLIC]


def test_long_cyrillic_is_split_into_the_parts_text_counts_and_joins_back(gateway, smsc):
    parts = text.count_parts(LONG_CYRILLIC)
    assert parts == 5

    [outcome] = gateway.send("Shop", [Outgoing("380501112233", LONG_CYRILLIC)])

    assert len(outcome.smsc_ids) == parts
    submits = smsc.accepted("380501112233")
    assert len(submits) == parts
    assert {s.esm_class for s in submits} == {0x40}
    assert {s.data_coding for s in submits} == {8}
    assert sorted(outcome.smsc_ids) == sorted(canonical_id(s.message_id) for s in submits)
    assert smsc.texts("380501112233") == [LONG_CYRILLIC]


def test_two_long_texts_to_one_number_get_different_references(gateway, smsc):
    first, second = LONG_CYRILLIC, LONG_CYRILLIC.upper()
    outcomes = gateway.send(
        "Shop", [Outgoing("380501112233", first), Outgoing("380501112233", second)]
    )

    assert all(o.accepted for o in outcomes)
    assert sorted(smsc.texts("380501112233")) == sorted([first, second])


@pytest.mark.parametrize(
    "body",
    [
        "x" * 160,
        "x" * 161,
        "{[braces]}~^|\\ " * 30,
        "Привіт" * 11 + "1234",
        "Привіт" * 12,
        "emoji 😀" * 20,
    ],
)
def test_parts_on_the_wire_match_the_text_rules(body):
    encoded = encode_text(body, 7)
    assert len(encoded.payloads) == text.count_parts(body)
    if len(encoded.payloads) > 1:
        assert all(len(p) <= 6 + 153 for p in encoded.payloads)
        assert [p[:6] for p in encoded.payloads] == [
            bytes((5, 0, 3, 7, len(encoded.payloads), n))
            for n in range(1, len(encoded.payloads) + 1)
        ]
        joined = b"".join(p[6:] for p in encoded.payloads)
    else:
        joined = encoded.payloads[0]
    codec = "ascii" if encoded.data_coding == 0 else "utf-16-be"
    assert joined.decode(codec) == body


def test_long_latin_text_with_gsm_escape_characters(gateway, smsc):
    body = "Order {4521} [ready] ~ pick it up | thanks ^_^ \\o/ " * 8
    [outcome] = gateway.send("Shop", [Outgoing("380501112233", body)])

    assert len(outcome.smsc_ids) == text.count_parts(body)
    assert smsc.texts("380501112233") == [body]
    assert {s.data_coding for s in smsc.accepted("380501112233")} == {0}


def test_many_messages_each_get_their_own_ids(gateway, smsc):
    messages = [Outgoing(f"3805011{n:05d}", f"Code {n}") for n in range(40)]
    outcomes = gateway.send("Shop", messages)

    assert all(o.accepted for o in outcomes)
    for n, outcome in enumerate(outcomes):
        [submit] = smsc.accepted(f"3805011{n:05d}")
        assert outcome.smsc_ids == (canonical_id(submit.message_id),)
        assert smsc.texts(f"3805011{n:05d}") == [f"Code {n}"]


def test_each_message_goes_from_its_own_sender(gateway, smsc):
    outcomes = gateway.send(
        "Shop",
        [
            Outgoing("380501112233", "hi"),
            Outgoing("380501112244", "hi", sender="Other"),
            Outgoing("380501112255", "hi", sender="SMS CLUB"),
        ],
    )
    assert all(o.accepted for o in outcomes)
    senders = {s.destination_addr: s.source_addr for s in smsc.accepted()}
    assert senders == {
        "380501112233": "Shop",
        "380501112244": "Other",
        "380501112255": "SMS CLUB",
    }


def test_with_skip_invalid_a_malformed_message_fails_alone(gateway, smsc):
    good, bad = gateway.send(
        "Shop",
        [Outgoing("380501112233", "hi"), Outgoing("380501112244", "hi", sender="Bad-Sender!")],
        skip_invalid=True,
    )
    assert good.accepted
    assert isinstance(bad.error, InvalidMessage) and "Bad-Sender!" in str(bad.error)
    assert [s.destination_addr for s in smsc.accepted()] == ["380501112233"]


def test_window_bounds_the_submits_in_flight(smsc):
    smsc.accept_delay = 0.005
    gateway = make_gateway(smsc, WINDOW=3)
    session = gateway.smpp
    awaited: set[int] = set()
    most = 0
    lock = threading.Lock()
    expect_reply = session.expect_reply

    def counting(connection, sequence, on_reply):
        nonlocal most

        def replied(*reply):
            with lock:
                awaited.discard(sequence)
            on_reply(*reply)

        with lock:
            awaited.add(sequence)
            most = max(most, len(awaited))
        expected = expect_reply(connection, sequence, replied)
        if not expected:
            with lock:
                awaited.discard(sequence)
        return expected

    session.expect_reply = counting
    try:
        outcomes = gateway.send("Shop", [Outgoing(f"3805011{n:05d}", "hi") for n in range(30)])
    finally:
        gateway.close()
    assert all(o.accepted for o in outcomes)
    assert most == 3


@pytest.mark.parametrize("word", ["DELIVRD", "UNDELIV"])
def test_receipts_reach_the_handler(gateway, smsc, receipts, word):
    smsc.receipt_words["380501112233"] = word
    [outcome] = gateway.send("Shop", [Outgoing("380501112233", LONG_CYRILLIC)])

    assert smsc.wait_for(lambda: len(receipts) == len(outcome.smsc_ids))
    assert sorted(receipts) == sorted((i, word) for i in outcome.smsc_ids)
    assert smsc.wait_for(lambda: len(smsc.receipts_sent) == len(outcome.smsc_ids))
    assert {status for _, _, status in smsc.receipts_sent} == {0}


def test_a_batch_handler_gets_receipts_as_lists(gateway, smsc):
    batches = []
    gateway.set_receipt_handler(batches.append, batch=True)
    smsc.auto_receipt = "DELIVRD"

    outcomes = gateway.send("Shop", [Outgoing(f"3805011{n:05d}", "hi") for n in range(20)])

    assert smsc.wait_for(lambda: sum(map(len, batches)) == 20)
    assert sorted(r.message_id for batch in batches for r in batch) == sorted(
        o.smsc_ids[0] for o in outcomes
    )
    assert {r.stat for batch in batches for r in batch} == {"DELIVRD"}


def test_receipt_without_the_tlv_is_read_from_its_text(gateway, smsc, receipts):
    smsc.receipt_tlv = False
    [outcome] = gateway.send("Shop", [Outgoing("380501112233", "hi")])

    assert smsc.send_receipt(outcome.smsc_ids[0], "DELIVRD") == 0
    assert receipts == [(outcome.smsc_ids[0], "DELIVRD")]


def test_a_failing_handler_leaves_the_receipt_with_the_smsc(gateway, smsc):
    [outcome] = gateway.send("Shop", [Outgoing("380501112233", "hi")])

    def broken(message_id, stat):
        raise RuntimeError("database is down")

    gateway.set_receipt_handler(broken)
    assert smsc.send_receipt(outcome.smsc_ids[0], "DELIVRD") == RECEIPT_RETRY_STATUS
    gateway.set_receipt_handler(lambda receipts: broken(None, None), batch=True)
    assert smsc.send_receipt(outcome.smsc_ids[0], "DELIVRD") == RECEIPT_RETRY_STATUS
    gateway.set_receipt_handler(None)
    assert smsc.send_receipt(outcome.smsc_ids[0], "DELIVRD") == RECEIPT_RETRY_STATUS
    # The session survives both.
    assert gateway.send("Shop", [Outgoing("380501112233", "again")])[0].accepted


@pytest.mark.parametrize("status", [c.SMPP_ESME_RTHROTTLED, c.SMPP_ESME_RMSGQFUL])
def test_throttling_is_retried_and_the_message_sent_once(gateway, smsc, status):
    smsc.script("380501112233", [status] * 3)

    [outcome] = gateway.send("Shop", [Outgoing("380501112233", "hi")])

    assert outcome.accepted
    statuses = [s.status for s in smsc.submits if s.destination_addr == "380501112233"]
    assert statuses == [status] * 3 + [0]
    assert [canonical_id(s.message_id) for s in smsc.accepted("380501112233")] == list(
        outcome.smsc_ids
    )


def test_throttling_that_never_ends_is_rate_limited(smsc):
    gateway = make_gateway(smsc, THROTTLE_RETRIES=2)
    smsc.refuse("380501112233", c.SMPP_ESME_RTHROTTLED)
    try:
        outcomes = gateway.send(
            "Shop", [Outgoing("380501112233", "hi"), Outgoing("380501112244", "hi")]
        )
    finally:
        gateway.close()
    assert isinstance(outcomes[0].error, RateLimited) and outcomes[0].error.retryable
    assert outcomes[1].accepted
    assert len([s for s in smsc.submits if s.destination_addr == "380501112233"]) == 3


@pytest.mark.parametrize(
    ("status", "name"),
    [(c.SMPP_ESME_RINVDSTADR, "ESME_RINVDSTADR"), (c.SMPP_ESME_RINVSRCADR, "ESME_RINVSRCADR")],
)
def test_permanent_rejection_is_provider_refused(gateway, smsc, status, name):
    smsc.refuse("380501112233", status)

    outcomes = gateway.send(
        "Shop", [Outgoing("380501112233", LONG_CYRILLIC), Outgoing("380501112244", "fine")]
    )

    error = outcomes[0].error
    assert isinstance(error, ProviderRefused)
    assert name in error.provider_text and "380501112233" in str(error)
    assert not error.retryable and not error.may_have_sent
    assert outcomes[1].accepted


def test_connection_refused_is_gateway_unavailable(smsc):
    gateway = make_gateway(smsc, PORT=smsc.server_port)
    smsc.stop()
    outcomes = gateway.send("Shop", [Outgoing("380501112233", "hi"), Outgoing("380501112244", "x")])
    assert all(isinstance(o.error, GatewayUnavailable) for o in outcomes)
    assert all(o.error.retryable and not o.error.may_have_sent for o in outcomes)


def test_a_refused_bind_is_an_authentication_error(smsc):
    smsc.bind_status = c.SMPP_ESME_RINVPASWD
    gateway = make_gateway(smsc)

    outcomes = gateway.send("Shop", [Outgoing("380501112233", "hi")])

    error = outcomes[0].error
    assert isinstance(error, AuthenticationError)
    assert "ESME_RINVPASWD" in str(error) and PASSWORD not in str(error)
    assert smsc.submits == []


def test_a_dropped_session_is_bound_again_by_the_next_send(smsc):
    gateway = make_gateway(smsc)
    try:
        assert gateway.send("Shop", [Outgoing("380501112233", "one")])[0].accepted
        smsc.drop_connections()
        assert smsc.wait_for(lambda: not gateway.smpp.bound, 5)

        [outcome] = gateway.send("Shop", [Outgoing("380501112244", "two")])
    finally:
        gateway.close()
    assert outcome.accepted
    assert smsc.sessions_bound == 2
    assert smsc.texts("380501112244") == ["two"]


def test_a_session_the_server_unbinds_is_bound_again(gateway, smsc, receipts):
    assert gateway.send("Shop", [Outgoing("380501112233", "one")])[0].accepted
    smsc.unbind_sessions()
    # With a receipt handler the session binds again by itself, ready for receipts.
    assert smsc.wait_for(lambda: smsc.sessions_bound == 2, 5)
    assert smsc.wait_for(lambda: gateway.smpp.bound, 5)

    [outcome] = gateway.send("Shop", [Outgoing("380501112244", "two")])

    assert outcome.accepted
    assert smsc.send_receipt(outcome.smsc_ids[0], "DELIVRD") == 0
    assert receipts == [(outcome.smsc_ids[0], "DELIVRD")]


@pytest.mark.parametrize("body", ["maybe", LONG_CYRILLIC])
def test_a_drop_after_submit_is_ambiguous_and_never_resubmitted(gateway, smsc, body):
    smsc.cut_after_submit("380501112233")

    [lost] = gateway.send("Shop", [Outgoing("380501112233", body)])
    [after] = gateway.send("Shop", [Outgoing("380501112244", "after")])

    assert isinstance(lost.error, AmbiguousSend) and lost.error.may_have_sent
    assert not lost.error.retryable
    assert after.accepted
    # The SMSC got the submit once; it was not sent again on the new session.
    assert len(smsc.accepted("380501112233")) == 1
    assert len({s.session_id for s in smsc.submits}) == 2


def test_a_reply_that_never_comes_is_ambiguous_and_the_session_stays(smsc):
    gateway = make_gateway(smsc, TIMEOUT=0.5)
    smsc.withhold_reply("380501112233")
    try:
        outcomes = gateway.send(
            "Shop", [Outgoing("380501112233", "lost reply"), Outgoing("380501112244", "fine")]
        )
        [after] = gateway.send("Shop", [Outgoing("380501112255", "after")])
    finally:
        gateway.close()
    assert isinstance(outcomes[0].error, AmbiguousSend)
    assert "no reply" in str(outcomes[0].error)
    assert outcomes[1].accepted and after.accepted
    assert len(smsc.accepted("380501112233")) == 1
    assert smsc.sessions_bound == 1


def test_messages_not_started_when_the_session_drains_are_not_submitted(gateway, smsc):
    smsc.accept_delay = 0.01
    messages = [Outgoing(f"3805011{n:05d}", "hi") for n in range(50)]
    threading.Timer(0.1, gateway.smpp.drain).start()

    outcomes = gateway.send("Shop", messages)

    sent = [o for o in outcomes if o.accepted]
    held = [o for o in outcomes if isinstance(o.error, NotSubmitted)]
    assert sent and held and len(sent) + len(held) == len(messages)
    assert len(smsc.accepted()) == len(sent)
    assert {o.outgoing.recipient for o in sent} == {s.destination_addr for s in smsc.submits}


def test_idle_session_sends_enquire_link(smsc):
    gateway = make_gateway(smsc, ENQUIRE_LINK=0.3)
    try:
        gateway.open()
        assert smsc.wait_for(lambda: smsc.commands[ENQUIRE_LINK] >= 2, 5)
        assert gateway.smpp.bound
        assert gateway.send("Shop", [Outgoing("380501112233", "still here")])[0].accepted
    finally:
        gateway.close()
    assert smsc.sessions_bound == 1


def test_invalid_input_is_refused_before_any_bind(gateway, smsc):
    with pytest.raises(InvalidMessage):
        gateway.send("Shop!", [Outgoing("12", "")])
    assert not gateway.smpp.bound and smsc.sessions_bound == 0


def test_no_status_query_and_no_balance(gateway):
    assert gateway.fetch_states(["0000000001"]) == {}
    with pytest.raises(OperationNotSupported, match="no balance"):
        gateway.balance()


def test_settings_are_checked():
    with pytest.raises(ConfigurationError, match="HOST"):
        SmppGateway("smpp", USERNAME="u", PASSWORD="p")
    with pytest.raises(ConfigurationError, match="PASSWORD is 12 characters") as caught:
        SmppGateway("smpp", HOST="h", USERNAME="u", PASSWORD="abcdefghijkl")
    assert "abcdefghijkl" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="WINDOW"):
        SmppGateway("smpp", HOST="h", USERNAME="u", PASSWORD="p", WINDOW=0)


def test_the_password_never_reaches_the_logs(smsc, caplog):
    caplog.set_level(logging.DEBUG, logger=WIRE_LOGGER)
    caplog.set_level(logging.DEBUG, logger="django_smsclub")
    gateway = make_gateway(smsc)
    try:
        assert gateway.send("Shop", [Outgoing("380501112233", "hi")])[0].accepted
    finally:
        gateway.close()
    logged = caplog.text
    assert "bind_transceiver" in logged  # the PDU dumps were logged...
    assert PASSWORD not in logged and PASSWORD.encode().hex() not in logged  # ...redacted


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {
                "short_message": b"id:77 sub:001 dlvrd:001 submit date:2401011200 "
                b"done date:2401011201 stat:DELIVRD err:000 text:Hello id:99 stat:FAILED",
                "receipted_message_id": b"0000000077",
            },
            ("77", "DELIVRD", "000"),
        ),
        (
            {"short_message": b"id:ABC123 sub:001 dlvrd:000 stat:undeliv err:011 text:"},
            ("abc123", "undeliv", "011"),
        ),
        (
            {"short_message": b"", "receipted_message_id": b"55\0", "message_state": 3},
            ("55", "EXPIRED", ""),
        ),
        ({"short_message": b"hello there"}, None),
    ],
)
def test_parse_receipt(fields, expected):
    pdu = SimpleNamespace(
        **{"short_message": b"", "receipted_message_id": None, "message_state": None, **fields}
    )
    receipt = parse_receipt(pdu)
    if expected is None:
        assert receipt is None
    else:
        assert (receipt.message_id, receipt.stat, receipt.error) == expected


def test_concurrent_senders_share_one_session(gateway, smsc):
    results = {}

    def send(n):
        results[n] = gateway.send("Shop", [Outgoing(f"38050{n:07d}", f"from thread {n}")])

    threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert time.monotonic() - started < 10
    assert all(r[0].accepted for r in results.values())
    assert smsc.sessions_bound == 1
