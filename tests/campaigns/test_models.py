"""The models: constraints, derived counts, and indexes the task queries can use."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from django_smsclub.models import Campaign, DeliveryReport, Message
from django_smsclub.status import Status

pytestmark = pytest.mark.usefixtures("pipeline_settings")


def message(**fields):
    values = {"recipient": "380501234567", "sender": "Shop", "text": "Hi", "gateway": "default"}
    return Message.objects.create(**{**values, **fields})


@pytest.mark.django_db
def test_an_idempotency_key_is_unique_when_set_and_optional_otherwise():
    message(), message(), message(idempotency_key="order-1:0")

    with pytest.raises(IntegrityError), transaction.atomic():
        message(idempotency_key="order-1:0")

    assert Message.objects.count() == 3


@pytest.mark.django_db
def test_one_report_per_part_of_a_message():
    sms = message()
    DeliveryReport.objects.create(message=sms, part=1, smsc_id="1", gateway="default")

    with pytest.raises(IntegrityError), transaction.atomic():
        DeliveryReport.objects.create(message=sms, part=1, smsc_id="2", gateway="default")


@pytest.mark.django_db
def test_campaign_counts_come_from_one_grouped_query(django_assert_num_queries):
    sale = Campaign.objects.create(name="Sale", text="Sale today")
    other = Campaign.objects.create(name="Other", text="Other")
    for status in (Status.DELIVERED, Status.DELIVERED, Status.FAILED, Status.QUEUED):
        message(campaign=sale, status=status)
    message(campaign=other, status=Status.DELIVERED)

    with django_assert_num_queries(1):
        counts = sale.status_counts()
    with django_assert_num_queries(1):
        listed = {c.name: c for c in Campaign.objects.with_status_counts()}

    assert counts[Status.DELIVERED] == 2 and counts[Status.FAILED] == 1
    assert counts[Status.SENT] == 0 and sum(counts.values()) == 4
    assert (listed["Sale"].count_total, listed["Sale"].count_delivered) == (4, 2)
    assert (listed["Other"].count_total, listed["Other"].count_queued) == (1, 0)


@pytest.mark.django_db
def test_campaign_clean_names_what_cannot_be_sent():
    with pytest.raises(ValidationError) as caught:
        Campaign(name="Sale", sender="No-Dashes!", text="Hi {user.email}").clean()

    assert len(caught.value.messages) == 2


@pytest.mark.django_db
def test_the_migrations_match_the_models():
    out = StringIO()
    call_command("makemigrations", "django_smsclub", "--check", "--dry-run", stdout=out)


QUERIES = {
    "smsclub_msg_queued_priority": lambda now: Message.objects.filter(
        gateway="default", status=Status.QUEUED, next_attempt_at__lte=now
    ).order_by("priority", "next_attempt_at", "pk")[:500],
    "smsclub_msg_sending_claimed": lambda now: Message.objects.filter(
        status=Status.SENDING, claimed_at__lt=now - timedelta(minutes=15)
    ).order_by("claimed_at", "pk")[:1000],
    "smsclub_report_due": lambda now: DeliveryReport.objects.filter(
        gateway="default", status=Status.SENT, next_poll_at__lte=now
    ).order_by("next_poll_at", "pk")[:500],
    "smsclub_report_smsc": lambda now: DeliveryReport.objects.filter(
        gateway="default", smsc_id__in=["1", "2"]
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("index", sorted(QUERIES))
def test_each_task_query_can_use_its_index(index):
    query = QUERIES[index](timezone.now())
    if connection.vendor == "postgresql":
        # On a handful of rows a sequential scan is cheaper; forbid it to see what the
        # planner could use.
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
        plan = query.explain()
    else:
        plan = query.explain()
    assert index in plan
