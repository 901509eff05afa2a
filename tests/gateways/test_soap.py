"""What only the SOAP gateway does: the WSDL, rpc/encoded envelopes, faults, safe parsing."""

from __future__ import annotations

import logging
import threading
import uuid
from decimal import Decimal
from xml.sax.saxutils import escape

import pytest
import requests
from lxml import etree

from django_smsclub import checks
from django_smsclub.emulator import DEFAULT_PASSWORD, Emulator, rules, server, soap_api
from django_smsclub.emulator.wire import Reply, Route
from django_smsclub.exceptions import (
    AmbiguousSend,
    AuthenticationError,
    GatewayUnavailable,
    ProviderRefused,
)
from django_smsclub.gateways import Outgoing, get_gateway
from django_smsclub.gateways.soap import DEFAULT_WSDL, SoapGateway, WsdlTransport
from django_smsclub.gateways.soap_envelope import SOAP_ENC, SOAP_ENCODING_SCHEMA, build_envelope
from tests.support.settings import smsclub_settings

A, B, C = "380501111111", "380672222222", "380933333333"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XML = "text/xml; charset=utf-8"


def make(emu: Emulator, **extra) -> SoapGateway:
    """A gateway on ``emu`` with a WSDL URL of its own.

    The WSDL cache lasts the whole process and the emulator's ports are reused, so a test that
    counts WSDL fetches must not find one cached by an earlier test.
    """
    wsdl = f"{emu.url}/soap/soapGateway.wsdl?run={uuid.uuid4().hex}"
    return SoapGateway("soap", **emu.gateway_settings("soap", **{"WSDL": wsdl, **extra}))


def out(*pairs: tuple[str, str]) -> list[Outgoing]:
    return [Outgoing(recipient, text) for recipient, text in pairs]


def logged(emu: Emulator, op: str) -> list[dict]:
    return [r.params for r in emu.requests if r.gateway == "soap" and r.op == op]


def answer_with(monkeypatch, body: bytes | str, status: int = 200, content_type: str = XML):
    """Make the emulator's SOAP endpoint answer ``body`` to every call."""
    payload = body.encode("utf-8") if isinstance(body, str) else body

    def route(request):
        call = soap_api.read_call(request.body)
        op = soap_api.OPS.get(call.operation, "call")
        return Route(
            "soap", op, lambda state, req: Reply(status, content_type, payload), lambda r: {}
        )

    monkeypatch.setitem(server.DISPATCH, soap_api.ENDPOINT_PATH, route)


def serve_wsdl(monkeypatch, document: str) -> None:
    reply = Reply(200, XML, document.encode("utf-8"))
    route = Route("soap", "wsdl", lambda state, request: reply, lambda request: {})
    monkeypatch.setitem(server.ROUTES, soap_api.WSDL_PATH, route)


def envelope(result: str, prolog: str = "") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{prolog}'
        f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP_ENV}" xmlns:ns1="urn:soapGateway" '
        f'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="{XSI}" '
        'xmlns:ns2="http://xml.apache.org/xml-soap" '
        f'xmlns:SOAP-ENC="{SOAP_ENC}"><SOAP-ENV:Body>{result}</SOAP-ENV:Body></SOAP-ENV:Envelope>'
    )


def fault(reason: str, code: str = "SOAP-ENV:Client") -> str:
    return envelope(
        f"<SOAP-ENV:Fault><faultcode>{code}</faultcode>"
        f"<faultstring>{escape(reason)}</faultstring></SOAP-ENV:Fault>"
    )


def php_map(*pairs: tuple[str, str], key_type: str = "xsd:int") -> str:
    items = "".join(
        f'<item><key xsi:type="{key_type}">{k}</key><value xsi:type="xsd:string">{v}</value></item>'
        for k, v in pairs
    )
    result = f'<return xsi:type="ns2:Map">{items}</return>'
    return f"<ns1:getReportsResponse>{result}</ns1:getReportsResponse>"


