"""Following delivery reports: due polls, growing intervals, the 3-day window, apply_states."""

from datetime import timedelta

import pytest
from django.utils import timezone

from django_smsclub import ratelimit, send_sms, services
from django_smsclub.exceptions import GatewayUnavailable
from django_smsclub.gateways import locmem
from django_smsclub.models import DeliveryReport, Message
from django_smsclub.status import Status
from tests.support.scripted import ScriptedGateway

pytestmark = pytest.mark.usefixtures("pipeline_settings")

TWO_PARTS = "Ваше замовлення готове. " * 4


def sent(count=1, text="Hello", start=0):
    messages = send_sms([f"3805013{i:05d}" for i in range(start, start + count)], text)
    services.send_due("default")
    return [Message.objects.get(pk=m.pk) for m in messages]


def ids_of(message):
    return list(message.reports.order_by("part").values_list("smsc_id", flat=True))


def later(minutes):
    return timezone.now() + timedelta(minutes=minutes)


@pytest.mark.django_db
def test_only_due_reports_are_polled(gateway_script):
    [message] = sent()

    assert services.poll_due("default", now=timezone.now()) == 0
    assert gateway_script.polled() == []

    assert services.poll_due("default", now=later(1)) == 1
    assert gateway_script.polled() == [ids_of(message)]
    message.refresh_from_db()
    assert message.status == Status.DELIVERED


@pytest.mark.django_db
def test_poll_intervals_grow_with_each_poll_and_the_last_repeats():
    [message] = sent()
    [smsc_id] = ids_of(message)
    locmem.states[smsc_id] = "ENROUTE"
    report = DeliveryReport.objects.get()
    assert report.next_poll_at - report.created_at == timedelta(seconds=30)

    pauses = []
    moment = report.next_poll_at
    for _ in range(5):
        services.poll_due("default", now=moment)
        report.refresh_from_db()
        pauses.append((report.next_poll_at - moment).total_seconds())
        moment = report.next_poll_at

    assert pauses == [60, 120, 300, 300, 300]
    assert report.polls == 5
    assert report.raw_status == "ENROUTE"


@pytest.mark.django_db
def test_status_requests_carry_at_most_max_state_batch_ids(monkeypatch, gateway_script):
    monkeypatch.setattr(ScriptedGateway, "max_state_batch", 3)
    sent(count=7)

    services.poll_due("default", now=later(1))

    assert sorted(len(ids) for ids in gateway_script.polled()) == [1, 3, 3]
    assert set(Message.objects.values_list("status", flat=True)) == {Status.DELIVERED}


@pytest.mark.django_db
def test_report_still_pending_when_the_window_closes_becomes_unknown_without_a_poll(
    gateway_script,
):
    [message] = sent()
    [smsc_id] = ids_of(message)
    locmem.states[smsc_id] = "ENROUTE"
    created = DeliveryReport.objects.get().created_at
    closes = created + timedelta(days=3)

    # The next poll would come 60 s later, past the close: it comes at the close instead.
    services.poll_due("default", now=closes - timedelta(seconds=10))
    report = DeliveryReport.objects.get()
    assert report.next_poll_at == closes
    polls_before = len(gateway_script.polled())

    services.poll_due("default", now=closes)

    assert len(gateway_script.polled()) == polls_before
    report.refresh_from_db()
    message.refresh_from_db()
    assert (report.status, report.raw_status) == (Status.UNKNOWN, "ENROUTE")
    assert report.next_poll_at is None
    assert message.status == Status.UNKNOWN
    assert message.error == services.WINDOW_CLOSED
    assert message.finished_at == closes


@pytest.mark.django_db
def test_a_message_is_delivered_only_when_every_part_is():
    [message] = sent(text=TWO_PARTS)
    first, second = ids_of(message)
    locmem.states.update({first: "DELIVRD", second: "ENROUTE"})

    services.poll_due("default", now=later(1))
    message.refresh_from_db()
    assert message.status == Status.SENT

    services.apply_states("default", {second: "DELIVRD"})
    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert message.finished_at is not None


@pytest.mark.django_db
def test_one_undelivered_part_makes_the_message_undelivered():
    [message] = sent(text=TWO_PARTS)
    first, second = ids_of(message)

    services.apply_states("default", {first: "DELIVRD", second: "UNDELIV"})

    message.refresh_from_db()
    assert message.status == Status.UNDELIVERED


