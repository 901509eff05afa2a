"""The signals: each once per status change, after commit, robust against bad receivers."""

import contextlib
import logging
import threading
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from django_smsclub import send_sms, services
from django_smsclub.exceptions import AuthenticationError
from django_smsclub.models import Message
from django_smsclub.services import pipeline, tracking, transitions
from django_smsclub.signals import (
    message_delivered,
    message_failed,
    message_finished,
    message_status_changed,
)
from django_smsclub.status import Status

pytestmark = pytest.mark.usefixtures("pipeline_settings")

TWO_PARTS = "Ваше замовлення готове. " * 4
SIGNALS = {
    "changed": message_status_changed,
    "delivered": message_delivered,
    "failed": message_failed,
    "finished": message_finished,
}


class Received:
    """Every signal of this package a test received, as (name, message pk, old, new)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = []
        for name, signal in SIGNALS.items():
            signal.connect(self._receiver(name), weak=False, dispatch_uid=f"test-{name}")

    def _receiver(self, name):
        def receive(sender, message, old_status, new_status, **kwargs):
            assert sender is Message
            with self.lock:
                self.events.append((name, message.pk, old_status, new_status))

        return receive

    def disconnect(self):
        for name, signal in SIGNALS.items():
            signal.disconnect(dispatch_uid=f"test-{name}")

    def named(self, name):
        return [event[1:] for event in self.events if event[0] == name]


@pytest.fixture
def received():
    receiver = Received()
    yield receiver
    receiver.disconnect()


def sent(text="Hello", count=1):
    messages = send_sms([f"3805014{i:05d}" for i in range(count)], text)
    services.send_due("default")
    return [Message.objects.get(pk=m.pk) for m in messages]


def smsc_ids(message):
    return list(message.reports.order_by("part").values_list("smsc_id", flat=True))


@pytest.mark.django_db(transaction=True)
def test_delivery_sends_changed_delivered_and_finished_once_each(received):
    [message] = sent()
    received.events.clear()

    services.apply_states("default", {smsc_ids(message)[0]: "DELIVRD"})

    change = (message.pk, Status.SENT, Status.DELIVERED)
    assert received.named("changed") == [change]
    assert received.named("delivered") == [change]
    assert received.named("finished") == [change]
    assert received.named("failed") == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("word", "status"),
    [("UNDELIV", Status.UNDELIVERED), ("EXPIRED", Status.EXPIRED), ("REJECTD", Status.REJECTED)],
)
def test_a_failure_word_sends_failed_and_finished(received, word, status):
    [message] = sent()
    received.events.clear()

    services.apply_states("default", {smsc_ids(message)[0]: word})

    change = (message.pk, Status.SENT, status)
    assert received.named("failed") == [change]
    assert received.named("finished") == [change]
    assert received.named("delivered") == []


@pytest.mark.django_db(transaction=True)
def test_every_step_of_a_send_is_a_status_change_and_a_refused_send_fails(received, gateway_script):
    [message] = send_sms(["380501400000"], "Hello")
    gateway_script.send.append(AuthenticationError("bad login"))

    services.send_due("default")

    steps = [(Status.QUEUED, Status.SENDING), (Status.SENDING, Status.FAILED)]
    assert received.named("changed") == [(message.pk, *step) for step in steps]
    assert received.named("failed") == [(message.pk, Status.SENDING, Status.FAILED)]
    assert received.named("finished") == [(message.pk, Status.SENDING, Status.FAILED)]


@pytest.mark.django_db(transaction=True)
def test_a_stale_claim_swept_to_unknown_counts_as_failed(received):
    [message] = send_sms(["380501400000"], "Hello")
    services.claim_batch("default", 1)
    received.events.clear()

    services.sweep_stale_claims(now=timezone.now() + timedelta(hours=1))

    assert received.named("failed") == [(message.pk, Status.SENDING, Status.UNKNOWN)]
    assert received.named("finished") == [(message.pk, Status.SENDING, Status.UNKNOWN)]


@pytest.mark.django_db(transaction=True)
def test_signals_wait_for_the_commit_and_a_rollback_sends_none(received):
    [message] = sent()
    [smsc_id] = smsc_ids(message)
    received.events.clear()

    with pytest.raises(RuntimeError), transaction.atomic():
        services.apply_states("default", {smsc_id: "DELIVRD"})
        raise RuntimeError("the caller's transaction fails")
    assert received.events == []
    message.refresh_from_db()
    assert message.status == Status.SENT

    with transaction.atomic():
        services.apply_states("default", {smsc_id: "DELIVRD"})
        assert received.events == []
    assert received.named("delivered") == [(message.pk, Status.SENT, Status.DELIVERED)]


@pytest.mark.django_db(transaction=True)
def test_a_failing_receiver_is_logged_and_changes_nothing_else(received, caplog):
    def broken(**kwargs):
        raise ValueError("receiver bug")

    message_delivered.connect(broken, weak=False, dispatch_uid="test-broken")
    try:
        [message] = sent()
        received.events.clear()
        with caplog.at_level(logging.ERROR, logger="django_smsclub"):
            services.apply_states("default", {smsc_ids(message)[0]: "DELIVRD"})
    finally:
        message_delivered.disconnect(dispatch_uid="test-broken")

    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert received.named("finished") == [(message.pk, Status.SENT, Status.DELIVERED)]
    [record] = [r for r in caplog.records if r.name == "django_smsclub"]
    assert "receiver bug" in str(record.exc_info[1])
    assert "message_delivered" in record.getMessage()


def slow_down_moves(monkeypatch):
    """Make each status change wait for the other racer (or 1 s) after reading its rows, so
    that without row locks both would read the old status and both would signal."""
    barrier = threading.Barrier(2)
    move = transitions.move_messages

    def waiting_move(*args, **kwargs):
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=1)
        return move(*args, **kwargs)

    for module in (transitions, pipeline, tracking):
        monkeypatch.setattr(module, "move_messages", waiting_move)


@pytest.mark.django_db(transaction=True)
def test_two_pollers_applying_the_same_report_signal_once(received, race, monkeypatch):
    [message] = sent()
    [smsc_id] = smsc_ids(message)
    received.events.clear()
    slow_down_moves(monkeypatch)

    race(
        lambda: services.apply_states("default", {smsc_id: "DELIVRD"}),
        lambda: services.apply_states("default", {smsc_id: "DELIVRD"}),
    )

    assert received.named("delivered") == [(message.pk, Status.SENT, Status.DELIVERED)]
    assert received.named("finished") == [(message.pk, Status.SENT, Status.DELIVERED)]


@pytest.mark.django_db(transaction=True)
def test_two_pollers_applying_different_parts_of_one_message_settle_it_once(
    received, race, monkeypatch
):
    [message] = sent(text=TWO_PARTS)
    first, second = smsc_ids(message)
    received.events.clear()
    slow_down_moves(monkeypatch)

    race(
        lambda: services.apply_states("default", {first: "DELIVRD"}),
        lambda: services.apply_states("default", {second: "DELIVRD"}),
    )

    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert received.named("delivered") == [(message.pk, Status.SENT, Status.DELIVERED)]


@pytest.mark.django_db(transaction=True)
def test_cancelled_messages_are_finished_but_not_failed(received):
    from django_smsclub.models import Campaign

    campaign = Campaign.objects.create(name="Sale", text="Sale today")
    campaign.add_recipients(["380501400000", "380501400001"])
    received.events.clear()

    assert campaign.cancel() == 2

    assert [e[2:] for e in received.events if e[0] == "finished"] == [
        (Status.QUEUED, Status.CANCELLED)
    ] * 2
    assert received.named("failed") == []
