"""Reply variants of the real provider, per account and per fault, over real sockets."""

from __future__ import annotations

import base64

import pytest
import requests

from django_smsclub.emulator import DEFAULT_PASSWORD, DEFAULT_TOKEN, DEFAULT_USERNAME

R1, R2 = "380501111111", "380502222222"
LOGIN_RU = "Не найдено соответствие пары логин\\пароль"
LOGIN_EN = "Login and password pair not found"
HTTP = "/hfw_smpp_addon/"


def http_send(emu, to=R1, *, sender="Shop", password=DEFAULT_PASSWORD, message="hi", user=None):
    data = {
        "username": user or DEFAULT_USERNAME,
        "password": password,
        "from": sender,
        "to": to,
        "text": base64.b64encode(message.encode("cp1251")).decode(),
    }
    reply = requests.post(emu.url + HTTP + "httpsendsmspost.php", data=data, timeout=5)
    assert reply.status_code == 200
    return reply.content.decode("cp1251")


def xml_send(emu, to=R1, *, password=DEFAULT_PASSWORD, user=None):
    document = (
        '<?xml version="1.0" encoding="utf-8"?><request_sendsms>'
        f"<username>{user or DEFAULT_USERNAME}</username><password>{password}</password>"
        f"<from>Shop</from><to>{to}</to><text>hi</text></request_sendsms>"
    )
    reply = requests.post(emu.url + "/xml/", data=document.encode(), timeout=5)
    assert reply.status_code == 200
    return reply.content.decode()


def json_post(emu, path, body=None, token=DEFAULT_TOKEN):
    headers = {"Authorization": f"Bearer {token}"}
    return requests.post(emu.url + path, json=body, headers=headers, timeout=5)


def ids_of(body: str) -> list[str]:
    assert body.startswith("=IDS START="), body
    inner = body.split("=IDS START=", 1)[1].split("=IDS END=", 1)[0]
    return [piece for piece in inner.split("<br/>") if piece]


class TestIdStyles:
    @pytest.mark.parametrize(
        ("style", "expected"),
        [
            ("plain", ["1", "2"]),
            ("padded", ["000001", "000002"]),
            ("alnum", ["p000000001", "p000000002"]),
        ],
    )
    def test_every_gateway_hands_out_the_accounts_ids(self, emu, style, expected):
        emu.configure_account(id_style=style)
        assert ids_of(http_send(emu, f"{R1};{R2}")) == expected
        assert f"<mess>{expected[0][:-1]}3</mess>" in xml_send(emu)
        info = json_post(emu, "/sms/send", {"phone": [R1], "message": "x", "src_addr": "Shop"})
        assert list(info.json()["success_request"]["info"]) == [expected[0][:-1] + "4"]
        assert emu.state_of(expected[0]) == "ENROUTE"

    def test_ids_are_opaque_strings(self, emu):
        emu.configure_account(id_style="padded")
        assert ids_of(http_send(emu)) == ["000001"]
        data = {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD, "smscid": "000001;1"}
        url = emu.url + HTTP + "httpgetsmsstatepost.php"
        state = requests.post(url, data=data, timeout=5).content.decode("cp1251")
        assert (
            state == "=IDS START=<br/>000001: ENROUTE<br/>1: неверно указан id<br/>=IDS END=<br/>"
        )

    def test_per_account(self, emu):
        emu.add_account("380671234567", "other-pass", id_style="alnum")
        assert ids_of(http_send(emu)) == ["1"]
        assert ids_of(http_send(emu, user="380671234567", password="other-pass")) == ["p000000002"]