@pytest.mark.django_db
def test_provider_words_are_kept_verbatim_and_odd_ones_change_nothing():
    messages = sent(count=4)
    lower, date, russian, long = (ids_of(m)[0] for m in messages)

    services.apply_states(
        "default",
        {
            lower: "delivrd",
            date: "2165-05-28 21:14:21",
            russian: "неверно указан id",
            long: "X" * 400,
        },
    )

    reports = {r.smsc_id: r for r in DeliveryReport.objects.all()}
    assert (reports[lower].raw_status, reports[lower].status) == ("delivrd", Status.DELIVERED)
    assert (reports[date].raw_status, reports[date].status) == ("2165-05-28 21:14:21", "sent")
    assert reports[russian].raw_status == "неверно указан id"
    assert reports[russian].status == Status.SENT
    assert reports[long].raw_status == "X" * 255
    statuses = [Message.objects.get(pk=m.pk).status for m in messages]
    assert statuses == [Status.DELIVERED, Status.SENT, Status.SENT, Status.SENT]


@pytest.mark.django_db
def test_a_final_report_never_changes():
    [message] = sent()
    [smsc_id] = ids_of(message)
    services.apply_states("default", {smsc_id: "DELIVRD"})

    assert services.apply_states("default", {smsc_id: "UNDELIV"}) == []

    report = DeliveryReport.objects.get()
    message.refresh_from_db()
    assert (report.raw_status, message.status) == ("DELIVRD", Status.DELIVERED)


@pytest.mark.django_db
def test_apply_states_touches_only_reports_of_its_gateway():
    [message] = sent()
    [smsc_id] = ids_of(message)

    assert services.apply_states("cp1251", {smsc_id: "DELIVRD"}) == []

    message.refresh_from_db()
    assert message.status == Status.SENT


@pytest.mark.django_db
def test_a_failed_status_request_leaves_reports_for_their_next_poll(gateway_script):
    [message] = sent()
    gateway_script.state.append(GatewayUnavailable("connection refused"))
    moment = later(1)

    services.poll_due("default", now=moment)

    report = DeliveryReport.objects.get()
    message.refresh_from_db()
    assert message.status == Status.SENT
    assert report.status == Status.SENT and report.polls == 1
    assert report.next_poll_at == moment + timedelta(seconds=60)


@pytest.mark.django_db
def test_every_status_request_takes_a_rate_limit_token(monkeypatch, gateway_script):
    monkeypatch.setattr(ScriptedGateway, "max_state_batch", 2)
    tokens = []

    class CountingLimiter:
        def acquire(self):
            tokens.append(len(gateway_script.requests))
            return 0.0

    monkeypatch.setattr(ratelimit, "for_gateway", lambda gateway: CountingLimiter())
    sent(count=5)
    tokens.clear()

    services.poll_due("default", now=later(1))

    state_requests = len(gateway_script.polled())
    assert state_requests == 3
    assert len(tokens) == state_requests


@pytest.mark.django_db
def test_poll_batch_of_100_takes_at_most_11_queries(django_assert_max_num_queries):
    sent(count=60)
    sent(count=40, text=TWO_PARTS, start=100)

    # 11: the batch's final statuses look up the webhook endpoints that want them, once.
    with django_assert_max_num_queries(11):
        assert services.poll_due("default", batch_size=500, now=later(1)) == 140

    assert set(Message.objects.values_list("status", flat=True)) == {Status.DELIVERED}


@pytest.mark.django_db(transaction=True)
def test_two_pollers_never_poll_the_same_report(gateway_script, race):
    sent(count=40)
    gateway_script.state_delay = 0.05
    moment = later(1)

    race(
        lambda: services.poll_due("default", batch_size=5, now=moment),
        lambda: services.poll_due("default", batch_size=5, now=moment),
    )

    polled = [smsc_id for ids in gateway_script.polled() for smsc_id in ids]
    assert sorted(polled) == sorted(DeliveryReport.objects.values_list("smsc_id", flat=True))
    assert set(Message.objects.values_list("status", flat=True)) == {Status.DELIVERED}
