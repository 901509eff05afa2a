"""The OpenAPI schema: it generates cleanly, the test project serves it, and the running API
keeps to it under requests schemathesis makes up (a bounded run)."""

import os
from collections import Counter

import pytest
import requests
import schemathesis
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode

from django_smsclub.models import Campaign, DeliveryReport, Message
from django_smsclub.status import Status
from tests.api.test_api import ALL_PERMS
from tests.support.settings import smsclub_settings

WEBHOOK_PERMS = (
    "view_webhookendpoint",
    "change_webhookendpoint",
    "view_webhookdelivery",
    "change_webhookdelivery",
)
#: Examples per operation and mode; SMSCLUB_FUZZ_EXAMPLES=200 for a long hunt.
EXAMPLES = int(os.environ.get("SMSCLUB_FUZZ_EXAMPLES", "5"))
USERNAME, PASSWORD = "fuzz", "fuzz-password"
# Every check but "schema-valid data is accepted": the domain refuses what no schema can tell
# from good input (a number that is no phone's, a started campaign's text, a used key).
EXCLUDED_CHECKS = [schemathesis.checks.positive_data_acceptance]


def test_the_schema_generates_without_warnings(tmp_path, db):
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml")
    )


def test_the_test_project_serves_the_schema(client, db):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/sms/messages/", "/api/sms/campaigns/{id}/recipients/", "/api/sms/balance/"} <= (
        set(paths)
    )
    parameters = paths["/api/sms/messages/"]["post"]["parameters"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in parameters)


def seed(user):
    """Objects behind known ids, so fuzzing reaches the code past the 404: a draft, a running
    campaign, a sent message with its report."""
    draft = Campaign.objects.create(name="Draft", text="Hi {name}", created_by=user)
    draft.add_recipients([("0501234567", {"name": "Ivan"})])
    running = Campaign.objects.create(name="Running", text="Sale", created_by=user)
    running.add_recipients(["0501234567", "0671234567"])
    running.start()
    sent = running.messages.first()
    Message.objects.filter(pk=sent.pk).update(status=Status.SENT)
    DeliveryReport.objects.create(message=sent, part=1, smsc_id="1", gateway="default")
    return {"campaigns": [draft.pk, running.pk], "messages": [sent.pk]}


def fuzz(strategy, session, statuses):
    """Send the cases ``strategy`` makes, noting each status in ``statuses``; return what
    failed. Failures are collected, not raised: the API keeps state, so Hypothesis could not
    replay one to shrink it."""
    failed = []

    @given(case=strategy)
    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=EXAMPLES <= 20,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        try:
            response = case.call_and_validate(
                session=session, timeout=30, excluded_checks=EXCLUDED_CHECKS
            )
        except (Exception, BaseExceptionGroup) as exc:
            failed.append(str(exc))
        else:
            statuses[response.status_code] += 1

    check()
    return failed


@pytest.mark.django_db(transaction=True)
def test_generated_requests_get_no_server_errors_and_answers_that_match_the_schema(
    live_server, settings, smsclub_emulator
):
    # Basic auth checks the password on every request: a fast hasher keeps the run short.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.SMSCLUB = smsclub_settings(default=smsclub_emulator.gateway_settings("xml"))
    # Staff, with the webhook permissions too: the webhook endpoints are for staff only.
    user = get_user_model().objects.create_user(USERNAME, password=PASSWORD, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="django_smsclub",
            codename__in=[*ALL_PERMS, *WEBHOOK_PERMS],
        )
    )
    # Credentials schemathesis knows it set, so its auth check also probes without them.
    config = schemathesis.Config.from_dict(
        {"auth": {"basic": {"username": USERNAME, "password": PASSWORD}}}
    )
    schema = schemathesis.openapi.from_url(
        f"{live_server.url}/api/schema/?format=json", config=config
    )
    session = requests.Session()

    failures = []
    statuses = {GenerationMode.POSITIVE: Counter(), GenerationMode.NEGATIVE: Counter()}
    for result in schema.get_all_operations():
        operation = result.ok()
        runs = [(mode, None) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
        if "{id}" in operation.path:
            # Fresh ones for each operation: an earlier one may have deleted or started them.
            kind = "campaigns" if "/campaigns/" in operation.path else "messages"
            runs += [(GenerationMode.POSITIVE, {"id": pk}) for pk in seed(user)[kind]]
        for mode, path_parameters in runs:
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)
            for failure in fuzz(strategy, session, statuses[mode]):
                failures.append(f"{operation.label} ({mode.value}, {path_parameters}): {failure}")
    assert not failures, "\n\n".join(failures)
    # Every case was sent (a few hundred by default), as the user (only negative cases drop the
    # credentials), that got past validation into the work often enough.
    positive, negative = statuses.values()
    assert positive.total() + negative.total() >= 40 * EXAMPLES, statuses
    assert positive[401] == positive[403] == 0, statuses
    assert sum(n for code, n in positive.items() if code < 300) >= 40, statuses
