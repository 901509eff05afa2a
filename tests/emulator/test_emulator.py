"""The emulator over real sockets: every endpoint, every refusal, status life, the log."""

from __future__ import annotations

import base64
import threading
import time
from decimal import Decimal

import pytest
import requests

from django_smsclub import text as sms_text
from django_smsclub.emulator import (
    DEFAULT_PASSWORD,
    DEFAULT_TOKEN,
    DEFAULT_USERNAME,
    Emulator,
)

HTTP = "/hfw_smpp_addon/"
LOGIN_ERROR = "Не найдено соответствие пары логин\\пароль"
WRONG_ID = "неверно указан id"
R1, R2, R3 = "380501111111", "380502222222", "380503333333"
THREE_DAYS = 3 * 24 * 3600


def b64(message: str) -> str:
    return base64.b64encode(message.encode("cp1251")).decode("ascii")


def http_send(emu, to, message, *, sender="Shop", password=DEFAULT_PASSWORD, get=False, raw=None):
    params = {
        "username": DEFAULT_USERNAME,
        "password": password,
        "from": sender,
        "to": to if isinstance(to, str) else ";".join(to),
        "text": raw if raw is not None else b64(message),
    }
    if get:
        reply = requests.get(emu.url + HTTP + "httpsendsms.php", params=params, timeout=5)
    else:
        reply = requests.post(emu.url + HTTP + "httpsendsmspost.php", data=params, timeout=5)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "text/html; charset=windows-1251"
    return reply.content.decode("cp1251")


def http_state(emu, ids, *, get=False, password=DEFAULT_PASSWORD):
    params = {"username": DEFAULT_USERNAME, "password": password, "smscid": ";".join(ids)}
    if get:
        reply = requests.get(emu.url + HTTP + "httpgetsmsstate.php", params=params, timeout=5)
    else:
        reply = requests.post(emu.url + HTTP + "httpgetsmsstatepost.php", data=params, timeout=5)
    assert reply.status_code == 200
    return reply.content.decode("cp1251")


def ids_of(body: str) -> list[str]:
    assert body.startswith("=IDS START="), body
    inner = body.split("=IDS START=", 1)[1].split("=IDS END=", 1)[0]
    return [piece for piece in inner.split("<br/>") if piece]


def states_of(body: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in ids_of(body))


def cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def xml_doc(root: str, *fields: tuple[str, str]) -> str:
    body = "".join(f"<{tag}>{cdata(value)}</{tag}>" for tag, value in fields)
    return f'<?xml version="1.0" encoding="utf-8"?><{root}>{body}</{root}>'


def login(password: str = DEFAULT_PASSWORD) -> list[tuple[str, str]]:
    return [("username", DEFAULT_USERNAME), ("password", password)]


def xml_post(emu, endpoint: str, document: str) -> str:
    reply = requests.post(emu.url + HTTP + endpoint, data={"xmlrequest": document}, timeout=5)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "text/xml; charset=utf-8"
    return reply.content.decode("utf-8")


def xml_send(emu, to, message, *, sender="Shop", password=DEFAULT_PASSWORD) -> str:
    to = to if isinstance(to, str) else ";".join(to)
    fields = [*login(password), ("from", sender), ("to", to), ("text", message)]
    return xml_post(emu, "xmlsendsmspost.php", xml_doc("request_sendsms", *fields))


def xml_ids(reply: str) -> list[str]:
    from lxml import etree

    root = etree.fromstring(reply.encode("utf-8"))
    assert root.findtext("status") == "OK", reply
    return [m.text for m in root.iterfind("ids/mess")]


def xml_error(reply: str) -> str:
    from lxml import etree

    root = etree.fromstring(reply.encode("utf-8"))
    assert root.findtext("status") == "ERROR", reply
    return root.findtext("text")


