"""A 2,000-message campaign through two concurrent workers while the provider misbehaves in
every way the emulator knows, on sends and on status requests alike.

On PostgreSQL with a Redis broker the workers are two ``celery worker`` processes; elsewhere
(SQLite, the in-memory broker) they are two threads of one worker in this process. Either way
they claim side by side, and the run ends when every message is final.

And one fault on our side: the cache that keeps the account's rate-limit count is down.
"""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from django_smsclub import send_sms, services
from django_smsclub.gateways import get_gateway
from django_smsclub.models import Message
from django_smsclub.status import Status
from tests.support.reliability import (
    FAULT_KINDS,
    Beat,
    WorkerProcesses,
    assert_every_message_settled,
    assert_one_finished_signal_per_final_message,
    assert_sent_ones_were_polled_to_their_end,
    assert_the_provider_agrees,
    claimed_side_by_side,
    claims_by_writer,
    drive,
    finished,
    inject_every_fault,
    make_campaign,
    numbers,
    prepare_emulator,
    shared_backends,
    signal_log_in_this_process,
    smsclub_config,
    worker_threads,
)

CAMPAIGN = 2000
FAULT_RATE = 0.03
TIMEOUT = 1.0
#: Seconds the whole campaign may take, faults and polls included.
DEADLINE = 100.0


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_campaign_through_every_fault_ends_final_and_nobody_gets_a_text_twice(
    smsclub_emulator, settings, tmp_path
):
    emulator = smsclub_emulator
    recipients = numbers(CAMPAIGN)
    prepare_emulator(emulator, recipients)
    config = smsclub_config(
        emulator,
        {"TIMEOUT": TIMEOUT, "BATCH_SIZE": 20},
        SEND_BATCH_SIZE=40,
        POLL_BATCH_SIZE=100,
    )
    settings.SMSCLUB = config
    campaign = make_campaign(recipients)
    faults = inject_every_fault(emulator, rate=FAULT_RATE, timeout=TIMEOUT)
    beat = Beat(period=0.5)
    started = time.monotonic()

    if shared_backends():
        workers = WorkerProcesses(2, config, tmp_path)
        try:
            workers.start_all()
            campaign.start()
            drive(beat, DEADLINE, until=finished(campaign))
        finally:
            workers.stop()
        log = workers.signal_log
    else:
        with signal_log_in_this_process(tmp_path / "signals") as log, worker_threads(2):
            campaign.start()
            drive(beat, DEADLINE, until=finished(campaign))

    elapsed = time.monotonic() - started
    messages = assert_every_message_settled()
    assert_the_provider_agrees(emulator, messages)
    assert_one_finished_signal_per_final_message(log, messages)
    assert_sent_ones_were_polled_to_their_end(messages)
    # Two consumers claimed side by side; every kind of fault happened on both operations.
    claims = claims_by_writer(log)
    assert len(claims) == 2 and claimed_side_by_side(claims), claims
    fired = {(fault.op, fault.kind) for fault in faults if fault.fired}
    assert fired == {(op, kind) for op in ("send", "state") for kind in FAULT_KINDS}
    outcome = {status: sum(m.status == status for m in messages) for status in Status.values}
    assert outcome[Status.DELIVERED] > CAMPAIGN // 2, outcome
    assert outcome[Status.UNDELIVERED] and outcome[Status.REJECTED], outcome
    print(f"\n{CAMPAIGN} messages final in {elapsed:.1f} s: {outcome}")


CACHES_THAT_CANNOT_COUNT = {
    "down": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
    },
    "keeping nothing": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
}


@pytest.mark.django_db
@pytest.mark.parametrize("cache", CACHES_THAT_CANNOT_COUNT.values(), ids=CACHES_THAT_CANNOT_COUNT)
def test_no_request_goes_out_while_the_rate_limit_cannot_be_counted(
    smsclub_emulator, settings, cache
):
    settings.SMSCLUB = smsclub_config(smsclub_emulator, {"RATE_LIMIT": 5})
    settings.CACHES = {"default": cache}
    send_sms(numbers(3), "Привіт")

    assert services.send_due("default") == 3
    assert services.fetch_states(get_gateway("default"), ["1", "2"]) == {}

    assert smsclub_emulator.requests == []
    for message in Message.objects.all():
        assert message.status == Status.QUEUED
        assert "rate limit" in message.error and "the request was not made" in message.error
        assert message.next_attempt_at > timezone.now()
