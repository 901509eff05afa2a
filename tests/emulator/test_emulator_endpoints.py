"""The provider's current endpoints over real sockets: ``/http/``, ``/token/``, ``/xml/``, v2 JSON.

Also what the real service accepts beyond our strict form: a multipart ``xmlrequest``, indented
XML, JSON numbers for phones and IDs.
"""

from __future__ import annotations

import base64
from decimal import Decimal
from urllib.parse import quote

import pytest
import requests

from django_smsclub.emulator import DEFAULT_PASSWORD, DEFAULT_TOKEN, DEFAULT_USERNAME

R1, R2, R3 = "380501111111", "380502222222", "380503333333"
LOGIN_ERROR = "Не найдено соответствие пары логин\\пароль"
TEXT = "Ваше замовлення №15 готове «ґ»"


def cp1251_query(**values: str) -> str:
    """A query string as the provider's PHP examples build it: ``urlencode(iconv(...))``."""
    return "&".join(f"{k}={quote(v.encode('cp1251'), safe=';')}" for k, v in values.items())


def ids_of(body: str) -> list[str]:
    assert body.startswith("=IDS START="), body
    inner = body.split("=IDS START=", 1)[1].split("=IDS END=", 1)[0]
    return [piece for piece in inner.replace("\n", "<br/>").split("<br/>") if piece]


def credentials(token: bool) -> dict[str, str]:
    if token:
        return {"username": DEFAULT_USERNAME, "token": DEFAULT_TOKEN}
    return {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}


def get(emu, path: str, query: str) -> str:
    reply = requests.get(f"{emu.url}{path}?{query}", timeout=5)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "text/html; charset=windows-1251"
    return reply.content.decode("cp1251")


class TestHttpCurrent:
    @pytest.mark.parametrize(("prefix", "token"), [("/http/", False), ("/token/", True)])
    def test_send_get_text_is_windows_1251_url_encoded(self, emu, prefix, token):
        query = cp1251_query(
            **credentials(token), **{"from": "Shop", "to": f"{R1};{R2}"}, text=TEXT
        )
        ids = ids_of(get(emu, prefix, query))
        assert ids == ["1", "2"]
        assert [(s.recipient, s.text, s.gateway) for s in emu.accepted] == [
            (R1, TEXT, "http"),
            (R2, TEXT, "http"),
        ]
        assert emu.requests[0].path == prefix
        assert (emu.requests[0].gateway, emu.requests[0].op) == ("http", "send")

    @pytest.mark.parametrize(("prefix", "token"), [("/http/", False), ("/token/", True)])
    def test_send_post_form(self, emu, prefix, token):
        data = cp1251_query(**credentials(token), **{"from": "Shop", "to": R1}, text=TEXT)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        reply = requests.post(emu.url + prefix, data=data, headers=headers, timeout=5)
        assert ids_of(reply.content.decode("cp1251")) == ["1"]
        assert emu.accepted[0].text == TEXT

    def test_base64_is_not_decoded_on_current_paths(self, emu):
        encoded = base64.b64encode("hi".encode("cp1251")).decode()
        query = cp1251_query(**credentials(False), **{"from": "Shop", "to": R1}, text=encoded)
        ids_of(get(emu, "/http/", query))
        assert emu.accepted[0].text == encoded

    def test_utf8_text_arrives_as_mojibake(self, emu):
        # The provider reads Windows-1251: a client URL-encoding UTF-8 garbles its own text.
        query = f"username={DEFAULT_USERNAME}&password={DEFAULT_PASSWORD}&from=Shop&to={R1}"
        get(emu, "/http/", query + "&text=" + quote("Привет".encode()))
        assert emu.accepted[0].text == "Привет".encode().decode("cp1251")

    @pytest.mark.parametrize(
        ("path", "values"),
        [
            ("/http/", {"username": DEFAULT_USERNAME, "password": "wrong-password"}),
            ("/http/", {"username": DEFAULT_USERNAME, "token": DEFAULT_TOKEN}),
            ("/token/", {"username": DEFAULT_USERNAME, "token": "wrong-token"}),
            ("/token/", {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}),
            ("/token/", {"username": "380000000000", "token": DEFAULT_TOKEN}),
            ("/token/state.php", {"username": DEFAULT_USERNAME, "token": ""}),
            ("/http/getbalance.php", {"username": DEFAULT_USERNAME, "password": "x" * 8}),
            ("/token/getbalance.php", {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}),
        ],
    )
    def test_wrong_credentials(self, emu, path, values):
        query = cp1251_query(**values, **{"from": "Shop", "to": R1}, text="hi", smscid="1")
        assert get(emu, path, query) == LOGIN_ERROR
        assert emu.accepted == []

    @pytest.mark.parametrize(("prefix", "token"), [("/http/", False), ("/token/", True)])
    def test_state_and_balance(self, emu, prefix, token):
        query = cp1251_query(**credentials(token), **{"from": "Shop", "to": R1}, text="Ж" * 100)
        ids = ids_of(get(emu, prefix, query))
        assert len(ids) == 2
        state = get(
            emu, prefix + "state.php", cp1251_query(**credentials(token), smscid=";".join(ids))
        )
        assert state == "=IDS START=<br/>1: ENROUTE<br/>2: ENROUTE<br/>=IDS END=<br/>"
        balance = get(emu, prefix + "getbalance.php", cp1251_query(**credentials(token)))
        assert balance == "999.00<br/>0.00"

    def test_token_paths_log_no_token(self, emu):
        get(
            emu,
            "/token/",
            cp1251_query(**credentials(True), **{"from": "Shop", "to": R1}, text="hi"),
        )
        get(emu, "/token/getbalance.php", cp1251_query(username="x", token="some-wrong-token"))
        log = repr(emu.requests)
        assert DEFAULT_TOKEN not in log
        assert "some-wrong-token" not in log
        assert emu.requests[0].params["token"] == "***"

    def test_lines_reply_shape(self, emu):
        emu.http_reply_shape = "lines"
        query = cp1251_query(
            **credentials(False), **{"from": "Shop", "to": f"{R1};{R2}"}, text="hi"
        )
        assert get(emu, "/http/", query) == "=IDS START=\n1\n2\n=IDS END=\n"

    def test_legacy_paths_keep_base64(self, emu):
        data = {
            **credentials(False),
            "from": "Shop",
            "to": R1,
            "text": base64.b64encode(TEXT.encode("cp1251")).decode(),
        }
        url = emu.url + "/hfw_smpp_addon/httpsendsmspost.php"
        assert ids_of(requests.post(url, data=data, timeout=5).content.decode("cp1251")) == ["1"]
        assert emu.accepted[0].text == TEXT