def json_post(emu, path, body=None, *, token=DEFAULT_TOKEN, raw=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if raw is not None:
        return requests.post(emu.url + path, data=raw, headers=headers, timeout=5)
    return requests.post(emu.url + path, json=body, headers=headers, timeout=5)


def json_send(emu, phones, message, sender="Shop"):
    return json_post(emu, "/sms/send", {"phone": phones, "message": message, "src_addr": sender})


class TestLifecycle:
    def test_start_stop_and_url(self):
        emu = Emulator()
        assert not emu.running
        with pytest.raises(RuntimeError):
            emu.url  # noqa: B018
        emu.start()
        try:
            assert emu.url.startswith("http://127.0.0.1:")
            assert emu.port > 0
            assert requests.get(emu.url + "/nothing", timeout=5).status_code == 404
        finally:
            emu.stop()
        assert not emu.running
        emu.start()
        try:
            assert requests.get(emu.url + "/nothing", timeout=5).status_code == 404
        finally:
            emu.stop()

    def test_stopped_server_refuses_connections(self):
        with Emulator() as emu:
            url = emu.url
        with pytest.raises(requests.ConnectionError):
            requests.get(url + HTTP + "httpgetbalance.php", timeout=2)

    def test_gateway_settings(self, emu):
        assert emu.gateway_settings("json", TIMEOUT=3) == {
            "BACKEND": "json",
            "USERNAME": DEFAULT_USERNAME,
            "PASSWORD": DEFAULT_PASSWORD,
            "TOKEN": DEFAULT_TOKEN,
            "SENDER": "Shop",
            "BASE_URL": emu.url,
            "TIMEOUT": 3,
        }
        assert emu.gateway_settings()["BACKEND"] == "xml"


class TestHttpSend:
    @pytest.mark.parametrize("get", [False, True])
    def test_one_id_per_part_in_recipient_order(self, emu, get):
        message = "Ж" * 100  # two parts of 67
        ids = ids_of(http_send(emu, [R1, R2], message, get=get))
        assert ids == ["1", "2", "3", "4"]
        accepted = emu.accepted
        assert [(s.smsc_id, s.recipient, s.part, s.parts) for s in accepted] == [
            ("1", R1, 1, 2),
            ("2", R1, 2, 2),
            ("3", R2, 1, 2),
            ("4", R2, 2, 2),
        ]
        assert {(s.text, s.sender, s.gateway, s.username) for s in accepted} == {
            (message, "Shop", "http", DEFAULT_USERNAME)
        }
        assert accepted[0].part_text == "Ж" * 67
        assert accepted[1].part_text == "Ж" * 33
        assert emu.balance_of(DEFAULT_USERNAME) == Decimal("998.00")

    def test_seen_reply_shape(self, emu):
        assert http_send(emu, [R1, R2], "hi") == "=IDS START=<br/>1<br/>2<br/>=IDS END=<br/>"

    def test_doc_reply_shape(self, emu):
        emu.http_reply_shape = "doc"
        assert http_send(emu, [R1, R2], "hi") == "=IDS START=1<br/>2=IDS END="
        assert http_state(emu, ["1", "2"]) == "=IDS START=1: ENROUTE<br/>2: ENROUTE=IDS END="
        with pytest.raises(ValueError):
            emu.http_reply_shape = "other"

    def test_text_is_windows_1251_in_base64(self, emu):
        message = "Ваше замовлення готове: №15 «ґ»"
        http_send(emu, R1, message)
        assert emu.accepted[0].text == message

    def test_national_number_is_normalised(self, emu):
        http_send(emu, "0675126767", "hi")
        assert [s.recipient for s in emu.messages_to("380675126767")] == ["380675126767"]
        assert len(emu.messages_to("+380675126767")) == 1

    @pytest.mark.parametrize(
        ("kwargs", "expected"),
        [
            ({"password": "wrong-password"}, LOGIN_ERROR),
            ({"password": ""}, LOGIN_ERROR),
            ({"sender": "Nope"}, "Неверное альфа-имя отправителя: Nope"),
            ({"sender": "shop"}, "Неверное альфа-имя отправителя: shop"),
            ({"sender": "Shop!"}, "Неверное альфа-имя отправителя: Shop!"),
            ({"message": ""}, "Неверный текст сообщения: "),
            ({"message": "   "}, "Неверный текст сообщения: "),
            ({"message": "a" * 1072}, "Неверный текст сообщения: "),
            ({"message": "Ж" * 470}, "Неверный текст сообщения: "),
            ({"raw": "not base64!"}, "Неверный текст сообщения: "),
            ({"raw": base64.b64encode(b"\x98").decode()}, "Неверный текст сообщения: "),
            ({"to": "12345"}, "Неверный номер получателя: 12345"),
            ({"to": f"{R1};"}, "Неверный номер получателя: "),
            ({"to": f"{R1};+{R2}"}, f"Неверный номер получателя: +{R2}"),
            ({"to": ""}, "Неверный номер получателя: "),
        ],
    )
    def test_refusals(self, emu, kwargs, expected):
        args = {"to": [R1, R2], "message": "hello", **kwargs}
        reply = http_send(emu, args.pop("to"), args.pop("message"), **args)
        assert reply.startswith(expected), reply
        assert "=IDS START=" not in reply
        assert emu.accepted == []
        assert emu.balance_of(DEFAULT_USERNAME) == Decimal("1000")

    def test_unknown_username(self, emu):
        data = {"username": "380000000000", "password": DEFAULT_PASSWORD}
        reply = requests.post(emu.url + HTTP + "httpgetbalance.php", data=data, timeout=5)
        assert reply.content.decode("cp1251") == LOGIN_ERROR

    def test_not_enough_money(self, emu):
        emu.add_account("380671234567", "other-pass", balance="1.00", price_per_part="0.50")
        data = {
            "username": "380671234567",
            "password": "other-pass",
            "from": "Shop",
            "to": f"{R1};{R2};{R3}",
            "text": b64("hi"),
        }
        url = emu.url + HTTP + "httpsendsmspost.php"
        reply = requests.post(url, data=data, timeout=5).content.decode("cp1251")
        assert reply == "Недостаточно средств на счете"
        assert emu.accepted == []
        data["to"] = f"{R1};{R2}"
        assert len(ids_of(requests.post(url, data=data, timeout=5).content.decode("cp1251"))) == 2
        assert emu.balance_of("380671234567") == Decimal("0")

    def test_credit_allows_going_below_zero(self, emu):
        emu.add_account("380671234567", "other-pass", balance="0.50", credit="1.00")
        data = {
            "username": "380671234567",
            "password": "other-pass",
            "from": "Shop",
            "to": f"{R1};{R2}",
            "text": b64("hi"),
        }
        url = emu.url + HTTP + "httpsendsmspost.php"
        assert len(ids_of(requests.post(url, data=data, timeout=5).content.decode("cp1251"))) == 2
        assert emu.balance_of("380671234567") == Decimal("-0.50")
        reply = requests.post(url, data={**data, "username": "380671234567"}, timeout=5)
        assert reply.content.decode("cp1251") == "Недостаточно средств на счете"

    @pytest.mark.parametrize(
        "message",
        ["a" * 160, "a" * 161, "a" * 1071, "Ж" * 70, "Ж" * 71, "Ж" * 469, "a" * 159 + "ж"],
    )
    def test_parts_follow_text_rules(self, emu, message):
        ids = ids_of(http_send(emu, R1, message))
        assert len(ids) == sms_text.count_parts(message)
        assert [s.parts for s in emu.accepted] == [len(ids)] * len(ids)
        assert "".join(s.part_text for s in emu.accepted) == message


class TestHttpStateAndBalance:
    def test_state_get_and_post(self, emu):
        ids = ids_of(http_send(emu, [R1, R2], "hi"))
        reply = http_state(emu, [*ids, "999"], get=True)
        assert reply == (
            f"=IDS START=<br/>1: ENROUTE<br/>2: ENROUTE<br/>999: {WRONG_ID}<br/>=IDS END=<br/>"
        )
        assert states_of(http_state(emu, ids)) == {"1": "DELIVRD", "2": "DELIVRD"}

    def test_state_needs_login(self, emu):
        assert http_state(emu, ["1"], password="bad-password") == LOGIN_ERROR

    def test_ids_of_another_account_are_unknown(self, emu):
        ids = ids_of(http_send(emu, R1, "hi"))
        emu.add_account("380671234567", "other-pass")
        data = {"username": "380671234567", "password": "other-pass", "smscid": ids[0]}
        url = emu.url + HTTP + "httpgetsmsstatepost.php"
        body = requests.post(url, data=data, timeout=5).content.decode("cp1251")
        assert states_of(body) == {ids[0]: WRONG_ID}

    @pytest.mark.parametrize("get", [False, True])
    def test_balance(self, emu, get):
        params = {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}
        url = emu.url + HTTP + "httpgetbalance.php"
        assert requests.get(url, params=params, timeout=5).text == "1000.00<br/>0.00"
        http_send(emu, R1, "Ж" * 140)  # three parts
        if get:
            reply = requests.get(url, params=params, timeout=5)
        else:
            reply = requests.post(url, data=params, timeout=5)
        assert reply.text == "998.50<br/>0.00"


class TestXml:
    def test_send(self, emu):
        reply = xml_send(emu, [R1, R2], "Ж" * 100)
        assert reply == (
            '<?xml version="1.0" encoding="utf-8"?><response><status>OK</status>'
            "<text>Сообщений: 2 (4 частей)</text><ids><mess>1</mess><mess>2</mess>"
            "<mess>3</mess><mess>4</mess></ids></response>"
        )
        assert [(s.recipient, s.part, s.gateway) for s in emu.accepted] == [
            (R1, 1, "xml"),
            (R1, 2, "xml"),
            (R2, 1, "xml"),
            (R2, 2, "xml"),
        ]

    def test_text_with_cdata_end_and_emoji(self, emu):
        message = "a]]>b 🙂 <tag> & ok"
        assert len(xml_ids(xml_send(emu, R1, message))) == 1
        assert emu.accepted[0].text == message

    def test_send_individual(self, emu):
        fields = [*login(), ("from", "Shop"), ("to", R1), ("text", "one"), ("to", R2)]
        fields += [("text", "Ж" * 71), ("to", R1), ("text", "three")]
        reply = xml_post(emu, "xmlsendindividual.php", xml_doc("request_sendsms", *fields))
        assert "<text>Сообщений: 3 (4 частей)</text>" in reply
        assert xml_ids(reply) == ["1", "2", "3", "4"]
        assert [(s.smsc_id, s.recipient, s.text[:3]) for s in emu.accepted] == [
            ("1", R1, "one"),
            ("2", R2, "ЖЖЖ"),
            ("3", R2, "ЖЖЖ"),
            ("4", R1, "thr"),
        ]

    @pytest.mark.parametrize(
        "tail",
        [[("to", R1)], [("text", "x")], [("to", R1), ("to", R2), ("text", "x")], []],
    )
    def test_individual_needs_pairs(self, emu, tail):
        fields = [*login(), ("from", "Shop"), *tail]
        reply = xml_post(emu, "xmlsendindividual.php", xml_doc("request_sendsms", *fields))
        assert xml_error(reply).startswith("Неверная структура запроса")
        assert emu.accepted == []

    @pytest.mark.parametrize("tag", ["smscid", "smssid"])
    def test_state(self, emu, tag):
        ids = xml_ids(xml_send(emu, [R1, R2], "hi"))
        document = xml_doc("request_getstate", *login(), (tag, ";".join([*ids, "77"])))
        reply = xml_post(emu, "xmlgetsmsstatepost.php", document)
        assert reply == (
            '<?xml version="1.0" encoding="utf-8"?><response><status>OK</status><text></text>'
            "<entries><entry><smscid>1</smscid><state>ENROUTE</state></entry>"
            "<entry><smscid>2</smscid><state>ENROUTE</state></entry>"
            f"<entry><smscid>77</smscid><state>{WRONG_ID}</state></entry></entries></response>"
        )

    def test_state_ids_may_hold_line_breaks(self, emu):
        xml_send(emu, [R1, R2], "hi")
        emu.deliver_after(polls=0)
        document = xml_doc("request_getstate", *login(), ("smscid", "1;\n2"))
        reply = xml_post(emu, "xmlgetsmsstatepost.php", document)
        assert reply.count("<state>DELIVRD</state>") == 2

    @pytest.mark.parametrize(
        ("kwargs", "expected"),
        [
            ({"password": "wrong-password"}, LOGIN_ERROR),
            ({"sender": "Other"}, "Неверное альфа-имя отправителя: Other"),
            ({"sender": "TooLongName1"}, "Неверное альфа-имя отправителя: TooLongName1"),
            ({"message": ""}, "Неверный текст сообщения: "),
            ({"message": "Ж" * 470}, "Неверный текст сообщения: "),
            ({"to": f"{R1};abc"}, "Неверный номер получателя: abc"),
            ({"to": "3805011111112222"}, "Неверный номер получателя: 3805011111112222"),
        ],
    )
    def test_refusals(self, emu, kwargs, expected):
        args = {"to": [R1], "message": "hello", **kwargs}
        reply = xml_send(emu, args.pop("to"), args.pop("message"), **args)
        assert xml_error(reply).startswith(expected)
        assert "<ids>" not in reply
        assert emu.accepted == []

    def test_state_refusal(self, emu):
        document = xml_doc("request_getstate", *login("bad-password"), ("smscid", "1"))
        assert xml_error(xml_post(emu, "xmlgetsmsstatepost.php", document)) == LOGIN_ERROR

    @pytest.mark.parametrize(
        "mangle",
        [
            lambda d: d.replace("?><request", "?>\n<request"),
            lambda d: d.replace("<from>", "\n<from>"),
            lambda d: d.replace("<from>", "  <from>"),
            lambda d: d.replace("</text>", "</text>\r\n"),
            lambda d: d.replace("<request_sendsms>", "<request_sendsms>\t"),
        ],
    )
    def test_whitespace_between_tags_is_accepted(self, emu, mangle):
        # The provider's own examples (and production clients) indent their documents.
        fields = [*login(), ("from", "Shop"), ("to", R1), ("text", "hello")]
        document = mangle(xml_doc("request_sendsms", *fields))
        assert len(xml_ids(xml_post(emu, "xmlsendsmspost.php", document))) == 1
        assert emu.accepted[0].text == "hello"

    @pytest.mark.parametrize(
        "mangle",
        [
            lambda d: d.replace("?><request", "?>\n<request"),
            lambda d: d.replace("<from>", "\n<from>"),
            lambda d: d.replace("<from>", "  <from>"),
            lambda d: d.replace("</text>", "</text>\r\n"),
            lambda d: d.replace("<request_sendsms>", "<request_sendsms>\t"),
            lambda d: "\n" + d,
        ],
    )
    def test_whitespace_between_tags_is_refused_when_strict(self, emu, mangle):
        emu.xml_strict_whitespace = True
        fields = [*login(), ("from", "Shop"), ("to", R1), ("text", "hello")]
        document = mangle(xml_doc("request_sendsms", *fields))
        reply = xml_post(emu, "xmlsendsmspost.php", document)
        assert xml_error(reply) == "Недопустимые пробелы или переводы строк между тегами"
        assert emu.accepted == []

    def test_whitespace_in_state_request(self, emu):
        document = xml_doc("request_getstate", *login(), ("smscid", "1")).replace(
            "<smscid>", "\n  <smscid>"
        )
        assert "<entries>" in xml_post(emu, "xmlgetsmsstatepost.php", document)
        emu.xml_strict_whitespace = True
        reply = xml_post(emu, "xmlgetsmsstatepost.php", document)
        assert xml_error(reply) == "Недопустимые пробелы или переводы строк между тегами"

    def test_spaces_inside_a_value_are_kept(self, emu):
        xml_send(emu, R1, "  two  spaces  ")
        assert emu.accepted[0].text == "  two  spaces  "

    def test_values_without_cdata_are_read(self, emu):
        document = (
            "<?xml version='1.0' encoding='utf-8'?><request_sendsms>"
            f"<username>{DEFAULT_USERNAME}</username><password>{DEFAULT_PASSWORD}</password>"
            f"<from>Shop</from><to>{R1}</to><text>a &amp; b</text></request_sendsms>"
        )
        assert xml_ids(xml_post(emu, "xmlsendsmspost.php", document)) == ["1"]
        assert emu.accepted[0].text == "a & b"

    @pytest.mark.parametrize(
        "document",
        [
            '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            "<request_sendsms><username>&x;</username></request_sendsms>",
            '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
            "<request_sendsms><text>&b;</text></request_sendsms>",
            "<!DOCTYPE request_sendsms SYSTEM 'http://127.0.0.1:1/x.dtd'><request_sendsms/>",
        ],
    )
    def test_dtds_and_entities_are_refused(self, emu, document):
        reply = xml_post(emu, "xmlsendsmspost.php", document)
        assert "DTD" in xml_error(reply)
        assert emu.accepted == []

    @pytest.mark.parametrize(
        "document",
        ["", "not xml", "<request_sendsms><to>1</request_sendsms>", "<a>&undefined;</a>"],
    )
    def test_malformed_documents_are_refused(self, emu, document):
        xml_error(xml_post(emu, "xmlsendsmspost.php", document))
        assert emu.accepted == []

    def test_wrong_root_is_refused(self, emu):
        document = xml_doc("request_getstate", *login(), ("smscid", "1"))
        assert "request_sendsms" in xml_error(xml_post(emu, "xmlsendsmspost.php", document))

    def test_mixed_text_between_tags_is_refused(self, emu):
        fields = [*login(), ("from", "Shop"), ("to", R1), ("text", "hello")]
        document = xml_doc("request_sendsms", *fields).replace("<from>", "junk<from>")
        assert "Неверная структура" in xml_error(xml_post(emu, "xmlsendsmspost.php", document))


class TestJson:
    def test_send_one_id_per_part(self, emu):
        reply = json_send(emu, [R1, R2], "Ж" * 100)
        assert reply.status_code == 200
        assert reply.headers["Content-Type"].startswith("application/json")
        assert reply.json() == {"success_request": {"info": {"1": R1, "2": R1, "3": R2, "4": R2}}}
        assert [s.gateway for s in emu.accepted] == ["json"] * 4

    def test_send_one_id_per_message(self, emu):
        emu.json_ids_per_part = False
        reply = json_send(emu, [R1, R2], "Ж" * 100)
        assert reply.json() == {"success_request": {"info": {"1": R1, "2": R2}}}
        assert [(s.smsc_id, s.part) for s in emu.accepted] == [
            ("1", 1),
            ("1", 2),
            ("2", 1),
            ("2", 2),
        ]
        assert emu.balance_of() == Decimal("998.00")

    def test_refused_numbers_go_to_add_info(self, emu):
        emu.blacklist("+" + R2)
        reply = json_send(emu, [R1, R2, "12345", 380503333333], "hi")
        assert reply.status_code == 200
        result = reply.json()["success_request"]
        assert result["info"] == {"1": R1, "2": R3}
        assert set(result["add_info"]) == {R2, "12345"}
        assert all(isinstance(why, str) and why for why in result["add_info"].values())
        assert [s.recipient for s in emu.accepted] == [R1, R3]
        assert emu.balance_of() == Decimal("999.00")

    def test_everything_refused(self, emu):
        # The provider leaves "info" out when it accepted nothing (Nekkoy/gateway-smsclub).
        reply = json_send(emu, ["1", "2"], "hi").json()["success_request"]
        assert reply == {
            "add_info": {"1": "Некорректный номер получателя", "2": "Некорректный номер получателя"}
        }

    def test_status(self, emu):
        json_send(emu, [R1, R2], "hi")
        body = {"id_sms": ["1", "2", "555"]}
        first = json_post(emu, "/sms/status", body).json()
        assert first == {"success_request": {"info": {"1": "ENROUTE", "2": "ENROUTE"}}}
        second = json_post(emu, "/sms/status", body).json()
        assert second == {"success_request": {"info": {"1": "DELIVRD", "2": "DELIVRD"}}}

    def test_balance_and_originator(self, emu):
        balance = json_post(emu, "/sms/balance").json()
        assert balance == {"success_request": {"info": {"money": "1000.0000", "currency": "UAH"}}}
        originator = json_post(emu, "/sms/originator", {}).json()
        assert originator == {"success_request": {"info": ["Shop", "SMS CLUB"]}}

    @pytest.mark.parametrize("token", [None, "wrong-token"])
    @pytest.mark.parametrize(
        "path", ["/sms/send", "/sms/status", "/sms/balance", "/sms/originator"]
    )
    def test_unauthorized(self, emu, token, path):
        reply = json_post(
            emu, path, {"phone": [R1], "message": "x", "src_addr": "Shop"}, token=token
        )
        assert reply.status_code == 401
        assert reply.json()["name"] == "Unauthorized"
        assert reply.json()["status"] == 401
        assert emu.accepted == []

    def test_other_account_token(self, emu):
        emu.add_account("380671234567", "other-pass", token="other-token", senders=["Other"])
        reply = json_post(emu, "/sms/originator", token="other-token")
        assert reply.json() == {"success_request": {"info": ["Other"]}}

    @pytest.mark.parametrize(
        ("path", "body"),
        [
            ("/sms/send", {"phone": [R1] * 101, "message": "hi", "src_addr": "Shop"}),
            ("/sms/send", {"phone": R1, "message": "hi", "src_addr": "Shop"}),
            ("/sms/send", {"phone": [R1], "message": "hi", "src_addr": "Nope"}),
            ("/sms/send", {"phone": [R1], "message": "🙂" * 235, "src_addr": "Shop"}),
            ("/sms/send", ["not", "an", "object"]),
            ("/sms/status", {"id_sms": [str(i) for i in range(101)]}),
        ],
    )
    def test_validation_errors(self, emu, path, body):
        reply = json_post(emu, path, body)
        assert reply.status_code == 400
        assert reply.json()["name"] == "Bad Request"
        assert reply.json()["message"]
        assert emu.accepted == []

    @pytest.mark.parametrize(
        ("path", "body", "add_info"),
        [
            (
                "/sms/send",
                {"phone": [], "message": "hi", "src_addr": "Shop"},
                {"phone": "не заполнен номер получателя"},
            ),
            (
                "/sms/send",
                {"phone": [R1], "message": "hi"},
                {"src_addr": "не заполнен отправитель сообщения"},
            ),
            (
                "/sms/send",
                {"phone": [R1], "message": "", "src_addr": "Shop"},
                {"message": "не заполнен текст сообщения"},
            ),
            (
                "/sms/send",
                {"src_addr": ""},
                {
                    "phone": "не заполнен номер получателя",
                    "message": "не заполнен текст сообщения",
                    "src_addr": "не заполнен отправитель сообщения",
                },
            ),
            (
                "/v2/sms/send",
                {"src_addr": "Shop", "data_message": []},
                {"data_message": "не заполнен номер получателя"},
            ),
            ("/sms/status", {}, "некорректный ID сообщения"),
            ("/sms/status", {"id_sms": []}, "некорректный ID сообщения"),
        ],
    )
    def test_missing_fields_are_refused_in_add_info(self, emu, path, body, add_info):
        # The provider's SDK (ErrorHandler) reads these keys, or a string for id_sms.
        reply = json_post(emu, path, body)
        assert reply.status_code == 200
        assert reply.json() == {"success_request": {"add_info": add_info}}
        assert emu.accepted == []

    def test_bad_json(self, emu):
        reply = json_post(emu, "/sms/send", raw=b"{not json")
        assert reply.status_code == 400
        assert reply.json()["status"] == 400

    def test_emoji_counts_two_units(self, emu):
        reply = json_send(emu, [R1], "🙂" * 35)
        assert len(reply.json()["success_request"]["info"]) == 1
        assert len(json_send(emu, [R1], "🙂" * 36).json()["success_request"]["info"]) == 2

    def test_not_enough_money(self, emu):
        emu.add_account("380671234567", "p-other", token="poor-token", balance="0.40")
        body = {"phone": [R1], "message": "hi", "src_addr": "Shop"}
        reply = json_post(emu, "/sms/send", body, token="poor-token")
        assert reply.status_code == 400
        assert reply.json()["message"] == "Недостаточно средств на счете"

    def test_get_is_not_allowed(self, emu):
        reply = requests.get(
            emu.url + "/sms/balance",
            headers={"Authorization": "Bearer " + DEFAULT_TOKEN},
            timeout=5,
        )
        assert reply.status_code == 405

    @pytest.mark.parametrize("path", ["/sms/nothing", "/v2/sms/status"])
    def test_unknown_path(self, emu, path):
        reply = json_post(emu, path)
        assert reply.status_code == 404
        assert reply.json()["name"] == "Not Found"

    def test_rate_limit(self, emu):
        session = requests.Session()
        headers = {"Authorization": "Bearer " + DEFAULT_TOKEN}
        codes: list[int] = []
        while 429 not in codes and len(codes) < 50:
            limited = session.post(emu.url + "/sms/balance", headers=headers, timeout=5)
            codes.append(limited.status_code)
        # Nine pass in any one-second window; the tenth within it is refused.
        assert codes[:9] == [200] * 9
        assert limited.status_code == 429
        assert limited.json() == {
            "name": "Too Many Requests",
            "message": "Rate limit exceeded.",
            "code": 0,
            "status": 429,
        }
        assert limited.headers["Retry-After"] == "1"
        emu.add_account("380671234567", "other-pass", token="other-token")
        assert json_post(emu, "/sms/balance", token="other-token").status_code == 200
        time.sleep(1.05)
        assert session.post(emu.url + "/sms/balance", headers=headers, timeout=5).status_code == 200

    def test_rate_limit_is_configurable(self, emu):
        emu.json_rate_limit = 2
        codes = [json_post(emu, "/sms/balance").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        emu.json_rate_limit = None
        assert all(json_post(emu, "/sms/balance").status_code == 200 for _ in range(15))

    def test_account_rate_limit_counts_every_gateway(self, emu):
        params = {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}
        balance = emu.url + HTTP + "httpgetbalance.php"
        assert emu.rate_limit is None
        assert all(requests.post(balance, data=params, timeout=5).ok for _ in range(15))
        time.sleep(1.05)
        emu.rate_limit = 3
        assert requests.post(balance, data=params, timeout=5).status_code == 200
        http_send(emu, R1, "hi")
        assert json_post(emu, "/sms/balance").status_code == 200  # the same account's token
        refused = requests.post(balance, data=params, timeout=5)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"
        assert json_post(emu, "/sms/balance").json()["status"] == 429
        emu.add_account("380671234567", "other-pass", token="other-token")
        assert json_post(emu, "/sms/balance", token="other-token").status_code == 200
        assert [r.status_code for r in emu.requests[-4:]] == [200, 429, 429, 200]
        assert all(r.received is not None and r.received <= r.time for r in emu.requests)
        time.sleep(1.05)
        assert requests.post(balance, data=params, timeout=5).status_code == 200

    def test_rate_limits_count_a_request_when_it_arrives_not_after_its_delay(self, emu):
        params = {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}
        balance = emu.url + HTTP + "httpgetbalance.php"
        emu.rate_limit = 1
        emu.faults.add("latency", times=1, seconds=0.5)
        started = time.monotonic()
        assert requests.post(balance, data=params, timeout=5).status_code == 200
        time.sleep(max(0.0, started + 1.05 - time.monotonic()))
        # Answered 0.5 s after it arrived, the first request still counts from its arrival.
        assert requests.post(balance, data=params, timeout=5).status_code == 200
        assert requests.post(balance, data=params, timeout=5).status_code == 429
        first = emu.requests[0]
        assert first.fault == "latency" and first.time - first.received >= 0.5


class TestStatusLife:
    def test_default_one_poll_then_delivered(self, emu):
        [smsc_id] = ids_of(http_send(emu, R1, "hi"))
        assert emu.state_of(smsc_id) == "ENROUTE"
        assert emu.state_of(smsc_id) == "ENROUTE"  # looking is not polling
        assert states_of(http_state(emu, [smsc_id])) == {smsc_id: "ENROUTE"}
        assert emu.state_of(smsc_id) == "DELIVRD"
        assert states_of(http_state(emu, [smsc_id])) == {smsc_id: "DELIVRD"}

    def test_final_at_once(self, emu):
        emu.deliver_after(polls=0)
        [smsc_id] = ids_of(http_send(emu, R1, "hi"))
        assert emu.state_of(smsc_id) == "DELIVRD"

    def test_several_polls_across_gateways(self, emu):
        emu.deliver_after(polls=3)
        [smsc_id] = ids_of(http_send(emu, R1, "hi"))
        assert states_of(http_state(emu, [smsc_id]))[smsc_id] == "ENROUTE"
        document = xml_doc("request_getstate", *login(), ("smscid", smsc_id))
        assert "ENROUTE" in xml_post(emu, "xmlgetsmsstatepost.php", document)
        status = json_post(emu, "/sms/status", {"id_sms": [smsc_id]}).json()
        assert status["success_request"]["info"] == {smsc_id: "ENROUTE"}
        assert states_of(http_state(emu, [smsc_id]))[smsc_id] == "DELIVRD"

    def test_an_id_listed_twice_is_one_poll(self, emu):
        [smsc_id] = ids_of(http_send(emu, R1, "hi"))
        assert states_of(http_state(emu, [smsc_id, smsc_id])) == {smsc_id: "ENROUTE"}
        assert emu.state_of(smsc_id) == "DELIVRD"

    def test_time_based_life(self, emu):
        emu.deliver_after(seconds=60)
        [smsc_id] = ids_of(http_send(emu, R1, "hi"))
        for _ in range(3):
            assert states_of(http_state(emu, [smsc_id]))[smsc_id] == "ENROUTE"
        emu.advance(59)
        assert emu.state_of(smsc_id) == "ENROUTE"
        emu.advance(2)
        assert states_of(http_state(emu, [smsc_id]))[smsc_id] == "DELIVRD"

    @pytest.mark.parametrize("word", ["UNDELIV", "REJECTD", "EXPIRED", "FAILED", "2165-05-28"])
    def test_outcome_per_number(self, emu, word):
        emu.deliver_after(polls=0)
        emu.set_outcome(R1, word)
        ids = ids_of(http_send(emu, [R1, R2], "Ж" * 100))
        assert states_of(http_state(emu, ids)) == {
            ids[0]: word,
            ids[1]: word,
            ids[2]: "DELIVRD",
            ids[3]: "DELIVRD",
        }

    def test_final_word_does_not_change_once_reported(self, emu):
        emu.deliver_after(polls=0)
        [smsc_id] = ids_of(http_send(emu, R1, "hi"))
        assert states_of(http_state(emu, [smsc_id]))[smsc_id] == "DELIVRD"
        emu.set_outcome(R1, "UNDELIV")
        assert states_of(http_state(emu, [smsc_id]))[smsc_id] == "DELIVRD"

    def test_blacklisted_is_accepted_then_rejected(self, emu):
        emu.blacklist(R2)
        ids = ids_of(http_send(emu, [R1, R2], "hi"))
        xml_ids_ = xml_ids(xml_send(emu, R2, "hi"))
        assert len(ids) == 2
        assert [emu.state_of(i) for i in ids + xml_ids_] == ["ENROUTE"] * 3
        http_state(emu, ids + xml_ids_)
        assert [emu.state_of(i) for i in ids + xml_ids_] == ["DELIVRD", "REJECTD", "REJECTD"]

    def test_ids_are_valid_for_three_days(self, emu):
        emu.deliver_after(polls=0)
        [old] = ids_of(http_send(emu, R1, "hi"))
        emu.advance(THREE_DAYS - 10)
        [new] = ids_of(http_send(emu, R1, "hi"))
        assert states_of(http_state(emu, [old, new])) == {old: "DELIVRD", new: "DELIVRD"}
        emu.advance(11)
        assert states_of(http_state(emu, [old, new])) == {old: WRONG_ID, new: "DELIVRD"}
        assert emu.state_of(old) == WRONG_ID
        document = xml_doc("request_getstate", *login(), ("smscid", old))
        assert f"<state>{WRONG_ID}</state>" in xml_post(emu, "xmlgetsmsstatepost.php", document)
        status = json_post(emu, "/sms/status", {"id_sms": [old, new]}).json()
        assert status["success_request"]["info"] == {new: "DELIVRD"}

    def test_clock_moves_only_forward(self, emu):
        before = emu.now()
        emu.advance(100)
        assert emu.now() >= before + 100
        with pytest.raises(ValueError):
            emu.advance(-1)


class TestBookkeeping:
    def test_ids_increase_across_gateways(self, emu):
        first = ids_of(http_send(emu, R1, "hi"))
        second = xml_ids(xml_send(emu, R1, "hi"))
        third = list(json_send(emu, [R1], "hi").json()["success_request"]["info"])
        assert [int(i) for i in first + second + third] == [1, 2, 3]

    def test_duplicates_count_messages_not_parts(self, emu):
        long_text = "Ж" * 100
        http_send(emu, [R1, R2], long_text)
        xml_send(emu, R1, long_text)
        json_send(emu, [R1, R3], long_text)
        xml_send(emu, R3, "other")
        assert sorted(emu.duplicates()) == [(R1, long_text, 3)]

    def test_no_duplicates(self, emu):
        http_send(emu, [R1, R2], "hi")
        assert emu.duplicates() == []

    def test_request_log(self, emu):
        http_send(emu, R1, "hi", get=True)
        json_post(emu, "/sms/balance")
        requests.get(emu.url + "/favicon.ico", timeout=5)
        log = emu.requests
        assert [(r.method, r.path, r.gateway, r.op, r.status_code, r.fault) for r in log] == [
            ("GET", HTTP + "httpsendsms.php", "http", "send", 200, None),
            ("POST", "/sms/balance", "json", "balance", 200, None),
            ("GET", "/favicon.ico", None, None, 404, None),
        ]
        assert log[0].params["to"] == R1
        assert log[0].time <= emu.now()

    def test_log_never_keeps_passwords_or_tokens(self, emu):
        emu.add_account("380671234567", "second-secret-pass", token="second-secret-token")
        http_send(emu, R1, "hi", get=True)
        http_send(emu, R1, "hi")
        http_send(emu, R1, "hi", password="a-wrong-password")
        http_state(emu, ["1"], get=True)
        url = emu.url + HTTP + "httpgetbalance.php"
        requests.get(url, params={"username": "x", "password": "second-secret-pass"}, timeout=5)
        xml_send(emu, R1, "hi")
        xml_send(emu, R1, "hi", password="another-wrong-pw")
        document = xml_doc("request_getstate", *login(), ("smscid", "1"))
        xml_post(emu, "xmlgetsmsstatepost.php", document)
        json_send(emu, [R1], "hi")
        json_post(emu, "/sms/balance", {"note": "second-secret-token"}, token="second-secret-token")
        json_post(emu, "/sms/balance", raw=b"not json " + DEFAULT_TOKEN.encode())
        log = repr(emu.requests)
        assert len(emu.requests) == 11
        for secret in (
            DEFAULT_PASSWORD,
            DEFAULT_TOKEN,
            "second-secret-pass",
            "second-secret-token",
            "a-wrong-password",
            "another-wrong-pw",
        ):
            assert secret not in log
        assert emu.requests[0].params["password"] == "***"
        assert "<password>***</password>" in emu.requests[5].params["xmlrequest"]

    def test_reset(self, emu):
        emu.add_account("380671234567", "other-pass")
        emu.set_outcome(R1, "UNDELIV")
        emu.blacklist(R2)
        emu.deliver_after(polls=0)
        emu.http_reply_shape = "doc"
        emu.faults.add("http_500", op="balance")
        ids = ids_of(http_send(emu, [R1, R2], "hi"))
        emu.reset()
        assert emu.accepted == []
        assert emu.requests == []
        assert len(emu.faults) == 0
        assert emu.balance_of(DEFAULT_USERNAME) == Decimal("1000")
        with pytest.raises(KeyError):
            emu.balance_of("380671234567")
        assert emu.state_of(ids[0]) == WRONG_ID
        new = ids_of(http_send(emu, [R1, R2], "hi"))
        assert int(new[0]) > int(ids[-1])
        assert [emu.state_of(i) for i in new] == ["ENROUTE", "ENROUTE"]
        http_state(emu, new)
        assert [emu.state_of(i) for i in new] == ["DELIVRD", "DELIVRD"]

    def test_parallel_sends(self, emu):
        errors: list[BaseException] = []

        def worker(n: int) -> None:
            try:
                for _ in range(5):
                    http_send(emu, [R1, R2], f"message {n}")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == []
        accepted = emu.accepted
        assert len(accepted) == 80
        assert len({s.smsc_id for s in accepted}) == 80
        assert emu.balance_of() == Decimal("960.00")
        assert len(emu.requests) == 40
