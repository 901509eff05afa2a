"""The campaign page's delivery by operator (a table and bars) and its CSV download, with the
permissions the download needs."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import translation

from django_smsclub.charts import duration_text, operator_chart
from django_smsclub.models import Campaign, Message
from django_smsclub.operators import Operator
from django_smsclub.reports import OperatorStats
from django_smsclub.status import Status
from tests.support.settings import smsclub_settings

SENT = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def smsclub(settings, smsclub_emulator):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.SMSCLUB = smsclub_settings(default=smsclub_emulator.gateway_settings("xml"))
    cache.clear()
    yield smsclub_emulator
    cache.clear()


def url(name, *args):
    return reverse(f"admin:django_smsclub_{name}", args=args)


def client_with(*codenames):
    user = User.objects.create_user("person", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_smsclub", codename__in=codenames)
    )
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def done_campaign(db):
    """A done campaign: Kyivstar 3 delivered (10, 20, 40 s) and 1 undelivered, Vodafone 1
    delivered, lifecell 1 failed with a formula-like error."""
    campaign = Campaign.objects.create(name="Sale", text="Hi", state=Campaign.State.DONE)

    def add(number, operator, status, took, error=""):
        Message.objects.create(
            campaign=campaign,
            recipient=number,
            sender="Shop",
            text="Hi",
            gateway="default",
            operator=operator,
            status=status,
            error=error,
            sent_at=SENT,
            finished_at=SENT + timedelta(seconds=took),
        )

    for i, took in enumerate((10, 20, 40)):
        add(f"38067123450{i}", Operator.KYIVSTAR, Status.DELIVERED, took)
    add("380671234509", Operator.KYIVSTAR, Status.UNDELIVERED, 100)
    add("380501234500", Operator.VODAFONE, Status.DELIVERED, 75)
    add("380631234500", Operator.LIFECELL, Status.REJECTED, 1, error="=cmd|'/C calc'!A0")
    return campaign


def test_the_campaign_page_shows_delivery_by_operator(admin_client, done_campaign):
    page = admin_client.get(url("campaign_change", done_campaign.pk)).content.decode()

    assert "Delivery by operator" in page
    table = page[page.index('class="smsclub-operator-table"') :]
    table = table[: table.index("</table>")]
    assert 'data-operator="kyivstar"' in table and '<th scope="row">Kyivstar</th>' in table
    assert '<th scope="row">Vodafone Ukraine</th>' in table
    assert 'data-operator="other"' not in table  # no message of another network
    kyivstar = table[table.index('data-operator="kyivstar"') :]
    kyivstar = kyivstar[: kyivstar.index("</tr>")]
    cells = [cell.split("</td>")[0] for cell in kyivstar.split('<td class="smsclub-number"')[1:]]
    assert [cell.split(">", 1)[1] for cell in cells] == [
        "4",
        "4",
        "3",
        "1",
        "75.0 %",
        "20.0 s",
        "36.0 s",
        "38.0 s",
    ]
    assert "1 min 15 s" in table  # Vodafone's one delivery took 75 s
    # The bars: one per operator with messages, delivered and failed stretches.
    assert page.count('class="smsclub-bar-delivered"') == 3
    assert "75.0 % delivered" in page
    assert url("campaign_export", done_campaign.pk) in page


def test_a_draft_shows_its_preview_not_the_operators(admin_client, db):
    draft = Campaign.objects.create(name="Draft", text="Hi")
    draft.add_recipients(["0671234567"])
    page = admin_client.get(url("campaign_change", draft.pk)).content.decode()
    assert "Delivery by operator" not in page
    assert url("campaign_export", draft.pk) in page  # its recipients, with their operators


def test_the_table_speaks_ukrainian(admin_client, done_campaign, settings):
    settings.LANGUAGE_CODE = "uk"
    with translation.override("uk"):
        page = admin_client.get(
            url("campaign_change", done_campaign.pk), HTTP_ACCEPT_LANGUAGE="uk"
        ).content.decode()
    assert "Доставка за операторами" in page
    assert "Експортувати результати (CSV)" in page


def test_the_download_is_a_streamed_csv_for_excel(admin_client, done_campaign):
    response = admin_client.get(url("campaign_export", done_campaign.pk))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"] == (
        f'attachment; filename="campaign-{done_campaign.pk}-results.csv"'
    )
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(body[1:])))
    assert len(rows) == 7 and rows[0][0] == "id"
    assert rows[-1][2:5] == ["lifecell", "rejected", "'=cmd|'/C calc'!A0"]


@pytest.mark.parametrize(
    ("codenames", "allowed"),
    [
        (["view_campaign", "view_message"], True),
        (["change_campaign", "change_message"], True),
        (["view_campaign"], False),
        (["view_message"], False),
        ([], False),
    ],
)
def test_the_download_needs_the_view_permission_on_campaigns_and_messages(
    done_campaign, codenames, allowed
):
    client = client_with(*codenames)
    response = client.get(url("campaign_export", done_campaign.pk))
    assert response.status_code == (200 if allowed else 403)
    if "view_campaign" in codenames or "change_campaign" in codenames:
        page = client.get(url("campaign_change", done_campaign.pk)).content.decode()
        assert (url("campaign_export", done_campaign.pk) in page) == allowed
        assert "Delivery by operator" in page


def test_the_download_asks_a_stranger_to_log_in_and_refuses_other_methods(
    admin_client, done_campaign
):
    anonymous = Client().get(url("campaign_export", done_campaign.pk))
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    assert admin_client.post(url("campaign_export", done_campaign.pk)).status_code == 405
    assert admin_client.get(url("campaign_export", 999999)).status_code in (302, 404)


def test_the_bars_are_scaled_to_the_operator_with_the_most_messages():
    stats = [
        OperatorStats("kyivstar", messages=10, sent=10, delivered=8, failed=2),
        OperatorStats("vodafone", messages=5, sent=4, delivered=2, failed=1),
        OperatorStats("lifecell"),
        OperatorStats("other", messages=1),
    ]
    chart = operator_chart(stats)
    assert [bar.operator for bar in chart.bars] == ["kyivstar", "vodafone", "other"]
    kyivstar, vodafone, other = chart.bars
    assert (kyivstar.width, kyivstar.delivered_width, kyivstar.failed_width) == (640, 512, 128)
    assert (vodafone.width, vodafone.delivered_width, vodafone.failed_width) == (320, 128, 64)
    assert (vodafone.delivery_percent, other.delivery_percent) == (50.0, None)
    assert operator_chart([OperatorStats("kyivstar")]) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "—"), (4.24, "4.2 s"), (59.9, "59.9 s"), (185, "3 min 05 s"), (7830, "2 h 10 min")],
)
def test_times_to_deliver_read_as_people_say_them(seconds, text):
    with translation.override("en"):
        assert duration_text(None if seconds is None else timedelta(seconds=seconds)) == text


def test_times_to_deliver_in_ukrainian():
    with translation.override("uk"):
        assert duration_text(timedelta(seconds=4.24)) == "4,2 с"
        assert duration_text(timedelta(seconds=185)) == "3 хв 05 с"