def cdata(value: str) -> str:
    return "<![CDATA[" + value + "]]>"


def xml_doc(root: str, *fields: tuple[str, str], sep: str = "") -> str:
    body = sep.join(f"<{tag}>{cdata(value)}</{tag}>" for tag, value in fields)
    return f'<?xml version="1.0" encoding="utf-8"?>{sep}<{root}>{sep}{body}{sep}</{root}>'


LOGIN = (("username", DEFAULT_USERNAME), ("password", DEFAULT_PASSWORD))


def raw_post(emu, path: str, document: str) -> str:
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    reply = requests.post(emu.url + path, data=document.encode(), headers=headers, timeout=5)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "text/xml; charset=utf-8"
    return reply.content.decode("utf-8")


def xml_status(reply: str) -> tuple[str, str, list[str]]:
    from lxml import etree

    root = etree.fromstring(reply.encode())
    return root.findtext("status"), root.findtext("text"), [m.text for m in root.iter("mess")]


class TestXmlCurrent:
    def test_send_raw_body(self, emu):
        document = xml_doc(
            "request_sendsms", *LOGIN, ("from", "Shop"), ("to", f"{R1};{R2}"), ("text", TEXT)
        )
        assert xml_status(raw_post(emu, "/xml/", document)) == (
            "OK",
            "Сообщений: 2 (2 частей)",
            ["1", "2"],
        )
        assert [(s.recipient, s.text) for s in emu.accepted] == [(R1, TEXT), (R2, TEXT)]
        assert (emu.requests[0].gateway, emu.requests[0].op) == ("xml", "send")

    def test_individual_raw_body(self, emu):
        fields = [
            *LOGIN,
            ("from", "Shop"),
            ("to", R1),
            ("text", "one"),
            ("to", R2),
            ("text", "two"),
        ]
        reply = raw_post(emu, "/xml/individual.php", xml_doc("request_sendsms", *fields))
        assert xml_status(reply)[2] == ["1", "2"]
        assert [(s.recipient, s.text) for s in emu.accepted] == [(R1, "one"), (R2, "two")]

    def test_state_raw_body(self, emu):
        raw_post(
            emu,
            "/xml/",
            xml_doc("request_sendsms", *LOGIN, ("from", "Shop"), ("to", R1), ("text", "hi")),
        )
        reply = raw_post(
            emu, "/xml/state.php", xml_doc("request_getstate", *LOGIN, ("smscid", "1;9"))
        )
        assert "<entry><smscid>1</smscid><state>ENROUTE</state></entry>" in reply
        assert "<entry><smscid>9</smscid><state>неверно указан id</state></entry>" in reply
        assert (emu.requests[-1].gateway, emu.requests[-1].op) == ("xml", "state")

    def test_indented_document_as_the_provider_examples_send_it(self, emu):
        document = (
            "\n  "
            + xml_doc(
                "request_sendsms",
                *LOGIN,
                ("from", "Shop"),
                ("to", R1),
                ("text", "hi"),
                sep="\n    ",
            )
            + "\n"
        )
        assert xml_status(raw_post(emu, "/xml/", document))[0] == "OK"
        assert emu.accepted[0].text == "hi"

    def test_refusal(self, emu):
        document = xml_doc(
            "request_sendsms", ("username", DEFAULT_USERNAME), ("password", "nope-nope")
        )
        assert xml_status(raw_post(emu, "/xml/", document)) == ("ERROR", LOGIN_ERROR, [])

    def test_form_field_is_not_the_current_paths_document(self, emu):
        document = xml_doc("request_sendsms", *LOGIN, ("from", "Shop"), ("to", R1), ("text", "hi"))
        reply = requests.post(emu.url + "/xml/", data={"xmlrequest": document}, timeout=5)
        assert xml_status(reply.content.decode())[0] == "ERROR"
        assert emu.accepted == []

    def test_log_hides_the_password_of_a_raw_body(self, emu):
        raw_post(
            emu,
            "/xml/",
            xml_doc("request_sendsms", ("username", "u"), ("password", "never-logged-pw")),
        )
        raw_post(
            emu,
            "/xml/",
            xml_doc("request_sendsms", *LOGIN, ("from", "Shop"), ("to", R1), ("text", "x")),
        )
        log = repr(emu.requests)
        assert "never-logged-pw" not in log
        assert DEFAULT_PASSWORD not in log
        assert "<password>***</password>" in emu.requests[0].params["body"]

    @pytest.mark.parametrize(
        "document",
        [
            "",
            "not xml",
            '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            "<request_sendsms><username>&x;</username></request_sendsms>",
        ],
    )
    def test_bad_documents_are_refused(self, emu, document):
        assert xml_status(raw_post(emu, "/xml/", document))[0] == "ERROR"
        assert emu.accepted == []


