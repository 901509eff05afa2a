"""Issue 11: codes before campaigns, attempts only for requests made, claims as leases, retries
and polls that schedule themselves, and an exact rate limit shared by processes."""

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from django_smsclub import send_personalized, send_sms, services, signals
from django_smsclub.exceptions import InvalidMessage, RateLimited
from django_smsclub.gateways import SendOutcome, get_gateway
from django_smsclub.models import PRIORITY_CAMPAIGN, Campaign, Message
from django_smsclub.status import Status

pytestmark = pytest.mark.usefixtures("pipeline_settings")

REPO = Path(__file__).resolve().parents[2]


def numbers(count, start=0):
    return [f"3805013{i:05d}" for i in range(start, start + count)]


def running_campaign(count):
    campaign = Campaign.objects.create(name="Big", text="Sale today", sender="Shop")
    campaign.add_recipients(numbers(count))
    campaign.start()
    return campaign


@pytest.mark.django_db
def test_a_code_queued_behind_10000_campaign_messages_is_claimed_in_the_next_batch():
    running_campaign(10_000)
    [code] = send_sms("+380501234567", "Your code: 4711")

    batch = services.claim_batch("default", 500)

    assert batch[0].pk == code.pk
    assert [m.priority for m in batch[1:]] == [PRIORITY_CAMPAIGN] * 499


@pytest.mark.django_db
def test_an_explicit_priority_puts_a_message_behind_the_campaign():
    running_campaign(3)
    [late] = send_sms("+380501234567", "Newsletter", priority=PRIORITY_CAMPAIGN + 1)
    [code] = send_personalized([("+380501234568", "Code 1")])

    batch = services.claim_batch("default", 10)

    assert batch[0].pk == code.pk and batch[-1].pk == late.pk


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("priority", "problem"),
    [(-1, "priority -1 must be from 0 to 32767"), ("high", "whole number, not 'high'")],
)
def test_a_bad_priority_is_refused_naming_it(priority, problem):
    with pytest.raises(InvalidMessage, match=problem):
        send_sms("+380501234567", "Hello", priority=priority)
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_a_code_due_mid_batch_goes_out_before_the_batch_goes_on(settings, gateway_script):
    settings.SMSCLUB["GATEWAYS"]["default"]["BATCH_SIZE"] = 2
    running_campaign(8)
    first = services.claim_batch("default", 4)
    second = services.claim_batch("default", 4)
    [code] = send_sms("+380501234567", "Your code: 4711")

    services.record_outcomes(first, services.send_claimed(get_gateway(), first))
    services.record_outcomes(second, services.send_claimed(get_gateway(), second))

    # After the first batch's current request; the second batch finds the code taken and
    # goes on: no batch is put back for it.
    sent = gateway_script.sent()
    assert len(sent) == 5 and sent[1] == ["380501234567"]
    code.refresh_from_db()
    assert (code.status, code.attempts) == (Status.SENT, 1)
    assert set(Message.objects.values_list("status", "attempts")) == {(Status.SENT, 1)}


@pytest.mark.django_db
def test_a_more_urgent_claim_takes_only_messages_of_a_lower_priority():
    running_campaign(3)
    [code] = send_sms("+380501234567", "Your code: 4711")

    assert services.claim_batch("default", 10, more_urgent_than=PRIORITY_CAMPAIGN) == [code]
    assert services.claim_batch("default", 10, more_urgent_than=PRIORITY_CAMPAIGN) == []
    assert len(services.claim_batch("default", 10)) == 3


@pytest.mark.django_db
def test_attempts_are_unchanged_for_a_message_whose_request_was_not_made(settings, gateway_script):
    settings.SMSCLUB["GATEWAYS"]["default"]["BATCH_SIZE"] = 1
    settings.SMSCLUB["MAX_SEND_ATTEMPTS"] = 2
    from django_smsclub.exceptions import GatewayUnavailable

    # Every first request of a round fails: MAX_SEND_ATTEMPTS rounds must not fail the rest.
    messages = send_sms(numbers(3), "Hello")
    for _ in range(2):
        gateway_script.send.append(GatewayUnavailable("connection refused"))
        Message.objects.filter(status=Status.QUEUED).update(next_attempt_at=timezone.now())
        services.send_due("default")

    by_pk = {m.pk: m for m in Message.objects.all()}
    assert by_pk[messages[0].pk].status == Status.FAILED
    assert by_pk[messages[0].pk].attempts == 2
    assert "gave up after 2 attempts" in by_pk[messages[0].pk].error
    assert [(by_pk[m.pk].status, by_pk[m.pk].attempts) for m in messages[1:]] == [
        (Status.QUEUED, 0),
        (Status.QUEUED, 0),
    ]


