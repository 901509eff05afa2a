"""Gateways reading replies the emulator never sends: canned bytes over a real socket."""

from __future__ import annotations

import pytest

from django_smsclub.exceptions import (
    AmbiguousSend,
    AuthenticationError,
    GatewayUnavailable,
    ProviderRefused,
)
from django_smsclub.gateways import Outgoing
from django_smsclub.gateways.http import HttpGateway
from django_smsclub.gateways.json import JsonGateway
from django_smsclub.gateways.transport import MAX_REPLY_BYTES
from django_smsclub.gateways.xml import XmlGateway, build_request, cdata, parse_document

A, B = "380501111111", "380672222222"


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


@pytest.mark.parametrize(
    "body",
    [
        "=IDS START=<br/>11<br/>12<br/>=IDS END=<br/>",
        "=IDS START=11<br/>12=IDS END=",
        "=IDS START=<br>11<br>\n12\n=IDS END=",
        "\n=IDS START=<BR />11<br/><br/>12<br/>=IDS END=<br/>\n",
    ],
)
def test_http_id_lists_in_every_seen_shape(canned, body):
    canned.reply = (body.encode(), "text/html", 200)
    outcomes = send_two(gateway(HttpGateway, canned))
    assert [o.smsc_ids for o in outcomes] == [("11",), ("12",)]


@pytest.mark.parametrize(
    "ids",
    ["11", "11<br/>12<br/>13"],
)
def test_an_id_count_that_does_not_fit_the_parts_is_ambiguous(canned, ids):
    canned.reply = (f"=IDS START=<br/>{ids}<br/>=IDS END=".encode(), "text/html", 200)
    outcomes = send_two(gateway(HttpGateway, canned))
    assert all(isinstance(o.error, AmbiguousSend) for o in outcomes)


@pytest.mark.parametrize(
    "body",
    [
        b"=IDS START=<br/>11<br/>12",
        b"",
        b"\x00\x01\x02garbage\xff",
        b"<html><body>Internal error</body></html>",
    ],
)
def test_http_garbled_send_replies_are_ambiguous(canned, body):
    canned.reply = (body, "text/html", 200)
    outcomes = send_two(gateway(HttpGateway, canned))
    assert all(isinstance(o.error, AmbiguousSend) for o in outcomes)


def test_http_russian_error_texts_in_cp1251_are_refusals(canned):
    text = "Неверное альфа-имя отправителя: Shop"
    canned.reply = (text.encode("cp1251"), "text/html; charset=windows-1251", 200)
    outcomes = send_two(gateway(HttpGateway, canned))
    assert all(isinstance(o.error, ProviderRefused) for o in outcomes)
    assert outcomes[0].error.provider_text == text


def test_http_login_error_without_charset_is_an_authentication_error(canned):
    canned.reply = ("Не найдено соответствие пары логин\\пароль".encode("cp1251"), "text/html", 200)
    outcomes = send_two(gateway(HttpGateway, canned))
    assert all(isinstance(o.error, AuthenticationError) for o in outcomes)


def test_http_wire_format_is_cp1251_base64_and_semicolons(canned):
    import base64
    from urllib.parse import parse_qs

    canned.reply = (b"=IDS START=<br/>1<br/>2<br/>=IDS END=<br/>", "text/html", 200)
    send_two(gateway(HttpGateway, canned), text="Ґанок їжака")
    fields = parse_qs(canned.bodies[0].decode("ascii"))
    assert fields["to"] == [f"{A};{B}"]
    assert base64.b64decode(fields["text"][0]).decode("cp1251") == "Ґанок їжака"
    assert fields["from"] == ["Shop"]


