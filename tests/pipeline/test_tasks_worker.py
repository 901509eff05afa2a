"""The Celery tasks: run by a real worker (celery.contrib.testing), and the beat schedule."""

from datetime import timedelta

import pytest
from django.utils import timezone

from django_smsclub import send_sms, services, tasks
from django_smsclub.celery import beat_schedule
from django_smsclub.gateways import locmem
from django_smsclub.models import Campaign, Message
from django_smsclub.signals import message_finished
from django_smsclub.status import FINAL_STATUSES, Status
from testproject.celery import app
from tests.support.settings import smsclub_settings
from tests.support.worker import wait_until


def numbers(count):
    return [f"3805016{i:05d}" for i in range(count)]


def statuses():
    return dict(Message.objects.values_list("recipient", "status"))


@pytest.fixture
def finished():
    seen = []

    def receive(message, new_status, **kwargs):
        seen.append((message.recipient, new_status))

    message_finished.connect(receive, weak=False, dispatch_uid="test-worker-finished")
    yield seen
    message_finished.disconnect(dispatch_uid="test-worker-finished")


def test_the_beat_schedule_runs_registered_tasks_and_plugs_in_with_one_line():
    schedule = {"project-task": {"task": "project.task", "schedule": 5.0}}

    schedule.update(beat_schedule)

    assert set(schedule) == {"project-task", *beat_schedule}
    assert app.conf.beat_schedule.items() >= beat_schedule.items()
    for entry in beat_schedule.values():
        assert entry["task"] in app.tasks
        assert entry["schedule"] > 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("pipeline_settings")
def test_a_worker_sends_queued_messages_and_polls_them_to_delivered(settings, worker, finished):
    settings.SMSCLUB["POLL_INTERVALS"] = [0]

    send_sms(numbers(5), "Hello")
    wait_until(lambda: set(statuses().values()) == {Status.SENT})
    tasks.poll_reports.delay()
    wait_until(lambda: set(statuses().values()) == {Status.DELIVERED})

    assert sorted(sms.recipient for sms in locmem.outbox) == numbers(5)
    assert sorted(finished) == [(n, Status.DELIVERED) for n in numbers(5)]


@pytest.mark.django_db(transaction=True)
def test_a_worker_against_the_emulator_never_sends_twice_and_loses_nothing(
    settings, worker, finished, smsclub_emulator
):
    emulator = smsclub_emulator
    settings.SMSCLUB = smsclub_settings(
        default=emulator.gateway_settings("xml", BATCH_SIZE=2), POLL_INTERVALS=[0], RETRY_BACKOFF=0
    )
    recipients = numbers(6)
    # The first request goes through but its reply is lost: those two may have been sent.
    emulator.faults.add("drop_after", times=1, gateway="xml", op="send")
    emulator.set_outcome(recipients[4], "UNDELIV")
    emulator.deliver_after(polls=1)

    send_sms(recipients, "Ваше замовлення готове")
    wait_until(lambda: not {Status.QUEUED, Status.SENDING} & set(statuses().values()))
    wait_until(
        lambda: set(statuses().values()) <= FINAL_STATUSES, meanwhile=tasks.poll_reports.delay
    )

    assert statuses() == {
        recipients[0]: Status.UNKNOWN,
        recipients[1]: Status.UNKNOWN,
        recipients[2]: Status.DELIVERED,
        recipients[3]: Status.DELIVERED,
        recipients[4]: Status.UNDELIVERED,
        recipients[5]: Status.DELIVERED,
    }
    assert emulator.duplicates() == []
    assert sorted(sms.recipient for sms in emulator.accepted) == recipients
    assert sorted(finished) == sorted(statuses().items())


@pytest.mark.django_db
@pytest.mark.usefixtures("pipeline_settings")
def test_send_due_starts_a_send_per_gateway_with_due_messages(monkeypatch):
    started = []
    monkeypatch.setattr(tasks.send_queued, "delay", started.append)
    send_sms(numbers(1), "Now")
    send_sms(numbers(1), "Now", gateway="cp1251")
    send_sms(numbers(1), "Later", gateway="cp1251", send_at=timezone.now() + timedelta(hours=1))

    assert tasks.send_due() == ["default", "cp1251"]
    assert started == ["default", "cp1251"]


@pytest.mark.django_db
@pytest.mark.usefixtures("pipeline_settings")
def test_send_queued_hands_a_backlog_over_to_a_fresh_task(monkeypatch, settings):
    started = []
    monkeypatch.setattr(tasks.send_queued, "delay", started.append)
    monkeypatch.setattr(tasks, "TIME_BUDGET", 0.0)
    settings.SMSCLUB["SEND_BATCH_SIZE"] = 2
    send_sms(numbers(5), "Hello")

    assert tasks.send_queued("default") == 2
    assert started == ["default"]
    assert len(locmem.outbox) == 2


@pytest.mark.django_db
@pytest.mark.usefixtures("pipeline_settings")
def test_sweep_settles_stale_claims_and_finishes_campaigns():
    sale = Campaign.objects.create(name="Sale", text="Sale today")
    sale.add_recipients(numbers(1))
    sale.start()
    services.claim_batch("default", 1)
    Message.objects.update(claimed_at=timezone.now() - timedelta(hours=1))

    assert tasks.sweep() == {"stale_claims": 1, "campaigns": 1}

    sale.refresh_from_db()
    assert sale.state == Campaign.State.DONE
    assert sale.messages.get().status == Status.UNKNOWN