class TestRefusalLanguage:
    @pytest.mark.parametrize(
        ("kwargs", "ru", "en"),
        [
            ({"password": "wrong-password"}, LOGIN_RU, LOGIN_EN),
            (
                {"sender": "Nope"},
                "Неверное альфа-имя отправителя: Nope",
                "Invalid sender name: Nope",
            ),
            (
                {"to": "12345"},
                "Неверный номер получателя: 12345",
                "Invalid recipient number: 12345",
            ),
            (
                {"message": " "},
                "Неверный текст сообщения: пустое сообщение",
                "Invalid message text: empty message",
            ),
            (
                {"message": "Ж" * 470},
                "Неверный текст сообщения: длина 470 символов, допустимо не более 469",
                "Invalid message text: 470 characters long, at most 469 allowed",
            ),
        ],
    )
    def test_http_refusal_is_a_short_text_in_the_accounts_language(self, emu, kwargs, ru, en):
        assert http_send(emu, **kwargs) == ru
        emu.configure_account(refusal_language="en")
        reply = http_send(emu, **kwargs)
        assert reply == en
        assert "=IDS START=" not in reply
        assert emu.accepted == []

    def test_funds(self, emu):
        emu.add_account("380671234567", "poor-pass", balance="0", refusal_language="en")
        assert http_send(emu, user="380671234567", password="poor-pass") == (
            "Insufficient funds on the account"
        )

    def test_unknown_username_answers_russian(self, emu):
        emu.configure_account(refusal_language="en")
        assert http_send(emu, user="380000000000") == LOGIN_RU

    def test_xml_and_soap_follow_the_account(self, emu):
        emu.configure_account(refusal_language="en")
        assert f"<status>ERROR</status><text>{LOGIN_EN}</text>" in xml_send(
            emu, password="bad-pass"
        )
        assert "<text>Invalid recipient number: 1</text>" in xml_send(emu, to="1")

    def test_json_validation_message_follows_the_account(self, emu):
        emu.configure_account(refusal_language="en")
        reply = json_post(emu, "/sms/send", {"phone": [R1], "message": "x", "src_addr": "Nope"})
        assert reply.json()["message"] == "Invalid sender name: Nope"


class TestJsonShapes:
    def test_russian_status_words(self, emu):
        emu.configure_account(status_words="ru")
        emu.set_outcome(R2, "REJECTD")
        sent = json_post(emu, "/sms/send", {"phone": [R1, R2], "message": "x", "src_addr": "Shop"})
        ids = list(sent.json()["success_request"]["info"])
        first = json_post(emu, "/sms/status", {"id_sms": ids}).json()
        assert first == {"success_request": {"info": {ids[0]: "Отправлено", ids[1]: "Отправлено"}}}
        second = json_post(emu, "/sms/status", {"id_sms": ids}).json()
        assert second == {"success_request": {"info": {ids[0]: "Доставлено", ids[1]: "Отклонено"}}}
        # The HTTP and XML gateways keep the SMPP words.
        assert emu.state_of(ids[0]) == "DELIVRD"

    @pytest.mark.parametrize(
        ("word", "russian"),
        [
            ("EXPIRED", "Просрочено"),
            ("UNDELIV", "Недоставляемое"),
            ("Ожидает отправки", "Ожидает отправки"),
            ("FAILED", "FAILED"),
        ],
    )
    def test_each_russian_word(self, emu, word, russian):
        emu.configure_account(status_words="ru")
        emu.deliver_after(polls=0)
        emu.set_outcome(R1, word)
        sent = json_post(emu, "/sms/send", {"phone": [R1], "message": "x", "src_addr": "Shop"})
        [smsc_id] = sent.json()["success_request"]["info"]
        status = json_post(emu, "/sms/status", {"id_sms": [smsc_id]}).json()
        assert status == {"success_request": {"info": {smsc_id: russian}}}

    def test_empty_info_is_a_php_list_or_an_object(self, emu):
        assert json_post(emu, "/sms/status", {"id_sms": ["77"]}).json() == {
            "success_request": {"info": []}
        }
        emu.configure_account(empty_info="object")
        assert json_post(emu, "/sms/status", {"id_sms": ["77"]}).json() == {
            "success_request": {"info": {}}
        }

    def test_blacklisted_and_invalid_numbers(self, emu):
        emu.blacklist(R2)
        reply = json_post(
            emu, "/sms/send", {"phone": [R2, "0000"], "message": "x", "src_addr": "Shop"}
        )
        assert reply.json() == {
            "success_request": {
                "add_info": {
                    R2: "Данный номер находится в черном списке",
                    "0000": "Некорректный номер получателя",
                }
            }
        }

    def test_errors_with_http_200(self, emu):
        emu.configure_account(json_errors_http_200=True)
        reply = json_post(emu, "/sms/send", {"phone": [R1], "message": "x", "src_addr": "Nope"})
        assert reply.status_code == 200
        assert reply.json() == {
            "name": "Bad Request",
            "message": "Неверное альфа-имя отправителя: Nope",
            "code": 0,
            "status": 400,
        }
        emu.json_rate_limit = 1
        json_post(emu, "/sms/balance")
        limited = json_post(emu, "/sms/balance")
        assert limited.status_code == 200
        assert limited.json()["status"] == 429


