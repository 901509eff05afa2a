"""SMSCLUB["WEBHOOKS"] kept in step with the endpoints marked from_settings, and checked."""

import pytest
from django.core.management.sql import emit_post_migrate_signal

from django_smsclub.models import WebhookEndpoint
from django_smsclub.services import webhooks
from django_smsclub.webhooks import checks

SECRET = "k" * 40
URL = "https://crm.example.com/hooks/sms"

pytestmark = pytest.mark.django_db


@pytest.fixture
def configured(pipeline_settings):
    pipeline_settings["WEBHOOKS"] = {"crm": {"URL": URL, "SECRET": SECRET}}
    return pipeline_settings


def endpoints():
    return {
        e.name: (e.url, e.events, e.is_active, e.from_settings)
        for e in WebhookEndpoint.objects.all()
    }


def test_an_entry_becomes_an_endpoint_with_every_event_by_default(configured):
    result = webhooks.sync_endpoints()

    assert result.created == ["crm"]
    assert endpoints() == {"crm": (URL, ["message.final", "campaign.done"], True, True)}
    assert WebhookEndpoint.objects.get().secret == SECRET
    assert webhooks.sync_endpoints() == webhooks.SyncResult([], [], [], [])


def test_changes_are_synced_and_a_new_url_forgets_the_failures(configured):
    webhooks.sync_endpoints()
    WebhookEndpoint.objects.update(consecutive_failures=20, disabled_reason="down")
    configured["WEBHOOKS"]["crm"]["EVENTS"] = ["campaign.done"]

    assert webhooks.sync_endpoints().updated == ["crm"]
    assert WebhookEndpoint.objects.get().consecutive_failures == 20  # same URL: still failing

    configured["WEBHOOKS"]["crm"]["URL"] = URL + "/v2"
    webhooks.sync_endpoints()

    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.url, endpoint.events) == (URL + "/v2", ["campaign.done"])
    assert (endpoint.consecutive_failures, endpoint.disabled_reason) == (0, "")


def test_an_entry_removed_turns_its_endpoint_off_and_hands_it_to_the_admin(configured):
    webhooks.sync_endpoints()
    configured["WEBHOOKS"] = {}

    assert webhooks.sync_endpoints().removed == ["crm"]
    assert endpoints() == {"crm": (URL, ["message.final", "campaign.done"], False, False)}

    configured["WEBHOOKS"] = {"crm": {"URL": URL, "SECRET": SECRET}}
    webhooks.sync_endpoints()
    assert endpoints()["crm"][2:] == (True, True)


def test_an_admin_endpoint_of_the_same_name_is_taken_over(configured):
    WebhookEndpoint.objects.create(name="crm", url="https://old.example.com", secret="x" * 40)

    assert webhooks.sync_endpoints().updated == ["crm"]
    assert endpoints() == {"crm": (URL, ["message.final", "campaign.done"], True, True)}


def test_an_invalid_entry_is_skipped_and_logged_without_its_secret(configured, caplog):
    configured["WEBHOOKS"]["bad"] = {"URL": "ftp://x", "SECRET": "short-secret-value"}

    result = webhooks.sync_endpoints()

    assert (result.created, result.invalid) == (["crm"], ["bad"])
    assert "bad" not in endpoints()
    assert "ftp://x" in caplog.text
    assert "short-secret-value" not in caplog.text


def test_migrate_syncs_and_a_flush_does_not(configured):
    emit_post_migrate_signal(0, False, "default")  # flush: no plan
    assert endpoints() == {}

    emit_post_migrate_signal(0, False, "default", plan=[])

    assert list(endpoints()) == ["crm"]


def test_the_beat_task_syncs_and_starts_a_delivery_only_when_one_is_due(configured, monkeypatch):
    from django_smsclub import tasks

    started = []
    monkeypatch.setattr(tasks.deliver_webhooks, "delay", lambda: started.append(1))

    assert tasks.webhooks_due() is False
    assert list(endpoints()) == ["crm"]
    assert started == []


