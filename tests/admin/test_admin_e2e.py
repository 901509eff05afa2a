"""End to end in headless Chromium: a person builds a campaign in the admin, previews it,
starts it and watches it finish.

The test project's server runs on ``live_server``; a real Celery worker sends and polls
through the XML gateway to the emulator over HTTP, while a thread stands in for beat. Needs
Debian's ``chromium`` and the ``playwright`` package (``playwright install`` is not used).

``SMSCLUB_UPDATE_DOCS_SCREENSHOT=1`` also writes ``docs/campaign.png`` for the README.
"""

import os
import re
import threading
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connections

from django_smsclub import tasks
from django_smsclub.models import Campaign
from django_smsclub.status import Status
from tests.support.settings import smsclub_settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
ARTIFACT = ARTIFACTS / "campaign.png"
PREVIEW_ARTIFACT = ARTIFACTS / "campaign-preview.png"
LIST_ARTIFACT = ARTIFACTS / "campaigns.png"
DOCS_SCREENSHOT = ROOT / "docs" / "campaign.png"

pytestmark = [
    pytest.mark.e2e,
    # On CI the browser is installed by .ci/run, so its absence there is a failure.
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason=f"{CHROMIUM} is absent: install Debian's chromium package to run the browser test",
    ),
]

TEXT = (
    "Весняний розпродаж у Shop: −20 % на все до неділі! Покажіть це SMS на касі "
    "й отримайте подарунок."
)
VALID = [
    "050 123 45 01",
    "+380 (67) 123-45-02",
    "093-123-45-03",
    "380631234504",
    "(066) 123 45 05",
    "0731234506",
    "+380 95 123 4507",
    "097 123 45 08",
    "0681234509",
    "380991234510",
    "050 765 43 11",
    "+380671234512",
    "(093) 765-43-13",
    "063 765 43 14",
    "0667654315",
    "+38 073 765 43 16",
    "095-765-43-17",
    "0987654318",
]
INVALID = ["050 12", "ask Olena for her number"]


@pytest.fixture
def smsclub(settings, smsclub_emulator):
    """The default gateway aimed at the emulator, slowed to a pace a person can watch: three
    numbers a request, two requests a second, each SMS delivered a second after it was sent."""
    smsclub_emulator.deliver_after(seconds=1)
    settings.SMSCLUB = smsclub_settings(
        default=smsclub_emulator.gateway_settings("xml", BATCH_SIZE=3, RATE_LIMIT=2),
        SEND_BATCH_SIZE=3,
        POLL_INTERVALS=[1],
    )
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()
    yield smsclub_emulator
    cache.clear()


@pytest.fixture
def worker(smsclub):
    """A real Celery worker on the test project's broker, and a thread that plays beat."""
    from celery.contrib.testing.worker import start_worker

    from testproject.celery import app

    stop = threading.Event()

    def beat():
        while not stop.wait(0.5):
            tasks.send_due.delay()
            tasks.poll_reports.delay()
            tasks.sweep.delay()

    with start_worker(
        app, pool="threads", concurrency=2, perform_ping_check=False, loglevel="ERROR"
    ):
        thread = threading.Thread(target=beat, name="e2e-beat", daemon=True)
        thread.start()
        try:
            yield app
        finally:
            stop.set()
            thread.join(5)