class TestMultipartXmlRequest:
    @pytest.mark.parametrize(
        ("path", "root", "fields"),
        [
            (
                "xmlsendsmspost.php",
                "request_sendsms",
                [("from", "Shop"), ("to", R1), ("text", TEXT)],
            ),
            (
                "xmlsendindividual.php",
                "request_sendsms",
                [("from", "Shop"), ("to", R1), ("text", TEXT)],
            ),
        ],
    )
    def test_legacy_send_takes_multipart(self, emu, path, root, fields):
        # The document's own PHP example passes CURLOPT_POSTFIELDS an array: multipart.
        document = xml_doc(root, *LOGIN, *fields)
        url = emu.url + "/hfw_smpp_addon/" + path
        reply = requests.post(url, files={"xmlrequest": (None, document)}, timeout=5)
        assert reply.request.headers["Content-Type"].startswith("multipart/form-data")
        assert xml_status(reply.content.decode()) == ("OK", "Сообщений: 1 (1 частей)", ["1"])
        assert emu.accepted[0].text == TEXT
        assert "<password>***</password>" in emu.requests[0].params["xmlrequest"]

    def test_legacy_state_takes_multipart(self, emu):
        url = emu.url + "/hfw_smpp_addon/xmlgetsmsstatepost.php"
        document = xml_doc("request_getstate", *LOGIN, ("smscid", "5"))
        reply = requests.post(url, files={"xmlrequest": (None, document)}, timeout=5)
        assert "<state>неверно указан id</state>" in reply.content.decode()

    def test_broken_multipart_is_an_empty_request(self, emu):
        url = emu.url + "/hfw_smpp_addon/xmlsendsmspost.php"
        headers = {"Content-Type": "multipart/form-data; boundary=xyz"}
        reply = requests.post(url, data=b"--nothing here", headers=headers, timeout=5)
        assert xml_status(reply.content.decode()) == ("ERROR", "Пустой запрос", [])


