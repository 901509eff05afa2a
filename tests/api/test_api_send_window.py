"""Quiet hours in the REST API: a campaign's window fields (read, written, checked, naming the
bad value), when a paused campaign resumes, and ``respect_window`` on a send."""

from __future__ import annotations

from datetime import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from django_smsclub.models import Campaign, Message
from tests.support.clock import kyiv

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pipeline_settings")]

API = "/api/sms/"
NUMBERS = ["380501230001", "380501230002"]


@pytest.fixture
def owner():
    user = get_user_model().objects.create_user("owner")
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="django_smsclub"))
    return user


@pytest.fixture
def api(owner):
    client = APIClient()
    client.force_authenticate(owner)
    return client


@pytest.fixture
def windowed(pipeline_settings):
    pipeline_settings["SEND_WINDOW"] = ("09:00", "21:00")
    return pipeline_settings


def test_a_campaign_is_created_with_its_own_window(api):
    body = {
        "name": "Night shift",
        "text": "Shift starts soon",
        "send_window_start": "22:00",
        "send_window_end": "06:00",
        "time_zone": "Europe/Kyiv",
    }
    response = api.post(API + "campaigns/", body, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["send_window_start"], data["send_window_end"]) == ("22:00:00", "06:00:00")
    assert data["time_zone"] == "Europe/Kyiv" and data["resumes_at"] is None
    created = Campaign.objects.get()
    assert (created.send_window_start, created.send_window_end) == (time(22), time(6))


def test_without_window_fields_a_campaign_follows_the_settings(api):
    response = api.post(API + "campaigns/", {"name": "Sale", "text": "Sale"}, format="json")
    data = response.json()
    assert (data["send_window_start"], data["send_window_end"], data["time_zone"]) == (
        None,
        None,
        "",
    )


@pytest.mark.parametrize(
    ("window", "field", "words"),
    [
        ({"send_window_start": "9am", "send_window_end": "21:00"}, "send_window_start", "'9am'"),
        ({"send_window_start": "09:00"}, "send_window_end", "send_window_end is empty"),
        ({"send_window_end": "21:00"}, "send_window_start", "send_window_start is empty"),
        (
            {"send_window_start": "09:00", "send_window_end": "09:00"},
            "send_window_end",
            "send_window_end 09:00 is the time the window opens",
        ),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "'Mars/Olympus' is not a time zone"),
        ({"time_zone": 3}, "time_zone", "Got 3"),
    ],
)
def test_a_bad_window_is_refused_naming_the_field_and_value(api, window, field, words):
    body = {"name": "Sale", "text": "Sale today", **window}
    response = api.post(API + "campaigns/", body, format="json")
    assert response.status_code == 400
    assert words in str(response.json()[field]), response.json()
    assert not Campaign.objects.exists()


def test_a_drafts_window_can_be_changed_and_checked_with_what_it_has(api, owner):
    draft = Campaign.objects.create(name="Sale", text="Sale today", created_by=owner)
    path = API + f"campaigns/{draft.pk}/"
    response = api.patch(path, {"send_window_start": "10:00"}, format="json")
    assert response.status_code == 400
    assert "send_window_end is empty" in str(response.json()["send_window_end"])
    response = api.patch(
        path, {"send_window_start": "10:00", "send_window_end": "18:30"}, format="json"
    )
    assert response.status_code == 200, response.content
    response = api.patch(path, {"time_zone": "Europe/Warsaw"}, format="json")
    assert response.status_code == 200, response.content
    draft.refresh_from_db()
    assert (draft.send_window_start, draft.send_window_end, draft.time_zone) == (
        time(10),
        time(18, 30),
        "Europe/Warsaw",
    )


def test_the_window_of_a_started_campaign_cannot_change(api, owner, clock):
    sale = Campaign.objects.create(name="Sale", text="Sale today", created_by=owner)
    sale.add_recipients(NUMBERS)
    sale.start()
    response = api.patch(
        API + f"campaigns/{sale.pk}/",
        {"send_window_start": "10:00", "send_window_end": "18:00"},
        format="json",
    )
    assert response.status_code == 400
    assert "only while it is a draft" in str(response.json()["send_window_start"])


def test_a_paused_campaign_says_when_it_resumes(api, owner, windowed, clock):
    clock.set(kyiv(2027, 6, 1, 23, 0))
    sale = Campaign.objects.create(name="Sale", text="Sale today", created_by=owner)
    sale.add_recipients(NUMBERS)
    assert api.post(API + f"campaigns/{sale.pk}/start/").status_code in (200, 202)

    data = api.get(API + f"campaigns/{sale.pk}/").json()
    assert data["state"] == "running"
    assert data["resumes_at"] == "2027-06-02T06:00:00Z"  # 09:00 EEST
    listed = api.get(API + "campaigns/").json()["results"]
    assert listed[0]["resumes_at"] == "2027-06-02T06:00:00Z"

    clock.set(kyiv(2027, 6, 2, 9, 0))
    assert api.get(API + f"campaigns/{sale.pk}/").json()["resumes_at"] is None


def test_a_send_may_respect_the_window(api, windowed, clock):
    clock.set(kyiv(2027, 6, 1, 23, 0))
    body = {"to": NUMBERS[0], "text": "News", "respect_window": True}
    response = api.post(API + "messages/", body, format="json")
    assert response.status_code == 201, response.content
    [sent] = response.json()["messages"]
    assert sent["respect_window"] is True
    assert sent["next_attempt_at"] == "2027-06-02T06:00:00Z"

    response = api.post(API + "messages/", {"to": NUMBERS[1], "text": "Code"}, format="json")
    [code] = response.json()["messages"]
    assert code["respect_window"] is False
    assert code["next_attempt_at"] == "2027-06-01T20:00:00Z"  # now


def test_personal_texts_may_respect_the_window(api, windowed, clock):
    clock.set(kyiv(2027, 6, 1, 5, 0))
    body = {"items": [{"to": NUMBERS[0], "text": "Hi Ann"}], "respect_window": True}
    response = api.post(API + "messages/", body, format="json")
    assert response.status_code == 201, response.content
    assert Message.objects.get().next_attempt_at == kyiv(2027, 6, 1, 9, 0)


@pytest.mark.parametrize("value", ["maybe", 1, None])
def test_respect_window_must_be_true_or_false(api, value):
    body = {"to": NUMBERS[0], "text": "News", "respect_window": value}
    response = api.post(API + "messages/", body, format="json")
    assert response.status_code == 400
    assert "respect_window" in response.json()
    assert not Message.objects.exists()


def test_the_schema_has_the_window_fields(client):
    schemas = client.get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]
    campaign = schemas["Campaign"]["properties"]
    for name in ("send_window_start", "send_window_end", "time_zone"):
        assert name in campaign and not campaign[name].get("readOnly")
    assert campaign["resumes_at"]["readOnly"] and campaign["resumes_at"]["format"] == "date-time"
    assert campaign["send_window_start"]["format"] == "time"
    assert "respect_window" in schemas["SendTextRequest"]["properties"]
    assert "respect_window" in schemas["SendPersonalRequest"]["properties"]
