"""Issue 11: beat is a safety net, not the engine. With no periodic task at all (no
``send_due``, ``poll_reports`` or ``sweep``), a campaign through a provider that fails in every
way the emulator knows still ends with every message final: a message put back schedules its
own send at its ``next_attempt_at``, a recorded send schedules its first poll, and a poll
round schedules the next.

On PostgreSQL with a Redis broker the workers are two plain ``celery worker`` processes
(``celery -A testproject worker``, no ``-Q``, no ``-B``); elsewhere two threads of one worker in
this process.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from django.core.cache import cache

from tests.support.reliability import (
    DELIVERY_STATUSES,
    FAULT_KINDS,
    WorkerProcesses,
    all_final,
    assert_every_message_settled,
    assert_one_finished_signal_per_final_message,
    assert_sent_ones_were_polled_to_their_end,
    assert_the_provider_agrees,
    drive,
    inject_every_fault,
    make_campaign,
    numbers,
    prepare_emulator,
    shared_backends,
    signal_log_in_this_process,
    smsclub_config,
    worker_threads,
)

CAMPAIGN = 300
FAULT_RATE = 0.05
TIMEOUT = 1.0
DEADLINE = 120.0
#: Requests a second the provider takes from the account before it answers 429.
PROVIDER_CAP = 6


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_without_beat_a_faulty_campaign_ends_with_every_message_final(
    smsclub_emulator, settings, tmp_path
):
    emulator = smsclub_emulator
    # The polls asked for are kept in the cache (one per gateway and second): a key an
    # earlier test left would stand for a task that is gone with its broker.
    cache.clear()
    recipients = numbers(CAMPAIGN)
    prepare_emulator(emulator, recipients)
    config = smsclub_config(
        emulator,
        {"TIMEOUT": TIMEOUT, "BATCH_SIZE": 10},
        SEND_BATCH_SIZE=20,
        POLL_BATCH_SIZE=50,
        RETRY_BACKOFF=1,
        RETRY_BACKOFF_MAX=2,
        POLL_INTERVALS=[1, 2],
    )
    settings.SMSCLUB = config
    campaign = make_campaign(recipients)
    faults = inject_every_fault(emulator, rate=FAULT_RATE, timeout=TIMEOUT)
    # And a provider's cap our gateway does not know of: beyond it, 429 with Retry-After.
    emulator.rate_limit = PROVIDER_CAP
    started = time.monotonic()

    if shared_backends():
        workers = WorkerProcesses(2, config, tmp_path)
        try:
            workers.start_all()
            campaign.start()
            drive(None, DEADLINE, until=all_final)
        finally:
            workers.stop()
        log = workers.signal_log
    else:
        with signal_log_in_this_process(tmp_path / "signals") as log, worker_threads(2):
            campaign.start()
            drive(None, DEADLINE, until=all_final)

    elapsed = time.monotonic() - started
    messages = assert_every_message_settled()
    assert_the_provider_agrees(emulator, messages)
    assert_one_finished_signal_per_final_message(log, messages)
    assert_sent_ones_were_polled_to_their_end(messages)
    # The provider failed in every way on sends and on status requests, and refused some with
    # 429: messages were put back and polls failed. What brought them to the end was the
    # pipeline's own scheduling: messages claimed again after they were put back.
    fired = {(fault.op, fault.kind) for fault in faults if fault.fired}
    assert fired == {(op, kind) for op in ("send", "state") for kind in FAULT_KINDS}
    refused = Counter(r.op for r in emulator.requests if r.status_code == 429)
    assert refused["send"], refused
    claims = Counter(e.message_id for e in log.entries() if e.event == "claimed")
    again = [m for m in messages if claims[m.pk] > 1 and m.status in DELIVERY_STATUSES]
    assert again, "no message put back was claimed again and sent"
    # A 429 is no attempt: every message the provider took was charged one.
    assert {m.attempts for m in messages if m.status in DELIVERY_STATUSES} == {1}
    print(
        f"\n{CAMPAIGN} messages final without beat in {elapsed:.1f} s; 429s {dict(refused)}, "
        f"{len(again)} claimed again"
    )
