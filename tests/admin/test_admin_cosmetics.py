"""What people read in the admin: the progress bar's categories, the balance's currency,
grammatical Ukrainian titles, readable report rows, help for people rather than developers."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import translation

from django_smsclub.admin import balances
from django_smsclub.charts import progress
from django_smsclub.models import Campaign, DeliveryReport, Message
from django_smsclub.status import Status
from tests.support.settings import smsclub_settings

NUMBERS = ["050 123 45 01", "+380 (67) 123-45-02", "0931234503"]


@pytest.fixture(autouse=True)
def smsclub(settings, smsclub_emulator):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.SMSCLUB = smsclub_settings(default=smsclub_emulator.gateway_settings("xml"))
    cache.clear()
    yield smsclub_emulator
    cache.clear()


def url(name, *args):
    return reverse(f"admin:django_smsclub_{name}", args=args)


def campaign_with(numbers, **fields):
    campaign = Campaign.objects.create(name="Orders", text="Your order is ready", **fields)
    campaign.add_recipients(numbers)
    return campaign


def page(client, path, language="en"):
    with translation.override(language):
        response = client.get(path, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    return response.content.decode()


def legend(html) -> dict[str, str]:
    return dict(re.findall(r"smsclub-legend-(\w+)[^>]*>.*?<strong>(\d+)</strong>", html))


# --- the progress bar -------------------------------------------------------------------------


def test_sending_is_a_category_of_its_own():
    bands = {band.key: band for band in progress({Status.QUEUED: 1, Status.SENDING: 3}).bands}
    assert bands["sending"].count == 3 and str(bands["sending"].label) == "sending"
    assert bands["queued"].count == 1


def test_all_sent_and_unreported_is_progress_of_its_own():
    bar = progress({Status.SENT: 10})
    assert bar.percent == 0  # nothing is final yet
    assert bar.awaiting_report == 10
    assert bar.handed_over_percent == 100
    half = progress({Status.DELIVERED: 2, Status.SENT: 1, Status.QUEUED: 1})
    assert (half.percent, half.handed_over_percent) == (50, 75)


@pytest.mark.django_db
def test_the_campaign_page_shows_sending_and_sent_apart(admin_client):
    campaign = campaign_with(NUMBERS)
    campaign.start()
    first, second, third = Message.objects.order_by("pk")
    Message.objects.filter(pk=first.pk).update(status=Status.SENDING)
    Message.objects.filter(pk__in=[second.pk, third.pk]).update(status=Status.SENT)
    html = page(admin_client, url("campaign_change", campaign.pk))
    assert legend(html)["sending"] == "1"
    assert legend(html)["queued"] == "0"
    assert legend(html)["sent"] == "2"
    assert "sent, awaiting report" in html
    assert 'class="smsclub-band smsclub-sending"' in html
    assert re.search(r'smsclub-percent"[^>]*>0&nbsp;%', html)
    assert re.search(r'smsclub-percent-sent"[^>]*>66&nbsp;% sent', html)


@pytest.mark.django_db
def test_no_sent_percent_when_nothing_awaits_a_report(admin_client):
    campaign = campaign_with(NUMBERS)
    Message.objects.filter(campaign=campaign).update(status=Status.DELIVERED)
    html = page(admin_client, url("campaign_change", campaign.pk))
    assert "smsclub-percent-sent" not in html


# --- the balance's currency -------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("backend", ["http", "xml", "json", "soap"])
def test_every_gateways_balance_shows_its_currency(settings, smsclub, backend):
    settings.SMSCLUB = smsclub_settings(default=smsclub.gateway_settings(backend))
    [info] = balances.gateway_balances(["default"], wait=10)
    assert (info.amount, info.currency) == (Decimal("1000"), "UAH")


@pytest.mark.django_db
def test_the_balance_on_the_page_has_its_currency(admin_client, smsclub, settings):
    settings.SMSCLUB = smsclub_settings(default=smsclub.gateway_settings("http"))
    balances.gateway_balances(["default"], wait=10)
    html = page(admin_client, url("campaign_changelist"))
    assert re.search(r"<strong>1[\s,.]?000\.00 UAH</strong>", html)


# --- Ukrainian titles -------------------------------------------------------------------------


@pytest.mark.django_db
def test_ukrainian_titles_inflect_the_campaign(admin_client):
    campaign = campaign_with(NUMBERS)
    change = page(admin_client, url("campaign_change", campaign.pk), "uk")
    assert "Змінити кампанію" in change and "Змінити кампанія" not in change
    add = page(admin_client, url("campaign_add"), "uk")
    assert "Додати кампанію" in add and "Додати кампанія" not in add
    listing = page(admin_client, url("campaign_changelist"), "uk")
    assert "Оберіть кампанію для зміни" in listing
    assert "Додати кампанію" in listing and "Додати кампанія" not in listing


@pytest.mark.django_db
def test_a_viewer_gets_the_view_titles(db):
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="django_smsclub", codename="view_campaign"
        )
    )
    client = Client()
    client.force_login(user)
    campaign = campaign_with(NUMBERS)
    assert "Переглянути кампанію" in page(client, url("campaign_change", campaign.pk), "uk")
    assert "View campaign" in page(client, url("campaign_change", campaign.pk))


@pytest.mark.django_db
def test_russian_titles_inflect_the_campaign(admin_client):
    campaign = campaign_with(NUMBERS)
    assert "Изменить кампанию" in page(admin_client, url("campaign_change", campaign.pk), "ru")


# --- report rows and help texts ---------------------------------------------------------------


@pytest.mark.django_db
def test_report_rows_read_as_part_and_status():
    campaign = campaign_with(NUMBERS[:1])
    message = campaign.messages.get()
    report = DeliveryReport.objects.create(
        message=message,
        part=1,
        smsc_id="12",
        gateway="default",
        raw_status="DELIVRD",
        status=Status.DELIVERED,
    )
    assert str(report) == "Part 1: delivered (DELIVRD)"
    with translation.override("uk"):
        assert str(report) == "Частина 1: доставлено (DELIVRD)"


@pytest.mark.django_db
def test_report_rows_on_the_message_page_are_readable(admin_client):
    campaign = campaign_with(NUMBERS[:1])
    message = campaign.messages.get()
    DeliveryReport.objects.create(
        message=message, part=1, smsc_id="12", gateway="default", status=Status.SENT
    )
    html = page(admin_client, url("message_change", message.pk))
    assert "Part 1: sent" in html and "12: sent" not in html


@pytest.mark.django_db
def test_no_developer_hint_on_the_campaign_page(admin_client):
    campaign = campaign_with(NUMBERS)
    campaign.start()  # sender, text and gateway are read-only now
    for path in (url("campaign_add"), url("campaign_change", campaign.pk)):
        html = page(admin_client, path)
        assert "SMSCLUB" not in html
        assert "The name recipients see as the sender" in html
    read_only = page(admin_client, url("campaign_change", campaign.pk))
    assert "The SMSClub account and interface it is sent through." in read_only


# --- structured log records -------------------------------------------------------------------


@pytest.mark.django_db
def test_a_balance_defect_is_logged_with_gateway_and_outcome(settings, caplog, monkeypatch):
    from django_smsclub.gateways.locmem import LocmemGateway

    def broken(self):
        raise KeyError("defect")

    monkeypatch.setattr(LocmemGateway, "balance", broken)
    settings.SMSCLUB = smsclub_settings(shop={"BACKEND": "locmem"}, DEFAULT_GATEWAY="shop")
    with caplog.at_level("ERROR", logger="django_smsclub"):
        [info] = balances.gateway_balances(["shop"], wait=10)
    assert info.error == "KeyError"
    [record] = [r for r in caplog.records if "balance failed" in r.getMessage()]
    assert (record.gateway, record.outcome) == ("shop", "KeyError")