class TestRefuseFault:
    @pytest.mark.parametrize(
        ("kwargs", "expected"),
        [
            ({}, LOGIN_RU),
            ({"language": "en"}, LOGIN_EN),
            ({"text": "Service blocked"}, "Service blocked"),
        ],
    )
    def test_http(self, emu, kwargs, expected):
        emu.faults.add("refuse", gateway="http", op="send", **kwargs)
        assert http_send(emu) == expected
        assert emu.accepted == []
        assert emu.requests[0].fault == "refuse"
        assert emu.requests[0].status_code == 200

    def test_xml(self, emu):
        emu.faults.add("refuse", gateway="xml", text="Access denied")
        assert "<status>ERROR</status><text>Access denied</text>" in xml_send(emu)
        assert emu.accepted == []

    @pytest.mark.parametrize(
        ("status", "name", "message"),
        [
            (401, "Unauthorized", "Your request was made with invalid credentials."),
            (429, "Too Many Requests", "Rate limit exceeded."),
            (500, "Internal Server Error", "An internal server error occurred."),
            (400, "Bad Request", "Bad Request"),
            (503, "Service Unavailable", "Service temporarily unavailable."),
        ],
    )
    @pytest.mark.parametrize("http_200", [False, True])
    def test_json_error_object(self, emu, status, name, message, http_200):
        emu.faults.add("refuse", gateway="json", status=status, http_200=http_200)
        reply = json_post(emu, "/sms/send", {"phone": [R1], "message": "x", "src_addr": "Shop"})
        assert reply.status_code == (200 if http_200 else status)
        assert reply.json() == {"name": name, "message": message, "code": 0, "status": status}
        assert emu.accepted == []

    def test_narrowed_to_one_path(self, emu):
        emu.faults.add("refuse", path="/v2/sms/send", status=401, times=1)
        body = {"src_addr": "Shop", "data_message": [{"phone": R1, "message": "a"}]}
        v1 = json_post(emu, "/sms/send", {"phone": [R1], "message": "x", "src_addr": "Shop"})
        assert v1.status_code == 200
        assert json_post(emu, "/v2/sms/send", body).status_code == 401
        assert json_post(emu, "/v2/sms/send", body).status_code == 200

    def test_soap_fault(self, emu):
        emu.faults.add("refuse", gateway="soap", op="send", language="en")
        envelope = (
            '<?xml version="1.0"?><SOAP-ENV:Envelope '
            'xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body>'
            f"<sendSms><login>{DEFAULT_USERNAME}</login><password>x</password><alphaName>Shop"
            f"</alphaName><destAddr>{R1}</destAddr><text>hi</text></sendSms>"
            "</SOAP-ENV:Body></SOAP-ENV:Envelope>"
        )
        reply = requests.post(emu.url + "/soap/soapGateway.php", data=envelope, timeout=5)
        assert reply.status_code == 500
        assert f"<faultstring>{LOGIN_EN}</faultstring>" in reply.text

    @pytest.mark.parametrize("kwargs", [{"language": "de"}, {"status": 418}, {"gateway": "sms"}])
    def test_bad_arguments(self, emu, kwargs):
        with pytest.raises(ValueError, match="de|418|sms"):
            emu.faults.add("refuse", **kwargs)


