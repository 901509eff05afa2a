"""Campaign templates under attack (issue 12): placeholders are plain names, rendering is
bounded before a text is built, the checked-text cache is bounded in bytes, an empty value is
refused; and what else a campaign's recipients and a resend must not let through."""

import json
import logging
import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import PermissionDenied, ValidationError

from django_smsclub import send_sms, services
from django_smsclub.exceptions import CampaignStateError, InvalidMessage
from django_smsclub.models import Campaign, Message
from django_smsclub.services import templates
from django_smsclub.status import Status

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pipeline_settings")]

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Hi {name:>50000000}", "{name:>50000000}"),
        ("Hi {name!r}", "{name!r}"),
        ("Hi {name!s:^9}", "{name!s:^9}"),
        ("Hi {name:{width}}", "{name:{width}}"),
        ("Hi {user.password}", "{user.password}"),
        ("Hi {items[0]}", "{items[0]}"),
        ("Hi {0}", "{0}"),
        ("Hi {}", "{}"),
        ("Hi {name:" + "9" * 100 + "}", "{name:" + "9" * 31 + "..."),
    ],
)
def test_only_plain_placeholders_are_accepted_when_the_campaign_is_saved(text, shown):
    campaign = Campaign(name="c", text=text, sender="Shop")

    with pytest.raises(ValidationError) as caught:
        campaign.full_clean()

    [problem] = caught.value.messages
    assert problem.startswith(f"placeholder {shown} in the text is not a plain name")
    assert services.campaign_problems(campaign) == [problem]


def test_plain_placeholders_and_doubled_braces_are_accepted():
    assert services.placeholders("Hi {name}, {{code}} {order_2} {name}") == (
        ["name", "order_2"],
        None,
    )


def test_a_template_too_long_for_any_sms_is_refused_when_saved():
    too_long = Campaign(name="c", text="x" * 1072 + "{name}", sender="Shop")
    endless = Campaign(name="c", text="{name}" * 1000, sender="Shop")

    assert (
        "1072 characters long without its placeholders" in services.campaign_problems(too_long)[0]
    )
    assert services.campaign_problems(endless)[0].startswith("text is 6000 characters long")


def test_a_format_spec_saved_before_the_rule_is_refused_before_any_row_is_rendered():
    # Saved by a version without the rule (objects.create runs no check).
    bomb = Campaign.objects.create(name="c", text="Hi {name:>50000000}", sender="Shop")

    with pytest.raises(InvalidMessage, match=r"placeholder \{name:>50000000\}"):
        bomb.add_recipients([("0501234567", {"name": "Ivan"})] * 40, skip_invalid=True)
    assert not Message.objects.exists()