def test_http_status_lines_split_on_the_first_colon_only(canned):
    reply = (
        "=IDS START=<br/>11: DELIVRD<br/>12: 2165-05-28 21:14:21<br/>"
        "13: неверно указан id<br/>=IDS END=<br/>"
    )
    canned.reply = (reply.encode("cp1251"), "text/html; charset=windows-1251", 200)
    states = gateway(HttpGateway, canned).fetch_states(["11", "12", "13"])
    assert states == {"11": "DELIVRD", "12": "2165-05-28 21:14:21", "13": "неверно указан id"}


def test_http_balance_with_and_without_credit(canned):
    canned.reply = (b"1034.17<br/>0", "text/html", 200)
    balance = gateway(HttpGateway, canned).balance()
    assert (str(balance.amount), str(balance.credit)) == ("1034.17", "0")
    canned.reply = (b"12.5", "text/html", 200)
    assert gateway(HttpGateway, canned).balance().credit is None
    canned.reply = (b"NaN<br/>0", "text/html", 200)
    with pytest.raises(GatewayUnavailable):
        gateway(HttpGateway, canned).balance()


def test_a_reply_larger_than_the_limit_is_not_read(canned):
    canned.reply = (b"=IDS START=" + b"1<br/>" * (MAX_REPLY_BYTES // 5), "text/html", 200)
    outcomes = send_two(gateway(HttpGateway, canned))
    assert all(isinstance(o.error, AmbiguousSend) for o in outcomes)


def test_xml_request_is_byte_exact(canned):
    canned.reply = (
        b"<?xml version='1.0' encoding='utf-8'?><response><status>OK</status>"
        b"<text>x</text><ids><mess>1</mess><mess>2</mess></ids></response>",
        "text/xml",
        200,
    )
    send_two(gateway(XmlGateway, canned), text="Привіт ]]> світ")
    from urllib.parse import parse_qs

    document = parse_qs(canned.bodies[0].decode("ascii"))["xmlrequest"][0]
    assert document == (
        "<?xml version='1.0' encoding='utf-8'?><request_sendsms>"
        "<username><![CDATA[380500000000]]></username><password><![CDATA[pw-secret]]></password>"
        f"<from><![CDATA[Shop]]></from><to><![CDATA[{A};{B}]]></to>"
        "<text><![CDATA[Привіт ]]]]><![CDATA[> світ]]></text></request_sendsms>"
    )
    assert parse_document(document.encode()).findtext("text") == "Привіт ]]> світ"


def test_cdata_splits_every_terminator():
    assert cdata("a]]>b]]>") == "<![CDATA[a]]]]><![CDATA[>b]]]]><![CDATA[>]]>"
    document = build_request("r", [("v", "]]>]]>")])
    assert parse_document(document).findtext("v") == "]]>]]>"


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "boom">]><response><status>OK</status>'
        b"<ids><mess>&x;</mess><mess>2</mess></ids></response>",
        b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://127.0.0.1:1/evil.dtd"><response/>',
        b"<response><status>OK</status><ids><mess>1</mess>",
        b"not xml at all",
        b"<other><status>OK</status></other>",
    ],
)
def test_xml_replies_with_dtds_entities_or_damage_are_ambiguous(canned, body):
    canned.reply = (body, "text/xml", 200)
    outcomes = send_two(gateway(XmlGateway, canned))
    assert all(isinstance(o.error, AmbiguousSend) for o in outcomes)


def test_xml_part_count_in_the_text_must_match_the_ids(canned):
    canned.reply = (
        "<response><status>OK</status><text>Сообщений: 2 (3 частей)</text>"
        "<ids><mess>1</mess><mess>2</mess></ids></response>".encode(),
        "text/xml",
        200,
    )
    outcomes = send_two(gateway(XmlGateway, canned))
    assert all(isinstance(o.error, AmbiguousSend) for o in outcomes)


def test_xml_error_reply_is_classified(canned):
    canned.reply = (
        "<response><status>ERROR</status><text>Не найдено соответствие пары логин\\пароль</text>"
        "</response>".encode(),
        "text/xml",
        200,
    )
    outcomes = send_two(gateway(XmlGateway, canned))
    assert all(isinstance(o.error, AuthenticationError) for o in outcomes)