def errors(settings_dict):
    found = checks.check_webhooks() + checks.check_webhook_urls()
    return [(e.id, e.msg) for e in found]


def test_checks_name_each_bad_value_and_never_the_secret(pipeline_settings):
    pipeline_settings["WEBHOOKS"] = {
        "no_url": {"SECRET": SECRET},
        "ftp": {"URL": "ftp://example.com/x", "SECRET": SECRET},
        "password": {"URL": "https://user:pa55word@example.com/x", "SECRET": SECRET},
        "short": {"URL": URL, "SECRET": "hunter2-hunter2"},
        "none": {"URL": URL},
        "events": {"URL": URL, "SECRET": SECRET, "EVENTS": ["message.final", "message.sent"]},
        "empty": {"URL": URL, "SECRET": SECRET, "EVENTS": []},
        "typo": {"URL": URL, "SECRETS": SECRET, "SECRET": SECRET},
    }
    pipeline_settings["WEBHOOK_TIMEOUT"] = 0

    found = errors(pipeline_settings)
    text = "\n".join(msg for _, msg in found)

    assert "SMSCLUB['WEBHOOKS']['no_url']['URL'] is None" in text
    assert "SMSCLUB['WEBHOOKS']['ftp']['URL'] is 'ftp://example.com/x'" in text
    assert "['password']['URL'] is 'example.com/x'" in text
    assert "['short']['SECRET'] is 15 characters long; it must be a string of at least 32" in text
    assert "['none']['SECRET'] is missing" in text
    assert "['events']['EVENTS'] has unknown event(s) 'message.sent'" in text
    assert "['empty']['EVENTS'] [] must be a non-empty list" in text
    assert "['typo'] has the unknown key 'SECRETS'" in text
    assert "SMSCLUB['WEBHOOK_TIMEOUT'] 0 must be a number of seconds above 0" in text
    assert "hunter2" not in text and "pa55word" not in text and SECRET not in text
    assert {id for id, _ in found} == {"django_smsclub.E030", "django_smsclub.W002"}


def test_a_valid_setting_passes_and_plain_http_is_a_deploy_warning(pipeline_settings):
    pipeline_settings["WEBHOOKS"] = {
        "crm": {"URL": URL, "SECRET": SECRET},
        "local": {"URL": "http://127.0.0.1:9000/h", "SECRET": SECRET},
    }
    assert checks.check_webhooks() == []
    assert checks.check_webhook_urls() == []

    pipeline_settings["WEBHOOKS"]["crm"]["URL"] = "http://crm.example.com/h"
    [warning] = checks.check_webhook_urls()
    assert warning.id == "django_smsclub.W030"
    assert "crm.example.com" in warning.msg


def test_a_webhooks_setting_that_is_no_dict_is_an_error(pipeline_settings):
    pipeline_settings["WEBHOOKS"] = ["https://x"]

    [error] = checks.check_webhooks()

    assert "SMSCLUB['WEBHOOKS'] must be a dict of name -> settings, not list" in error.msg


def test_the_command_syncs_delivers_and_lists(configured):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("smsclub_webhooks", "--deliver", stdout=out)

    text = out.getvalue()
    assert "created: crm" in text
    assert "attempts made: 0" in text
    assert f"crm (settings) {URL} [message.final, campaign.done] pending 0, active" in text
    assert SECRET not in text


@pytest.mark.django_db(transaction=True)
def test_migrating_back_before_the_webhook_tables_does_not_fail_on_the_sync(configured, caplog):
    from django.core.management import call_command

    try:
        call_command("migrate", "django_smsclub", "0004", verbosity=0)
        assert "webhook endpoints are not synced" in caplog.text
    finally:
        call_command("migrate", "django_smsclub", verbosity=0)
    assert list(endpoints()) == ["crm"]