@pytest.fixture
def browser(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread, which makes Django refuse ORM
    # calls here; the test's own queries are plain synchronous ones, so that guard is lifted.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()
            # Queries made while Playwright's loop ran used a connection of their own: close it,
            # or it keeps the test database from being dropped.
            connections.close_all()


def test_a_person_builds_previews_starts_and_watches_a_campaign(
    live_server, worker, smsclub, browser
):
    User.objects.create_superuser("olena", "olena@example.com", "e2e-password")
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-US")
    page.set_default_timeout(15_000)

    page.goto(f"{live_server.url}/admin/login/?next=/admin/django_smsclub/campaign/add/")
    page.fill("#id_username", "olena")
    page.fill("#id_password", "e2e-password")
    page.click("input[type=submit]")
    page.wait_for_url("**/django_smsclub/campaign/add/")

    page.fill("#id_name", "Spring sale")
    page.fill("#id_text", TEXT)
    pasted = [*VALID[:7], INVALID[0], *VALID[7:15], INVALID[1], *VALID[15:]]
    page.fill("#id_numbers", "\n".join(pasted))
    page.click("input[name=_save]")
    page.wait_for_url(re.compile(r".*/django_smsclub/campaign/\d+/change/$"))

    assert page.text_content('[data-stat="accepted"]') == "18"
    assert page.text_content('[data-stat="refused"]') == "2"
    assert page.text_content('[data-stat="parts-per-message"]') == "2"
    assert page.text_content('[data-stat="total-parts"]') == "36"
    refused = page.locator(".smsclub-refused tbody tr").all_inner_texts()
    assert refused == [
        "8\tphone number '050 12' is not a valid number",
        "17\tphone number 'ask Olena for her number' is not a phone number",
    ]
    assert TEXT in page.text_content(".smsclub-bubble")
    campaign = Campaign.objects.get()
    assert campaign.state == Campaign.State.DRAFT
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(PREVIEW_ARTIFACT), full_page=True)

    page.click("button[name=start]")
    page.wait_for_selector(".messagelist .success")
    assert "started" in page.text_content(".messagelist")

    seen: list[int] = []
    deadline = time.monotonic() + 90
    while True:
        seen.append(int(page.get_attribute("[role=progressbar]", "aria-valuenow")))
        if seen[-1] == 100 or time.monotonic() > deadline:
            break
        time.sleep(1)
        page.reload()
    assert seen[-1] == 100, f"progress stopped at {seen[-1]} %"
    assert seen[0] < 100, "the campaign finished before the page could show it under way"
    while "done" not in page.text_content(".smsclub-panel-head .smsclub-state"):
        # The sweep marks the campaign done on its next round.
        assert time.monotonic() < deadline, "the campaign never became done"
        time.sleep(0.5)
        page.reload()
    cache.clear()  # a minute later: the cached balance is gone, the next page asks again
    page.reload()
    page.wait_for_selector(".smsclub-chart svg")
    # 36 parts at 0.50; the XML gateway's reply names no currency: the account's is shown.
    assert page.text_content(".smsclub-head-balance strong") == "982.00 UAH"
    assert page.text_content(".smsclub-progress .smsclub-legend-delivered strong") == "18"
    assert page.text_content(".smsclub-percent") == "100\xa0%"
    assert set(campaign.messages.values_list("status", flat=True)) == {Status.DELIVERED}
    assert len(smsclub.accepted) == 36  # parts the emulator took: each message once
    assert not smsclub.duplicates()

    page.screenshot(path=str(ARTIFACT), full_page=True)
    if os.environ.get("SMSCLUB_UPDATE_DOCS_SCREENSHOT"):
        panel = page.locator(".smsclub-panel").bounding_box()
        page.screenshot(
            path=str(DOCS_SCREENSHOT),
            clip={"x": 0, "y": 0, "width": 1280, "height": panel["y"] + panel["height"] + 24},
        )

    page.goto(f"{live_server.url}/admin/django_smsclub/campaign/")
    assert page.get_attribute("#result_list [role=progressbar]", "aria-valuenow") == "100"
    assert page.text_content("#result_list .field-recipients") == "18"
    page.screenshot(path=str(LIST_ARTIFACT), full_page=True)

    page.goto(f"{live_server.url}/admin/django_smsclub/message/?campaign={campaign.pk}")
    assert page.locator("#result_list tbody tr").count() == 18
    page.screenshot(path=str(ARTIFACTS / "messages.png"), full_page=True)
    page.click("#result_list tbody tr:first-child th a")
    page.wait_for_url("**/django_smsclub/message/*/change/**")
    assert page.locator(".inline-related .field-smsc_id").count() == 2  # one report per part
    page.screenshot(path=str(ARTIFACTS / "message.png"), full_page=True)
