"""The public API: send_sms, send_personalized and campaigns."""

import contextlib
import logging
import subprocess
import sys
import threading
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from django_smsclub import selectors, send_personalized, send_sms, services
from django_smsclub.exceptions import CampaignStateError, InvalidMessage
from django_smsclub.gateways import get_gateway, locmem
from django_smsclub.models import Campaign, Message
from django_smsclub.services import campaigns, sending
from django_smsclub.status import Status

pytestmark = pytest.mark.usefixtures("pipeline_settings")


@pytest.fixture
def enqueued(monkeypatch):
    """The sends enqueued after commit, as (gateway, eta or None)."""
    from django_smsclub import tasks

    calls = []
    monkeypatch.setattr(tasks.send_queued, "delay", lambda name: calls.append((name, None)))
    monkeypatch.setattr(
        tasks.send_queued, "apply_async", lambda args, eta: calls.append((args[0], eta))
    )
    return calls


def test_importing_the_package_loads_no_models():
    code = (
        "import sys, django_smsclub; "
        "assert callable(django_smsclub.__getattr__); "
        "print(sorted(m for m in sys.modules if m.startswith('django_smsclub')))"
    )
    # A fresh interpreter: this one has loaded the models long ago.
    result = subprocess.run(  # noqa: S603 (this interpreter and a literal)
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "['django_smsclub']"


@pytest.mark.django_db
def test_send_sms_queues_one_message_per_distinct_normalised_number():
    messages = send_sms(
        ["+380 (50) 123-45-67", "0501234567", 380671234567],
        "Ваше замовлення готове",
        metadata={"order": 17},
    )

    assert [m.recipient for m in messages] == ["380501234567", "380671234567"]
    for message in Message.objects.all():
        assert (message.status, message.sender, message.gateway) == (
            Status.QUEUED,
            "Shop",
            "default",
        )
        assert message.parts == 1 and message.metadata == {"order": 17}
        assert message.next_attempt_at is not None


@pytest.mark.django_db
def test_send_sms_takes_one_number_as_a_string(django_user_model):
    user = django_user_model.objects.create(username="operator")

    [message] = send_sms("050 123 45 67", "Hi", sender="Other", created_by=user)

    assert (message.recipient, message.sender, message.created_by) == (
        "380501234567",
        "Other",
        user,
    )


@pytest.mark.django_db
def test_invalid_input_names_every_bad_value_and_stores_nothing():
    with pytest.raises(InvalidMessage) as caught:
        send_sms(
            ["0501234567", "12345", "not a phone"],
            "x" * 1072,
            sender="Way too long sender",
            idempotency_key="",
            metadata={"when": object()},
        )

    problems = "\n".join(caught.value.problems)
    assert len(caught.value.problems) == 6
    for bad in ("'12345'", "'not a phone'", "'Way too long sender'", "1072", "idempotency_key"):
        assert bad in problems
    assert "metadata" in problems
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_a_gateway_sending_windows_1251_refuses_an_emoji_before_storing():
    send_sms("0501234567", "Привіт 🙂", gateway="default")

    with pytest.raises(InvalidMessage, match="Windows-1251"):
        send_sms("0501234567", "Привіт 🙂", gateway="cp1251")

    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_a_missing_sender_and_an_unknown_gateway_are_named(settings):
    del settings.SMSCLUB["GATEWAYS"]["default"]["SENDER"]

    with pytest.raises(InvalidMessage, match="no sender"):
        send_sms("0501234567", "Hi")
    with pytest.raises(InvalidMessage, match="'nowhere'"):
        send_sms("0501234567", "Hi", gateway="nowhere")
    with pytest.raises(InvalidMessage, match="no recipient"):
        send_sms([], "Hi", sender="Shop")
    with pytest.raises(InvalidMessage, match="a number or an iterable, not None"):
        send_sms(None, "Hi", sender="Shop")


@pytest.mark.django_db
def test_the_send_is_enqueued_after_commit_and_at_send_at(
    enqueued, django_capture_on_commit_callbacks
):
    send_at = timezone.now() + timedelta(hours=2)
    with django_capture_on_commit_callbacks(execute=True):
        send_sms("0501234567", "Now")
        assert enqueued == []
        [later] = send_sms("0671234567", "Later", send_at=send_at)

    assert enqueued == [("default", None), ("default", send_at)]
    assert later.next_attempt_at == send_at
    assert services.claim_batch("default", 10, now=send_at - timedelta(seconds=1))[0].text == "Now"
    assert services.claim_batch("default", 10, now=send_at)[0].text == "Later"


@pytest.mark.django_db
def test_a_naive_send_at_is_read_in_the_current_time_zone():
    naive = datetime(2031, 5, 1, 9, 0)

    [message] = send_sms("0501234567", "Hi", send_at=naive)

    assert message.next_attempt_at == timezone.make_aware(naive)


@pytest.mark.django_db
def test_an_unreachable_broker_loses_no_message(
    monkeypatch, caplog, django_capture_on_commit_callbacks
):
    from django_smsclub import tasks

    def broken(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.send_queued, "delay", broken)
    with (
        caplog.at_level(logging.WARNING, logger="django_smsclub"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        [message] = send_sms("0501234567", "Hi")

    assert "periodic send_due task will send" in caplog.text
    assert selectors.gateways_with_due_messages() == ["default"]
    assert Message.objects.get().pk == message.pk


@pytest.mark.django_db
def test_a_repeated_idempotency_key_returns_the_first_messages_and_sends_nothing_new():
    first = send_sms(["0501234567", "0671234567"], "Hi", idempotency_key="order-17")
    services.send_due("default")

    again = send_sms(["0501234567", "0671234567"], "Hi", idempotency_key="order-17")
    services.send_due("default")

    assert [m.pk for m in again] == [m.pk for m in first]
    assert [m.idempotency_key for m in again] == ["order-17:0", "order-17:1"]
    assert Message.objects.count() == 2
    assert len(locmem.outbox) == 2


@pytest.mark.django_db(transaction=True)
def test_two_racing_calls_with_one_key_create_one_set_of_messages(race, monkeypatch):
    # Both calls look the key up before either stores: the unique constraint must decide.
    looked_up = threading.Barrier(2)
    keyed = sending._keyed
    waited = threading.local()

    def lookup_together(keys):
        found = keyed(keys)
        if not getattr(waited, "done", False):
            waited.done = True
            with contextlib.suppress(threading.BrokenBarrierError):
                looked_up.wait(timeout=2)
        return found

    monkeypatch.setattr(sending, "_keyed", lookup_together)

    def call():
        return [m.pk for m in send_sms(["0501234567", "0671234567"], "Hi", idempotency_key="k")]

    first, second = race(call, call)

    assert first == second
    assert Message.objects.count() == 2


@pytest.mark.django_db
def test_send_personalized_queues_a_text_per_number_and_names_bad_pairs():
    messages = send_personalized([("0501234567", "Hi Ann"), ("0671234567", "Hi Bob")])
    assert [(m.recipient, m.text) for m in messages] == [
        ("380501234567", "Hi Ann"),
        ("380671234567", "Hi Bob"),
    ]

    with pytest.raises(InvalidMessage) as caught:
        send_personalized([("0501234567", ""), ("bad", "Hi"), "lonely", ("0671234567", "ok")])
    assert len(caught.value.problems) == 3
    assert Message.objects.count() == 2


@pytest.mark.django_db
def test_send_personalized_is_idempotent_too():
    first = send_personalized([("0501234567", "Hi Ann")], idempotency_key="welcome-1")
    again = send_personalized([("0501234567", "Hi Ann")], idempotency_key="welcome-1")

    assert [m.pk for m in again] == [m.pk for m in first]


def campaign(**fields):
    return Campaign.objects.create(**{"name": "Spring sale", "text": "Sale today", **fields})


@pytest.mark.django_db
def test_add_recipients_streams_in_chunks_and_fills_placeholders(monkeypatch):
    sale = campaign(text="{name}, your discount is {discount}%")
    pulled = []
    stored_after = []

    def rows():
        for i in range(25):
            pulled.append(i)
            yield (f"05012{i:05d}", {"name": f"N{i}", "discount": 10 + i})

    store = campaigns._store_recipients
    monkeypatch.setattr(
        campaigns,
        "_store_recipients",
        lambda *args: (stored_after.append(len(pulled)), store(*args)),
    )

    result = sale.add_recipients(rows(), chunk_size=10)

    assert (result.added, result.duplicates, result.refused) == (25, 0, [])
    assert stored_after == [10, 20, 25]
    first = sale.messages.get(recipient="380501200000")
    assert first.text == "N0, your discount is 10%"
    assert first.next_attempt_at is None and first.status == Status.QUEUED


@pytest.mark.django_db
def test_add_recipients_names_every_bad_row_and_adds_nothing():
    sale = campaign(text="Hi {name}")

    with pytest.raises(InvalidMessage) as caught:
        sale.add_recipients(
            [("0501234567", {"name": "Ann"}), ("bad", {"name": "Bob"}), "0671234567", 3.5]
        )

    problems = caught.value.problems
    assert len(problems) == 3
    assert problems[0].startswith("row 2: ") and "'bad'" in problems[0]
    assert problems[1].startswith("row 3: ") and "{name}" in problems[1]
    assert problems[2].startswith("row 4: ")
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_add_recipients_with_skip_invalid_reports_bad_rows_and_adds_the_rest():
    sale = campaign(text="Hi {name}")

    result = sale.add_recipients(
        [("0501234567", {"name": "Ann"}), ("0501234567", {"name": "Ann"}), ("0671234567", {})],
        skip_invalid=True,
    )

    assert (result.added, result.duplicates) == (1, 1)
    [refused] = result.refused
    assert refused.row == 3 and "no value for {name}" in refused.reason
    assert sale.messages.count() == 1


@pytest.mark.django_db
def test_campaign_level_problems_stop_even_a_skip_invalid_add():
    for text in ("Hi {user.password}", "Hi {0}", "Hi {name"):
        with pytest.raises(InvalidMessage, match="placeholder|braces"):
            campaign(text=text).add_recipients(["0501234567"], skip_invalid=True)
    with pytest.raises(InvalidMessage, match="sender"):
        campaign(sender="Bad-Sender!").add_recipients(["0501234567"], skip_invalid=True)
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_a_draft_campaigns_messages_wait_for_start(enqueued, django_capture_on_commit_callbacks):
    sale = campaign()
    sale.add_recipients(["0501234567", "0671234567"])
    assert services.claim_batch("default", 10) == []

    with django_capture_on_commit_callbacks(execute=True):
        sale.start()

    assert sale.state == Campaign.State.RUNNING
    assert enqueued == [("default", None)]
    assert len(services.claim_batch("default", 10)) == 2
    with pytest.raises(CampaignStateError):
        sale.add_recipients(["0631234567"])
    with pytest.raises(CampaignStateError):
        sale.start()


@pytest.mark.django_db
def test_a_campaign_with_send_at_is_scheduled_and_goes_out_at_its_time():
    send_at = timezone.now() + timedelta(hours=1)
    sale = campaign(send_at=send_at)
    sale.add_recipients(["0501234567"])

    sale.start()

    assert sale.state == Campaign.State.SCHEDULED
    assert services.claim_batch("default", 10, now=send_at - timedelta(seconds=1)) == []
    services.refresh_campaigns(now=send_at)
    sale.refresh_from_db()
    assert sale.state == Campaign.State.RUNNING
    assert len(services.claim_batch("default", 10, now=send_at)) == 1


@pytest.mark.django_db
def test_starting_an_empty_campaign_is_refused():
    with pytest.raises(CampaignStateError, match="no recipients"):
        campaign().start()


@pytest.mark.django_db
def test_cancel_cancels_queued_messages_and_leaves_sent_ones():
    sale = campaign()
    sale.add_recipients(["0501234567", "0671234567", "0631234567"])
    sale.start()
    [first] = services.claim_batch("default", 1)
    services.record_outcomes([first], services.send_claimed(get_gateway(), [first]))

    assert sale.cancel() == 2

    first.refresh_from_db()
    assert first.status == Status.SENT
    assert sale.messages.filter(status=Status.CANCELLED).count() == 2
    assert sale.state == Campaign.State.CANCELLED
    assert sale.cancel() == 0
    assert services.send_due("default") == 0
    assert len(locmem.outbox) == 1


@pytest.mark.django_db
def test_retry_failed_sends_anew_only_what_surely_did_not_arrive():
    sale = campaign()
    sale.add_recipients(["0501234567", "0671234567", "0631234567", "0661234567", "0991234567"])
    sale.start()
    services.send_due("default")
    statuses = [
        Status.FAILED,
        Status.UNDELIVERED,
        Status.UNKNOWN,
        Status.DELIVERED,
        Status.REJECTED,
    ]
    for message, status in zip(sale.messages.order_by("pk"), statuses, strict=True):
        Message.objects.filter(pk=message.pk).update(status=status)
    services.refresh_campaigns()

    assert sale.retry_failed() == 3
    assert sale.retry_failed() == 0

    retried = sale.messages.filter(retry_of__isnull=False)
    assert sorted(m.retry_of.status for m in retried) == sorted(
        [Status.FAILED, Status.UNDELIVERED, Status.REJECTED]
    )
    assert {m.status for m in retried} == {Status.QUEUED}
    sale.refresh_from_db()
    assert sale.state == Campaign.State.RUNNING
    services.send_due("default")
    assert len(locmem.outbox) == 5 + 3


@pytest.mark.django_db
def test_retry_failed_refuses_unknown_messages():
    with pytest.raises(InvalidMessage, match="unknown"):
        campaign().retry_failed(statuses=[Status.UNKNOWN])


@pytest.mark.django_db
def test_metadata_with_a_nul_character_is_refused_before_anything_is_stored():
    from django_smsclub.exceptions import InvalidMessage
    from django_smsclub.models import Message

    with pytest.raises(InvalidMessage, match="NUL"):
        send_sms("0501234567", "Hello", metadata={"note": "a\x00b"})
    assert not Message.objects.exists()
