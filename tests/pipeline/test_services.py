"""Claiming, sending and recording outcomes: the rules of DESIGN "Sending"."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from django_smsclub import ratelimit, selectors, send_sms, services
from django_smsclub.exceptions import (
    AmbiguousSend,
    AuthenticationError,
    GatewayUnavailable,
    RateLimited,
)
from django_smsclub.gateways import SendOutcome, get_gateway, locmem
from django_smsclub.models import DeliveryReport, Message
from django_smsclub.ratelimit import RateLimiter
from django_smsclub.signals import message_finished
from django_smsclub.status import Status

pytestmark = pytest.mark.usefixtures("pipeline_settings")

LONG_TEXT = "Ваше замовлення готове. " * 4  # 96 characters: two Unicode parts


def numbers(count, start=0):
    return [f"3805012{i:05d}" for i in range(start, start + count)]


def fresh(messages):
    return [Message.objects.get(pk=m.pk) for m in messages]


@pytest.mark.django_db
def test_accepted_messages_become_sent_with_one_report_per_part():
    short, long = send_sms(numbers(1), "Hello")[0], send_sms(numbers(1, 1), LONG_TEXT)[0]

    assert services.send_due("default") == 2

    short, long = fresh([short, long])
    assert (short.status, long.status) == (Status.SENT, Status.SENT)
    assert short.sent_at is not None and short.attempts == 1
    by_recipient = {sms.recipient: sms.smsc_ids for sms in locmem.outbox}
    reports = list(DeliveryReport.objects.filter(message=long).order_by("part"))
    assert [(r.part, r.smsc_id) for r in reports] == [
        (1, by_recipient[long.recipient][0]),
        (2, by_recipient[long.recipient][1]),
    ]
    assert all(r.status == Status.SENT and r.gateway == "default" for r in reports)
    assert reports[0].next_poll_at == short.sent_at + timedelta(seconds=30)


@pytest.mark.django_db
def test_same_texts_travel_together_in_as_few_requests_as_the_batch_size_allows(
    settings, gateway_script
):
    settings.SMSCLUB["GATEWAYS"]["default"]["BATCH_SIZE"] = 2
    send_sms(numbers(5), "Sale today")
    send_sms(numbers(2, 100), "Another text")

    services.send_due("default")

    sizes = sorted(len(request) for request in gateway_script.sent())
    assert sizes == [1, 2, 2, 2]
    texts = {
        tuple(sms.recipient for sms in locmem.outbox if sms.text == t) for t in ("Sale today",)
    }
    assert len(next(iter(texts))) == 5


@pytest.mark.django_db
def test_a_refused_number_fails_alone_with_the_providers_words(settings):
    bad = numbers(1)[0]
    settings.SMSCLUB["GATEWAYS"]["default"]["OPTIONS"] = {"REFUSE": {bad: "номер в чорному списку"}}
    refused, accepted = send_sms(numbers(2), "Hello")

    services.send_due("default")

    refused, accepted = fresh([refused, accepted])
    assert refused.status == Status.FAILED
    assert "номер в чорному списку" in refused.error
    assert refused.finished_at is not None
    assert accepted.status == Status.SENT


@pytest.mark.django_db
def test_failed_login_fails_the_batch_and_is_never_retried(gateway_script):
    gateway_script.send.append(AuthenticationError("login/password pair not found"))
    messages = send_sms(numbers(3), "Hello")

    services.send_due("default")
    services.send_due("default")

    assert {m.status for m in fresh(messages)} == {Status.FAILED}
    assert all("login/password pair not found" in m.error for m in fresh(messages))
    assert len(gateway_script.sent()) == 1


@pytest.mark.django_db
def test_unreachable_provider_requeues_with_exponential_backoff_then_fails(gateway_script):
    [message] = send_sms(numbers(1), "Hello")
    start = timezone.now()
    gateway = get_gateway("default")
    pauses = []
    for attempt in range(1, 4):
        gateway_script.send.append(GatewayUnavailable("connection refused"))
        moment = start + timedelta(hours=attempt)
        [claimed] = services.claim_batch("default", 10, now=moment)
        services.record_outcomes([claimed], services.send_claimed(gateway, [claimed]), now=moment)
        message.refresh_from_db()
        assert message.attempts == attempt
        if message.status == Status.QUEUED:
            pauses.append((message.next_attempt_at - moment).total_seconds())
            assert not services.claim_batch(
                "default", 10, now=message.next_attempt_at - timedelta(seconds=1)
            )

    assert pauses == [30, 60]
    assert message.status == Status.FAILED
    assert message.error.startswith("gave up after 3 attempts: connection refused")
    assert locmem.outbox == []


@pytest.mark.django_db
def test_backoff_never_exceeds_retry_backoff_max(settings, gateway_script):
    settings.SMSCLUB.update(MAX_SEND_ATTEMPTS=20, RETRY_BACKOFF=100, RETRY_BACKOFF_MAX=250)
    [message] = send_sms(numbers(1), "Hello")
    Message.objects.filter(pk=message.pk).update(attempts=6)
    gateway_script.send.append(GatewayUnavailable("connection refused"))
    now = timezone.now()

    [claimed] = services.claim_batch("default", 1, now=now)
    services.record_outcomes([claimed], services.send_claimed(get_gateway(), [claimed]), now=now)

    message.refresh_from_db()
    assert message.next_attempt_at - now == timedelta(seconds=250)


@pytest.mark.django_db
def test_rate_limited_reply_waits_at_least_as_long_as_the_provider_asks(gateway_script):
    [message] = send_sms(numbers(1), "Hello")
    gateway_script.send.append(RateLimited("too many requests", retry_after=500))
    now = timezone.now()

    [claimed] = services.claim_batch("default", 1, now=now)
    services.record_outcomes([claimed], services.send_claimed(get_gateway(), [claimed]), now=now)

    message.refresh_from_db()
    assert message.status == Status.QUEUED
    assert message.next_attempt_at - now == timedelta(seconds=500)


@pytest.mark.django_db
def test_ambiguous_send_marks_unknown_and_never_resends(gateway_script):
    gateway_script.send.append(AmbiguousSend("connection lost after the request was sent"))
    [message] = send_sms(numbers(1), "Hello")

    services.send_due("default")
    Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    services.send_due("default")
    services.sweep_stale_claims(now=timezone.now() + timedelta(days=1))

    message.refresh_from_db()
    assert message.status == Status.UNKNOWN
    assert "connection lost after the request was sent" in message.error
    assert len(gateway_script.sent()) == 1


@pytest.mark.django_db
def test_resend_ambiguous_setting_queues_an_ambiguous_send_again(settings, gateway_script):
    settings.SMSCLUB["RESEND_AMBIGUOUS"] = True
    gateway_script.send.append(AmbiguousSend("reply garbled"))
    [message] = send_sms(numbers(1), "Hello")

    services.send_due("default")

    message.refresh_from_db()
    assert message.status == Status.QUEUED
    assert message.error == "reply garbled"
    assert message.next_attempt_at > timezone.now()


@pytest.mark.django_db
def test_a_failed_request_stops_the_rest_of_the_batch(settings, gateway_script):
    settings.SMSCLUB["GATEWAYS"]["default"]["BATCH_SIZE"] = 1
    gateway_script.send.append(GatewayUnavailable("connection refused"))
    messages = send_sms(numbers(3), "Hello")

    services.send_due("default")

    assert len(gateway_script.sent()) == 1
    tried, *untried = fresh(messages)
    assert {m.status for m in fresh(messages)} == {Status.QUEUED}
    assert tried.attempts == 1 and "connection refused" in tried.error
    # Their requests were never made: back as they were, no attempt counted, due first.
    assert [(m.attempts, m.error, m.claimed_at) for m in untried] == [(0, "", None)] * 2
    assert all(m.next_attempt_at < tried.next_attempt_at for m in untried)


@pytest.mark.django_db
def test_a_gateway_defect_is_treated_as_ambiguous(gateway_script):
    gateway_script.send.append(KeyError("ids"))
    [message] = send_sms(numbers(1), "Hello")

    services.send_due("default")

    message.refresh_from_db()
    assert message.status == Status.UNKNOWN
    assert "unexpected KeyError" in message.error


@pytest.mark.django_db
def test_a_gateway_answering_for_the_wrong_number_of_messages_is_ambiguous(monkeypatch):
    messages = send_sms(numbers(2), "Hello")
    monkeypatch.setattr(type(get_gateway()), "send_batch", lambda self, sender, items: [])

    services.send_due("default")

    assert {m.status for m in fresh(messages)} == {Status.UNKNOWN}
    assert "0 outcome(s) for 2 message(s)" in fresh(messages)[0].error


@pytest.mark.django_db
def test_a_message_the_gateway_finds_malformed_fails_alone():
    emoji, plain = send_sms(numbers(2), "Привіт 🙂"), send_sms(numbers(1, 50), "Привіт")
    Message.objects.update(gateway="cp1251")

    services.send_due("cp1251")

    assert [m.status for m in fresh(emoji)] == [Status.FAILED, Status.FAILED]
    assert "Windows-1251" in fresh(emoji)[0].error
    assert fresh(plain)[0].status == Status.SENT


@pytest.mark.django_db
def test_claim_takes_only_due_queued_messages_of_its_gateway():
    due = send_sms(numbers(2), "Now")
    later = send_sms(numbers(1, 10), "Later", send_at=timezone.now() + timedelta(hours=1))
    other = send_sms(numbers(1, 20), "Other", gateway="cp1251")
    now = timezone.now()

    claimed = services.claim_batch("default", 10, now=now)

    assert sorted(m.pk for m in claimed) == sorted(m.pk for m in due)
    assert all(m.status == Status.SENDING and m.claimed_at == now for m in claimed)
    assert [m.status for m in fresh(later + other)] == [Status.QUEUED, Status.QUEUED]
    assert services.claim_batch("default", 10, now=now) == []


@pytest.mark.django_db(transaction=True)
def test_two_workers_never_claim_the_same_message(race):
    messages = send_sms(numbers(120), "Hello")

    def worker():
        taken = []
        while batch := services.claim_batch("default", 7):
            taken.extend(m.pk for m in batch)
        return taken

    first, second = race(worker, worker)

    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(m.pk for m in messages)


@pytest.mark.django_db(transaction=True)
def test_two_workers_sending_at_once_send_every_message_exactly_once(race):
    send_sms(numbers(80), "Hello")

    race(
        lambda: services.send_due("default", batch_size=9),
        lambda: services.send_due("default", batch_size=9),
    )

    recipients = [sms.recipient for sms in locmem.outbox]
    assert sorted(recipients) == sorted(numbers(80))
    assert set(Message.objects.values_list("status", flat=True)) == {Status.SENT}


@pytest.mark.django_db
def test_stale_claims_are_swept_to_unknown_and_fresh_ones_are_left():
    stale, live = send_sms(numbers(2), "Hello")
    now = timezone.now()
    services.claim_batch("default", 10, now=now)
    Message.objects.filter(pk=stale.pk).update(claimed_at=now - timedelta(minutes=16))

    assert services.sweep_stale_claims(now=now) == 1

    stale, live = fresh([stale, live])
    assert stale.status == Status.UNKNOWN
    assert "never recorded an outcome; it may have been sent" in stale.error
    assert stale.finished_at == now
    assert live.status == Status.SENDING


@pytest.mark.django_db
def test_stale_claim_is_queued_again_when_resending_ambiguous_is_allowed(settings):
    settings.SMSCLUB["RESEND_AMBIGUOUS"] = True
    [message] = send_sms(numbers(1), "Hello")
    services.claim_batch("default", 10)
    now = timezone.now() + timedelta(hours=1)

    services.sweep_stale_claims(now=now)

    message.refresh_from_db()
    assert message.status == Status.QUEUED
    assert message.next_attempt_at == now + timedelta(seconds=30)


@pytest.mark.django_db
def test_a_swept_claim_whose_acceptance_comes_later_is_tracked_to_its_final_status(
    django_capture_on_commit_callbacks,
):
    finished = []

    def on_finished(message, old_status, new_status, **kwargs):
        finished.append((message.pk, old_status, new_status))

    message_finished.connect(on_finished)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            [message] = send_sms(numbers(1), "Hello")
        with django_capture_on_commit_callbacks(execute=True):
            [claimed] = services.claim_batch("default", 10)
        later = timezone.now() + timedelta(hours=1)
        with django_capture_on_commit_callbacks(execute=True):
            services.sweep_stale_claims(now=later)
        assert Message.objects.get(pk=message.pk).status == Status.UNKNOWN
        swept_at = Message.objects.get(pk=message.pk).finished_at

        with django_capture_on_commit_callbacks(execute=True):
            outcomes = services.send_claimed(get_gateway(), [claimed])
            services.record_outcomes([claimed], outcomes, now=later)
        message.refresh_from_db()
        assert message.status == Status.SENT and message.attempts == 1
        [report] = DeliveryReport.objects.filter(message=message)
        assert report.smsc_id == outcomes[0].smsc_ids[0]

        with django_capture_on_commit_callbacks(execute=True):
            services.apply_states("default", {report.smsc_id: "DELIVRD"})
    finally:
        message_finished.disconnect(on_finished)

    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert message.finished_at == swept_at
    assert finished == [(message.pk, Status.SENDING, Status.UNKNOWN)]


@pytest.mark.django_db
def test_send_batch_of_100_takes_at_most_10_queries(django_assert_max_num_queries):
    send_sms(numbers(60), "Hello")
    send_sms(numbers(40, 100), LONG_TEXT)

    with django_assert_max_num_queries(10):
        assert services.send_due("default", batch_size=500) == 100

    assert DeliveryReport.objects.count() == 60 + 40 * 2


@pytest.mark.django_db
def test_failed_batch_of_100_takes_at_most_10_queries(
    django_assert_max_num_queries, settings, gateway_script
):
    settings.SMSCLUB["GATEWAYS"]["default"]["OPTIONS"] = {
        "REFUSE": {n: f"refused {n}" for n in numbers(25)}
    }
    send_sms(numbers(100), "Hello")
    gateway = get_gateway("default")
    batch = services.claim_batch("default", 100)
    outcomes = (
        services.send_claimed(gateway, batch[:50])
        + [SendOutcome(None, error=GatewayUnavailable("down")) for _ in batch[50:75]]
        + [SendOutcome(None, error=AmbiguousSend("lost")) for _ in batch[75:]]
    )

    with django_assert_max_num_queries(10):
        services.record_outcomes(batch, outcomes)

    statuses = sorted(Message.objects.values_list("status", flat=True))
    assert statuses.count(Status.FAILED) == 25
    assert statuses.count(Status.SENT) == 25
    assert statuses.count(Status.QUEUED) == 25
    assert statuses.count(Status.UNKNOWN) == 25


@pytest.fixture
def locmem_cache(settings):
    """A cache without Redis: the limiter's fixed windows at half the rate."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "rl"}
    }


