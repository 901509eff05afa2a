"""smsclub_send and smsclub_poll."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_smsclub import send_sms, services
from django_smsclub.exceptions import GatewayUnavailable
from django_smsclub.gateways import locmem
from django_smsclub.models import DeliveryReport, Message
from django_smsclub.status import Status

pytestmark = pytest.mark.usefixtures("pipeline_settings")

FULL_BAR = "[" + "#" * 30 + "]"


def run(*args):
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_send_inline_and_wait_shows_progress_until_delivered_then_a_summary():
    output = run(
        "smsclub_send",
        "--to",
        "050 123 45 67",
        "--to",
        "+380671234567",
        "--text",
        "Ваше замовлення готове",
        "--inline",
        "--wait",
        "--interval",
        "0.01",
    )

    assert "Queued 2 message(s) on gateway 'default'" in output
    assert f"{FULL_BAR} 2/2 final (delivered 2)" in output
    summary = output.splitlines()[-3:]
    assert summary[0].split() == ["recipient", "status", "parts", "error"]
    assert summary[1].split() == ["380501234567", "delivered", "1"]
    assert sorted(sms.recipient for sms in locmem.outbox) == ["380501234567", "380671234567"]


@pytest.mark.django_db(transaction=True)
def test_send_and_wait_fails_when_a_message_is_not_delivered(settings):
    settings.SMSCLUB["GATEWAYS"]["default"]["OPTIONS"] = {"STATE": "UNDELIV"}
    out = StringIO()

    with pytest.raises(CommandError, match="1 of 1 message"):
        call_command(
            "smsclub_send",
            "--to=0501234567",
            "--text=Hi",
            "--inline",
            "--wait",
            "--interval=0.01",
            stdout=out,
        )

    assert out.getvalue().splitlines()[-1].split() == ["380501234567", "undelivered", "1"]


@pytest.mark.django_db
def test_send_without_a_worker_queues_and_gives_up_waiting_at_the_timeout():
    out = StringIO()

    with pytest.raises(CommandError, match="gave up after 0.05 s; 1 message"):
        call_command(
            "smsclub_send",
            "--to=0501234567",
            "--text=Hi",
            "--wait",
            "--interval=0.01",
            "--timeout=0.05",
            stdout=out,
        )

    assert "0/1 final (queued 1)" in out.getvalue()
    assert Message.objects.get().status == Status.QUEUED
    assert locmem.outbox == []


@pytest.mark.django_db
def test_send_names_every_bad_value():
    with pytest.raises(CommandError) as caught:
        call_command("smsclub_send", "--to=12345", "--to=0501234567", "--text=Hi", "--sender=B@d!")

    assert "'12345'" in str(caught.value) and "'B@d!'" in str(caught.value)
    assert not Message.objects.exists()


def sent(count):
    messages = send_sms([f"3805015{i:05d}" for i in range(count)], "Hello")
    services.send_due("default")
    DeliveryReport.objects.update(next_poll_at=timezone.now())
    return messages


@pytest.mark.django_db
def test_poll_polls_the_due_reports_once():
    sent(2)

    output = run("smsclub_poll")

    assert "gateway default: polled 2 report(s)" in output
    assert "0 report(s) still pending" in output
    assert set(Message.objects.values_list("status", flat=True)) == {Status.DELIVERED}


@pytest.mark.django_db
def test_poll_until_done_keeps_polling_until_nothing_is_pending(settings, gateway_script):
    settings.SMSCLUB["POLL_INTERVALS"] = [0]
    sent(2)
    gateway_script.state.append(GatewayUnavailable("connection refused"))

    output = run("smsclub_poll", "--until-done", "--gateway=default")

    assert output.count("gateway default: polled 2 report(s)") == 2
    assert output.rstrip().endswith("no report is pending")
    assert set(Message.objects.values_list("status", flat=True)) == {Status.DELIVERED}
