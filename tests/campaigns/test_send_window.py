"""Quiet hours in the pipeline: campaign messages wait for their send window, the claim never
sends one outside it (charging no attempt), the sends are scheduled for the opening, and
single messages ignore the window unless sent with ``respect_window=True``.

The clock is ``timezone.now`` frozen (:mod:`tests.support.clock`); windows are read in
Europe/Kyiv unless a test says otherwise.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import time, timedelta

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError

from django_smsclub import send_personalized, send_sms, services, signals
from django_smsclub.exceptions import InvalidMessage
from django_smsclub.models import Campaign, Message
from django_smsclub.services.windows import resumes_at, window_of
from django_smsclub.status import Status
from tests.support.clock import kyiv
from tests.support.settings import smsclub_settings

pytestmark = pytest.mark.django_db

NUMBERS = [f"38050123{i:04d}" for i in range(6)]


@pytest.fixture
def windowed(pipeline_settings):
    """The scripted pipeline with a default window of 09:00-21:00 in Kyiv."""
    pipeline_settings["SEND_WINDOW"] = ("09:00", "21:00")
    pipeline_settings["TIME_ZONE"] = "Europe/Kyiv"
    return pipeline_settings


@contextmanager
def requests_and_signals(capture):
    """Record the sends asked for (gateway, when) and the status changes signalled, running
    the on-commit callbacks of the block."""
    sends, changes = [], []

    def on_send(sender, gateway, when=None, **kwargs):
        sends.append((gateway, when))

    def on_change(sender, message, old_status, new_status, **kwargs):
        changes.append((message.pk, old_status, new_status))

    signals.send_requested.connect(on_send, dispatch_uid="window-send")
    signals.message_status_changed.connect(on_change, dispatch_uid="window-change")
    try:
        with capture(execute=True):
            yield sends, changes
    finally:
        signals.send_requested.disconnect(dispatch_uid="window-send")
        signals.message_status_changed.disconnect(dispatch_uid="window-change")


def campaign(numbers=NUMBERS, **fields):
    made = Campaign.objects.create(name="Sale", text="Sale today", **fields)
    made.add_recipients(numbers)
    return made


def states(campaign):
    return sorted(campaign.messages.values_list("status", "attempts", "next_attempt_at"))


# --- starting ---------------------------------------------------------------------------------


def test_a_campaign_started_at_night_is_due_when_the_window_opens(
    windowed, clock, django_capture_on_commit_callbacks
):
    clock.set(kyiv(2027, 6, 1, 23, 0))
    sale = campaign()
    with requests_and_signals(django_capture_on_commit_callbacks) as (sends, _):
        sale.start()

    opening = kyiv(2027, 6, 2, 9, 0)
    assert Campaign.objects.get(pk=sale.pk).state == Campaign.State.RUNNING
    assert set(sale.messages.values_list("next_attempt_at", flat=True)) == {opening}
    assert sends == [("default", opening)]  # the send task waits for the opening


def test_a_campaign_started_inside_the_window_is_due_now(
    windowed, clock, django_capture_on_commit_callbacks
):
    now = clock.set(kyiv(2027, 6, 1, 10, 0))
    sale = campaign()
    with requests_and_signals(django_capture_on_commit_callbacks) as (sends, _):
        sale.start()
    assert set(sale.messages.values_list("next_attempt_at", flat=True)) == {now}
    assert sends == [("default", now)]


def test_a_scheduled_campaign_waits_for_its_time_and_then_its_window(windowed, clock):
    clock.set(kyiv(2027, 6, 1, 12, 0))
    sale = campaign(send_at=kyiv(2027, 6, 1, 22, 0))
    sale.start()
    assert Campaign.objects.get(pk=sale.pk).state == Campaign.State.SCHEDULED
    assert set(sale.messages.values_list("next_attempt_at", flat=True)) == {kyiv(2027, 6, 2, 9, 0)}


def test_no_window_set_changes_nothing(pipeline_settings, clock):
    now = clock.set(kyiv(2027, 6, 1, 3, 0))
    sale = campaign()
    sale.start()
    assert set(sale.messages.values_list("next_attempt_at", flat=True)) == {now}
    assert len(services.claim_batch("default", 100, now=now)) == len(NUMBERS)


def test_a_campaigns_own_window_and_zone_override_the_settings(windowed, clock):
    # 23:00 in Kyiv is 05:00 in Tokyo; the campaign's window there is 06:00-22:00.
    clock.set(kyiv(2027, 6, 1, 23, 0))
    sale = campaign(send_window_start=time(6), send_window_end=time(22), time_zone="Asia/Tokyo")
    sale.start()
    assert set(sale.messages.values_list("next_attempt_at", flat=True)) == {
        kyiv(2027, 6, 2, 0, 0)  # 06:00 JST
    }


def test_a_campaign_window_applies_without_a_default_window(pipeline_settings, clock):
    clock.set(kyiv(2027, 6, 1, 23, 0))
    sale = campaign(send_window_start=time(22), send_window_end=time(6))  # a night shift
    sale.start()
    assert set(sale.messages.values_list("next_attempt_at", flat=True)) == {clock.now}
    day = campaign(NUMBERS[:1], send_window_start=time(10), send_window_end=time(18))
    day.start()
    assert set(day.messages.values_list("next_attempt_at", flat=True)) == {kyiv(2027, 6, 2, 10, 0)}


# --- claiming ---------------------------------------------------------------------------------


def test_a_running_campaign_outside_its_window_claims_nothing(
    windowed, clock, gateway_script, django_capture_on_commit_callbacks
):
    clock.set(kyiv(2027, 6, 1, 20, 0))
    sale = campaign()
    sale.start()  # inside the window: due now
    # The window closes before a worker gets to them.
    night = clock.set(kyiv(2027, 6, 1, 21, 30))
    with requests_and_signals(django_capture_on_commit_callbacks) as (sends, changes):
        assert services.claim_batch("default", 2, now=night) == []
        assert services.send_due("default") == 0

    opening = kyiv(2027, 6, 2, 9, 0)
    # Every message of the campaign, claimed or not: queued, due at the opening, no attempt.
    assert states(sale) == [(Status.QUEUED, 0, opening)] * len(NUMBERS)
    assert not sale.messages.exclude(claimed_at=None).exists()
    assert changes == []  # claimed and put back unseen: nothing signalled
    assert ("default", opening) in sends
    assert gateway_script.requests == []


def test_inside_the_window_it_sends(windowed, clock, gateway_script):
    clock.set(kyiv(2027, 6, 1, 23, 0))
    sale = campaign()
    sale.start()
    assert services.send_due("default") == 0
    clock.set(kyiv(2027, 6, 2, 9, 0))
    assert services.send_due("default") == len(NUMBERS)
    assert set(sale.messages.values_list("status", "attempts")) == {(Status.SENT, 1)}


def test_a_closed_campaign_gives_way_to_single_messages_and_open_campaigns(windowed, clock):
    clock.set(kyiv(2027, 6, 1, 20, 0))
    closed = campaign(NUMBERS[:4])
    closed.start()
    night = clock.set(kyiv(2027, 6, 1, 22, 0))
    code = send_sms(NUMBERS[5], "Code 1234")[0]
    shift = campaign(NUMBERS[:3], send_window_start=time(22), send_window_end=time(6))
    shift.start()

    batch = services.claim_batch("default", 5, now=night)

    # The code first (priority 0), then the night shift's three; the day campaign waits.
    assert [m.pk for m in batch][:1] == [code.pk]
    assert {m.campaign_id for m in batch[1:]} == {shift.pk}
    assert len(batch) == 4
    assert set(closed.messages.values_list("status", "next_attempt_at")) == {
        (Status.QUEUED, kyiv(2027, 6, 2, 9, 0))
    }


def test_single_messages_ignore_the_window(windowed, clock):
    now = clock.set(kyiv(2027, 6, 1, 3, 0))
    [code] = send_sms(NUMBERS[0], "Code 1234")
    assert (code.respect_window, code.next_attempt_at) == (False, now)
    assert [m.pk for m in services.claim_batch("default", 10, now=now)] == [code.pk]


def test_respect_window_waits_for_the_window(windowed, clock, django_capture_on_commit_callbacks):
    clock.set(kyiv(2027, 6, 1, 3, 0))
    with requests_and_signals(django_capture_on_commit_callbacks) as (sends, _):
        [news] = send_sms(NUMBERS[0], "News", respect_window=True)
        [personal] = send_personalized([(NUMBERS[1], "Hi Ann")], respect_window=True)
    opening = kyiv(2027, 6, 1, 9, 0)
    for message in (news, personal):
        stored = Message.objects.get(pk=message.pk)
        assert (stored.respect_window, stored.next_attempt_at) == (True, opening)
    assert sends == [("default", opening), ("default", opening)]
    assert services.claim_batch("default", 10, now=kyiv(2027, 6, 1, 8, 59)) == []
    assert len(services.claim_batch("default", 10, now=opening)) == 2


def test_respect_window_messages_due_at_night_are_put_back(windowed, clock):
    clock.set(kyiv(2027, 6, 1, 20, 59))
    [news] = send_sms(NUMBERS[0], "News", respect_window=True)
    [code] = send_sms(NUMBERS[1], "Code")
    night = kyiv(2027, 6, 1, 21, 5)
    assert [m.pk for m in services.claim_batch("default", 10, now=night)] == [code.pk]
    news = Message.objects.get(pk=news.pk)
    assert (news.status, news.attempts) == (Status.QUEUED, 0)
    assert news.next_attempt_at == kyiv(2027, 6, 2, 9, 0)


def test_respect_window_must_be_a_bool(windowed):
    with pytest.raises(InvalidMessage, match="respect_window must be True or False, not 'yes'"):
        send_sms(NUMBERS[0], "News", respect_window="yes")
    assert not Message.objects.exists()


def test_respect_window_without_a_window_sends_at_once(pipeline_settings, clock):
    now = clock.set(kyiv(2027, 6, 1, 3, 0))
    [news] = send_sms(NUMBERS[0], "News", respect_window=True)
    assert news.next_attempt_at == now
    assert len(services.claim_batch("default", 10, now=now)) == 1


# --- retries ----------------------------------------------------------------------------------


def test_a_retry_made_at_night_waits_for_the_window(
    windowed, clock, gateway_script, django_capture_on_commit_callbacks
):
    clock.set(kyiv(2027, 6, 1, 12, 0))
    sale = campaign(NUMBERS[:2])
    sale.start()
    services.send_due("default")
    sale.messages.update(status=Status.FAILED)
    clock.set(kyiv(2027, 6, 1, 23, 0))
    with requests_and_signals(django_capture_on_commit_callbacks) as (sends, _):
        assert sale.retry_failed() == 2

    copies = sale.messages.filter(status=Status.QUEUED)
    opening = kyiv(2027, 6, 2, 9, 0)
    assert set(copies.values_list("next_attempt_at", flat=True)) == {opening}
    assert sends == [("default", opening)]


def test_a_resent_single_message_keeps_respect_window(windowed, clock):
    clock.set(kyiv(2027, 6, 1, 12, 0))
    [news] = send_sms(NUMBERS[0], "News", respect_window=True)
    [code] = send_sms(NUMBERS[1], "Code")
    Message.objects.update(status=Status.FAILED)
    clock.set(kyiv(2027, 6, 1, 23, 0))
    assert services.resend_messages(Message.objects.all()) == 2
    news_copy = Message.objects.get(retry_of=news)
    code_copy = Message.objects.get(retry_of=code)
    assert (news_copy.respect_window, news_copy.next_attempt_at) == (True, kyiv(2027, 6, 2, 9, 0))
    assert (code_copy.respect_window, code_copy.next_attempt_at) == (False, clock.now)


def test_a_backoff_that_ends_at_night_is_put_back_at_the_claim(windowed, clock, gateway_script):
    from django_smsclub.exceptions import GatewayUnavailable

    clock.set(kyiv(2027, 6, 1, 20, 59, 50))
    sale = campaign(NUMBERS[:1])
    sale.start()
    gateway_script.send.append(GatewayUnavailable("connection refused"))
    services.send_due("default")
    retry = sale.messages.get()
    assert (retry.status, retry.attempts) == (Status.QUEUED, 1)
    # The backoff ends after 21:00: the claim then puts it back to the opening, uncharged.
    after = retry.next_attempt_at + timedelta(seconds=1)
    assert services.claim_batch("default", 10, now=after) == []
    retry = sale.messages.get()
    assert (retry.status, retry.attempts) == (Status.QUEUED, 1)
    assert retry.next_attempt_at == kyiv(2027, 6, 2, 9, 0)


# --- daylight saving time ---------------------------------------------------------------------


def test_spring_2027_a_window_opening_in_the_skipped_hour(pipeline_settings, clock):
    # 03:30 does not exist in Kyiv on 2027-03-28: it opens when the clock jumps to 04:00 EEST.
    clock.set(kyiv(2027, 3, 28, 2, 30))
    sale = campaign(send_window_start=time(3, 30), send_window_end=time(5, 0))
    sale.start()
    jump = kyiv(2027, 3, 28, 4, 0)
    assert jump.hour == 1  # 01:00 UTC
    assert set(sale.messages.values_list("next_attempt_at", flat=True)) == {jump}
    assert services.claim_batch("default", 10, now=jump - timedelta(seconds=1)) == []
    assert len(services.claim_batch("default", 10, now=jump)) == len(NUMBERS)


def test_spring_2027_the_window_after_the_change_closes_on_the_new_clock(pipeline_settings, clock):
    clock.set(kyiv(2027, 3, 27, 12, 0))
    sale = campaign(send_window_start=time(2, 0), send_window_end=time(5, 0))
    sale.start()
    # 02:59 EET is inside; 04:59 EEST too (an hour later on the real clock); 05:00 EEST not.
    assert len(services.claim_batch("default", 1, now=kyiv(2027, 3, 28, 2, 59))) == 1
    assert len(services.claim_batch("default", 1, now=kyiv(2027, 3, 28, 4, 59))) == 1
    assert services.claim_batch("default", 10, now=kyiv(2027, 3, 28, 5, 0)) == []
    assert set(sale.messages.filter(status=Status.QUEUED).values_list("next_attempt_at")) == {
        (kyiv(2027, 3, 29, 2, 0),)
    }


def test_autumn_2027_the_repeated_hour_stays_open(pipeline_settings, clock):
    # 03:00-04:00 happens twice on 2027-10-31; a window of 03:30-04:30 is open through both.
    clock.set(kyiv(2027, 10, 30, 12, 0))
    sale = campaign(send_window_start=time(3, 30), send_window_end=time(4, 30))
    sale.start()
    first = kyiv(2027, 10, 31, 3, 30)
    assert set(sale.messages.values_list("next_attempt_at", flat=True)) == {first}
    assert services.claim_batch("default", 1, now=first - timedelta(seconds=1)) == []
    assert len(services.claim_batch("default", 1, now=first)) == 1
    # 03:10 EET, the second time the clock shows it: still the same opening of the window.
    assert len(services.claim_batch("default", 1, now=kyiv(2027, 10, 31, 3, 10, fold=1))) == 1
    assert len(services.claim_batch("default", 1, now=kyiv(2027, 10, 31, 4, 29))) == 1
    assert services.claim_batch("default", 10, now=kyiv(2027, 10, 31, 4, 30)) == []
    assert set(sale.messages.filter(status=Status.QUEUED).values_list("next_attempt_at")) == {
        (kyiv(2027, 11, 1, 3, 30),)
    }


def test_autumn_2027_a_default_window_opening_the_morning_after(windowed, clock):
    clock.set(kyiv(2027, 10, 31, 1, 0))
    sale = campaign()
    sale.start()
    assert set(sale.messages.values_list("next_attempt_at", flat=True)) == {
        kyiv(2027, 10, 31, 9, 0)
    }
    assert kyiv(2027, 10, 31, 9, 0).hour == 7  # EET, UTC+2 from this night on


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"send_window_start": time(9)}, "send_window_end is empty while send_window_start is "),
        ({"send_window_end": time(21)}, "send_window_start is empty while send_window_end is "),
        (
            {"send_window_start": time(9), "send_window_end": time(9)},
            "send_window_end 09:00 is the time the window opens",
        ),
        ({"time_zone": "Europe/Kiyv"}, "time_zone 'Europe/Kiyv' is not a time zone"),
    ],
)
def test_a_bad_campaign_window_is_refused_naming_the_value(pipeline_settings, fields, words):
    draft = Campaign(name="Sale", text="Sale today", **fields)
    with pytest.raises(ValidationError) as caught:
        draft.full_clean()
    assert any(words in message for message in caught.value.messages), caught.value.messages
    assert any(words in p for p in services.campaign_problems(draft))


def test_a_good_campaign_window_passes(pipeline_settings):
    Campaign(
        name="Sale",
        text="Sale today",
        send_window_start=time(22),
        send_window_end=time(6),
        time_zone="Europe/Kyiv",
    ).full_clean()


def test_recipients_are_not_added_to_a_campaign_with_a_bad_window(pipeline_settings):
    draft = Campaign.objects.create(name="Sale", text="Sale today", send_window_start=time(9))
    with pytest.raises(InvalidMessage, match="send_window_end is empty"):
        draft.add_recipients(NUMBERS)


def test_a_stored_bad_zone_or_window_never_stops_the_workers(windowed, caplog):
    odd = Campaign(
        name="x", send_window_start=time(9), send_window_end=time(9), time_zone="Mars/Base"
    )
    window, zone = window_of(odd)
    assert (str(window), str(zone)) == ("09:00-21:00", "Europe/Kyiv")
    assert "Mars/Base" in caplog.text


# --- when it resumes --------------------------------------------------------------------------


def test_resumes_at_is_the_opening_for_a_paused_campaign(windowed, clock):
    clock.set(kyiv(2027, 6, 1, 23, 0))
    sale = campaign()
    assert resumes_at(sale) is None  # a draft is not on its way
    sale.start()
    assert resumes_at(sale) == kyiv(2027, 6, 2, 9, 0)
    clock.set(kyiv(2027, 6, 2, 9, 0))
    assert resumes_at(sale) is None


# --- end to end: a real worker loop against the emulator over HTTP ----------------------------


def test_end_to_end_through_the_emulator(settings, clock, smsclub_emulator):
    settings.SMSCLUB = smsclub_settings(
        default=smsclub_emulator.gateway_settings("xml"),
        SEND_WINDOW=("09:00", "21:00"),
        POLL_INTERVALS=[0],
    )
    cache.clear()
    clock.set(kyiv(2027, 3, 27, 22, 0))
    sale = campaign()
    sale.start()

    # The night before the clocks change: nothing goes, however often a worker looks.
    for minutes in (0, 60, 5 * 60):
        clock.set(kyiv(2027, 3, 27, 22, 0) + timedelta(minutes=minutes))
        assert services.send_due("default") == 0
    assert smsclub_emulator.accepted == []

    # 08:59 EEST (an hour less of night than the wall clock says): still closed.
    clock.set(kyiv(2027, 3, 28, 8, 59))
    assert services.send_due("default") == 0
    assert smsclub_emulator.accepted == []

    clock.set(kyiv(2027, 3, 28, 9, 0))
    assert services.send_due("default") == len(NUMBERS)
    assert sorted(sms.recipient for sms in smsclub_emulator.accepted) == NUMBERS
    assert set(sale.messages.values_list("status", "attempts")) == {(Status.SENT, 1)}
    cache.clear()


# --- workers racing ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_workers_racing_over_a_closed_campaign_put_everything_back_once(windowed, clock, race):
    clock.set(kyiv(2027, 6, 1, 20, 0))
    numbers = [f"38050124{i:04d}" for i in range(300)]
    closed = campaign(numbers[:200])
    closed.start()
    [code] = send_sms(numbers[250], "Code")
    shift = campaign(numbers[200:240], send_window_start=time(21), send_window_end=time(6))
    shift.start()
    night = kyiv(2027, 6, 1, 21, 30)

    batches = race(*[lambda: services.claim_batch("default", 30, now=night)] * 4)

    claimed = [m.pk for batch in batches for m in batch]
    assert len(claimed) == len(set(claimed)) == 41  # the code and the night shift, once each
    assert code.pk in claimed
    assert set(closed.messages.values_list("status", "attempts", "next_attempt_at")) == {
        (Status.QUEUED, 0, kyiv(2027, 6, 2, 9, 0))
    }
    assert not closed.messages.exclude(claimed_at=None).exists()