@pytest.mark.django_db
def test_a_429_waits_its_retry_after_and_spends_no_attempt():
    [message] = send_sms(numbers(1), "Hello")
    batch = services.claim_batch("default", 1)
    now = timezone.now()
    refused = RateLimited("HTTP 429 too many requests", retry_after=7)

    services.record_outcomes(batch, [SendOutcome(None, error=refused)], now=now)

    message.refresh_from_db()
    assert (message.status, message.attempts) == (Status.QUEUED, 0)
    assert message.next_attempt_at == now + timedelta(seconds=7)


@pytest.mark.django_db
def test_putting_back_schedules_a_send_and_recording_a_send_schedules_its_first_poll(
    settings, gateway_script, django_capture_on_commit_callbacks
):
    from django_smsclub.exceptions import GatewayUnavailable

    settings.SMSCLUB["GATEWAYS"]["default"]["BATCH_SIZE"] = 1
    asked = []

    def on_send(sender, gateway, when=None, **kwargs):
        asked.append(("send", gateway, when))

    def on_poll(sender, gateway, when, **kwargs):
        asked.append(("poll", gateway, when))

    send_sms(numbers(2), "Hello")
    gateway_script.send.extend([None, GatewayUnavailable("connection refused")])
    signals.send_requested.connect(on_send, dispatch_uid="t-send")
    signals.poll_requested.connect(on_poll, dispatch_uid="t-poll")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.send_due("default")
    finally:
        signals.send_requested.disconnect(dispatch_uid="t-send")
        signals.poll_requested.disconnect(dispatch_uid="t-poll")

    sent = Message.objects.get(status=Status.SENT)
    retried = Message.objects.get(status=Status.QUEUED)
    report = sent.reports.get()
    sends = [when for kind, _, when in asked if kind == "send"]
    polls = [when for kind, _, when in asked if kind == "poll"]
    assert sends == [retried.next_attempt_at]
    assert len(polls) == 1 and 0 <= (polls[0] - report.next_poll_at).total_seconds() < 1


@pytest.mark.django_db(transaction=True)
def test_a_worker_renews_its_claims_so_the_sweep_leaves_them_until_the_lease_runs_out(settings):
    settings.SMSCLUB["STALE_SENDING_AFTER"] = 0.6
    send_sms(numbers(2), "Hello")
    batch = services.claim_batch("default", 10)

    with services.hold_claims(batch):
        time.sleep(1.2)
        assert services.sweep_stale_claims() == 0
    assert set(Message.objects.values_list("status", flat=True)) == {Status.SENDING}

    time.sleep(0.8)
    assert services.sweep_stale_claims() == 2
    assert set(Message.objects.values_list("status", flat=True)) == {Status.UNKNOWN}


LIMITER_SCRIPT = """
import json, os, sys, time
import django
django.setup()
from django_smsclub.ratelimit import RateLimiter
limiter = RateLimiter(sys.argv[1], float(sys.argv[2]), margin=float(sys.argv[3]))
print("ready", flush=True)
# Both processes start at the moment the test gives, once each is set up.
start = float(sys.stdin.readline())
time.sleep(max(start - time.time(), 0))
times = []
while time.time() < start + float(sys.argv[4]):
    limiter.acquire()
    times.append(time.time())
print(json.dumps(times))
"""


def peak_in_any_window(times, window=1.0):
    times = sorted(times)
    peak, first = 0, 0
    for last, moment in enumerate(times):
        while moment - times[first] >= window:
            first += 1
        peak = max(peak, last - first + 1)
    return peak


@pytest.mark.skipif(
    "redis" not in django_settings.CACHES["default"]["BACKEND"].lower(),
    reason="the exact limiter needs a Redis cache (REDIS_URL)",
)
def test_the_limiter_holds_any_sliding_second_across_two_processes():
    rate, seconds = 8, 3.0
    key = f"test:processes:{uuid.uuid4()}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "testproject.settings"}
    args = [key, str(rate), "0.02", str(seconds)]
    workers = [
        subprocess.Popen(  # noqa: S603  (our own interpreter and script)
            [sys.executable, "-c", LIMITER_SCRIPT, *args],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    assert [w.stdout.readline().strip() for w in workers] == ["ready", "ready"]
    start = time.time() + 0.5
    for w in workers:
        w.stdin.write(f"{start}\n")
        w.stdin.flush()
    results = [w.communicate(timeout=60)[0] for w in workers]
    per_process = [json.loads(result) for result in results]
    times = [t for recorded in per_process for t in recorded]

    assert all(w.returncode == 0 for w in workers)
    # No window of one second, wherever it starts, holds more than the rate: the recorded
    # times of both processes together (taken after each token was granted).
    assert peak_in_any_window(times) <= rate
    # Together they used the rate, and both took part (the log is no queue: not fair shares).
    assert len(times) >= rate * seconds * 0.9, [len(recorded) for recorded in per_process]
    assert all(recorded for recorded in per_process), [len(r) for r in per_process]
