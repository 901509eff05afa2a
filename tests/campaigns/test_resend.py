"""Sending chosen messages anew (``services.resend_messages``): the rule of ``retry_failed``,
message by message, and the same copies."""

import pytest

from django_smsclub import send_sms, services
from django_smsclub.models import Campaign, Message
from django_smsclub.status import Status

pytestmark = pytest.mark.usefixtures("pipeline_settings")


def failed_in(campaign, number="0501234567", status=Status.UNDELIVERED):
    campaign.add_recipients([number])
    message = campaign.messages.get(recipient__endswith=number[1:])
    Message.objects.filter(pk=message.pk).update(status=status)
    Campaign.objects.filter(pk=campaign.pk).update(state=Campaign.State.DONE)
    return message


@pytest.mark.django_db
def test_resend_of_a_failed_message_queues_one_copy_and_enqueues_it_after_commit(
    django_capture_on_commit_callbacks,
):
    campaign = Campaign.objects.create(name="Sale", text="Sale today")
    original = failed_in(campaign)

    with django_capture_on_commit_callbacks() as enqueued:
        queued = services.resend_messages(Message.objects.filter(pk=original.pk))

    copy = Message.objects.get(retry_of=original)
    assert queued == 1 and len(enqueued) == 1
    assert copy.status == Status.QUEUED and copy.next_attempt_at is not None
    assert (copy.campaign_id, copy.recipient, copy.text, copy.parts) == (
        campaign.pk,
        original.recipient,
        original.text,
        original.parts,
    )
    # The campaign is on its way again until its copy is final.
    assert Campaign.objects.get(pk=campaign.pk).state == Campaign.State.RUNNING


@pytest.mark.django_db
@pytest.mark.parametrize(
    "status", [Status.UNKNOWN, Status.DELIVERED, Status.CANCELLED, Status.QUEUED, Status.SENT]
)
def test_an_unknown_delivered_or_pending_message_is_never_resent(status):
    [message] = send_sms("0501234567", "Hello")
    Message.objects.filter(pk=message.pk).update(status=status)

    assert services.resend_messages(Message.objects.all()) == 0
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_resending_twice_makes_one_copy_and_a_retry_after_it_none():
    campaign = Campaign.objects.create(name="Sale", text="Sale today")
    original = failed_in(campaign)
    chosen = Message.objects.filter(pk=original.pk)

    assert services.resend_messages(chosen) == 1
    assert services.resend_messages(chosen) == 0
    Campaign.objects.filter(pk=campaign.pk).update(state=Campaign.State.DONE)
    assert services.retry_failed(campaign) == 0

    assert Message.objects.filter(retry_of=original).count() == 1


@pytest.mark.django_db
def test_a_failed_copy_can_be_resent_in_turn():
    [original] = send_sms("0501234567", "Hello")
    Message.objects.filter(pk=original.pk).update(status=Status.FAILED)
    services.resend_messages(Message.objects.filter(pk=original.pk))
    copy = Message.objects.get(retry_of=original)
    Message.objects.filter(pk=copy.pk).update(status=Status.EXPIRED)

    assert services.resend_messages(Message.objects.filter(pk__in=[original.pk, copy.pk])) == 1
    assert Message.objects.get(retry_of=copy).campaign is None


@pytest.mark.django_db(transaction=True)
def test_two_racing_resends_of_one_message_make_one_copy(race):
    [original] = send_sms("0501234567", "Hello")
    Message.objects.filter(pk=original.pk).update(status=Status.FAILED)

    def call():
        return services.resend_messages(Message.objects.filter(pk=original.pk))

    assert sorted(race(call, call)) == [0, 1]
    assert Message.objects.filter(retry_of=original).count() == 1
