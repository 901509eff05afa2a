"""The replies SMSClub really sends (issue 10), as canned bytes over a real socket.

Each fixture is a literal from the public sources listed in docs/PROTOCOL.rst: the provider's
own SDK and examples (smsclub/php, smsclub/python), runningmaster/smsclub (Go, with test
fixtures), pavel-d/sms-club (Ruby, XML fixtures), shmel210/django-smsclub (a real XML reply).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from django_smsclub.exceptions import (
    AmbiguousSend,
    AuthenticationError,
    ConfigurationError,
    GatewayMisconfigured,
    GatewayUnavailable,
    ProviderRefused,
    RateLimited,
)
from django_smsclub.gateways import Outgoing
from django_smsclub.gateways.http import HttpGateway
from django_smsclub.gateways.json import JsonGateway, phone_key
from django_smsclub.gateways.xml import XmlGateway

A, B, C = "380501111111", "380672222222", "380983333333"
LOGIN_REFUSED = "Не найдено соответствие пары логин\\пароль"


def gateway(cls, canned, **extra):
    return cls(
        "canned",
        USERNAME="380500000000",
        PASSWORD="pw-secret",
        TOKEN="tok-secret",
        BASE_URL=canned.url,
        **extra,
    )


def send_two(gw, text="hi"):
    return gw.send("Shop", [Outgoing(A, text), Outgoing(B, text)])


def reply(canned, body, content_type="text/html", status=200):
    canned.reply = (body.encode("utf-8") if isinstance(body, str) else body, content_type, status)


# --- HTTP: a short text instead of the list refuses the whole request -------------------------


@pytest.mark.parametrize(
    "text",
    [
        # English texts: no public source has one; these are the emulator's (ours).
        "Insufficient funds on the account",
        "Invalid sender name: Shop",
        "Invalid recipient number: 380501111111",
        "Invalid request",
        "Sender is not registered for this account",
        "Недостаточно средств на счете",
        "Отказано в доступе к шлюзу",
    ],
)
def test_http_short_word_text_refuses_the_whole_request_with_the_providers_words(canned, text):
    reply(canned, text)
    outcomes = send_two(gateway(HttpGateway, canned))
    assert all(isinstance(o.error, ProviderRefused) for o in outcomes)
    assert all(not o.error.may_have_sent and not o.error.retryable for o in outcomes)
    assert outcomes[0].error.provider_text == text
    assert text in str(outcomes[0].error)


@pytest.mark.parametrize("text", [LOGIN_REFUSED, "Login and password pair not found"])
def test_http_login_refusals_in_either_language_are_authentication_errors(canned, text):
    reply(canned, text.encode("cp1251"), "text/html; charset=windows-1251")
    outcomes = send_two(gateway(HttpGateway, canned))
    assert all(isinstance(o.error, AuthenticationError) for o in outcomes)
    assert "pw-secret" not in str(outcomes[0].error)


@pytest.mark.parametrize(
    "body",
    [
        b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
        b'{"error": "Invalid token"}',
        b"\xff\xfe\x01\x9a\x10garbled \x00 bytes",
        b"OK",
        b"12345 67890 1234567",
    ],
)
def test_http_markup_and_bytes_are_not_refusals_but_maybe_sent(canned, body):
    reply(canned, body)
    outcomes = send_two(gateway(HttpGateway, canned))
    assert all(isinstance(o.error, AmbiguousSend) for o in outcomes)


def test_http_id_list_with_zero_padded_ids_keeps_the_zeros(canned):
    # runningmaster/smsclub smsclub_test.go (written with Fprintln: a trailing newline).
    reply(canned, "=IDS START=<br/>000002<br/>000003<br/>=IDS END=<br/>\n")
    outcomes = send_two(gateway(HttpGateway, canned))
    assert [o.smsc_ids for o in outcomes] == [("000002",), ("000003",)]


def test_http_balance_with_four_decimals_and_a_currency(canned):
    reply(canned, "1034.1700<br/>0.0000<br/>UAH")
    balance = gateway(HttpGateway, canned).balance()
    assert (str(balance.amount), str(balance.credit), balance.currency) == (
        "1034.1700",
        "0.0000",
        "UAH",
    )


# --- HTTP and XML: the current endpoints -------------------------------------------------------


def test_http_current_endpoints_send_url_encoded_cp1251_without_base64(canned):
    reply(canned, "=IDS START=<br/>1<br/>2<br/>=IDS END=<br/>")
    send_two(gateway(HttpGateway, canned, ENDPOINTS="current"), text="Ґанок їжака")
    method, path, _ = canned.requests[0]
    assert (method, path) == ("POST", "/http/")
    raw = canned.bodies[0].decode("ascii")
    assert "text=%A5%E0%ED%EE%EA+%BF%E6%E0%EA%E0" in raw
    fields = parse_qs(raw, encoding="cp1251")
    assert fields["text"] == ["Ґанок їжака"]
    assert fields["password"] == ["pw-secret"] and "token" not in fields


def test_http_current_endpoints_by_get_state_and_balance_paths(canned):
    gw = gateway(HttpGateway, canned, ENDPOINTS="current", METHOD="GET")
    reply(canned, "=IDS START=<br/>000002: DELIVRD<br/>000003: ENROUTE<br/>=IDS END=<br/>")
    assert gw.fetch_states(["000002", "000003"]) == {"000002": "DELIVRD", "000003": "ENROUTE"}
    reply(canned, "1034.17<br/>0")
    assert str(gw.balance().amount) == "1034.17"
    paths = [urlsplit(path).path for _, path, _ in canned.requests]
    assert paths == ["/http/state.php", "/http/getbalance.php"]
    assert all(method == "GET" for method, _, _ in canned.requests)


def test_token_endpoints_authenticate_with_the_token_not_the_password(canned):
    gw = gateway(HttpGateway, canned, ENDPOINTS="token", METHOD="GET")
    reply(canned, "=IDS START=<br/>1<br/>2<br/>=IDS END=<br/>")
    send_two(gw)
    reply(canned, "=IDS START=<br/>1: DELIVRD<br/>=IDS END=<br/>")
    gw.fetch_states(["1"])
    reply(canned, "5.00<br/>0")
    gw.balance()
    paths = [urlsplit(path) for _, path, _ in canned.requests]
    assert [p.path for p in paths] == ["/token/", "/token/state.php", "/token/getbalance.php"]
    for query in (parse_qs(p.query) for p in paths):
        assert query["token"] == ["tok-secret"] and "password" not in query


def test_token_endpoints_without_a_token_are_a_configuration_error(canned):
    with pytest.raises(ConfigurationError, match="'token' needs a TOKEN"):
        HttpGateway("t", USERNAME="u", PASSWORD="p", ENDPOINTS="token")


@pytest.mark.parametrize(("cls", "value"), [(HttpGateway, "new"), (XmlGateway, "token")])
def test_an_unknown_endpoint_set_is_a_configuration_error_naming_it(cls, value):
    with pytest.raises(ConfigurationError, match=repr(value)):
        cls("t", USERNAME="u", PASSWORD="p", TOKEN="t", ENDPOINTS=value)


def test_current_endpoints_default_to_the_providers_current_host():
    assert HttpGateway("t", ENDPOINTS="current").base_url == "https://gate.smsclub.mobi"
    assert XmlGateway("t", ENDPOINTS="current").base_url == "https://gate.smsclub.mobi"
    assert HttpGateway("t").base_url == "http://smpp.smsclub.mobi"
    assert HttpGateway("t", ENDPOINTS="current", BASE_URL="http://x:1/").base_url == "http://x:1"


def test_xml_current_endpoints_post_the_document_as_a_raw_body(canned):
    ok = (
        '<?xml version="1.0" encoding="utf-8"?><response><status>OK</status>'
        "<text>Сообщений: 2 (2 частей)</text><ids><mess>000002</mess><mess>000003</mess></ids>"
        "</response>"
    )
    reply(canned, ok, "text/xml")
    gw = gateway(XmlGateway, canned, ENDPOINTS="current")
    outcomes = gw.send("Shop", [Outgoing(A, "one"), Outgoing(B, "two")])
    assert [o.smsc_ids for o in outcomes] == [("000002",), ("000003",)]
    outcomes = send_two(gw)
    method, path, headers = canned.requests[0]
    assert (method, path) == ("POST", "/xml/individual.php")
    assert urlsplit(canned.requests[1][1]).path == "/xml/"
    assert headers["Content-Type"] == "text/xml; charset=utf-8"
    assert canned.bodies[0].startswith(b"<?xml version='1.0' encoding='utf-8'?><request_sendsms>")
    reply(canned, "<response><status>OK</status><text></text></response>", "text/xml")
    gw.fetch_states(["1"])
    assert urlsplit(canned.requests[2][1]).path == "/xml/state.php"


# --- XML replies -----------------------------------------------------------------------------


def test_xml_error_with_an_ids_section_is_a_refusal_and_the_ids_are_ignored(canned):
    # pavel-d/sms-club spec fixture: ERROR with <ids>, whitespace between tags.
    reply(
        canned,
        '<?xml version="1.0" encoding="utf-8"?>\n<response>\n  <status>ERROR</status>\n'
        "  <text>An error description</text>\n  <ids>\n    <mess>ID_1</mess>\n  </ids>\n"
        "</response>\n",
        "text/xml",
    )
    outcomes = send_two(gateway(XmlGateway, canned))
    assert all(isinstance(o.error, ProviderRefused) for o in outcomes)
    assert outcomes[0].error.provider_text == "An error description"


def test_xml_alphanumeric_ids_are_kept_as_they_are(canned):
    # A real reply kept in shmel210/django-smsclub api.py.
    reply(
        canned,
        '<?xml version="1.0" encoding="utf-8"?><response><status>OK</status><text>dsf</text>'
        "<ids><mess>p0066a46dc</mess></ids></response>",
        "text/xml",
    )
    [outcome] = gateway(XmlGateway, canned).send("Shop", [Outgoing(A, "hi")])
    assert outcome.smsc_ids == ("p0066a46dc",)


def test_xml_login_refusal_is_an_authentication_error(canned):
    reply(
        canned,
        '<?xml version="1.0" encoding="utf-8"?><response><status>ERROR</status>'
        f"<text>{LOGIN_REFUSED}</text></response>",
        "text/xml",
    )
    outcomes = send_two(gateway(XmlGateway, canned))
    assert all(isinstance(o.error, AuthenticationError) for o in outcomes)


# --- JSON replies -----------------------------------------------------------------------------


def json_reply(canned, body, status=200):
    reply(canned, json.dumps(body, ensure_ascii=False), "application/json", status)


def test_json_every_number_refused_without_info_fails_each_with_its_reason(canned):
    json_reply(
        canned,
        {
            "success_request": {
                "add_info": {
                    A: "Некорректный номер получателя",
                    B: "Данный номер находится в черном списке",
                }
            }
        },
    )
    outcomes = send_two(gateway(JsonGateway, canned))
    assert [type(o.error) for o in outcomes] == [ProviderRefused, ProviderRefused]
    assert outcomes[0].error.provider_text == "Некорректный номер получателя"
    assert outcomes[1].error.provider_text == "Данный номер находится в черном списке"


def test_json_partly_refused_accepts_the_others(canned):
    json_reply(
        canned,
        {
            "success_request": {
                "info": {"107": A},
                "add_info": {B: "Данный номер находится в черном списке"},
            }
        },
    )
    outcomes = send_two(gateway(JsonGateway, canned))
    assert outcomes[0].smsc_ids == ("107",)
    assert isinstance(outcomes[1].error, ProviderRefused)


@pytest.mark.parametrize(
    "add_info",
    [
        {"src_addr": "Недопустимое имя отправителя"},
        {"message": ["Необходимо заполнить «Message»."]},
        {"phone": "Некорректный номер"},
        {"invalid_phone": "0000"},
        {"380990000000": "Некорректный номер получателя"},
        "Ошибка запроса",
    ],
)
def test_json_add_info_naming_the_request_refuses_every_message(canned, add_info):
    json_reply(canned, {"success_request": {"add_info": add_info}})
    outcomes = send_two(gateway(JsonGateway, canned))
    assert all(isinstance(o.error, ProviderRefused) for o in outcomes)
    words = add_info if isinstance(add_info, str) else next(iter(add_info))
    assert words in outcomes[0].error.provider_text


def test_json_integer_phones_in_the_reply_are_matched(canned):
    reply(canned, '{"success_request":{"info":{"106":380501111111,"107":380672222222}}}')
    outcomes = send_two(gateway(JsonGateway, canned))
    assert [o.smsc_ids for o in outcomes] == [("106",), ("107",)]


@pytest.mark.parametrize(
    ("body", "http_status", "error"),
    [
        (
            {
                "name": "Unauthorized",
                "message": "Your request was made with invalid credentials.",
                "code": 0,
                "status": 401,
            },
            200,
            AuthenticationError,
        ),
        (
            {
                "name": "Too Many Requests",
                "message": "Rate limit exceeded.",
                "code": 0,
                "status": 429,
            },
            200,
            RateLimited,
        ),
        (
            {"name": "Bad Request", "message": "src_addr", "code": 0, "status": 400},
            200,
            ProviderRefused,
        ),
        (
            {"name": "Not Found", "message": "Page not found.", "code": 0, "status": 404},
            404,
            GatewayMisconfigured,
        ),
        (
            {"name": "Service Unavailable", "message": "down", "code": 0, "status": 503},
            200,
            GatewayUnavailable,
        ),
        (
            {"name": "Internal Server Error", "message": "x", "code": 0, "status": 500},
            200,
            AmbiguousSend,
        ),
        (
            {"name": "Unauthorized", "message": "bad", "code": 0, "status": 401},
            401,
            AuthenticationError,
        ),
        ({"name": "Odd", "message": "no status"}, 200, AmbiguousSend),
    ],
)
def test_json_error_object_is_mapped_by_its_own_status_even_with_http_200(
    canned, body, http_status, error
):
    json_reply(canned, body, http_status)
    outcomes = send_two(gateway(JsonGateway, canned))
    assert all(type(o.error) is error for o in outcomes)
    assert "tok-secret" not in str(outcomes[0].error)


@pytest.mark.parametrize("http_status", [200, 429])
def test_json_rate_limit_passes_retry_after_on(canned, http_status):
    body = {"name": "Too Many Requests", "message": "Rate limit exceeded.", "status": 429}
    json_reply(canned, body, http_status)
    canned.headers = {"Retry-After": "7"}
    [outcome] = gateway(JsonGateway, canned).send("Shop", [Outgoing(A, "hi")])
    assert isinstance(outcome.error, RateLimited)
    assert outcome.error.retry_after == 7.0
    assert "Rate limit exceeded." in str(outcome.error)


@pytest.mark.parametrize("info", ["[]", "{}"])
def test_json_status_reply_with_empty_info_answers_nothing_and_does_not_fail(canned, info):
    reply(canned, f'{{"success_request":{{"info":{info}}}}}', "application/json")
    assert gateway(JsonGateway, canned).fetch_states(["106"]) == {}


def test_json_status_reply_with_a_string_add_info_keeps_the_known_ids(canned):
    json_reply(
        canned, {"success_request": {"info": {"106": "Доставлено"}, "add_info": "invalid id_sms"}}
    )
    assert gateway(JsonGateway, canned).fetch_states(["106", "x"]) == {"106": "Доставлено"}


def test_json_status_words_in_russian_come_back_verbatim(canned):
    json_reply(canned, {"success_request": {"info": {"106": "Доставлено", "107": "Отправлено"}}})
    assert gateway(JsonGateway, canned).fetch_states(["106", "107"]) == {
        "106": "Доставлено",
        "107": "Отправлено",
    }


# --- JSON: personal texts in one request -------------------------------------------------------


def test_json_personal_texts_go_in_one_v2_request_mapped_back_by_normalised_phone(canned):
    # The v2 reply is shown nowhere; the phone may come back local (0980000001) or international.
    json_reply(canned, {"success_request": {"info": {"1": "0501111111", "2": B, "3": C}}})
    messages = [Outgoing(A, "Hi Ann"), Outgoing(B, "Hi Bob"), Outgoing(C, "Hi Ann")]
    outcomes = gateway(JsonGateway, canned).send("Shop", messages)
    assert [o.smsc_ids for o in outcomes] == [("1",), ("2",), ("3",)]
    assert [urlsplit(p).path for _, p, _ in canned.requests] == ["/v2/sms/send"]
    sent = json.loads(canned.bodies[0])
    assert sent["src_addr"] == "Shop"
    assert sorted(sent["data_message"], key=lambda item: item["phone"]) == [
        {"phone": A, "message": "Hi Ann"},
        {"phone": B, "message": "Hi Bob"},
        {"phone": C, "message": "Hi Ann"},
    ]


def test_json_one_text_still_goes_through_v1(canned):
    json_reply(canned, {"success_request": {"info": {"1": A, "2": B}}})
    send_two(gateway(JsonGateway, canned))
    assert [urlsplit(p).path for _, p, _ in canned.requests] == ["/sms/send"]


def test_json_a_phone_twice_with_different_texts_goes_in_separate_requests(canned):
    json_reply(canned, {"success_request": {"info": {"1": A}}})
    outcomes = gateway(JsonGateway, canned).send(
        "Shop", [Outgoing(A, "first"), Outgoing(A, "second")]
    )
    assert len(canned.bodies) == 2 and all(o.accepted for o in outcomes)


def test_json_personal_campaign_of_250_takes_3_requests(canned):
    info = {str(i): f"3805{i:08d}" for i in range(250)}
    json_reply(canned, {"success_request": {"info": info}})
    messages = [Outgoing(f"3805{i:08d}", f"Hi {i}") for i in range(250)]
    gw = gateway(JsonGateway, canned)
    plan = list(gw.plan(list(enumerate(messages))))
    assert [len(batch) for _, batch in plan] == [100, 100, 50]


@pytest.mark.parametrize(
    ("phone", "key"),
    [
        ("0980000001", "380980000001"),
        ("+380 98 000 00 01", "380980000001"),
        (380980000001, "380980000001"),
    ],
)
def test_phone_key_reads_local_and_international_forms(phone, key):
    assert phone_key(phone) == key