def json_post(emu, path, body, token=DEFAULT_TOKEN):
    headers = {"Authorization": f"Bearer {token}"}
    return requests.post(emu.url + path, json=body, headers=headers, timeout=5)


class TestJsonV2:
    def test_personal_texts_in_one_request(self, emu):
        body = {
            "src_addr": "Shop",
            "data_message": [
                {"phone": "0501111111", "message": "test 1"},
                {"phone": R2, "message": "Ж" * 100},
                {"phone": 380503333333, "message": "test 3"},
            ],
        }
        reply = json_post(emu, "/v2/sms/send", body)
        assert reply.status_code == 200
        # info maps each ID to the normalised phone; one ID per part by default.
        assert reply.json() == {"success_request": {"info": {"1": R1, "2": R2, "3": R2, "4": R3}}}
        assert [(s.recipient, s.text[:6]) for s in emu.accepted] == [
            (R1, "test 1"),
            (R2, "ЖЖЖЖЖЖ"),
            (R2, "ЖЖЖЖЖЖ"),
            (R3, "test 3"),
        ]
        assert (emu.requests[0].gateway, emu.requests[0].op) == ("json", "send")
        assert emu.balance_of() == Decimal("998.00")

    def test_refused_numbers_go_to_add_info(self, emu):
        emu.blacklist(R2)
        body = {
            "src_addr": "Shop",
            "data_message": [
                {"phone": R1, "message": "a"},
                {"phone": R2, "message": "b"},
                {"phone": "12345", "message": "c"},
            ],
        }
        assert json_post(emu, "/v2/sms/send", body).json() == {
            "success_request": {
                "info": {"1": R1},
                "add_info": {
                    R2: "Данный номер находится в черном списке",
                    "12345": "Некорректный номер получателя",
                },
            }
        }

    def test_all_refused_has_no_info(self, emu):
        body = {"src_addr": "Shop", "data_message": [{"phone": "1", "message": "a"}]}
        assert json_post(emu, "/v2/sms/send", body).json() == {
            "success_request": {"add_info": {"1": "Некорректный номер получателя"}}
        }

    @pytest.mark.parametrize(
        "body",
        [
            {"src_addr": "Shop", "data_message": [{"phone": R1, "message": "a"}] * 101},
            {"src_addr": "Shop", "data_message": {"phone": R1, "message": "a"}},
            {"src_addr": "Shop", "data_message": [{"phone": R1}]},
            {"src_addr": "Shop", "data_message": ["380501111111"]},
            {"src_addr": "Nope", "data_message": [{"phone": R1, "message": "a"}]},
        ],
    )
    def test_validation(self, emu, body):
        reply = json_post(emu, "/v2/sms/send", body)
        assert reply.status_code == 400
        assert reply.json()["name"] == "Bad Request"
        assert reply.json()["message"]
        assert emu.accepted == []

    def test_needs_the_token_and_counts_toward_the_rate_limit(self, emu):
        body = {"src_addr": "Shop", "data_message": [{"phone": R1, "message": "a"}]}
        assert json_post(emu, "/v2/sms/send", body, token="wrong").status_code == 401
        emu.json_rate_limit = 2
        codes = [json_post(emu, "/v2/sms/send", body).status_code for _ in range(3)]
        assert codes == [200, 200, 429]


class TestJsonNumbers:
    def test_phones_and_ids_as_json_numbers(self, emu):
        reply = json_post(
            emu, "/sms/send", {"phone": [380501111111], "message": "hi", "src_addr": "Shop"}
        )
        assert reply.json() == {"success_request": {"info": {"1": R1}}}
        status = json_post(emu, "/sms/status", {"id_sms": [1]})
        assert status.json() == {"success_request": {"info": {"1": "ENROUTE"}}}

    def test_padded_ids_lose_their_zeros_as_numbers(self, emu):
        emu.configure_account(id_style="padded")
        json_post(emu, "/sms/send", {"phone": [R1], "message": "hi", "src_addr": "Shop"})
        assert json_post(emu, "/sms/status", {"id_sms": ["000001"]}).json() == {
            "success_request": {"info": {"000001": "ENROUTE"}}
        }
        assert json_post(emu, "/sms/status", {"id_sms": [1]}).json() == {
            "success_request": {"info": []}
        }
