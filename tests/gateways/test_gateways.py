"""The gateway contract, run over real sockets against the emulator for every gateway."""

from __future__ import annotations

import logging
import socket
from decimal import Decimal

import pytest

from django_smsclub.emulator import DEFAULT_PASSWORD, DEFAULT_TOKEN, Emulator
from django_smsclub.exceptions import (
    AmbiguousSend,
    AuthenticationError,
    GatewayUnavailable,
    InvalidMessage,
    ProviderRefused,
)
from django_smsclub.gateways import Outgoing
from django_smsclub.gateways.http import HttpGateway
from django_smsclub.gateways.json import JsonGateway
from django_smsclub.gateways.soap import SoapGateway
from django_smsclub.gateways.xml import XmlGateway

KINDS = {
    "http-post": (HttpGateway, "http", {"METHOD": "POST"}),
    "http-get": (HttpGateway, "http", {"METHOD": "GET"}),
    "http-current": (HttpGateway, "http", {"METHOD": "POST", "ENDPOINTS": "current"}),
    "http-token": (HttpGateway, "http", {"METHOD": "GET", "ENDPOINTS": "token"}),
    "xml": (XmlGateway, "xml", {}),
    "xml-current": (XmlGateway, "xml", {"ENDPOINTS": "current"}),
    "json": (JsonGateway, "json", {}),
    "soap": (SoapGateway, "soap", {}),
}
A, B, C = "380501111111", "380672222222", "380933333333"
LATIN_2_PARTS = "Order 42 is ready. " * 10  # 190 chars
CYRILLIC_7_PARTS = "Ваше замовлення готове, ґанок і їжак є. " * 11  # 440: > 402, <= 469


def make(kind: str, emu: Emulator, **extra):
    cls, backend, options = KINDS[kind]
    settings = emu.gateway_settings(backend, **{**options, **extra})
    return cls(kind, **settings)


@pytest.fixture(params=list(KINDS))
def kind(request):
    return request.param


@pytest.fixture
def emu():
    with Emulator() as emulator:
        emulator.json_rate_limit = 1000
        yield emulator


def out(*pairs):
    return [Outgoing(recipient, text) for recipient, text in pairs]


def test_single_latin_send_returns_one_id_and_reaches_the_emulator(kind, emu):
    gateway = make(kind, emu)
    [outcome] = gateway.send("Shop", out((A, "Hello from the shop")))
    assert outcome.accepted and len(outcome.smsc_ids) == 1
    [sms] = emu.accepted
    assert (sms.recipient, sms.sender, sms.text) == (A, "Shop", "Hello from the shop")
    assert sms.smsc_id == outcome.smsc_ids[0]


def test_bulk_multipart_send_maps_ids_to_recipients_by_part(kind, emu):
    gateway = make(kind, emu)
    outcomes = gateway.send("Shop", out((A, LATIN_2_PARTS), (B, LATIN_2_PARTS), (C, LATIN_2_PARTS)))
    assert [len(o.smsc_ids) for o in outcomes] == [2, 2, 2]
    by_id = {sms.smsc_id: sms for sms in emu.accepted}
    for outcome in outcomes:
        assert [by_id[i].recipient for i in outcome.smsc_ids] == [outcome.outgoing.recipient] * 2
        assert [by_id[i].part for i in outcome.smsc_ids] == [1, 2]
    assert emu.duplicates() == []


@pytest.mark.parametrize(
    "text, parts",
    [
        ("Privet", 1),
        ("Привіт, світе!", 1),
        (LATIN_2_PARTS, 2),
        (CYRILLIC_7_PARTS, 7),
        ("x" * 1071, 7),
    ],
)
def test_part_counts_of_cyrillic_and_latin_texts(kind, emu, text, parts):
    [outcome] = make(kind, emu).send("Shop", out((A, text)))
    assert len(outcome.smsc_ids) == parts
    assert emu.messages_to(A)[0].text == text