class TestWsdl:
    def test_where_the_wsdl_and_the_balance_come_from(self):
        default = SoapGateway("a")
        assert (default.wsdl_url, default.base_url) == (DEFAULT_WSDL, "http://smpp.smsclub.mobi")
        proxied = SoapGateway("b", BASE_URL="http://proxy.local/")
        assert proxied.wsdl_url == "http://proxy.local/soap/soapGateway.wsdl"
        assert proxied.base_url == "http://proxy.local"
        explicit = SoapGateway(
            "c", WSDL="https://gw.example/s.wsdl", BALANCE_URL="https://bal.example/"
        )
        assert (explicit.wsdl_url, explicit.base_url) == (
            "https://gw.example/s.wsdl",
            "https://bal.example",
        )

    def test_building_a_gateway_fetches_nothing(self, emu):
        make(emu)
        assert emu.requests == []

    def test_the_wsdl_is_fetched_once_per_process_and_parsed_once_per_gateway(self, emu):
        wsdl = f"{emu.url}/soap/soapGateway.wsdl?run={uuid.uuid4().hex}"
        gateways = [make(emu, WSDL=wsdl) for _ in range(3)]
        for gateway in gateways:
            for _ in range(2):
                [outcome] = gateway.send("Shop", out((A, "hi")))
                assert gateway.fetch_states(outcome.smsc_ids)
        assert len(logged(emu, "wsdl")) == 1
        assert len(logged(emu, "send")) == 6
        assert len({id(g.service_description()) for g in gateways}) == 3

    def test_threads_sharing_a_new_gateway_fetch_the_wsdl_once(self, emu):
        gateway = make(emu)
        outcomes = []
        threads = [
            threading.Thread(target=lambda: outcomes.extend(gateway.send("Shop", out((A, "hi")))))
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(outcomes) == 8 and all(o.accepted for o in outcomes)
        assert len(logged(emu, "wsdl")) == 1

    def test_the_description_comes_from_the_wsdl(self, emu):
        service = make(emu).service_description()
        assert service.endpoint == emu.url + "/soap/soapGateway.php"
        send = service.operations["sendSms"]
        assert (send.namespace, send.soap_action) == ("urn:soapGateway", "urn:soapGateway#sendSms")
        assert send.parts == ("login", "password", "alphaName", "destAddr", "text")
        assert service.operations["getReports"].parts == ("login", "password", "smcIds")

    def test_only_the_wsdl_goes_over_the_network(self, emu, monkeypatch):
        gateway = make(emu)
        fetched = []
        get = gateway.session.get

        def spy(url, **kwargs):
            fetched.append(url)
            return get(url, **kwargs)

        monkeypatch.setattr(gateway.session, "get", spy)
        gateway.service_description()
        # The WSDL refers to SOAP-ENC types; their schema is answered from the bundled copy.
        assert fetched == [gateway.wsdl_url]
        assert WsdlTransport(gateway).load(SOAP_ENC) == SOAP_ENCODING_SCHEMA

    def test_the_gateways_session_is_left_as_it_was(self, emu):
        gateway = make(emu)
        gateway.send("Shop", out((A, "hi")))
        assert gateway.session.headers["User-Agent"] == "django-smsclub"
        assert "file://" not in gateway.session.adapters

    @pytest.mark.parametrize("fault_kind", ["http_500", "drop_before", "drop_after", "garbled"])
    def test_a_wsdl_that_cannot_be_had_is_unavailable_and_nothing_is_sent(self, emu, fault_kind):
        emu.faults.add(fault_kind, gateway="soap", op="wsdl", times=1, seed=1)
        gateway = make(emu)
        [outcome] = gateway.send("Shop", out((A, "hi")))
        assert isinstance(outcome.error, GatewayUnavailable) and outcome.error.retryable
        assert "WSDL" in str(outcome.error)
        assert logged(emu, "send") == [] and emu.accepted == []
        [outcome] = gateway.send("Shop", out((A, "hi")))
        assert outcome.accepted

    def test_a_slow_wsdl_times_out_as_unavailable(self, emu):
        emu.faults.add("latency", gateway="soap", op="wsdl", seconds=1.0, times=1)
        with pytest.raises(GatewayUnavailable, match="WSDL"):
            make(emu, TIMEOUT=0.3).fetch_states(["1"])

    def test_balance_comes_from_the_http_gateway_without_the_wsdl(self, emu):
        gateway = make(emu, BASE_URL=None, BALANCE_URL=emu.url)
        assert gateway.balance().amount == Decimal("1000")
        assert [r.path for r in emu.requests] == ["/hfw_smpp_addon/httpgetbalance.php"]

    def test_the_soap_alias_builds_this_gateway(self, emu, settings):
        settings.SMSCLUB = smsclub_settings(default=emu.gateway_settings("soap"))
        gateway = get_gateway()
        assert isinstance(gateway, SoapGateway)
        [outcome] = gateway.send(None, out((A, "hi")))
        assert outcome.accepted

    def test_system_checks_want_a_username_and_password(self, settings):
        settings.SMSCLUB = smsclub_settings(default={"BACKEND": "soap", "SENDER": "Shop"})
        errors = [e for e in checks.check_settings() if e.id == "django_smsclub.E004"]
        assert [e.msg for e in errors] == [
            "SMSCLUB['GATEWAYS']['default'] has no USERNAME or PASSWORD; SoapGateway cannot log in."
        ]


class TestWire:
    def test_one_number_goes_as_a_string_several_as_an_array(self, emu):
        gateway = make(emu)
        gateway.send("Shop", out((A, "one")))
        gateway.send("Shop", out((A, "two"), (B, "two")))
        first, second = logged(emu, "send")
        assert first["destAddr"] == A
        assert second["destAddr"] == [A, B]

    def test_numbers_written_by_people_go_out_normalised(self, emu):
        outcomes = make(emu).send(
            "Shop", out(("(050)123-45-67", "hi"), ("+380(99)123-45-67", "hi"))
        )
        assert all(o.accepted for o in outcomes)
        [params] = logged(emu, "send")
        assert params["destAddr"] == ["380501234567", "380991234567"]

    def test_the_envelope_is_rpc_encoded_as_php_writes_it(self, emu):
        operation = make(emu).service_description().operations["sendSms"]
        document = build_envelope(operation, ["login", "pw", "Shop", [A, B], "a < b & c ]]>"])
        root = etree.fromstring(document)
        assert root.get(f"{{{SOAP_ENV}}}encodingStyle") == SOAP_ENC
        [call] = root.find(f"{{{SOAP_ENV}}}Body")
        assert call.tag == "{urn:soapGateway}sendSms"
        names = [child.tag for child in call]
        assert names == ["login", "password", "alphaName", "destAddr", "text"]
        dest = call.find("destAddr")
        assert dest.get(f"{{{XSI}}}type") == "SOAP-ENC:Array"
        assert dest.get(f"{{{SOAP_ENC}}}arrayType") == "xsd:string[2]"
        assert [(i.tag, i.text, i.get(f"{{{XSI}}}type")) for i in dest] == [
            ("item", A, "xsd:string"),
            ("item", B, "xsd:string"),
        ]
        assert call.findtext("text") == "a < b & c ]]>"
        assert call.find("text").get(f"{{{XSI}}}type") == "xsd:string"

    def test_status_ids_go_as_a_string_or_an_array_and_any_id_type_is_asked(self, emu):
        gateway = make(emu)
        outcomes = gateway.send("Shop", out((A, "hi"), (B, "hi"), (C, "hi")))
        ids = [o.smsc_ids[0] for o in outcomes]
        assert gateway.fetch_states(ids) == dict.fromkeys(ids, "ENROUTE")
        assert gateway.fetch_states(ids[:1]) == {ids[0]: "DELIVRD"}
        assert gateway.fetch_states([int(ids[1])]) == {ids[1]: "DELIVRD"}
        asked = [params["smcIds"] for params in logged(emu, "state")]
        assert asked == [ids, ids[0], ids[1]]


class TestReplies:
    @pytest.mark.parametrize(
        "result, expected",
        [
            (
                php_map(("7", "delivrd"), ("8", "2165-05-28 21:14:21")),
                {"7": "delivrd", "8": "2165-05-28 21:14:21"},
            ),
            (php_map(("000002", "UNDELIV"), key_type="xsd:string"), {"000002": "UNDELIV"}),
            (php_map(), {}),
            ("<ns1:getReportsResponse><return/></ns1:getReportsResponse>", {}),
            (
                '<ns1:getReportsResponse><return href="#m"/></ns1:getReportsResponse>'
                '<multiRef id="m"><item><key>9</key><value>EXPIRED</value></item></multiRef>',
                {"9": "EXPIRED"},
            ),
        ],
    )
    def test_report_maps_in_the_shapes_servers_write(self, emu, monkeypatch, result, expected):
        answer_with(monkeypatch, envelope(result))
        assert make(emu).fetch_states(["7"]) == expected

    @pytest.mark.parametrize(
        "result",
        [
            '<ns1:sendSmsResponse><return xsi:type="xsd:string">41</return></ns1:sendSmsResponse>',
            '<ns1:sendSmsResponse><return href="#a"/></ns1:sendSmsResponse>'
            '<multiRef id="a" xsi:type="SOAP-ENC:Array"><item>41</item></multiRef>',
        ],
    )
    def test_id_lists_in_the_shapes_servers_write(self, emu, monkeypatch, result):
        answer_with(monkeypatch, envelope(result))
        [outcome] = make(emu).send("Shop", out((A, "hi")))
        assert outcome.smsc_ids == ("41",)

    @pytest.mark.parametrize(
        "result",
        [
            php_map(("1", "x")).replace("getReportsResponse", "sendSmsResponse"),
            "<ns1:sendSmsResponse/>",
            '<ns1:sendSmsResponse><return xsi:type="SOAP-ENC:Array"><item>41</item>'
            "</return></ns1:sendSmsResponse>",
            "<ns1:sendSmsResponse><return><item><item>1</item></item></return></ns1:sendSmsResponse>",
            '<ns1:sendSmsResponse><return href="#nowhere"/></ns1:sendSmsResponse>',
        ],
    )
    def test_a_send_reply_that_does_not_fit_is_ambiguous(self, emu, monkeypatch, result):
        answer_with(monkeypatch, envelope(result))
        # Two recipients: one ID alone cannot be given to either.
        outcomes = make(emu).send("Shop", out((A, "hi"), (B, "hi")))
        assert all(isinstance(o.error, AmbiguousSend) for o in outcomes), outcomes

    def test_a_status_reply_that_does_not_fit_is_unavailable(self, emu, monkeypatch):
        answer_with(
            monkeypatch, envelope('<r><return xsi:type="SOAP-ENC:Array"><i>1</i></return></r>')
        )
        with pytest.raises(GatewayUnavailable, match="garbled"):
            make(emu).fetch_states(["1"])

    @pytest.mark.parametrize(
        "status, body, content_type",
        [
            (500, b"<h1>500 Internal Server Error</h1>", "text/html"),
            (500, b"", "text/html"),
            (502, b"Bad Gateway", "text/plain"),
            (200, b"=IDS START=<br/>1<br/>=IDS END=", "text/html"),
            (200, envelope("").encode(), XML),
            (404, b"<html><body>Not here</body></html>", "text/html"),
        ],
    )
    def test_anything_but_a_result_or_a_fault_is_ambiguous_on_send(
        self, emu, monkeypatch, status, body, content_type
    ):
        answer_with(monkeypatch, body, status, content_type)
        gateway = make(emu)
        [outcome] = gateway.send("Shop", out((A, "hi")))
        assert isinstance(outcome.error, AmbiguousSend), outcome.error
        with pytest.raises(GatewayUnavailable):
            gateway.fetch_states(["1"])


class TestFaults:
    def test_a_refused_login_is_an_authentication_error_for_every_operation(self, emu):
        gateway = make(emu, PASSWORD="not-the-password")
        [outcome] = gateway.send("Shop", out((A, "hi")))
        assert isinstance(outcome.error, AuthenticationError)
        with pytest.raises(AuthenticationError, match="логин"):
            gateway.fetch_states(["1"])

    @pytest.mark.parametrize(
        "case, expected",
        [
            ("sender", rules.SENDER_ERROR.format("Stranger")),
            ("text", rules.TEXT_ERROR.format("пустое сообщение")),
            ("number", rules.RECIPIENT_ERROR.format("12345")),
            ("funds", rules.FUNDS_ERROR),
        ],
    )
    def test_refusals_carry_the_providers_words(self, emu, case, expected):
        gateway = make(emu)
        # Validation keeps a bad text or number off the wire; send_batch is called to make the
        # emulator refuse one, as the provider would if the rules ever drifted apart.
        if case == "sender":
            [outcome] = gateway.send("Stranger", out((A, "hi")))
            error = outcome.error
        else:
            if case == "funds":
                emu.add_account("380671112233", "poor-password", balance=0)
                gateway = make(emu, USERNAME="380671112233", PASSWORD="poor-password")
            message = {"text": (A, ""), "number": ("12345", "hi"), "funds": (A, "hi")}[case]
            with pytest.raises(ProviderRefused) as info:
                gateway.send_batch("Shop", out(message))
            error = info.value
        assert isinstance(error, ProviderRefused) and error.provider_text == expected
        assert not error.retryable and not error.may_have_sent
        assert emu.accepted == []

    @pytest.mark.parametrize("status", [200, 500])
    def test_a_fault_is_a_fault_whatever_the_http_status(self, emu, monkeypatch, status):
        answer_with(monkeypatch, fault("Bad Request"), status)
        [outcome] = make(emu).send("Shop", out((A, "hi")))
        assert isinstance(outcome.error, ProviderRefused)
        assert outcome.error.provider_text == "Bad Request"

    def test_a_fault_without_a_reason_still_says_something(self, emu, monkeypatch):
        answer_with(
            monkeypatch,
            envelope("<SOAP-ENV:Fault><faultcode>SOAP-ENV:Server</faultcode></SOAP-ENV:Fault>"),
            500,
        )
        with pytest.raises(ProviderRefused, match="SOAP-ENV:Server"):
            make(emu).fetch_states(["1"])

    def test_a_timeout_of_a_status_query_is_unavailable(self, emu):
        gateway = make(emu, TIMEOUT=0.3)
        gateway.service_description()
        emu.faults.add("latency", gateway="soap", op="state", seconds=1.0, times=1)
        with pytest.raises(GatewayUnavailable):
            gateway.fetch_states(["1"])

    def test_a_vanished_endpoint_after_the_wsdl_is_unavailable(self, emu):
        gateway = make(emu)
        gateway.service_description()
        emu.stop()
        [outcome] = gateway.send("Shop", out((A, "hi")))
        assert isinstance(outcome.error, GatewayUnavailable) and "cannot connect" in str(
            outcome.error
        )


class TestSafeParsing:
    @pytest.mark.parametrize(
        "prolog",
        [
            '<!DOCTYPE SOAP-ENV:Envelope [<!ENTITY leak SYSTEM "file:///etc/passwd">]>',
            '<!DOCTYPE SOAP-ENV:Envelope [<!ENTITY a "aaaaaaaaaa">'
            '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>',
            '<!DOCTYPE SOAP-ENV:Envelope SYSTEM "http://127.0.0.1:9/evil.dtd">',
        ],
    )
    def test_a_reply_with_a_dtd_or_entities_is_refused_unread(self, emu, monkeypatch, prolog):
        entity = "&leak;" if "leak" in prolog else ("&c;" if "ENTITY c" in prolog else "")
        result = (
            f'<ns1:sendSmsResponse><return xsi:type="xsd:string">41{entity}</return>'
            "</ns1:sendSmsResponse>"
        )
        answer_with(monkeypatch, envelope(result, prolog))
        gateway = make(emu)
        [outcome] = gateway.send("Shop", out((A, "hi")))
        assert isinstance(outcome.error, AmbiguousSend)
        assert "DOCTYPE" in str(outcome.error) and "root:" not in str(outcome.error)
        with pytest.raises(GatewayUnavailable, match="DOCTYPE"):
            gateway.fetch_states(["1"])

    @pytest.mark.parametrize(
        "prolog",
        [
            '<!DOCTYPE definitions [<!ENTITY leak SYSTEM "file:///etc/passwd">]>',
            "<!DOCTYPE definitions>",
        ],
    )
    def test_a_wsdl_with_a_dtd_or_entities_is_refused(self, emu, monkeypatch, prolog):
        document = soap_api.WSDL_TEMPLATE.format(location=f'"{emu.url}/soap/soapGateway.php"')
        serve_wsdl(monkeypatch, document.replace("?>", "?>" + prolog, 1))
        [outcome] = make(emu).send("Shop", out((A, "hi")))
        assert isinstance(outcome.error, GatewayUnavailable)
        assert "Forbidden" in str(outcome.error) and "root:" not in str(outcome.error)
        assert logged(emu, "send") == []

    @pytest.mark.parametrize(
        "location", ["{url}/evil.xsd", "/etc/hostname", "file:///etc/hostname", "evil.xsd"]
    )
    def test_a_wsdl_importing_other_documents_is_refused_without_fetching_them(
        self, emu, monkeypatch, location
    ):
        document = soap_api.WSDL_TEMPLATE.format(location=f'"{emu.url}/soap/soapGateway.php"')
        imported = (
            f'<xsd:import namespace="urn:evil" schemaLocation="{location.format(url=emu.url)}"/>'
        )
        document = document.replace(
            '<xsd:schema targetNamespace="urn:soapGateway">',
            '<xsd:schema targetNamespace="urn:soapGateway">' + imported,
        )
        serve_wsdl(monkeypatch, document)
        [outcome] = make(emu).send("Shop", out((A, "hi")))
        assert isinstance(outcome.error, GatewayUnavailable)
        assert "ExternalReferenceForbidden" in str(outcome.error)
        assert [r.path for r in emu.requests] == [soap_api.WSDL_PATH]

    def test_a_wsdl_without_the_operations_is_unavailable_and_says_why(self, emu, monkeypatch):
        document = soap_api.WSDL_TEMPLATE.format(location=f'"{emu.url}/soap/soapGateway.php"')
        serve_wsdl(monkeypatch, document.replace('style="rpc"', 'style="document"'))
        with pytest.raises(GatewayUnavailable, match="not rpc"):
            make(emu).fetch_states(["1"])


class TestCredentials:
    def test_no_password_in_any_log_line_at_debug(self, emu, caplog):
        password = "s3cret<&>pw"
        emu.add_account("380671112233", password)
        for name in ("", "zeep", "zeep.transports", "urllib3", "django_smsclub"):
            caplog.set_level(logging.DEBUG, logger=name)
        gateway = make(emu, USERNAME="380671112233", PASSWORD=password)
        [outcome] = gateway.send("Shop", out((A, "hi")))
        gateway.fetch_states(outcome.smsc_ids)
        assert gateway.balance().amount == Decimal("999.50")
        errors = []
        for kind in ("http_500", "drop_after", "garbled"):
            emu.faults.add(kind, gateway="soap", times=1)
            errors.append(gateway.send("Shop", out((A, "hi")))[0].error)
        assert all(errors)
        # zeep logs the envelopes it posts, whole, on this logger, as its Transport.post does.
        operation = gateway.service_description().operations["sendSms"]
        envelope_text = build_envelope(operation, ["380671112233", password, "Shop", A, "hi"])
        logging.getLogger("zeep.transports").debug(
            "HTTP Post to %s:\n%s", "http://gate.example/", envelope_text.decode()
        )
        text = caplog.text + " ".join(map(str, errors))
        [posted] = [
            r for r in caplog.records if r.funcName == "test_no_password_in_any_log_line_at_debug"
        ]
        assert posted.name == "zeep.transports" and "***" in posted.getMessage()
        for form in (password, escape(password), requests.utils.quote(password, safe="")):
            assert form not in text
        assert DEFAULT_PASSWORD not in text
