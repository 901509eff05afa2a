"""Issue 11: ``priority`` through the API (messages and campaigns) and the admin's campaign form."""

import pytest
from django.urls import reverse

from django_smsclub.models import PRIORITY_CAMPAIGN, PRIORITY_MAX, Campaign, Message
from tests.api.test_api import ALL_PERMS, API, client_for, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pipeline_settings")]

BAD_PRIORITIES = [-1, PRIORITY_MAX + 1, True, 1.5, "5", "high", None]


@pytest.fixture
def api():
    return client_for(make_user("owner", *ALL_PERMS))


def test_a_message_is_sent_with_the_priority_it_is_given(api):
    response = api.post(
        API + "messages/",
        {"to": "+380501234567", "text": "Newsletter", "priority": 150},
        format="json",
    )
    assert response.status_code == 201, response.content
    [created] = response.json()["messages"]
    assert created["priority"] == 150
    assert Message.objects.get().priority == 150

    personal = api.post(
        API + "messages/", {"items": [{"to": "0501234568", "text": "Code 1"}]}, format="json"
    )
    assert personal.status_code == 201
    assert personal.json()["messages"][0]["priority"] == 0


@pytest.mark.parametrize("priority", BAD_PRIORITIES)
def test_a_bad_message_priority_is_refused_naming_it(api, priority):
    response = api.post(
        API + "messages/",
        {"to": "+380501234567", "text": "Hi", "priority": priority},
        format="json",
    )
    assert response.status_code == 400
    [error] = response.json()["priority"]
    if priority is not None:
        assert str(priority).lower() in error.lower(), error
    assert not Message.objects.exists()


def test_a_campaign_takes_a_priority_and_refuses_a_bad_one(api):
    made = api.post(
        API + "campaigns/", {"name": "Quiet", "text": "Sale", "priority": 200}, format="json"
    )
    assert made.status_code == 201, made.content
    assert made.json()["priority"] == 200
    assert Campaign.objects.get().priority == 200

    default = api.post(API + "campaigns/", {"name": "Usual", "text": "Sale"}, format="json")
    assert default.json()["priority"] == PRIORITY_CAMPAIGN

    refused = api.post(
        API + "campaigns/", {"name": "Bad", "text": "Sale", "priority": 40000}, format="json"
    )
    assert refused.status_code == 400
    assert "40000" in refused.json()["priority"][0]


def test_the_admin_campaign_form_shows_and_saves_priority(admin_client):
    page = admin_client.get(reverse("admin:django_smsclub_campaign_add"))
    assert 'name="priority"' in page.content.decode()

    form = {
        "name": "Spring sale",
        "sender": "",
        "text": "Sale today",
        "gateway": "",
        "send_at_0": "",
        "send_at_1": "",
        "numbers": "",
        "encoding": "utf-8-sig",
        "_save": "Save",
    }
    admin_client.post(reverse("admin:django_smsclub_campaign_add"), {**form, "priority": "120"})
    admin_client.post(reverse("admin:django_smsclub_campaign_add"), {**form, "name": "Left empty"})
    refused = admin_client.post(
        reverse("admin:django_smsclub_campaign_add"), {**form, "name": "Bad", "priority": "-3"}
    )

    assert dict(Campaign.objects.values_list("name", "priority")) == {
        "Spring sale": 120,
        "Left empty": PRIORITY_CAMPAIGN,
    }
    assert refused.status_code == 200 and "priority" in refused.context["adminform"].form.errors
