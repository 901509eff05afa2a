"""Every reply kind of issue 10 over a real socket, against the emulator's real variants."""

from __future__ import annotations

import pytest

from django_smsclub.emulator import Emulator
from django_smsclub.exceptions import (
    AmbiguousSend,
    AuthenticationError,
    GatewayMisconfigured,
    GatewayUnavailable,
    ProviderRefused,
    RateLimited,
)
from django_smsclub.gateways import Outgoing
from django_smsclub.gateways.http import HttpGateway
from django_smsclub.gateways.json import JsonGateway
from django_smsclub.gateways.xml import XmlGateway
from django_smsclub.status import Status, status_from_word

A, B, C = "380501111111", "380672222222", "380933333333"

HTTP_AND_XML = {
    "http-legacy": (HttpGateway, "http", {}),
    "http-current": (HttpGateway, "http", {"ENDPOINTS": "current"}),
    "http-token-get": (HttpGateway, "http", {"ENDPOINTS": "token", "METHOD": "GET"}),
    "xml-legacy": (XmlGateway, "xml", {}),
    "xml-current": (XmlGateway, "xml", {"ENDPOINTS": "current"}),
}


@pytest.fixture
def emu():
    with Emulator() as emulator:
        emulator.json_rate_limit = 1000
        yield emulator


def make(kind, emu, **extra):
    cls, backend, options = HTTP_AND_XML[kind]
    return cls(kind, **emu.gateway_settings(backend, **{**options, **extra}))


def json_gateway(emu, **extra):
    return JsonGateway("json", **emu.gateway_settings("json", **extra))


def out(*pairs):
    return [Outgoing(recipient, text) for recipient, text in pairs]


@pytest.mark.parametrize("kind", list(HTTP_AND_XML))
def test_english_refusal_of_a_hundred_numbers_fails_them_all_with_its_words(kind, emu):
    emu.configure_account(refusal_language="en")
    numbers = [f"38050{i:07d}" for i in range(100)]
    outcomes = make(kind, emu).send("Stranger", out(*[(n, "hi") for n in numbers]))
    assert all(type(o.error) is ProviderRefused for o in outcomes)
    assert "Invalid sender name" in outcomes[0].error.provider_text
    assert emu.accepted == []


@pytest.mark.parametrize("kind", list(HTTP_AND_XML))
@pytest.mark.parametrize("language", ["ru", "en"])
def test_refused_login_in_either_language_is_an_authentication_error(kind, emu, language):
    emu.configure_account(refusal_language=language)
    gateway = make(kind, emu, PASSWORD="wrong-secret-pw", TOKEN="wrong-secret-token")
    [outcome] = gateway.send("Shop", out((A, "hi")))
    assert type(outcome.error) is AuthenticationError
    assert "wrong-secret" not in str(outcome.error)


@pytest.mark.parametrize("kind", ["http-legacy", "http-current", "http-token-get"])
@pytest.mark.parametrize("text", ["Invalid request", "Сервис временно недоступен для вас"])
def test_http_refuse_fault_is_a_whole_request_refusal(kind, emu, text):
    emu.faults.add("refuse", gateway="http", text=text, times=1)
    outcomes = make(kind, emu).send("Shop", out((A, "hi"), (B, "hi")))
    assert all(type(o.error) is ProviderRefused for o in outcomes)
    assert outcomes[0].error.provider_text == text


@pytest.mark.parametrize("kind", ["http-legacy", "http-current"])
def test_http_garbled_bytes_stay_maybe_sent(kind, emu):
    emu.faults.add("garbled", gateway="http", op="send", times=1)
    [outcome] = make(kind, emu).send("Shop", out((A, "hi")))
    assert type(outcome.error) is AmbiguousSend


@pytest.mark.parametrize("kind", list(HTTP_AND_XML))
@pytest.mark.parametrize("style", ["padded", "alnum"])
def test_real_looking_ids_are_kept_as_they_are_and_polled(kind, emu, style):
    emu.configure_account(id_style=style)
    gateway = make(kind, emu)
    first, second = gateway.send("Shop", out((A, "hi"), (B, "hi")))
    ids = [first.smsc_ids[0], second.smsc_ids[0]]
    assert {sms.smsc_id for sms in emu.accepted} == set(ids)
    if style == "padded":
        assert all(i.startswith("0") and i.isdigit() for i in ids)
    assert set(gateway.fetch_states(ids)) == set(ids)