def test_a_rendered_text_over_the_longest_sms_is_refused_before_it_is_built():
    pieces, _ = templates.parse("Hi {name}, your order {order} is ready")
    huge = "я" * 50_000_000

    tracemalloc.start()
    try:
        body, problem = templates.render(pieces, {"name": huge, "order": "1"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert body == ""
    assert (
        problem == "the text with {name} filled in is over 1071 characters, more than any SMS holds"
    )
    assert peak < 1024 * 1024  # never a copy of the 100 MB value, let alone a longer text


def test_an_empty_placeholder_value_refuses_the_row_naming_the_placeholder():
    campaign = Campaign.objects.create(
        name="c", text="{name}, your order {order} is ready", sender="Shop"
    )
    rows = [
        ("0501234567", {"name": "Ivan", "order": ""}),
        ("0501234568", {"name": "Olena", "order": "   "}),
        ("0501234569", {"name": "Petro", "order": 17}),
    ]

    result = campaign.add_recipients(rows, skip_invalid=True)

    assert result.added == 1
    assert [(r.row, r.value, r.reason) for r in result.refused] == [
        (1, "0501234567", "380501234567: the value of {order} is empty"),
        (2, "0501234568", "380501234568: the value of {order} is empty"),
    ]
    assert campaign.messages.get().text == "Petro, your order 17 is ready"


def test_the_checked_text_cache_never_holds_more_than_its_bytes(monkeypatch):
    monkeypatch.setattr(templates, "CHECKED_TEXTS_MAX_BYTES", 10_000)
    campaign = Campaign.objects.create(name="c", text="{greeting}", sender="Shop")
    template = templates.CampaignTemplate(campaign, services.campaigns.get_gateway(None))
    held = []
    for i in range(300):
        template.message(("0501234567", {"greeting": f"{i:04d}" + "я" * 400}))
        held.append(sum(sys.getsizeof(text) for text in template.checked))

    assert max(held) <= 10_000
    assert template.checked_bytes == held[-1]


def test_an_invalid_message_for_20000_rows_says_how_many_and_shows_the_first_few():
    campaign = Campaign.objects.create(name="c", text="Hi", sender="Shop")

    with pytest.raises(InvalidMessage) as caught:
        campaign.add_recipients([f"12{i}" for i in range(20_000)])

    message = str(caught.value)
    assert len(caught.value.problems) == 20_000
    assert message.startswith("20000 problems, the first 5: row 1: ")
    assert "row 5: " in message and "row 6: " not in message
    assert len(message) < 1000


def test_a_few_problems_are_all_in_the_message():
    assert str(InvalidMessage(["a", "b"])) == "a; b"


# --- metadata ---------------------------------------------------------------------------------


def test_metadata_over_4_kib_is_refused_by_send_sms_and_send_personalized():
    big = {"note": "x" * 4100}

    with pytest.raises(InvalidMessage, match=r"metadata is over 4096 bytes as JSON"):
        send_sms(["0501234567"] * 2, "Hi", metadata=big)
    with pytest.raises(InvalidMessage, match=r"metadata is over 4096 bytes as JSON"):
        services.send_personalized([("0501234567", "Hi")], metadata=big)
    assert not Message.objects.exists()


def test_metadata_of_exactly_the_limit_is_stored(settings):
    settings.SMSCLUB["METADATA_MAX_BYTES"] = 100
    # {"n": "..."}: 9 bytes around the value; "є" is two bytes in UTF-8.
    fits = {"n": "є" * 45 + "x"}
    assert len(json.dumps(fits, ensure_ascii=False).encode()) == 100

    [message] = send_sms("0501234567", "Hi", metadata=fits)
    with pytest.raises(InvalidMessage, match="over 100 bytes"):
        send_sms("0501234567", "Hi", metadata={"n": "є" * 46})

    assert Message.objects.get().metadata == fits == message.metadata


@pytest.mark.parametrize("value", [0, -1, "4096", True, 1.5])
def test_a_bad_metadata_limit_is_a_configuration_error(settings, value):
    settings.SMSCLUB["METADATA_MAX_BYTES"] = value

    with pytest.raises(Exception, match=r"METADATA_MAX_BYTES") as caught:
        send_sms("0501234567", "Hi", metadata={"a": 1})
    assert type(caught.value).__name__ == "ConfigurationError"


def test_metadata_that_cannot_be_json_or_nests_endlessly_is_refused_by_name():
    deep: dict = {}
    for _ in range(100_000):
        deep = {"a": deep}
    with pytest.raises(InvalidMessage, match="metadata"):
        send_sms("0501234567", "Hi", metadata=deep)
    with pytest.raises(InvalidMessage, match="metadata cannot be stored as JSON"):
        send_sms("0501234567", "Hi", metadata={"a": object()})


# --- the upload and the campaign's edit --------------------------------------------------------


def test_recipients_use_the_text_and_gateway_the_campaign_has_when_it_is_locked():
    campaign = Campaign.objects.create(name="c", text="Old {name}", sender="Shop")
    # Another request edits the campaign after this one read it.
    Campaign.objects.filter(pk=campaign.pk).update(text="New {name}", gateway="cp1251")

    campaign.add_recipients([("0501234567", {"name": "Ivan"})])

    message = campaign.messages.get()
    assert (message.text, message.gateway) == ("New Ivan", "cp1251")


def test_recipients_for_a_campaign_deleted_meanwhile_say_so():
    campaign = Campaign.objects.create(name="Sale", text="Hi", sender="Shop")
    Campaign.objects.filter(pk=campaign.pk).delete()

    with pytest.raises(CampaignStateError, match=r"campaign 'Sale' \(#\d+\) no longer exists"):
        campaign.add_recipients(["0501234567"])
    assert not Message.objects.exists()


# --- resending the maybe-sent -------------------------------------------------------------------


def _user(name, *codenames):
    user = User.objects.create_user(name)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_smsclub", codename__in=codenames)
    )
    return User.objects.get(pk=user.pk)  # no permission cache


def test_unknown_messages_are_resent_only_by_the_explicit_permissioned_step(caplog):
    unknown, failed = send_sms(["0501234567", "0501234568"], "Hi")
    Message.objects.filter(pk=unknown.pk).update(status=Status.UNKNOWN)
    Message.objects.filter(pk=failed.pk).update(status=Status.FAILED)
    chosen = Message.objects.filter(pk__in=[unknown.pk, failed.pk])
    clerk = _user("clerk", "change_message")
    boss = _user("boss", "resend_unknown")

    assert services.resend_messages(chosen) == 1  # the failed one only
    for who in (None, clerk):
        with pytest.raises(PermissionDenied, match="resend_unknown"):
            services.resend_messages(chosen, include_unknown=True, by=who)
    assert not Message.objects.filter(retry_of=unknown).exists()

    with caplog.at_level(logging.WARNING, logger="django_smsclub"):
        assert services.resend_messages(chosen, include_unknown=True, by=boss) == 1

    copy = Message.objects.get(retry_of=unknown)
    assert copy.status == Status.QUEUED and copy.created_by == boss
    [record] = [r for r in caplog.records if "unknown fate" in r.getMessage()]
    assert f"boss (user #{boss.pk})" in record.getMessage()
    assert f"#{unknown.pk} as #{copy.pk}" in record.getMessage()
    # Once only, like every resend.
    assert services.resend_messages(chosen, include_unknown=True, by=boss) == 0


# --- memory -------------------------------------------------------------------------------------

MEMORY_PROBE = textwrap.dedent(
    """
    import json, os, resource, sys
    import django
    django.setup()
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    from django.contrib.auth.models import User
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client
    from rest_framework.test import APIClient
    from django_smsclub.models import Campaign

    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    admin = User.objects.create_superuser("admin", "a@example.com", "pw")
    api = APIClient()
    api.force_authenticate(admin)
    web = Client()
    web.force_login(admin)
    # Saved by a version without the placeholder rule: objects.create runs no check.
    bomb = Campaign.objects.create(name="b", text="Hi {name:>50000000}", created_by=admin)
    # A name of its own per row: no two rendered texts alike for a cache to share.
    rows = [{"phone": f"050123{i:04d}", "name": f"Ivan{i}"} for i in range(40)]
    api.post(f"/api/sms/campaigns/{bomb.pk}/recipients/", rows[:1], format="json")
    web.get("/admin/django_smsclub/campaign/add/")
    before = peak()
    answers = [
        api.post(
            f"/api/sms/campaigns/{bomb.pk}/recipients/",
            {"recipients": rows, "skip_invalid": True},
            format="json",
        ).status_code
    ]
    csv = "phone,name\\n" + "".join(f"050123{i:04d},Ivan{i}\\n" for i in range(40))
    answers.append(
        web.post(
            f"/admin/django_smsclub/campaign/{bomb.pk}/change/",
            {
                "name": "b", "sender": "", "text": "Hi {name:>50000000}", "gateway": "",
                "send_at_0": "", "send_at_1": "", "numbers": "", "encoding": "utf-8-sig",
                "csv_file": SimpleUploadedFile("r.csv", csv.encode()), "_save": "Save",
            },
        ).status_code
    )
    print(json.dumps({"growth": peak() - before, "answers": answers}))
    """
)


def test_the_template_bomb_request_stays_within_50_mib_of_the_baseline(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "testproject.settings",
        "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "SMSCLUB_JSON": json.dumps(
            {"GATEWAYS": {"default": {"BACKEND": "locmem", "SENDER": "Shop"}}}
        ),
        "PYTHONPATH": str(ROOT),
    }
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "DJANGO_DEBUG"):
        env.pop(name, None)
    # A guard for the machine: a process that builds the bomb's texts (2 GB for 40 rows) dies
    # of MemoryError at 1 GiB of data, not the host.
    guard = "import resource; resource.setrlimit(resource.RLIMIT_DATA, (1 << 30, 1 << 30))\n"

    done = subprocess.run(  # noqa: S603 (this interpreter and a literal script)
        [sys.executable, "-c", guard + MEMORY_PROBE],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print("template bomb:", figures)
    assert figures["growth"] < 50 * 1024 * 1024, figures
    # Refused (409: the campaign cannot be sent as it stands; the admin form shows why).
    assert figures["answers"] == [409, 200]