def test_personal_texts_each_get_their_own_ids(kind, emu):
    gateway = make(kind, emu)
    outcomes = gateway.send(
        "Shop", out((A, "Привіт, Олено"), (B, "Hi John " * 25), (C, "Привіт, Олено"))
    )
    by_id = {sms.smsc_id: sms for sms in emu.accepted}
    for outcome in outcomes:
        assert {by_id[i].text for i in outcome.smsc_ids} == {outcome.outgoing.text}
        assert {by_id[i].recipient for i in outcome.smsc_ids} == {outcome.outgoing.recipient}
    sends = [r for r in emu.requests if r.op == "send"]
    # XML (individual) and JSON (/v2/sms/send) carry different texts in one request; HTTP and
    # SOAP take one text each.
    assert len(sends) == (1 if kind.startswith(("xml", "json")) else 2)


def test_states_follow_each_recipients_fate(kind, emu):
    emu.set_outcome(B, "UNDELIV")
    emu.set_outcome(C, "EXPIRED")
    emu.deliver_after(polls=1)
    gateway = make(kind, emu)
    outcomes = gateway.send("Shop", out((A, "x"), (B, "x"), (C, "x")))
    ids = [o.smsc_ids[0] for o in outcomes]
    assert set(gateway.fetch_states(ids).values()) == {"ENROUTE"}
    final = dict(zip(ids, ["DELIVRD", "UNDELIV", "EXPIRED"], strict=True))
    assert gateway.fetch_states(ids) == final


def test_unknown_id_is_answered_without_crashing(kind, emu):
    states = make(kind, emu).fetch_states(["999999999"])
    # The JSON API leaves unknown IDs out; the others answer the provider's Russian words.
    assert states == ({} if kind == "json" else {"999999999": "неверно указан id"})


def test_status_queries_are_chunked(kind, emu):
    gateway = make(kind, emu)
    outcomes = gateway.send("Shop", out(*[(f"38050{n:07d}", "hi") for n in range(150)]))
    ids = [o.smsc_ids[0] for o in outcomes]
    before = len(emu.requests)
    assert set(gateway.fetch_states(ids)) == set(ids)
    assert len(emu.requests) - before == 2


def test_balance(kind, emu):
    balance = make(kind, emu).balance()
    assert balance.amount == Decimal("1000")
    make(kind, emu).send("Shop", out((A, LATIN_2_PARTS)))
    assert make(kind, emu).balance().amount == Decimal("999")


def test_bad_login_is_an_authentication_error_without_the_password(kind, emu, caplog):
    caplog.set_level(logging.DEBUG)
    gateway = make(kind, emu, PASSWORD="wrong-secret-pw", TOKEN="wrong-secret-token")
    [outcome] = gateway.send("Shop", out((A, "hi")))
    assert isinstance(outcome.error, AuthenticationError)
    with pytest.raises(AuthenticationError) as info:
        gateway.balance()
    for text in (str(outcome.error), str(info.value), caplog.text):
        assert "wrong-secret" not in text
    assert emu.accepted == []


def test_unregistered_sender_is_refused_with_the_providers_words(kind, emu):
    [outcome] = make(kind, emu).send("Stranger", out((A, "hi")))
    assert isinstance(outcome.error, ProviderRefused)
    assert "Stranger" in outcome.error.provider_text or "Stranger" in str(outcome.error)
    assert not outcome.error.retryable and not outcome.error.may_have_sent


def test_connection_refused_is_unavailable_and_retryable(kind, emu):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gateway = make(kind, emu, BASE_URL=f"http://127.0.0.1:{port}")
    [outcome] = gateway.send("Shop", out((A, "hi")))
    assert isinstance(outcome.error, GatewayUnavailable) and outcome.error.retryable
    with pytest.raises(GatewayUnavailable):
        gateway.fetch_states(["1"])


@pytest.mark.parametrize("fault", ["http_500", "drop_before", "drop_after", "garbled"])
def test_a_fault_after_the_request_went_out_is_ambiguous(kind, emu, fault):
    emu.faults.add(fault, times=1, op="send")
    gateway = make(kind, emu)
    [outcome] = gateway.send("Shop", out((A, "hi")))
    assert isinstance(outcome.error, AmbiguousSend), outcome.error
    assert outcome.error.may_have_sent and not outcome.error.retryable
    assert len(emu.accepted) == (1 if fault in ("drop_after", "garbled") else 0)


