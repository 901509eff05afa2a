"""Structured log records: a send, a refusal and a poll through the emulator leave records whose
``extra`` fields (django_smsclub.logs.FIELDS) a JSON formatter can index, and no credential."""

import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from django_smsclub import send_sms, services
from django_smsclub.emulator.state import DEFAULT_PASSWORD, DEFAULT_TOKEN
from django_smsclub.gateways.redaction import MASK, register_secret, secrets_filter
from django_smsclub.logs import FIELDS, fields
from django_smsclub.models import Campaign
from tests.support.settings import smsclub_settings

DOCS = Path(__file__).resolve().parents[2] / "docs"
A, B = "380501110001", "380501110002"

#: What every LogRecord has; anything else on a record came from ``extra``.
STANDARD = set(vars(logging.LogRecord("x", logging.INFO, "x", 1, "x", (), None))) | {
    "message",
    "asctime",
}


def extras(record):
    return {k: v for k, v in vars(record).items() if k not in STANDARD}


@pytest.fixture
def records(caplog):
    caplog.set_level(logging.DEBUG, logger="django_smsclub")
    return caplog


def ours(caplog):
    return [r for r in caplog.records if r.name.startswith("django_smsclub")]


def with_outcome(caplog, outcome, **facts):
    return [
        r
        for r in ours(caplog)
        if getattr(r, "outcome", None) == outcome
        and all(getattr(r, k, None) == v for k, v in facts.items())
    ]


def use(settings, emu, backend):
    settings.SMSCLUB = smsclub_settings(
        default=emu.gateway_settings(backend, RATE_LIMIT=0), POLL_INTERVALS=[30]
    )


def send_and_record(captured, *numbers):
    with captured(execute=True):
        messages = send_sms(list(numbers), "Hello")
        services.send_due("default")
    return [m.pk for m in messages]


@pytest.mark.django_db
def test_a_send_logs_its_request_and_the_status_change(
    settings, emu, records, django_capture_on_commit_callbacks
):
    use(settings, emu, "xml")
    pks = send_and_record(django_capture_on_commit_callbacks, A, B)

    [request] = with_outcome(records, "ok", message_ids=pks)
    assert request.name == "django_smsclub.gateways" and request.levelno == logging.INFO
    assert request.gateway == "default" and request.count == 2
    assert sorted(request.smsc_ids) == sorted(s.smsc_id for s in emu.accepted)
    assert isinstance(request.duration_ms, int) and request.duration_ms >= 0

    [sent] = with_outcome(records, "sent", old_status="sending")
    assert sent.levelno == logging.INFO
    assert (sent.gateway, sorted(sent.message_ids), sent.count) == ("default", sorted(pks), 2)
    assert sent.attempts == 1

    [claimed] = with_outcome(records, "sending", old_status="queued")
    assert claimed.levelno == logging.DEBUG and sorted(claimed.message_ids) == sorted(pks)


@pytest.mark.django_db
def test_the_status_changes_of_a_campaign_name_it(
    settings, emu, records, django_capture_on_commit_callbacks
):
    use(settings, emu, "xml")
    campaign = Campaign.objects.create(name="Orders", text="Hello {name}", sender="Shop")
    campaign.add_recipients([(A, {"name": "Ivan"}), (B, {"name": "Olena"})])
    with django_capture_on_commit_callbacks(execute=True):
        campaign.start()
        services.send_due("default")

    [sent] = with_outcome(records, "sent", old_status="sending")
    assert sent.campaign_id == campaign.pk and sent.count == 2


@pytest.mark.django_db
def test_a_refusal_names_the_refused_message_and_its_error(
    settings, emu, records, django_capture_on_commit_callbacks
):
    use(settings, emu, "json")
    emu.blacklist(B)
    accepted, refused = send_and_record(django_capture_on_commit_callbacks, A, B)

    [request] = with_outcome(records, "ok", count=2)
    assert request.message_ids == [accepted, refused] and len(request.smsc_ids) == 1

    [refusal] = with_outcome(records, "ProviderRefused")
    assert refusal.levelno == logging.WARNING and refusal.gateway == "default"
    assert refusal.message_ids == [refused] and refusal.count == 1
    assert refusal.duration_ms == request.duration_ms

    [failed] = with_outcome(records, "failed")
    assert failed.levelno == logging.WARNING
    assert (failed.message_ids, failed.old_status, failed.attempts) == ([refused], "sending", 1)
    [sent] = with_outcome(records, "sent")
    assert sent.message_ids == [accepted]