def test_json_every_number_refused_fails_each_with_the_providers_reason(emu):
    emu.blacklist(A)
    emu.blacklist(B)
    outcomes = json_gateway(emu).send("Shop", out((A, "hi"), (B, "hi")))
    assert [type(o.error) for o in outcomes] == [ProviderRefused, ProviderRefused]
    assert outcomes[1].error.provider_text == "Данный номер находится в черном списке"
    assert emu.accepted == []


def test_json_partly_refused_send_accepts_the_rest(emu):
    emu.blacklist(B)
    first, second = json_gateway(emu).send("Shop", out((A, "hi"), (B, "hi")))
    assert first.accepted and type(second.error) is ProviderRefused


@pytest.mark.parametrize("empty_info", ["list", "object"])
def test_json_status_of_unknown_ids_is_empty_not_an_error(emu, empty_info):
    emu.configure_account(empty_info=empty_info)
    assert json_gateway(emu).fetch_states(["999999999"]) == {}


def test_json_russian_status_words_map_to_our_statuses(emu):
    emu.configure_account(status_words="ru")
    emu.set_outcome(B, "UNDELIV")
    emu.set_outcome(C, "Ожидает отправки")
    emu.deliver_after(polls=0)
    gateway = json_gateway(emu)
    outcomes = gateway.send("Shop", out((A, "x"), (B, "x"), (C, "x")))
    states = gateway.fetch_states([o.smsc_ids[0] for o in outcomes])
    words = [states[o.smsc_ids[0]] for o in outcomes]
    assert words == ["Доставлено", "Недоставляемое", "Ожидает отправки"]
    assert [status_from_word(w) for w in words] == [
        Status.DELIVERED,
        Status.UNDELIVERED,
        Status.SENT,
    ]


@pytest.mark.parametrize("http_200", [False, True])
@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthenticationError),
        (429, RateLimited),
        (400, ProviderRefused),
        (404, GatewayMisconfigured),
        (503, GatewayUnavailable),
    ],
)
def test_json_error_object_is_mapped_by_its_status(emu, http_200, status, error):
    if status == 503 and not http_200:
        error = AmbiguousSend  # a 5xx status line on a send: it may have been acted on
    emu.faults.add("refuse", gateway="json", status=status, http_200=http_200, times=1)
    [outcome] = json_gateway(emu).send("Shop", out((A, "hi")))
    assert type(outcome.error) is error
    assert emu.accepted == []


def test_json_personal_texts_go_in_one_v2_request(emu):
    gateway = json_gateway(emu)
    outcomes = gateway.send("Shop", out((A, "Hi Ann"), (B, "Hi Bob"), (C, "Hi Cid")))
    by_id = {sms.smsc_id: sms for sms in emu.accepted}
    for outcome in outcomes:
        [smsc_id] = outcome.smsc_ids
        assert (by_id[smsc_id].recipient, by_id[smsc_id].text) == (
            outcome.outgoing.recipient,
            outcome.outgoing.text,
        )
    assert [r.path for r in emu.requests if r.op == "send"] == ["/v2/sms/send"]


def test_json_personal_texts_with_a_refused_number(emu):
    emu.blacklist(B)
    first, second = json_gateway(emu).send("Shop", out((A, "Hi Ann"), (B, "Hi Bob")))
    assert first.accepted
    assert type(second.error) is ProviderRefused


def test_json_a_number_twice_with_two_texts_takes_two_requests(emu):
    outcomes = json_gateway(emu).send("Shop", out((A, "first"), (A, "second"), (B, "third")))
    assert all(o.accepted for o in outcomes)
    assert len([r for r in emu.requests if r.op == "send"]) == 2
    assert sorted(s.text for s in emu.messages_to(A)) == ["first", "second"]


@pytest.mark.parametrize("kind", ["http-current", "http-token-get"])
def test_credentials_in_get_urls_are_masked_in_the_logs(kind, emu, caplog):
    from django_smsclub.emulator import DEFAULT_PASSWORD, DEFAULT_TOKEN

    caplog.set_level("DEBUG", logger="urllib3")
    make(kind, emu, METHOD="GET").send("Shop", out((A, "hi")))
    requested = [r.getMessage() for r in caplog.records if "GET /" in r.getMessage()]
    assert requested and all("username=" in line and "***" in line for line in requested)
    assert DEFAULT_PASSWORD not in caplog.text and DEFAULT_TOKEN not in caplog.text
