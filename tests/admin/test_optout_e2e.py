"""End to end in headless Chromium: the unsubscribe link of a campaign's SMS opens a page in the
person's language; confirming it puts the number on the stop list, and the next campaign
refuses it.

The test project's server runs on ``live_server``, its ``SMSCLUB["UNSUBSCRIBE_URL"]`` pointing
at it. Needs Debian's ``chromium`` and ``playwright``, as ``test_admin_e2e.py`` does.
"""

import re

import pytest

from django_smsclub.models import Campaign, OptOut
from tests.admin import test_admin_e2e as e2e
from tests.support.settings import gateway, smsclub_settings

pytestmark = [*e2e.pytestmark, pytest.mark.django_db(transaction=True)]
ARTIFACTS = e2e.ARTIFACTS
#: Headless Chromium, as the admin's browser test drives it.
browser = e2e.browser


@pytest.fixture
def smsclub(settings, live_server):
    settings.SMSCLUB = smsclub_settings(
        default=gateway("locmem", SENDER="Shop"), UNSUBSCRIBE_URL=f"{live_server.url}/u/"
    )


def test_a_person_follows_the_link_of_an_sms_and_unsubscribes(live_server, smsclub, browser):
    campaign = Campaign.objects.create(name="Sale", text="Sale today! Stop: {unsubscribe_url}")
    campaign.add_recipients(["050 123 45 67"])
    link = re.search(r"http://\S+", campaign.messages.get().text)[0]

    page = browser.new_page(viewport={"width": 390, "height": 760}, locale="uk-UA")
    page.set_default_timeout(15_000)
    page.goto(link)
    assert page.get_attribute("main", "data-unsubscribe") == "confirm"
    assert "закінчується на 67" in page.text_content("main")
    assert "380501234567" not in page.content()
    assert not OptOut.objects.exists()  # opening the page changes nothing
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "unsubscribe.png"), full_page=True)

    page.click("button[name=unsubscribe]")
    page.wait_for_selector('main[data-unsubscribe="done"]')
    assert "Ви відписалися" in page.text_content("h1")
    entry = OptOut.objects.get()
    assert (entry.phone, entry.scope, entry.source) == ("380501234567", "marketing", "link")
    page.screenshot(path=str(ARTIFACTS / "unsubscribed.png"), full_page=True)

    # Back and confirm again: nothing more happens.
    page.go_back()
    page.click("button[name=unsubscribe]")
    page.wait_for_selector('main[data-unsubscribe="done"]')
    assert OptOut.objects.count() == 1

    tampered = link[:-1] + ("A" if link[-1] != "A" else "B")
    assert page.goto(tampered).status == 404
    assert OptOut.objects.count() == 1

    later = Campaign.objects.create(name="Next sale", text="Next sale")
    result = later.add_recipients(["+380501234567", "0671234567"])
    assert [r.reason for r in result.refused] == ["opted out"] and result.added == 1
