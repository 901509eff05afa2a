"""The admin under attack or a slip (issue 12): template bombs, endless CSV lines, the upload
racing an edit, and resending messages of unknown fate only by an explicit, permissioned and
logged step."""

import logging

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from django_smsclub import send_sms, services
from django_smsclub.admin.forms import MAX_LINE_BYTES
from django_smsclub.models import Campaign, Message
from django_smsclub.status import Status
from tests.admin.test_admin import add_campaign, page_messages, url

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def smsclub(settings, pipeline_settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_a_campaign_text_with_a_format_spec_is_refused_by_the_form_naming_it(admin_client):
    csv = "phone,name\n" + "".join(f"050123{i:04d},Ivan{i}\n" for i in range(40))

    response = add_campaign(
        admin_client,
        text="Hi {name:>50000000}",
        csv_file=SimpleUploadedFile("r.csv", csv.encode()),
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors.as_data()
    [problem] = [str(m) for e in errors.get("text", errors.get("__all__", [])) for m in e]
    assert problem.startswith("placeholder {name:>50000000} in the text is not a plain name")
    assert not Campaign.objects.exists() and not Message.objects.exists()


def test_a_long_csv_line_after_the_first_chunk_is_refused(admin_client):
    content = b"phone\n0501234501\n" + b"1" * 70_000 + b"\n0501234502\n"

    response = add_campaign(admin_client, csv_file=SimpleUploadedFile("r.csv", content), text="Hi")

    assert response.status_code == 200
    [error] = response.context["adminform"].form.errors["csv_file"]
    assert error == f"Line 3 of the file is longer than {MAX_LINE_BYTES} bytes; is it a CSV file?"
    assert not Campaign.objects.exists()


def test_a_file_with_no_line_break_is_not_read_whole(admin_client):
    content = b"phone\n" + b"1" * 5_000_000

    response = add_campaign(admin_client, csv_file=SimpleUploadedFile("r.csv", content))

    [error] = response.context["adminform"].form.errors["csv_file"]
    assert error.startswith("Line 2 of the file is longer than")


def _meanwhile(monkeypatch, change):
    real = services.add_recipients

    def add_recipients(campaign, rows, **options):
        change(campaign)
        return real(campaign, rows, **options)

    monkeypatch.setattr(services, "add_recipients", add_recipients)


def _upload(client, campaign, csv):
    return client.post(
        url("campaign_change", campaign.pk),
        {
            "name": campaign.name,
            "sender": "",
            "text": campaign.text,
            "gateway": "",
            "send_at_0": "",
            "send_at_1": "",
            "numbers": "",
            "encoding": "utf-8-sig",
            "csv_file": SimpleUploadedFile("r.csv", csv.encode()),
            "_save": "Save",
        },
        follow=True,
    )


def test_the_admin_upload_uses_the_campaign_as_it_is_when_locked(admin_client, monkeypatch):
    draft = Campaign.objects.create(name="c", text="Old {name}", sender="Shop")
    _meanwhile(
        monkeypatch,
        lambda c: Campaign.objects.filter(pk=c.pk).update(text="New {name}", gateway="cp1251"),
    )

    response = _upload(admin_client, draft, "phone,name\n0501234501,Ivan\n")

    assert response.status_code == 200
    message = Message.objects.get()
    assert (message.text, message.gateway) == ("New Ivan", "cp1251")


def test_an_admin_upload_to_a_campaign_deleted_meanwhile_says_so(admin_client, monkeypatch):
    draft = Campaign.objects.create(name="Sale", text="Hi", sender="Shop")
    _meanwhile(monkeypatch, lambda c: Campaign.objects.filter(pk=c.pk).delete())

    response = _upload(admin_client, draft, "phone\n0501234501\n")

    assert response.status_code == 200
    assert any("no longer exists: it was deleted" in m for m in page_messages(response))
    assert not Message.objects.exists()


# --- resending messages of unknown fate -------------------------------------------------------


def _staff(name, *codenames):
    user = User.objects.create_user(name, password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_smsclub", codename__in=codenames)
    )
    client = Client()
    client.force_login(user)
    return user, client


def _unknown_and_failed():
    unknown, failed = send_sms(["0501234501", "0501234502"], "Hello")
    Message.objects.filter(pk=unknown.pk).update(status=Status.UNKNOWN, error="read timed out")
    Message.objects.filter(pk=failed.pk).update(status=Status.FAILED)
    return unknown, failed


def _act(client, action, *messages, **extra):
    return client.post(
        url("message_changelist"),
        {"action": action, "_selected_action": [m.pk for m in messages], **extra},
        follow=True,
    )


def test_the_unknown_resend_action_is_offered_only_with_its_permission():
    _, clerk = _staff("clerk", "view_message", "change_message")
    _, boss = _staff("boss", "view_message", "change_message", "resend_unknown")

    def offered(client):
        page = client.get(url("message_changelist"))
        return "resend_unknown_selected" in page.content.decode()

    assert not offered(clerk)
    assert offered(boss)


def test_without_the_permission_the_unknown_resend_action_does_nothing():
    unknown, _ = _unknown_and_failed()
    _, clerk = _staff("clerk", "view_message", "change_message")

    response = _act(clerk, "resend_unknown_selected", unknown, post="yes")

    assert response.status_code == 200
    assert not Message.objects.filter(retry_of=unknown).exists()


def test_the_unknown_resend_asks_for_confirmation_then_resends_logged_with_the_user(caplog):
    unknown, failed = _unknown_and_failed()
    boss_user, boss = _staff("boss", "view_message", "change_message", "resend_unknown")

    asked = _act(boss, "resend_unknown_selected", unknown, failed)

    assert asked.status_code == 200
    html = asked.content.decode()
    assert "1 selected message is of unknown fate" in html and "read timed out" in html
    assert "I accept a possible duplicate" in html
    assert f'value="{unknown.pk}"' in html and f'value="{failed.pk}"' not in html
    assert not Message.objects.filter(retry_of__isnull=False).exists()

    with caplog.at_level(logging.WARNING, logger="django_smsclub"):
        done = _act(boss, "resend_unknown_selected", unknown, post="yes")

    copy = Message.objects.get(retry_of=unknown)
    assert copy.created_by == boss_user and copy.status == Status.QUEUED
    assert page_messages(done) == [
        "1 message of unknown fate is resent as a new message; it may arrive twice."
    ]
    assert any(
        f"boss (user #{boss_user.pk})" in r.getMessage()
        and f"#{unknown.pk} as #{copy.pk}" in r.getMessage()
        for r in caplog.records
    )


def test_the_plain_resend_still_refuses_unknown_messages_with_the_reason():
    unknown, _ = _unknown_and_failed()
    _, clerk = _staff("clerk", "view_message", "change_message")

    response = _act(clerk, "resend_selected", unknown)

    assert page_messages(response) == [
        "1 message of unknown fate was not resent: it may have arrived."
    ]
    assert not Message.objects.filter(retry_of=unknown).exists()
