"""A configuration error that reaches a send surely sent nothing: the message fails with the
reason, never ``unknown`` (issue 10, item 5)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from django_smsclub import send_sms, services
from django_smsclub.exceptions import ConfigurationError, GatewayMisconfigured
from django_smsclub.gateways import Outgoing
from django_smsclub.gateways.http import HttpGateway
from django_smsclub.gateways.json import JsonGateway
from django_smsclub.gateways.xml import XmlGateway
from django_smsclub.models import Message
from django_smsclub.status import Status
from tests.support.settings import gateway, smsclub_settings

A, B = "380501111111", "380672222222"


@pytest.mark.parametrize(
    "base_url",
    [
        "smpp.smsclub.mobi",  # MissingSchema
        "localhost:8000",  # InvalidSchema: "localhost" read as the scheme
        "ftp://smpp.smsclub.mobi",  # InvalidSchema
        "http://",  # InvalidURL: no host
    ],
)
@pytest.mark.parametrize("cls", [HttpGateway, XmlGateway, JsonGateway])
def test_a_url_requests_cannot_use_is_misconfigured_never_maybe_sent(cls, base_url):
    gw = cls("bad", USERNAME="u", PASSWORD="pw-secret-1", TOKEN="tok-secret-1", BASE_URL=base_url)
    outcomes = gw.send("Shop", [Outgoing(A, "hi"), Outgoing(B, "hi")])
    for outcome in outcomes:
        assert type(outcome.error) is GatewayMisconfigured
        assert not outcome.error.may_have_sent and not outcome.error.retryable
        assert "BASE_URL" in str(outcome.error)
        assert "secret" not in str(outcome.error)
    with pytest.raises(GatewayMisconfigured):
        gw.fetch_states(["1"])


def test_an_unusable_header_is_misconfigured(canned):
    gw = JsonGateway("bad", TOKEN="tok\nen", BASE_URL=canned.url)
    [outcome] = gw.send("Shop", [Outgoing(A, "hi")])
    assert type(outcome.error) is GatewayMisconfigured
    assert canned.bodies == []


class BuildFails(HttpGateway):
    def send_batch(self, sender, messages):
        raise ConfigurationError("gateway 'bad': OPTIONS['X'] 'y' is not a number")


def test_a_configuration_error_while_building_the_request_is_misconfigured():
    [outcome] = BuildFails("bad").send("Shop", [Outgoing(A, "hi")])
    assert type(outcome.error) is GatewayMisconfigured
    assert "OPTIONS['X'] 'y'" in str(outcome.error)


@pytest.fixture
def schemeless(settings):
    settings.SMSCLUB = smsclub_settings(
        default=gateway(
            "http", USERNAME="u", PASSWORD="p", SENDER="Shop", BASE_URL="smpp.smsclub.mobi"
        ),
        MAX_SEND_ATTEMPTS=3,
    )


@pytest.mark.django_db
@pytest.mark.usefixtures("schemeless")
def test_a_base_url_without_scheme_fails_the_message_with_the_reason_not_unknown():
    [message] = send_sms(["0501234567"], "Hi")
    services.send_due("default")
    message.refresh_from_db()
    assert message.status == Status.FAILED
    assert "BASE_URL" in message.error and "nothing was sent" in message.error
    assert message.attempts == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("schemeless")
def test_send_inline_prints_the_error_and_exits_non_zero():
    out = StringIO()
    with pytest.raises(CommandError, match="1 of 1 message.*failed.*BASE_URL"):
        call_command("smsclub_send", "--to=0501234567", "--text=Hi", "--inline", stdout=out)
    assert Message.objects.get().status == Status.FAILED
    assert "failed" in out.getvalue().splitlines()[-1]