def test_xml_state_reply_accepts_the_misspelled_tag_and_missing_entries(canned):
    canned.reply = (
        b"<response><status>OK</status><text></text><entries><entry><smssid>7</smssid>"
        b"<state>delivrd</state></entry></entries></response>",
        "text/xml",
        200,
    )
    assert gateway(XmlGateway, canned).fetch_states(["7"]) == {"7": "delivrd"}
    canned.reply = (b"<response><status>OK</status><text></text></response>", "text/xml", 200)
    assert gateway(XmlGateway, canned).fetch_states(["7"]) == {}


def test_xml_refuses_control_characters_before_sending(canned):
    from django_smsclub.exceptions import InvalidMessage

    with pytest.raises(InvalidMessage, match="U\\+0002"):
        gateway(XmlGateway, canned).send("Shop", [Outgoing(A, "bell\x02")])
    assert canned.bodies == []


@pytest.mark.parametrize(
    "body, status, error",
    [
        (b'{"name":"Unauthorized","message":"bad token","status":401}', 401, AuthenticationError),
        (b'{"name":"Bad Request","message":"src_addr invalid","status":400}', 400, ProviderRefused),
        (b'{"name":"Internal","message":"down","status":500}', 500, AmbiguousSend),
        (b"<html>oops</html>", 200, AmbiguousSend),
        (b'{"success_request": {"info": {"1": "380999999999"}}}', 200, AmbiguousSend),
        (b'{"success_request": {"info": []}}', 200, AmbiguousSend),
        (b"[1, 2]", 200, AmbiguousSend),
    ],
)
def test_json_error_replies(canned, body, status, error):
    canned.reply = (body, "application/json", status)
    [outcome] = gateway(JsonGateway, canned).send("Shop", [Outgoing(A, "hi")])
    assert isinstance(outcome.error, error)
    assert "tok-secret" not in str(outcome.error)


def test_json_sends_utf8_with_bearer_token(canned):
    import json

    canned.reply = (
        b'{"success_request": {"info": {"5": "380501111111"}}}',
        "application/json",
        200,
    )
    [outcome] = gateway(JsonGateway, canned).send("Shop", [Outgoing(A, "Ґанок")])
    assert outcome.smsc_ids == ("5",)
    assert json.loads(canned.bodies[0].decode("utf-8")) == {
        "phone": [A],
        "message": "Ґанок",
        "src_addr": "Shop",
    }


def test_json_repeated_number_goes_in_separate_requests(canned):
    canned.reply = (
        b'{"success_request": {"info": {"5": "380501111111"}}}',
        "application/json",
        200,
    )
    outcomes = gateway(JsonGateway, canned).send("Shop", [Outgoing(A, "hi"), Outgoing(A, "hi")])
    assert len(canned.bodies) == 2 and all(o.accepted for o in outcomes)


def test_random_bytes_are_never_taken_for_a_refusal():
    import random

    from django_smsclub.gateways.replies import decode_reply, looks_like_error_text

    rng = random.Random(1)
    for size in (6, 12, 20, 40, 80, 200):
        for _ in range(2000):
            body = bytes(rng.randrange(256) for _ in range(size))
            reply = decode_reply(body, "windows-1251")
            assert not (reply and looks_like_error_text(reply)), body


@pytest.mark.parametrize(
    "text",
    [
        "Не найдено соответствие пары логин\\пароль",
        "Неверное альфа-имя отправителя: Shop",
        "Неверный номер получателя: 380501234567",
        "Недостаточно средств на счете",
        "Неверный текст сообщения: пустой текст (0 символов)",
    ],
)
def test_the_providers_error_texts_are_recognised(text):
    from django_smsclub.gateways.replies import looks_like_error_text

    assert looks_like_error_text(text)
