"""Webhooks against a real receiver on 127.0.0.1 that checks every signature: what is sent, when
it is tried again, in which order, and when an endpoint is disabled."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_smsclub import send_sms, services, signals
from django_smsclub.models import (
    Campaign,
    DeliveryReport,
    Message,
    WebhookDelivery,
    WebhookEndpoint,
)
from django_smsclub.services import webhooks
from django_smsclub.services.transitions import Transition, notify
from django_smsclub.status import Status
from django_smsclub.webhooks import sender, verify_signature
from tests.support.webhook_receiver import WebhookReceiver

from .conftest import SECRET

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hooks")]

PENDING = WebhookDelivery.Status.PENDING
DELIVERED = WebhookDelivery.Status.DELIVERED
FAILED = WebhookDelivery.Status.FAILED


def numbers(count, start=0):
    return [f"3805017{i:05d}" for i in range(start, start + count)]


def delivered_messages(count=1):
    """``count`` messages sent and then delivered, through the real pipeline."""
    messages = send_sms(numbers(count), "Ваш код 1234", metadata={"order": 42})
    services.send_due("default")
    smsc_ids = DeliveryReport.objects.values_list("smsc_id", flat=True)
    services.apply_states("default", dict.fromkeys(smsc_ids, "DELIVRD"))
    return [Message.objects.get(pk=m.pk) for m in messages]


def make_due():
    """Pending deliveries due now, in the order they were due."""
    WebhookDelivery.objects.filter(status=PENDING).update(
        next_attempt_at=F("next_attempt_at") - timedelta(days=1)
    )


def test_a_message_finishing_sends_one_signed_post(receiver):
    [message] = delivered_messages()

    assert webhooks.deliver_due() == 1

    [request] = receiver.wait_for(1)
    assert request.signature_ok
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-SMSClub-Event"] == "message.final"
    body = json.loads(request.body)
    assert body["event"] == "message.final"
    assert request.headers["X-SMSClub-Event-Id"] == body["event_id"]
    assert body["occurred_at"].endswith("Z")
    data = body["data"]
    assert data["previous_status"] == Status.SENT
    assert data["correction"] is False
    assert data["message"]["id"] == message.pk
    assert data["message"]["recipient"] == message.recipient
    assert data["message"]["status"] == Status.DELIVERED
    assert data["message"]["metadata"] == {"order": 42}
    assert "text" not in data["message"]  # a text may hold a code: never sent to a webhook
    assert verify_signature(request.body, request.headers, SECRET)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DELIVERED, 1, 200)
    assert delivery.delivered_at is not None
    assert webhooks.deliver_due() == 0  # nothing is sent twice


def test_each_final_status_is_an_event_and_other_changes_are_not(receiver):
    send_sms(numbers(3), "Hello")
    assert WebhookDelivery.objects.count() == 0  # queued is no event
    services.cancel_messages(Message.objects.all())

    webhooks.deliver_due()

    requests = receiver.wait_for(3)
    assert {r.json["data"]["message"]["status"] for r in requests} == {Status.CANCELLED}
    assert all(r.signature_ok for r in requests)
    assert len({r.event_id for r in requests}) == 3


def test_only_endpoints_that_chose_the_event_get_it(hooks, receiver):
    other = WebhookReceiver(SECRET)
    try:
        hooks["WEBHOOKS"]["campaigns_only"] = {
            "URL": other.url,
            "SECRET": SECRET,
            "EVENTS": ["campaign.done"],
        }
        webhooks.sync_endpoints()
        delivered_messages()

        webhooks.deliver_due()

        assert len(receiver.wait_for(1)) == 1
        assert other.received == []
    finally:
        other.close()


def test_a_campaign_done_sends_its_counts_once(receiver, django_capture_on_commit_callbacks):
    campaign = Campaign.objects.create(name="Sale", text="Sale today")
    campaign.add_recipients(numbers(3))
    campaign.start()
    services.send_due("default")
    finished = []
    signals.campaign_finished.connect(
        lambda campaign, **kwargs: finished.append(campaign.pk), weak=False, dispatch_uid="t-cf"
    )
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert services.refresh_campaigns() == 0  # sent, not final yet
        smsc_ids = list(DeliveryReport.objects.order_by("pk").values_list("smsc_id", flat=True))
        states = dict.fromkeys(smsc_ids, "DELIVRD")
        states[smsc_ids[0]] = "UNDELIV"
        services.apply_states("default", states)
        with django_capture_on_commit_callbacks(execute=True):
            assert services.refresh_campaigns() == 1
        with django_capture_on_commit_callbacks(execute=True):
            assert services.refresh_campaigns() == 0
    finally:
        signals.campaign_finished.disconnect(dispatch_uid="t-cf")

    assert finished == [campaign.pk]
    webhooks.deliver_due()
    requests = receiver.wait_for(4)
    [done] = [r for r in requests if r.json["event"] == "campaign.done"]
    assert done.signature_ok
    data = done.json["data"]["campaign"]
    assert (data["id"], data["name"], data["state"], data["messages"]) == (
        campaign.pk,
        "Sale",
        "done",
        3,
    )
    assert data["statuses"] == {Status.DELIVERED: 2, Status.UNDELIVERED: 1}
    assert WebhookDelivery.objects.get(event="campaign.done").campaign_id == campaign.pk


def test_a_500_is_tried_again_with_the_same_event_id_after_a_growing_backoff(receiver):
    receiver.statuses = [500, 500, 200]
    delivered_messages()
    started = timezone.now()

    webhooks.deliver_due()

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (PENDING, 1, 500)
    assert delivery.last_error.startswith("HTTP 500")
    wait = (delivery.next_attempt_at - started).total_seconds()
    assert 29 <= wait <= 32
    assert webhooks.deliver_due() == 0  # not due yet

    make_due()
    webhooks.deliver_due()
    delivery.refresh_from_db()
    wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
    assert 58 <= wait <= 61  # doubled
    make_due()
    webhooks.deliver_due()

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DELIVERED, 3, 200)
    requests = receiver.wait_for(3)
    assert all(r.signature_ok for r in requests)
    assert len({r.event_id for r in requests}) == 1
    assert len({r.body for r in requests}) == 1  # the same body, signed anew each time
    assert [r.headers["X-SMSClub-Attempt"] for r in requests] == ["1", "2", "3"]


def test_backoff_doubles_up_to_its_ceiling(hooks):
    hooks.update(WEBHOOK_RETRY_BACKOFF=10, WEBHOOK_RETRY_BACKOFF_MAX=100)

    assert [webhooks.retry_delay(n) for n in range(1, 7)] == [10, 20, 40, 80, 100, 100]
    assert webhooks.retry_delay(10_000) == 100


def test_a_receiver_that_hangs_is_a_timeout_tried_again(hooks, receiver):
    hooks["WEBHOOK_TIMEOUT"] = 0.5
    receiver.delay = 3
    delivered_messages()

    started = timezone.now()
    webhooks.deliver_due()

    assert (timezone.now() - started).total_seconds() < 2
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (PENDING, 1, None)
    assert delivery.last_error == "timed out after 0.5 s"


def test_a_refused_connection_is_tried_again(hooks):
    closed = WebhookReceiver(SECRET)
    closed.close()
    WebhookEndpoint.objects.update(url=closed.url)
    delivered_messages()

    webhooks.deliver_due()

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (PENDING, 1)
    assert delivery.last_error.startswith("connection failed")
    assert "127.0.0.1" not in delivery.last_error or "Connection refused" in delivery.last_error


def test_events_of_one_message_go_in_order(receiver):
    [message] = delivered_messages()
    # The same message corrected later (unknown -> delivered): a second event for it.
    notify([Transition(message, Status.SENT, Status.DELIVERED, finished_before=True)])
    first, second = WebhookDelivery.objects.order_by("pk")
    receiver.statuses = [500, 200]

    webhooks.deliver_due()

    # The first failed and waits; the second waits for the first, due or not.
    assert [r.event_id for r in receiver.received] == [str(first.event_id)]
    WebhookDelivery.objects.filter(pk=second.pk).update(next_attempt_at=timezone.now())
    assert webhooks.deliver_due() == 0
    make_due()
    webhooks.deliver_due()
    webhooks.deliver_due()

    assert [r.event_id for r in receiver.received] == [
        str(first.event_id),
        str(first.event_id),
        str(second.event_id),
    ]
    assert receiver.received[2].json["data"]["correction"] is True


def test_a_failing_endpoint_costs_one_attempt_per_retry_not_one_per_event(receiver):
    receiver.statuses = [503]
    delivered_messages(5)

    assert webhooks.deliver_due() == 1

    assert len(receiver.received) == 1
    # All wait for the endpoint's retry time; the one tried waits behind the others.
    tried = WebhookDelivery.objects.get(attempts=1)
    untried = set(
        WebhookDelivery.objects.filter(attempts=0).values_list("next_attempt_at", flat=True)
    )
    assert len(untried) == 1
    retry_at = untried.pop()
    assert retry_at > timezone.now() + timedelta(seconds=25)
    assert tried.next_attempt_at == retry_at + timedelta(seconds=1)
    assert sorted(WebhookDelivery.objects.values_list("attempts", flat=True)) == [0, 0, 0, 0, 1]
    assert WebhookDelivery.objects.filter(claimed_at__isnull=False).count() == 0


def test_an_endpoint_failing_too_often_is_disabled_and_resumes_when_enabled(hooks, receiver):
    hooks.update(WEBHOOK_DISABLE_AFTER=3, WEBHOOK_MAX_ATTEMPTS=2)
    receiver.statuses = [500]
    delivered_messages(2)

    for _ in range(3):
        make_due()
        webhooks.deliver_due()

    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.disabled_at is not None
    assert endpoint.consecutive_failures == 3
    assert endpoint.disabled_reason.startswith("3 failed attempts in a row; the last: HTTP 500")
    # Nothing is lost: both wait for the endpoint (the one tried 3 times too, past
    # WEBHOOK_MAX_ATTEMPTS, because its failure disabled the endpoint).
    assert list(WebhookDelivery.objects.values_list("status", flat=True)) == [PENDING, PENDING]
    make_due()
    assert webhooks.deliver_due() == 0  # a disabled endpoint gets nothing
    send_sms(numbers(1, start=50), "Later")
    services.cancel_messages(Message.objects.filter(status=Status.QUEUED))
    assert WebhookDelivery.objects.count() == 2  # nor new events

    receiver.statuses = [200]
    assert webhooks.enable_endpoint(endpoint) == 2
    webhooks.deliver_due()

    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DELIVERED}
    endpoint.refresh_from_db()
    assert (endpoint.disabled_at, endpoint.consecutive_failures) == (None, 0)
    assert len(receiver.received) == 3 + 2


def test_an_event_refused_alone_holds_back_no_other_and_is_given_up_at_the_limit(hooks, receiver):
    hooks.update(WEBHOOK_MAX_ATTEMPTS=2, WEBHOOK_DISABLE_AFTER=3)
    poison, *_fine = delivered_messages(4)
    refused = {"on": True}

    def refuse_poison(request):
        is_poison = request.json["data"]["message"]["id"] == poison.pk
        return 400 if is_poison and refused["on"] else 200

    receiver.status_for = refuse_poison

    for _ in range(3):
        make_due()
        webhooks.deliver_due()

    delivery = WebhookDelivery.objects.get(message=poison)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == (FAILED, 2, None)
    assert set(
        WebhookDelivery.objects.exclude(pk=delivery.pk).values_list("status", flat=True)
    ) == {DELIVERED}
    assert WebhookEndpoint.objects.get().disabled_at is None

    refused["on"] = False
    assert webhooks.retry_deliveries(WebhookDelivery.objects.all()) == 1
    webhooks.deliver_due()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DELIVERED, 3)


def test_a_success_forgets_the_failures_in_a_row(receiver):
    receiver.statuses = [500, 200]
    delivered_messages()
    webhooks.deliver_due()
    assert WebhookEndpoint.objects.get().consecutive_failures == 1

    make_due()
    webhooks.deliver_due()

    assert WebhookEndpoint.objects.get().consecutive_failures == 0


def test_a_redirect_is_not_followed(receiver):
    elsewhere = WebhookReceiver(SECRET)
    try:
        receiver.statuses = [307]
        receiver.reply_headers = {"Location": elsewhere.url}
        delivered_messages()

        webhooks.deliver_due()

        assert elsewhere.received == []
        delivery = WebhookDelivery.objects.get()
        assert delivery.status == PENDING
        assert delivery.last_status_code == 307
        assert "webhooks follow no redirect" in delivery.last_error
    finally:
        elsewhere.close()


def test_a_huge_error_reply_is_read_only_in_part(receiver):
    receiver.statuses = [500]
    receiver.reply_body = b"E" * 5_000_000
    delivered_messages()

    webhooks.deliver_due()

    delivery = WebhookDelivery.objects.get()
    assert len(delivery.last_error) <= sender.MAX_ERROR_CHARS


def test_the_test_event_is_sent_once_and_counts_for_nothing(receiver):
    endpoint = WebhookEndpoint.objects.get()
    receiver.statuses = [500]

    delivery, reply = webhooks.send_test_event(endpoint)

    assert not reply.ok and reply.status_code == 500
    delivery.refresh_from_db()
    assert (delivery.event, delivery.status, delivery.attempts) == ("webhook.test", FAILED, 1)
    assert WebhookEndpoint.objects.get().consecutive_failures == 0
    [request] = receiver.received
    assert request.signature_ok
    assert request.json["data"] == {"endpoint": "crm"}
    assert webhooks.retry_deliveries(WebhookDelivery.objects.all()) == 0


def test_recording_is_one_statement_per_batch_of_transitions_not_one_per_event(hooks, receiver):
    hooks["WEBHOOKS"]["second"] = {"URL": receiver.url, "SECRET": SECRET}
    webhooks.sync_endpoints()
    send_sms(numbers(1200), "Hello")

    with CaptureQueriesContext(connection) as queries:
        services.cancel_messages(Message.objects.all())

    inserts = [
        q
        for q in queries
        if q["sql"].startswith(("INSERT", "COPY")) and "webhookdelivery" in q["sql"]
    ]
    if connection.vendor == "postgresql":
        assert len(inserts) == 3  # one COPY per chunk of 500, 500 and 200 transitions
    else:
        # As many rows per INSERT as the database takes parameters for (SQLite: about 80).
        assert len(inserts) <= 3 * 13
    assert WebhookDelivery.objects.count() == 2400
    assert not any("webhookendpoint" in q["sql"] and "UPDATE" in q["sql"] for q in queries)


def test_the_status_pipeline_makes_no_request(monkeypatch, receiver):
    def forbidden(*args, **kwargs):
        raise AssertionError("an HTTP request in the status pipeline")

    monkeypatch.setattr(sender, "post", forbidden)
    monkeypatch.setattr(sender.requests.Session, "request", forbidden)

    delivered_messages(3)

    assert WebhookDelivery.objects.filter(status=PENDING).count() == 3
    assert receiver.received == []


def test_a_hung_receiver_does_not_slow_sends(hooks, receiver):
    receiver.delay = 5
    hooks["WEBHOOK_TIMEOUT"] = 5
    started = timezone.now()

    delivered_messages(20)

    assert (timezone.now() - started).total_seconds() < 3
    assert receiver.received == []
    assert WebhookDelivery.objects.filter(status=PENDING).count() == 20


def test_a_claim_of_another_live_worker_is_left_alone_and_a_dead_ones_is_taken(receiver):
    delivered_messages()
    [claimed] = webhooks.claim_due()
    assert webhooks.claim_due() == []

    WebhookDelivery.objects.update(
        claimed_at=timezone.now() - timedelta(seconds=webhooks.CLAIM_LEASE + 1)
    )

    assert [d.pk for d in webhooks.claim_due()] == [claimed.pk]


def test_a_rolled_back_transition_owes_no_event():
    from django.db import transaction

    send_sms(numbers(2), "Hello")
    with pytest.raises(RuntimeError), transaction.atomic():
        services.cancel_messages(Message.objects.all())
        assert WebhookDelivery.objects.count() == 2
        raise RuntimeError("rolled back")

    assert WebhookDelivery.objects.count() == 0
