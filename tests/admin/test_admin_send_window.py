"""Quiet hours in the admin: the campaign form's window fields, their errors, and when a
campaign paused by its send window resumes, on its page and in the list (English, Ukrainian,
Russian)."""

from __future__ import annotations

import re
from datetime import time

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import translation

from django_smsclub.models import Campaign
from tests.support.clock import kyiv
from tests.support.settings import smsclub_settings

NUMBERS = ["050 123 45 01", "+380 (67) 123-45-02"]


@pytest.fixture(autouse=True)
def smsclub(settings, smsclub_emulator):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The clock of these tests is set years ahead: a session logged in now must not expire.
    settings.SESSION_COOKIE_AGE = 20 * 365 * 24 * 3600
    settings.SMSCLUB = smsclub_settings(
        default=smsclub_emulator.gateway_settings("xml"), SEND_WINDOW=("09:00", "21:00")
    )
    cache.clear()
    yield smsclub_emulator
    cache.clear()


def url(name, *args):
    return reverse(f"admin:django_smsclub_{name}", args=args)


def page(client, path, language="en"):
    with translation.override(language):
        response = client.get(path, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    return response.content.decode()


def add_campaign(client, **data):
    form = {
        "name": "Spring sale",
        "sender": "",
        "text": "Sale today",
        "gateway": "",
        "send_at_0": "",
        "send_at_1": "",
        "send_window_start": "",
        "send_window_end": "",
        "time_zone": "",
        "numbers": "",
        "encoding": "utf-8-sig",
        "_save": "Save",
    }
    form.update(data)
    return client.post(url("campaign_add"), form)


def paused_campaign(clock, at):
    clock.set(at)
    campaign = Campaign.objects.create(name="Orders", text="Your order is ready")
    campaign.add_recipients(NUMBERS)
    campaign.start()
    return campaign


def pause_note(html):
    found = re.findall(r'class="smsclub-window-pause"[^>]*>([^<]*)<', html)
    return [" ".join(note.split()) for note in found]


@pytest.mark.django_db
def test_the_form_has_the_window_fields(admin_client):
    html = page(admin_client, url("campaign_add"))
    assert "Quiet hours" in html
    for name in ("send_window_start", "send_window_end"):
        assert f'name="{name}"' in html
    assert re.search(r'<select name="time_zone"', html)
    assert '<option value="" selected>The default time zone (Europe/Kyiv)</option>' in html
    assert '<option value="Asia/Tokyo">Asia/Tokyo</option>' in html


@pytest.mark.django_db
def test_a_window_is_saved_from_the_form(admin_client):
    response = add_campaign(
        admin_client,
        numbers="\n".join(NUMBERS),
        send_window_start="22:00",
        send_window_end="06:00",
        time_zone="Europe/Warsaw",
    )
    assert response.status_code == 302
    campaign = Campaign.objects.get()
    assert (campaign.send_window_start, campaign.send_window_end) == (time(22), time(6))
    assert campaign.time_zone == "Europe/Warsaw"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"send_window_start": "09:00"}, "send_window_end is empty while send_window_start"),
        (
            {"send_window_start": "09:00", "send_window_end": "09:00"},
            "send_window_end 09:00 is the time the window opens",
        ),
        ({"send_window_start": "9 in the morning"}, "Enter a valid time."),
        ({"time_zone": "Mars/Olympus"}, "Select a valid choice. Mars/Olympus"),
    ],
)
def test_a_bad_window_is_refused_with_its_value(admin_client, data, words):
    response = add_campaign(admin_client, **data)
    assert response.status_code == 200
    assert words in response.content.decode()
    assert not Campaign.objects.exists()


@pytest.mark.django_db
def test_the_page_and_the_list_say_when_a_paused_campaign_resumes(admin_client, clock):
    campaign = paused_campaign(clock, kyiv(2027, 6, 1, 6, 0))
    expected = "Paused by the send window until 09:00 EEST (in 3 hours)"

    assert pause_note(page(admin_client, url("campaign_change", campaign.pk))) == [expected]
    assert pause_note(page(admin_client, url("campaign_changelist"))) == [expected]


@pytest.mark.django_db
def test_a_resume_on_another_day_gives_the_date(admin_client, clock):
    campaign = paused_campaign(clock, kyiv(2027, 6, 1, 22, 30))
    [note] = pause_note(page(admin_client, url("campaign_change", campaign.pk)))
    assert note == "Paused by the send window until 02.06.2027 09:00 EEST (in 10 hours, 30 minutes)"


@pytest.mark.django_db
def test_after_the_dst_change_the_zone_name_follows(admin_client, clock):
    campaign = paused_campaign(clock, kyiv(2027, 10, 31, 6, 0))
    [note] = pause_note(page(admin_client, url("campaign_change", campaign.pk)))
    assert note == "Paused by the send window until 09:00 EET (in 3 hours)"


@pytest.mark.django_db
def test_nothing_is_said_inside_the_window_or_when_nothing_waits(admin_client, clock):
    campaign = paused_campaign(clock, kyiv(2027, 6, 1, 12, 0))
    assert pause_note(page(admin_client, url("campaign_change", campaign.pk))) == []
    clock.set(kyiv(2027, 6, 1, 22, 0))
    campaign.messages.update(status="delivered")
    assert pause_note(page(admin_client, url("campaign_change", campaign.pk))) == []
    assert pause_note(page(admin_client, url("campaign_changelist"))) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("uk", "Призупинено вікном надсилання до 09:00 EEST (через 3 години)"),
        ("ru", "Приостановлено окном отправки до 09:00 EEST (через 3 часа)"),
    ],
)
def test_the_note_is_translated(admin_client, clock, language, expected):
    campaign = paused_campaign(clock, kyiv(2027, 6, 1, 6, 0))
    html = page(admin_client, url("campaign_change", campaign.pk), language)
    assert pause_note(html) == [expected]
    assert {"uk": "Тихі години", "ru": "Тихие часы"}[language] in html


@pytest.mark.django_db
def test_the_window_of_a_started_campaign_is_read_only(admin_client, clock):
    campaign = paused_campaign(clock, kyiv(2027, 6, 1, 6, 0))
    html = page(admin_client, url("campaign_change", campaign.pk))
    assert 'name="send_window_start"' not in html
    assert "Quiet hours" in html
