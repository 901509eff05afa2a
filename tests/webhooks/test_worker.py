"""A real Celery worker delivers webhooks: asked for after commit, retried at their time."""

import logging
import time

import pytest
from celery.contrib.testing.worker import start_worker

from django_smsclub import send_sms, tasks
from django_smsclub.models import Message, WebhookDelivery
from django_smsclub.status import Status
from testproject.celery import app

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("hooks")]


def wait_until(condition, timeout=30.0, meanwhile=None):
    deadline = time.monotonic() + timeout
    nudged = 0.0
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the worker"
        if meanwhile is not None and time.monotonic() - nudged > 0.3:
            meanwhile()
            nudged = time.monotonic()
        time.sleep(0.05)


@pytest.fixture
def worker():
    """A worker thread on the project's app and broker, as in tests/pipeline."""
    saved = app.conf.worker_hijack_root_logger, app.conf.broker_transport_options
    root = logging.getLogger()
    root_handlers, root_level = list(root.handlers), root.level
    app.conf.worker_hijack_root_logger = False
    app.conf.broker_transport_options = {**saved[1], "polling_interval": 0.05}
    app.control.purge()
    try:
        with start_worker(app, perform_ping_check=False, shutdown_timeout=30, loglevel="WARNING"):
            yield app
    finally:
        app.conf.worker_hijack_root_logger, app.conf.broker_transport_options = saved
        root.handlers[:] = root_handlers
        root.setLevel(root_level)


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
