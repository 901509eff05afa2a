"""A real Celery worker delivers webhooks: asked for after commit, retried at their time."""

import pytest

from django_smsclub import send_sms, tasks
from django_smsclub.models import Message, WebhookDelivery
from django_smsclub.status import Status
from tests.support.worker import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("hooks")]


def test_a_worker_sends_polls_and_delivers_each_final_status_once(hooks, receiver, worker):
    hooks.update(POLL_INTERVALS=[0], WEBHOOK_RETRY_BACKOFF=1)
    receiver.statuses = [500, 200]
    recipients = ["380501800001", "380501800002", "380501800003"]

    send_sms(recipients, "Hello")
    wait_until(
        lambda: set(Message.objects.values_list("status", flat=True)) == {Status.DELIVERED},
        meanwhile=tasks.poll_reports.delay,
    )
    # The first POST fails; its retry is a task due a second later.
    wait_until(
        lambda: (
            set(WebhookDelivery.objects.values_list("status", flat=True))
            == {WebhookDelivery.Status.DELIVERED}
        )
    )

    requests = receiver.received
    assert all(r.signature_ok for r in requests)
    assert len(requests) == 4
    assert len({r.event_id for r in requests}) == 3
    assert sorted(r.json["data"]["message"]["recipient"] for r in requests[1:]) == recipients
