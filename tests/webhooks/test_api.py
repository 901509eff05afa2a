"""The API's webhook endpoints: staff read the endpoints (never a secret) and the delivery log,
re-enable an endpoint, send it a test event, retry a delivery."""

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone
from rest_framework.test import APIClient

from django_smsclub import send_sms, services
from django_smsclub.models import Message, WebhookDelivery, WebhookEndpoint

from .conftest import SECRET

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hooks")]

BASE = "/api/sms/webhooks"


def client_for(*, staff=True, perms=("view_webhookendpoint", "view_webhookdelivery")):
    user = User.objects.create_user(f"u{User.objects.count()}", is_staff=staff)
    user.user_permissions.set(Permission.objects.filter(codename__in=perms))
    client = APIClient()
    client.force_authenticate(user)
    return client


ALL = (
    "view_webhookendpoint",
    "change_webhookendpoint",
    "view_webhookdelivery",
    "change_webhookdelivery",
)


def finished(count=1):
    send_sms([f"38050191{i:04d}" for i in range(count)], "Hello")
    services.cancel_messages(Message.objects.all())


def test_staff_list_endpoints_without_their_secrets():
    finished(2)

    response = client_for().get(f"{BASE}/endpoints/")

    assert response.status_code == 200
    [endpoint] = response.json()["results"]
    assert endpoint["name"] == "crm"
    assert endpoint["pending"] == 2
    assert endpoint["disabled"] is False
    assert "secret" not in endpoint
    assert SECRET not in response.content.decode()


def test_the_delivery_log_filters_and_pages():
    finished(3)
    client = client_for()

    page = client.get(f"{BASE}/deliveries/", {"status": "pending", "page_size": 2}).json()
    assert len(page["results"]) == 2 and page["next"]
    first = page["results"][0]
    assert first["event"] == "message.final"
    assert first["payload"]["event_id"] == first["event_id"]
    message = first["message"]
    assert [
        d["message"]
        for d in client.get(f"{BASE}/deliveries/", {"message": message}).json()["results"]
    ] == [message]
    assert client.get(f"{BASE}/deliveries/", {"status": "delivered"}).json()["results"] == []
    assert client.get(f"{BASE}/deliveries/", {"event": "nope"}).status_code == 400
    assert client.get(f"{BASE}/deliveries/abc/").status_code == 404


def test_others_get_nothing():
    assert APIClient().get(f"{BASE}/endpoints/").status_code in (401, 403)
    assert client_for(staff=False).get(f"{BASE}/endpoints/").status_code == 403
    assert client_for(perms=()).get(f"{BASE}/deliveries/").status_code == 403
    viewer = client_for()
    endpoint = WebhookEndpoint.objects.get()
    assert viewer.post(f"{BASE}/endpoints/{endpoint.pk}/enable/").status_code == 403


def test_re_enable_test_and_retry(receiver):
    finished(1)
    WebhookEndpoint.objects.update(disabled_at=timezone.now(), consecutive_failures=20)
    endpoint = WebhookEndpoint.objects.get()
    client = client_for(perms=ALL)

    enabled = client.post(f"{BASE}/endpoints/{endpoint.pk}/enable/", HTTP_IDEMPOTENCY_KEY="k1")
    assert enabled.status_code == 200
    assert enabled.json()["pending"] == 1
    assert enabled.json()["endpoint"]["disabled"] is False

    tested = client.post(f"{BASE}/endpoints/{endpoint.pk}/test/").json()
    assert (tested["ok"], tested["status_code"]) == (True, 200)
    assert tested["delivery"]["event"] == "webhook.test"
    assert receiver.received[-1].signature_ok

    receiver.statuses = [500, 200]
    services.webhooks.deliver_due()
    delivery = WebhookDelivery.objects.get(event="message.final")
    assert delivery.status == WebhookDelivery.Status.PENDING
    retried = client.post(f"{BASE}/deliveries/{delivery.pk}/retry/").json()
    assert retried["retried"] == 1
    services.webhooks.deliver_due()
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DELIVERED
