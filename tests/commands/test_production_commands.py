"""Commands a new user runs first: the emulator with a balance, the demo kept apart from the
project's data, broker and receivers, and one balance format for every gateway."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings

from django_smsclub import signals
from django_smsclub.emulator.state import DEFAULT_PASSWORD, DEFAULT_USERNAME
from django_smsclub.gateways.base import Balance
from django_smsclub.gateways.xml import XmlGateway
from django_smsclub.models import Campaign, DeliveryReport, Message
from django_smsclub.money import format_balance
from tests.support.settings import smsclub_settings


class Output(StringIO):
    """A stdout another thread can read while the command writes."""

    def wait_for(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.getvalue())
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} never appeared in {self.getvalue()!r}")


def test_emulator_command_passes_the_balance_through_over_a_real_socket():
    out = Output()
    seen: dict[str, Balance] = {}

    def ask_then_stop():
        try:
            url = out.wait_for(r"listening on (http://\S+)").group(1)
            gateway = XmlGateway(
                "emu", BASE_URL=url, USERNAME=DEFAULT_USERNAME, PASSWORD=DEFAULT_PASSWORD
            )
            seen["balance"] = gateway.balance()
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=ask_then_stop)
    helper.start()
    call_command("smsclub_emulator", port=0, balance=Decimal("12.34"), stdout=out)
    helper.join()
    assert seen["balance"].amount == Decimal("12.34")
    assert "SMSClub emulator stopped." in out.getvalue()


@pytest.mark.parametrize("backend", ["http", "xml", "json", "soap"])
def test_balance_reads_the_same_for_every_gateway(smsclub_emulator, backend):
    config = smsclub_settings(default=smsclub_emulator.gateway_settings(backend))
    out = StringIO()
    with override_settings(SMSCLUB=config):
        call_command("smsclub_balance", stdout=out)
    assert re.fullmatch(r"default: 1000\.00 UAH( \(credit 0\.00 UAH\))?\n", out.getvalue())


@pytest.mark.parametrize(
    ("balance", "line"),
    [
        (Balance(Decimal("8111.1700"), currency="UAH"), "shop: 8111.17 UAH"),
        (Balance(Decimal("1034.175"), credit=Decimal("0")), "shop: 1034.18 UAH (credit 0.00 UAH)"),
        (Balance(Decimal("5"), currency="EUR"), "shop: 5.00 EUR"),
    ],
)
def test_one_balance_formatter(settings, balance, line):
    settings.SMSCLUB = smsclub_settings(shop={"BACKEND": "locmem"})
    assert format_balance("shop", balance) == line


def test_balance_without_a_currency_in_the_reply_uses_the_accounts(settings):
    settings.SMSCLUB = smsclub_settings(shop={"BACKEND": "locmem", "CURRENCY": "USD"})
    assert format_balance("shop", Balance(Decimal("1"))) == "shop: 1.00 USD"


@pytest.mark.django_db(transaction=True)
def test_demo_leaves_the_project_database_and_receivers_alone():
    heard = []

    def project_receiver(sender, **kwargs):
        heard.append(kwargs)

    signals.message_finished.connect(project_receiver)
    try:
        out = StringIO()
        call_command("smsclub_demo", recipients=20, seed=3, timeout=120, stdout=out)
        # The project's receiver is back once the demo is over.
        assert signals.message_finished.has_listeners()
    finally:
        signals.message_finished.disconnect(project_receiver)
    assert re.search(r"message_finished\s+20", out.getvalue())
    assert "broker memory://" in out.getvalue()
    assert heard == []
    assert (
        Campaign.objects.count() == Message.objects.count() == DeliveryReport.objects.count() == 0
    )


@pytest.mark.django_db(transaction=True)
def test_demo_on_the_project_database_when_asked():
    out = StringIO()
    call_command(
        "smsclub_demo", recipients=5, seed=3, timeout=120, use_project_database=True, stdout=out
    )
    assert Message.objects.count() == 5