class FakeClock:
    def __init__(self, start=1_000_000.25):
        self.now = start
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.usefixtures("locmem_cache")
def test_rate_limiter_without_redis_lets_half_the_rate_through_per_window_then_waits():
    clock = FakeClock()
    limiter = RateLimiter(f"test:unit:{uuid.uuid4()}", 6, clock=clock, sleep=clock.sleep)

    waits = [limiter.acquire() for _ in range(7)]

    assert waits[:3] == [0, 0, 0]
    assert waits[3] == pytest.approx(0.75)
    assert waits[4:6] == [0, 0]
    assert waits[6] == pytest.approx(1.0)


@pytest.mark.usefixtures("locmem_cache")
def test_rate_limiter_below_one_a_second_spaces_requests_out():
    clock = FakeClock(2_000_000.0)
    limiter = RateLimiter(f"test:slow:{uuid.uuid4()}", 0.5, clock=clock, sleep=clock.sleep)

    assert [limiter.acquire() for _ in range(3)] == [0, pytest.approx(2.0), pytest.approx(2.0)]


@pytest.mark.usefixtures("locmem_cache")
def test_rate_limiter_counts_requests_of_other_processes_through_the_cache():
    clock = FakeClock()
    key = f"test:shared:{uuid.uuid4()}"
    other_worker = RateLimiter(key, 4, clock=clock, sleep=clock.sleep)
    this_worker = RateLimiter(key, 4, clock=clock, sleep=clock.sleep)

    other_worker.acquire()
    other_worker.acquire()

    assert this_worker.acquire() == pytest.approx(0.75)