def test_a_timeout_is_ambiguous(kind, emu):
    emu.faults.add("latency", seconds=1.0, times=1, op="send")
    [outcome] = make(kind, emu, TIMEOUT=0.3).send("Shop", out((A, "hi")))
    assert isinstance(outcome.error, AmbiguousSend)


@pytest.mark.parametrize("fault", ["http_500", "drop_before", "drop_after", "garbled"])
def test_a_fault_on_a_status_query_is_retryable(kind, emu, fault):
    gateway = make(kind, emu)
    [outcome] = gateway.send("Shop", out((A, "hi")))
    emu.faults.add(fault, times=1, op="state")
    with pytest.raises(GatewayUnavailable):
        gateway.fetch_states(outcome.smsc_ids)
    assert gateway.fetch_states(outcome.smsc_ids)


def test_after_a_failed_request_the_rest_are_not_attempted(kind, emu):
    emu.faults.add("drop_after", times=1, op="send")
    gateway = make(kind, emu, BATCH_SIZE=1)
    first, second = gateway.send("Shop", out((A, "hi"), (B, "hi")))
    assert isinstance(first.error, AmbiguousSend)
    assert isinstance(second.error, GatewayUnavailable)
    assert [sms.recipient for sms in emu.accepted] == [A]


def test_each_sender_of_a_call_gets_its_own_request(kind, emu):
    messages = [Outgoing(A, "hi"), Outgoing(B, "hi", sender="SMS CLUB"), Outgoing(C, "hi")]
    outcomes = make(kind, emu).send("Shop", messages)
    assert all(o.accepted for o in outcomes)
    assert sorted((sms.recipient, sms.sender) for sms in emu.accepted) == sorted(
        [(A, "Shop"), (B, "SMS CLUB"), (C, "Shop")]
    )
    assert len([r for r in emu.requests if r.op == "send"]) == 2


def test_a_failed_request_of_one_sender_stops_the_next_senders(kind, emu):
    emu.faults.add("drop_after", times=1, op="send")
    first, second = make(kind, emu).send(
        "Shop", [Outgoing(A, "hi"), Outgoing(B, "hi", sender="SMS CLUB")]
    )
    assert isinstance(first.error, AmbiguousSend)
    assert isinstance(second.error, GatewayUnavailable) and "not attempted" in str(second.error)
    assert len([r for r in emu.requests if r.op == "send"]) == 1
    assert [sms.recipient for sms in emu.accepted] == [A]


def test_with_skip_invalid_a_malformed_message_fails_alone(kind, emu):
    messages = out((A, "hi"), ("12345", "hi"), (B, "x" * 1072))
    messages.append(Outgoing(C, "hi", sender="Bad-Sender!"))
    good, bad_number, too_long, bad_sender = make(kind, emu).send(
        "Shop", messages, skip_invalid=True
    )
    assert good.accepted
    for outcome, named in [(bad_number, "12345"), (too_long, "1072"), (bad_sender, "Bad-Sender")]:
        assert isinstance(outcome.error, InvalidMessage) and named in str(outcome.error)
    assert len([r for r in emu.requests if r.op == "send"]) == 1
    assert [sms.recipient for sms in emu.accepted] == [A]


@pytest.mark.parametrize(
    "sender, text, recipient, named",
    [
        ("Shop", "x" * 1072, A, "1072"),
        ("Shop", "ж" * 470, A, "470"),
        ("TwelveChars1", "hi", A, "TwelveChars1"),
        ("Shop", "hi", "12345", "12345"),
        ("Shop", "", A, "empty"),
    ],
)
def test_bad_input_fails_before_any_request(kind, emu, sender, text, recipient, named):
    with pytest.raises(InvalidMessage, match=named):
        make(kind, emu).send(sender, out((recipient, text)))
    assert emu.requests == []


