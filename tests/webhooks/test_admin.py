"""The admin's webhook pages: endpoints with a write-only secret and their failures in plain
sight, re-enabling and test events; a read-only delivery log with "Retry now"."""

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_smsclub import send_sms, services
from django_smsclub.models import Message, WebhookDelivery, WebhookEndpoint

from .conftest import SECRET

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hooks")]


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def viewer_client():
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="django_smsclub", codename__startswith="view_webhook"
        )
    )
    client = Client()
    client.force_login(user)
    return client


def url(name, *args):
    return reverse(f"admin:django_smsclub_{name}", args=args)


def action(client, model, name, pks):
    return client.post(
        url(f"{model}_changelist"),
        {"action": name, "_selected_action": [str(pk) for pk in pks]},
        follow=True,
    )


def finished(count=2):
    send_sms([f"38050190{i:04d}" for i in range(count)], "Hello")
    services.cancel_messages(Message.objects.all())


def test_an_endpoint_made_in_the_admin_gets_events_and_its_secret_is_never_shown(
    admin_client, receiver
):
    response = admin_client.post(
        url("webhookendpoint_add"),
        {
            "name": "billing",
            "url": receiver.url,
            "events": ["message.final"],
            "secret": SECRET,
            "is_active": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    endpoint = WebhookEndpoint.objects.get(name="billing")
    assert (endpoint.secret, endpoint.events, endpoint.from_settings) == (
        SECRET,
        ["message.final"],
        False,
    )

    page = admin_client.get(url("webhookendpoint_change", endpoint.pk)).content.decode()
    assert SECRET not in page
    assert 'type="checkbox" name="events" value="campaign.done"' in page

    # Saved again with the secret left blank: the stored one stays.
    admin_client.post(
        url("webhookendpoint_change", endpoint.pk),
        {"name": "billing", "url": receiver.url, "events": ["message.final"], "secret": ""},
    )
    endpoint.refresh_from_db()
    assert endpoint.secret == SECRET
    assert not endpoint.is_active


def test_a_short_secret_and_a_url_with_a_password_are_refused(admin_client):
    response = admin_client.post(
        url("webhookendpoint_add"),
        {
            "name": "bad",
            "url": "https://user:pw@example.com/h",
            "events": ["message.final"],
            "secret": "short",
        },
    )

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert set(form.errors) == {"secret", "url"}
    assert not WebhookEndpoint.objects.filter(name="bad").exists()


def test_an_endpoint_from_the_settings_is_read_only_but_for_its_switch(admin_client):
    endpoint = WebhookEndpoint.objects.get(name="crm")

    page = admin_client.get(url("webhookendpoint_change", endpoint.pk)).content.decode()

    assert "comes from SMSCLUB[&#x27;WEBHOOKS&#x27;]" in page
    assert 'name="url"' not in page and 'name="secret"' not in page
    assert 'name="is_active"' in page
    assert SECRET not in page
    assert "set (hidden)" in page


def test_a_disabled_endpoint_says_so_in_the_list_and_on_its_page(admin_client):
    WebhookEndpoint.objects.update(
        consecutive_failures=20,
        disabled_at=timezone.now(),
        disabled_reason="20 failed attempts in a row; the last: HTTP 502",
    )
    endpoint = WebhookEndpoint.objects.get()

    listing = admin_client.get(url("webhookendpoint_changelist")).content.decode()
    page = admin_client.get(url("webhookendpoint_change", endpoint.pk)).content.decode()

    assert "after 20 failures in a row," in listing
    assert "Disabled at " in page
    assert "20 failed attempts in a row; the last: HTTP 502" in page
    assert 'class="error"' in page  # the message at the top of the page


def test_re_enabling_resumes_the_pending_deliveries(admin_client, receiver):
    finished(2)
    WebhookEndpoint.objects.update(disabled_at=timezone.now(), consecutive_failures=20)
    WebhookDelivery.objects.update(next_attempt_at=timezone.now() + timezone.timedelta(hours=5))
    endpoint = WebhookEndpoint.objects.get()

    response = action(admin_client, "webhookendpoint", "enable_selected", [endpoint.pk])

    assert "“crm” is enabled; 2 pending deliveries are due now." in response.content.decode()
    services.webhooks.deliver_due()
    assert len(receiver.wait_for(2)) == 2
    assert all(r.signature_ok for r in receiver.received)


def test_a_test_event_is_sent_at_once_and_its_outcome_shown(admin_client, receiver):
    endpoint = WebhookEndpoint.objects.get()

    ok = action(admin_client, "webhookendpoint", "send_test_event", [endpoint.pk]).content.decode()
    receiver.statuses = [503]
    failed = action(admin_client, "webhookendpoint", "send_test_event", [endpoint.pk])

    assert "“crm” answered HTTP 200 in" in ok
    assert "“crm” failed the test: HTTP 503" in failed.content.decode()
    assert [r.json["event"] for r in receiver.received] == ["webhook.test"] * 2
    assert all(r.signature_ok for r in receiver.received)


def test_the_delivery_log_is_read_only_filterable_and_retries_now(admin_client, receiver):
    finished(1)
    receiver.statuses = [500]
    services.webhooks.deliver_due()
    delivery = WebhookDelivery.objects.get()

    listing = admin_client.get(url("webhookdelivery_changelist") + "?status__exact=pending")
    detail = admin_client.get(url("webhookdelivery_change", delivery.pk)).content.decode()
    found = admin_client.get(url("webhookdelivery_changelist"), {"q": str(delivery.event_id)})

    assert listing.status_code == 200
    assert "HTTP 500" in listing.content.decode()
    assert str(delivery.event_id) in detail
    assert "&quot;event&quot;: &quot;message.final&quot;" in detail  # the payload, shown
    assert 'name="_save"' not in detail
    assert found.context["cl"].result_count == 1
    assert admin_client.get(url("webhookdelivery_add")).status_code == 403

    receiver.statuses = [200]
    response = action(admin_client, "webhookdelivery", "retry_selected", [delivery.pk])
    assert "1 delivery is due now." in response.content.decode()
    services.webhooks.deliver_due()
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DELIVERED


def test_a_viewer_sees_the_pages_but_can_neither_retry_nor_enable(viewer_client):
    finished(1)
    endpoint = WebhookEndpoint.objects.get()
    WebhookEndpoint.objects.update(disabled_at=timezone.now())

    listing = viewer_client.get(url("webhookdelivery_changelist"))
    assert listing.status_code == 200
    assert "retry_selected" not in listing.content.decode()
    endpoints = viewer_client.get(url("webhookendpoint_changelist")).content.decode()
    assert "enable_selected" not in endpoints and "send_test_event" not in endpoints

    action(viewer_client, "webhookendpoint", "enable_selected", [endpoint.pk])
    assert WebhookEndpoint.objects.get().disabled_at is not None