class TestAccountOptions:
    @pytest.mark.parametrize(
        ("options", "match"),
        [
            ({"id_style": "hex"}, "id_style.*'hex'"),
            ({"refusal_language": "uk"}, "refusal_language.*'uk'"),
            ({"status_words": "de"}, "status_words.*'de'"),
            ({"empty_info": "null"}, "empty_info.*'null'"),
            ({"json_errors_http_200": "yes"}, "json_errors_http_200.*'yes'"),
            ({"ids": "padded"}, "unknown account option 'ids'"),
            ({"balance": 5}, "unknown account option 'balance'"),
        ],
    )
    def test_bad_options_name_the_value(self, emu, options, match):
        with pytest.raises(ValueError, match=match):
            emu.configure_account(**options)
        if "balance" not in options:
            with pytest.raises(ValueError, match=match):
                emu.add_account("380671234567", "pass-word", **options)

    def test_unknown_account(self, emu):
        with pytest.raises(KeyError, match="380000000000"):
            emu.configure_account("380000000000", id_style="padded")

    def test_reset_restores_the_defaults(self, emu):
        emu.configure_account(id_style="padded", refusal_language="en", status_words="ru")
        emu.xml_strict_whitespace = True
        emu.reset()
        assert not ids_of(http_send(emu))[0].startswith("0")
        assert http_send(emu, password="wrong-password") == LOGIN_RU
        account = emu.state.account(DEFAULT_USERNAME)
        assert (account.id_style, account.refusal_language, account.status_words) == (
            "plain",
            "ru",
            "en",
        )
        assert emu.xml_strict_whitespace is False


class TestProviderRules:
    """The emulator's own copy of the provider's rules, seen through the HTTP gateway."""

    @pytest.mark.parametrize("name", ["test_an", "club_bulk", "Shop.ua", "Inter-Smart", "SMS CLUB"])
    def test_registered_names_with_punctuation_are_accepted(self, emu, name):
        emu.add_account("380671234567", "pass-word", senders=[name])
        assert ids_of(http_send(emu, sender=name, user="380671234567", password="pass-word"))

    @pytest.mark.parametrize(
        "name", ["Магазин", "Shop🙂", "Shop\tX", "TwelveChars1", "", "Shop!", "Shop/1"]
    )
    def test_invalid_names_are_refused_even_if_registered(self, emu, name):
        emu.add_account("380671234567", "pass-word", senders=[name])
        reply = http_send(emu, sender=name, user="380671234567", password="pass-word")
        assert reply.startswith("Неверное альфа-имя отправителя: ")
        assert emu.accepted == []

    @pytest.mark.parametrize(
        ("number", "expected"),
        [
            ("380671234567", "380671234567"),
            ("0671234567", "380671234567"),
            ("380931234567", "380931234567"),
            ("447911123456", "447911123456"),
            ("48601234567", "48601234567"),
        ],
    )
    def test_numbers_the_provider_takes(self, emu, number, expected):
        assert ids_of(http_send(emu, number))
        assert emu.accepted[0].recipient == expected

    @pytest.mark.parametrize(
        "number",
        [
            "380441234567",  # a Kyiv landline: no SMS
            "38067123456",
            "3806712345678",
            "+380671234567",
            "38067 123 45 67",
            "671234567",
            "1234567890",
            "0000000000000",
            "４４７９１１１２３４５６",
        ],
    )
    def test_numbers_the_provider_refuses(self, emu, number):
        shown = number.encode("cp1251", errors="replace").decode("cp1251")
        assert http_send(emu, number) == f"Неверный номер получателя: {shown}"
        assert emu.accepted == []

    @pytest.mark.parametrize(
        ("message", "parts"),
        [
            ("a" * 160, 1),
            ("a" * 161, 2),
            ("a" * 1071, 7),
            ("Ж" * 70, 1),
            ("Ж" * 71, 2),
            ("Ж" * 469, 7),
            ("a" * 159 + "ж", 3),
            ("~" * 160, 1),
        ],
    )
    def test_parts_as_the_document_counts_them(self, emu, message, parts):
        assert len(ids_of(http_send(emu, message=message))) == parts
        assert "".join(s.part_text for s in emu.accepted) == message

    def test_emoji_count_two_units_on_json(self, emu):
        body = {"phone": [R1], "message": "🙂" * 35, "src_addr": "Shop"}
        assert len(json_post(emu, "/sms/send", body).json()["success_request"]["info"]) == 1
        body["message"] = "🙂" * 235
        assert json_post(emu, "/sms/send", body).json()["message"] == (
            "Неверный текст сообщения: длина 470 символов, допустимо не более 469"
        )