def test_every_bad_value_is_named_at_once(kind, emu):
    with pytest.raises(InvalidMessage) as info:
        make(kind, emu).send("Bad-Sender!", out(("000", "hi"), ("111", "ж" * 500)))
    assert len(info.value.problems) == 4
    assert emu.requests == []


def test_numbers_written_by_people_are_normalised(kind, emu):
    [outcome] = make(kind, emu).send("Shop", out(("(050)123-45-67", "hi")))
    assert outcome.accepted
    assert emu.accepted[0].recipient == "380501234567"


def test_emoji_cannot_go_through_the_http_gateway_but_can_elsewhere(kind, emu):
    message = out((A, "Дякуємо 🙂"))
    if kind.startswith("http"):
        with pytest.raises(InvalidMessage, match="Windows-1251"):
            make(kind, emu).send("Shop", message)
        assert emu.requests == []
    else:
        [outcome] = make(kind, emu).send("Shop", message)
        assert outcome.accepted and emu.accepted[0].text == "Дякуємо 🙂"


def test_xml_markup_and_cdata_terminators_survive_the_trip(kind, emu):
    text = "a < b && c > d ]]> <![CDATA[ \"quoted\" 'single'"
    [outcome] = make(kind, emu).send("Shop", out((A, text)))
    assert outcome.accepted and emu.accepted[0].text == text


def test_large_batches_are_split_into_requests(kind, emu):
    numbers = [f"38067{n:07d}" for n in range(250)]
    outcomes = make(kind, emu).send("Shop", out(*[(n, "hi") for n in numbers]))
    assert all(o.accepted for o in outcomes)
    assert len([r for r in emu.requests if r.op == "send"]) == 3
    assert sorted(sms.recipient for sms in emu.accepted) == numbers


def test_the_same_number_twice_is_sent_twice_and_mapped_right(kind, emu):
    outcomes = make(kind, emu).send("Shop", out((A, "first"), (A, "first")))
    assert all(o.accepted for o in outcomes)
    assert len({o.smsc_ids for o in outcomes}) == 2
    assert len(emu.messages_to(A)) == 2


def test_credentials_never_appear_in_errors_or_logs(kind, emu, caplog):
    caplog.set_level(logging.DEBUG)
    gateway = make(kind, emu)
    errors = []
    for fault in ("http_500", "drop_before", "drop_after", "garbled"):
        emu.faults.add(fault, times=1)
        errors.append(gateway.send("Shop", out((A, "hi")))[0].error)
        emu.faults.add(fault, times=1)
        with pytest.raises(GatewayUnavailable) as info:
            gateway.fetch_states(["1"])
        errors.append(info.value)
    text = " ".join(map(str, errors)) + caplog.text
    assert DEFAULT_PASSWORD not in text and DEFAULT_TOKEN not in text


def test_json_refusal_of_one_number_does_not_fail_the_others(emu):
    emu.blacklist(B)
    first, second = make("json", emu).send("Shop", out((A, "hi"), (B, "hi")))
    assert first.accepted
    assert isinstance(second.error, ProviderRefused) and second.error.provider_text


def test_json_one_id_per_message_shape_is_accepted(emu):
    emu.json_ids_per_part = False
    [outcome] = make("json", emu).send("Shop", out((A, LATIN_2_PARTS)))
    assert outcome.accepted and len(outcome.smsc_ids) == 1


def test_json_rate_limit_reply_is_rate_limited(emu):
    from django_smsclub.exceptions import RateLimited

    emu.json_rate_limit = 1
    gateway = make("json", emu)
    gateway.balance()
    with pytest.raises(RateLimited):
        gateway.balance()


def test_json_lists_registered_senders(emu):
    assert "Shop" in make("json", emu).senders()


def test_http_accepts_both_reply_shapes(emu):
    emu.http_reply_shape = "doc"
    outcomes = make("http-post", emu).send("Shop", out((A, LATIN_2_PARTS), (B, LATIN_2_PARTS)))
    assert [len(o.smsc_ids) for o in outcomes] == [2, 2]
    ids = [i for o in outcomes for i in o.smsc_ids]
    assert set(make("http-post", emu).fetch_states(ids)) == set(ids)
