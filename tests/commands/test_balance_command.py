"""get_gateway() from settings, and ``manage.py smsclub_balance`` against the emulator."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from django_smsclub.exceptions import ConfigurationError
from django_smsclub.gateways import get_gateway
from django_smsclub.gateways.json import JsonGateway
from django_smsclub.gateways.xml import XmlGateway
from tests.support.settings import smsclub_settings


def test_get_gateway_builds_the_configured_backend_and_reuses_it(smsclub_emulator):
    config = smsclub_settings(
        default=smsclub_emulator.gateway_settings("xml"),
        api=smsclub_emulator.gateway_settings("json"),
    )
    with override_settings(SMSCLUB=config):
        default = get_gateway()
        assert isinstance(default, XmlGateway) and default.name == "default"
        assert get_gateway("default") is default
        assert isinstance(get_gateway("api"), JsonGateway)
    changed = smsclub_settings(default=smsclub_emulator.gateway_settings("xml", TIMEOUT=3))
    with override_settings(SMSCLUB=changed):
        assert get_gateway() is not default
        assert get_gateway().timeout[1] == 3


def test_get_gateway_names_an_unknown_gateway():
    with override_settings(SMSCLUB=smsclub_settings(default={"BACKEND": "locmem"})):
        with pytest.raises(ConfigurationError, match="'nope'.*'default'"):
            get_gateway("nope")


def test_get_gateway_names_a_backend_that_cannot_be_imported():
    with override_settings(SMSCLUB=smsclub_settings(default={"BACKEND": "no.such.Gateway"})):
        with pytest.raises(ConfigurationError, match="no.such.Gateway"):
            get_gateway()


@pytest.mark.parametrize("backend", ["http", "xml", "json"])
def test_balance_command_prints_the_balance(smsclub_emulator, backend):
    config = smsclub_settings(default=smsclub_emulator.gateway_settings(backend))
    out = StringIO()
    with override_settings(SMSCLUB=config):
        call_command("smsclub_balance", stdout=out)
    assert out.getvalue().startswith("default: 1000")


def test_balance_command_reports_a_refused_login_without_the_password(smsclub_emulator):
    gateway = smsclub_emulator.gateway_settings("xml", PASSWORD="hunter2-wrong")
    with override_settings(SMSCLUB=smsclub_settings(default=gateway)):
        with pytest.raises(CommandError) as info:
            call_command("smsclub_balance", gateway="default")
    assert "логин" in str(info.value) and "hunter2" not in str(info.value)


def test_balance_command_names_an_unknown_gateway(smsclub_emulator):
    config = smsclub_settings(default=smsclub_emulator.gateway_settings("xml"))
    with override_settings(SMSCLUB=config):
        with pytest.raises(CommandError, match="'other'"):
            call_command("smsclub_balance", gateway="other")