@pytest.mark.django_db
def test_a_poll_logs_its_status_request_and_the_deliveries(
    settings, emu, records, django_capture_on_commit_callbacks
):
    use(settings, emu, "xml")
    emu.deliver_after(polls=0)
    pks = send_and_record(django_capture_on_commit_callbacks, A, B)
    smsc_ids = sorted(s.smsc_id for s in emu.accepted)
    records.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert services.poll_due("default", now=timezone.now() + timedelta(minutes=1)) == 2

    [request] = with_outcome(records, "ok")
    assert request.gateway == "default" and sorted(request.smsc_ids) == smsc_ids
    assert request.count == 2 and isinstance(request.duration_ms, int)
    [delivered] = with_outcome(records, "delivered", old_status="sent")
    assert delivered.levelno == logging.INFO
    assert sorted(delivered.message_ids) == sorted(pks) and delivered.attempts == 1


@pytest.mark.django_db
def test_a_failed_status_request_names_its_ids_and_error(
    settings, emu, records, django_capture_on_commit_callbacks
):
    use(settings, emu, "xml")
    send_and_record(django_capture_on_commit_callbacks, A)
    emu.stop()

    services.poll_due("default", now=timezone.now() + timedelta(minutes=1))

    failure, stopped = with_outcome(records, "GatewayUnavailable")
    assert failure.name == "django_smsclub.gateways" and failure.levelno == logging.WARNING
    assert failure.smsc_ids == [emu.accepted[0].smsc_id] and isinstance(failure.duration_ms, int)
    # The poll round's own record says what is left for later, without repeating the error.
    assert (stopped.name, stopped.levelno, stopped.count) == ("django_smsclub", logging.INFO, 1)


@pytest.mark.django_db
def test_every_record_carries_only_documented_fields_and_no_credential(
    settings, emu, records, django_capture_on_commit_callbacks
):
    use(settings, emu, "json")
    emu.blacklist(B)
    send_and_record(django_capture_on_commit_callbacks, A, B)
    with django_capture_on_commit_callbacks(execute=True):
        services.poll_due("default", now=timezone.now() + timedelta(minutes=1))

    assert len(ours(records)) >= 5
    for record in ours(records):
        assert set(extras(record)) <= set(FIELDS), record.getMessage()
        text = repr(extras(record)) + record.getMessage()
        assert DEFAULT_PASSWORD not in text and DEFAULT_TOKEN not in text


def test_the_redaction_filter_masks_the_fields_too():
    register_secret("field-secret-7788")
    record = logging.LogRecord("django_smsclub", logging.WARNING, "x", 1, "plain", (), None)
    record.__dict__.update(
        fields(
            gateway="default", outcome="field-secret-7788", smsc_ids=["1", "a field-secret-7788"]
        )
    )

    assert secrets_filter.filter(record)

    assert record.outcome == MASK and record.smsc_ids == ["1", f"a {MASK}"]


def test_the_package_loggers_are_protected():
    for name in ("django_smsclub", "django_smsclub.gateways", "django_smsclub.smpp"):
        assert secrets_filter in logging.getLogger(name).filters


def test_a_field_name_outside_the_list_is_refused():
    with pytest.raises(TypeError, match="msg_ids"):
        fields(msg_ids=[1])
    assert fields(gateway="default", smsc_id=None) == {"gateway": "default"}


def test_the_operations_page_documents_every_field_in_its_table():
    page = (DOCS / "operations.rst").read_text()
    section = page.split("Structured log records\n", 1)[1].split("\n\n")
    [table] = [block for block in section if block.startswith("====") and "``gateway``" in block]
    documented = re.findall(r"^``(\w+)``\s", table, flags=re.MULTILINE)
    assert documented == list(FIELDS)
