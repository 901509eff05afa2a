"""End to end in headless Chromium: a person opens a finished campaign, reads its delivery by
operator (table and bars), and downloads its results as CSV.

The messages' outcomes are stored directly (the sending itself is test_admin_e2e.py's); the
test project's server runs on ``live_server``. Needs Debian's ``chromium`` and the
``playwright`` package, like test_admin_e2e.py.
"""

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.utils import timezone

from django_smsclub.models import Campaign, Message
from django_smsclub.operators import operator_of
from django_smsclub.status import Status
from tests.admin.test_admin_e2e import ARTIFACTS, browser  # noqa: F401 (a fixture)
from tests.admin.test_admin_e2e import pytestmark as e2e_marks
from tests.support.settings import smsclub_settings

pytestmark = e2e_marks

# (number, status, seconds to deliver or to fail, error)
OUTCOMES = [
    ("380671234501", Status.DELIVERED, 4, ""),
    ("380971234502", Status.DELIVERED, 6, ""),
    ("380981234503", Status.DELIVERED, 9, ""),
    ("380681234504", Status.UNDELIVERED, 40, ""),
    ("380501234505", Status.DELIVERED, 12, ""),
    ("380661234506", Status.DELIVERED, 30, ""),
    ("380631234507", Status.DELIVERED, 7, ""),
    ("380931234508", Status.REJECTED, 2, '=HYPERLINK("http://evil")'),
    ("380441234509", Status.FAILED, 0, "not a mobile number"),
]


@pytest.fixture
def smsclub(settings, smsclub_emulator):
    settings.SMSCLUB = smsclub_settings(default=smsclub_emulator.gateway_settings("xml"))
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()
    yield smsclub_emulator
    cache.clear()


def finished_campaign():
    campaign = Campaign.objects.create(
        name="Spring sale", text="Sale today", sender="Shop", state=Campaign.State.DONE
    )
    sent = timezone.now() - timedelta(hours=1)
    Message.objects.bulk_create(
        Message(
            campaign=campaign,
            recipient=number,
            operator=operator_of(number),
            sender="Shop",
            text="Sale today",
            gateway="default",
            status=status,
            error=error,
            sent_at=sent,
            finished_at=sent + timedelta(seconds=took),
            metadata={"order": index},
        )
        for index, (number, status, took, error) in enumerate(OUTCOMES)
    )
    return campaign


def test_a_person_reads_delivery_by_operator_and_downloads_the_results(
    live_server,
    smsclub,
    browser,  # noqa: F811
):
    User.objects.create_superuser("olena", "olena@example.com", "e2e-password")
    campaign = finished_campaign()
    page = browser.new_page(viewport={"width": 1280, "height": 1000}, locale="en-US")
    page.set_default_timeout(15_000)
    change = f"/admin/django_smsclub/campaign/{campaign.pk}/change/"
    page.goto(f"{live_server.url}/admin/login/?next={change}")
    page.fill("#id_username", "olena")
    page.fill("#id_password", "e2e-password")
    page.click("input[type=submit]")
    page.wait_for_url(f"**{change}")

    page.wait_for_selector(".smsclub-operator-table")
    rows = page.locator(".smsclub-operator-table tbody tr").all_inner_texts()
    cells = [row.split("\t") for row in rows]
    assert [row[:7] for row in cells] == [
        ["Kyivstar", "4", "4", "3", "1", "75.0 %", "6.0 s"],
        ["Vodafone Ukraine", "2", "2", "2", "0", "100.0 %", "21.0 s"],
        ["lifecell", "2", "2", "1", "1", "50.0 %", "7.0 s"],
        ["other", "1", "1", "0", "1", "0.0 %", "—"],
    ]
    bars = page.locator(".smsclub-operator-chart g[data-operator]")
    assert bars.count() == 4
    assert (
        page.get_attribute(
            '.smsclub-operator-chart g[data-operator="kyivstar"] .smsclub-bar-rest', "width"
        )
        == "640.0"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator(".smsclub-operators").screenshot(path=str(ARTIFACTS / "operators.png"))
    page.screenshot(path=str(ARTIFACTS / "operators-page.png"), full_page=True)

    with page.expect_download() as download:
        page.click("a.smsclub-export")
    saved = download.value
    assert saved.suggested_filename == f"campaign-{campaign.pk}-results.csv"
    body = Path(saved.path()).read_text(encoding="utf-8-sig")
    table = list(csv.reader(io.StringIO(body)))
    assert table[0] == [
        "id",
        "number",
        "operator",
        "status",
        "error",
        "sent_at",
        "finished_at",
        "parts",
        "metadata",
    ]
    assert [row[1:4] for row in table[1:]] == [
        [number, operator_of(number), status] for number, status, _, _ in OUTCOMES
    ]
    assert table[8][4] == '\'=HYPERLINK("http://evil")'
    assert table[1][8] == '{"order": 0}'