def test_the_json_gateway_is_limited_to_9_requests_a_second_per_account_by_default():
    from django_smsclub.gateways.json import JsonGateway

    limiter = ratelimit.for_gateway(JsonGateway("json", TOKEN="secret-token"))
    same_account = ratelimit.for_gateway(JsonGateway("other", TOKEN="secret-token"))

    assert limiter.capacity == 9 and limiter.period == 1.0
    assert limiter.window == pytest.approx(1.04)
    assert limiter.key == same_account.key
    assert "secret-token" not in limiter.key
    assert ratelimit.for_gateway(JsonGateway("json", TOKEN="t", RATE_LIMIT=0)) is None
    assert ratelimit.for_gateway(JsonGateway("json", TOKEN="t", RATE_LIMIT=2)).capacity == 2
    assert ratelimit.for_gateway(locmem.LocmemGateway("default")) is None


@pytest.mark.django_db
def test_every_send_request_takes_a_rate_limit_token(settings, monkeypatch, gateway_script):
    settings.SMSCLUB["GATEWAYS"]["default"]["BATCH_SIZE"] = 2
    tokens = []

    class CountingLimiter:
        def acquire(self):
            tokens.append(len(gateway_script.requests))
            return 0.0

    monkeypatch.setattr(ratelimit, "for_gateway", lambda gateway: CountingLimiter())
    send_sms(numbers(5), "Hello")

    services.send_due("default")

    assert tokens == [0, 1, 2]
    assert len(gateway_script.sent()) == 3


@pytest.mark.django_db(transaction=True)
def test_rate_limit_holds_across_two_workers(settings, gateway_script, race):
    settings.SMSCLUB["GATEWAYS"]["default"].update(
        BATCH_SIZE=1, RATE_LIMIT=3, USERNAME=f"rate-{uuid.uuid4()}"
    )
    send_sms(numbers(10), "Hello")

    race(
        lambda: services.send_due("default", batch_size=5),
        lambda: services.send_due("default", batch_size=5),
    )

    moments = sorted(moment for moment, kind, _ in gateway_script.requests if kind == "send")
    assert len(moments) == 10
    # 10 requests at 3 a second need four one-second windows: at least two seconds between
    # the first (at the end of the first window, at worst) and the last.
    assert moments[-1] - moments[0] >= 1.9
    per_second = {}
    for moment in moments:
        per_second[int(moment)] = per_second.get(int(moment), 0) + 1
    assert len(per_second) >= 4


@pytest.mark.django_db
def test_celery_tasks_leave_a_dedicated_process_gateway_alone(settings):
    from django_smsclub import tasks

    settings.SMSCLUB = {
        **settings.SMSCLUB,
        "GATEWAYS": {
            **settings.SMSCLUB["GATEWAYS"],
            "own": {"BACKEND": "tests.pipeline.test_services.DedicatedGateway", "SENDER": "Shop"},
        },
    }
    messages = send_sms(numbers(2), "Hello", gateway="own")

    assert "own" not in selectors.gateways_with_due_messages()
    assert tasks.send_queued("own") == 0
    assert {m.status for m in fresh(messages)} == {Status.QUEUED}


class DedicatedGateway(locmem.LocmemGateway):
    """A gateway that, like SMPP, has a process of its own to send for it."""

    dedicated_process = True


@pytest.mark.django_db
@pytest.mark.parametrize("recipients, expected_tasks", [(5, 1), (25, 3), (90, 4)])
def test_a_big_campaign_is_split_into_several_send_tasks(
    settings, monkeypatch, django_capture_on_commit_callbacks, recipients, expected_tasks
):
    from django_smsclub import tasks
    from django_smsclub.models import Campaign

    settings.SMSCLUB = {**settings.SMSCLUB, "SEND_BATCH_SIZE": 10, "SEND_CONCURRENCY": 4}
    enqueued = []
    monkeypatch.setattr(tasks.send_queued, "delay", lambda name: enqueued.append(name))
    campaign = Campaign.objects.create(name="Big", text="Hello", sender="Shop")
    campaign.add_recipients(numbers(recipients))

    with django_capture_on_commit_callbacks(execute=True):
        campaign.start()

    assert enqueued == ["default"] * expected_tasks
