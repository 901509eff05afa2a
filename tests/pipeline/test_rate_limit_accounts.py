"""Issue 11: every request to an account takes a token of its rate limit (sends, status polls,
balance), gateways of one account share that budget, and a 429 the provider still sends is a
retry after its Retry-After, never a spent attempt."""

import io
import time
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from django_smsclub import ratelimit, send_sms, services
from django_smsclub.admin import balances
from django_smsclub.exceptions import RateLimited
from django_smsclub.gateways import Outgoing, get_gateway
from django_smsclub.gateways.http import HttpGateway
from django_smsclub.gateways.json import JsonGateway
from django_smsclub.gateways.xml import XmlGateway
from django_smsclub.models import Message
from django_smsclub.status import Status
from tests.support.settings import smsclub_settings

NUMBERS = [f"3805017{i:05d}" for i in range(10)]


@pytest.fixture
def tokens(monkeypatch):
    """The key of every rate-limit token taken (none is waited for)."""
    taken = []

    def acquire(self):
        taken.append(self.key)
        return 0.0

    monkeypatch.setattr(ratelimit.RateLimiter, "acquire", acquire)
    return taken


@pytest.fixture
def balance_viewer(db):
    user = get_user_model().objects.create_user("balance-viewer")
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="django_smsclub", codename="view_balance")
    )
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def limited(settings, smsclub_emulator):
    """The emulator's account through the XML gateway, at 5 requests a second."""
    settings.SMSCLUB = smsclub_settings(
        default=smsclub_emulator.gateway_settings("xml", RATE_LIMIT=5)
    )
    cache.clear()
    yield smsclub_emulator
    cache.clear()


def requests_made(emulator, op):
    return sum(1 for r in emulator.requests if r.op == op)


@pytest.mark.django_db
def test_every_balance_request_takes_a_token_of_its_account(limited, tokens, balance_viewer):
    account = ratelimit.for_gateway(get_gateway()).key

    assert balance_viewer.get("/api/sms/balance/").status_code == 200
    call_command("smsclub_balance", stdout=io.StringIO())
    assert balances._read_balance("default").error == ""

    assert tokens == [account] * 3
    assert requests_made(limited, "balance") == 3


@pytest.mark.django_db
def test_status_polls_and_sends_take_a_token_per_request(settings, limited, tokens):
    settings.SMSCLUB["GATEWAYS"]["default"]["BATCH_SIZE"] = 2
    send_sms(NUMBERS[:3], "Hello")

    services.send_due("default")
    services.poll_now(Message.objects.all())

    sends, polls = requests_made(limited, "send"), requests_made(limited, "state")
    assert (sends, polls) == (2, 1)
    assert len(tokens) == sends + polls == len(limited.requests)


CACHE_THAT_KEEPS_NOTHING = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}


@pytest.mark.django_db
def test_no_balance_request_is_made_while_the_rate_cannot_be_counted(
    settings, limited, balance_viewer
):
    settings.CACHES = CACHE_THAT_KEEPS_NOTHING

    response = balance_viewer.get("/api/sms/balance/")
    assert response.status_code == 503 and response.json()["error"] == "RateLimited"
    with pytest.raises(CommandError, match="the request was not made"):
        call_command("smsclub_balance")
    assert "the request was not made" in balances._read_balance("default").error

    assert limited.requests == []


def test_gateways_with_the_same_username_or_token_share_one_budget():
    http = ratelimit.for_gateway(HttpGateway("http", USERNAME="380501112233", RATE_LIMIT=5))
    xml = ratelimit.for_gateway(XmlGateway("xml", USERNAME="380501112233", RATE_LIMIT=5))
    other = ratelimit.for_gateway(XmlGateway("other", USERNAME="380509998877", RATE_LIMIT=5))
    json_a = ratelimit.for_gateway(JsonGateway("a", TOKEN="the-token"))
    json_b = ratelimit.for_gateway(JsonGateway("b", TOKEN="the-token"))

    assert http.key == xml.key != other.key
    assert json_a.key == json_b.key != http.key


class MustWait(Exception):
    pass


def must_not_sleep(seconds):
    raise MustWait(seconds)


def test_a_request_through_one_gateway_uses_the_budget_of_the_other():
    """Whatever the cache (Redis: the sliding log; another: its fixed windows), two gateways of
    one account draw on one count: once one had to wait, so does the other."""
    username = f"38050{uuid.uuid4().int % 10**7:07d}"
    http = ratelimit.for_gateway(HttpGateway("http", USERNAME=username, RATE_LIMIT=4))
    xml = ratelimit.for_gateway(XmlGateway("xml", USERNAME=username, RATE_LIMIT=4))
    other = ratelimit.for_gateway(XmlGateway("other", USERNAME=username + "0", RATE_LIMIT=4))
    for limiter in (http, xml, other):
        limiter.sleep = must_not_sleep

    made = 0
    with pytest.raises(MustWait):
        for _ in range(10):
            http.acquire()
            made += 1
    assert 1 <= made <= 4

    with pytest.raises(MustWait):
        xml.acquire()
    assert other.acquire() == 0


# --- a 429 the provider still sends --------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("backend", ["http", "xml", "json"])
def test_a_429_with_retry_after_is_a_retry_after_that_delay_not_an_attempt(
    settings, smsclub_emulator, backend
):
    emulator = smsclub_emulator
    # Our limiter off: the provider's own cap (1 request in any second) answers 429 with
    # Retry-After: 1. Had a 429 been an attempt, MAX_SEND_ATTEMPTS 1 would fail the message.
    emulator.rate_limit = 1
    settings.SMSCLUB = smsclub_settings(
        default=emulator.gateway_settings(backend, RATE_LIMIT=0, BATCH_SIZE=1),
        MAX_SEND_ATTEMPTS=1,
        RETRY_BACKOFF=600,
        RETRY_BACKOFF_MAX=600,
    )
    first, second, third = send_sms(NUMBERS[:3], "Hello")

    before = timezone.now()
    services.send_due("default")
    after = timezone.now()

    by_pk = {m.pk: m for m in Message.objects.all()}
    assert (by_pk[first.pk].status, by_pk[first.pk].attempts) == (Status.SENT, 1)
    for held in (by_pk[second.pk], by_pk[third.pk]):
        assert (held.status, held.attempts) == (Status.QUEUED, 0)
        assert "too many requests" in held.error.lower()
        # Retry-After: 1, not RETRY_BACKOFF's 600 s.
        assert before + timedelta(seconds=1) <= held.next_attempt_at <= after + timedelta(seconds=1)
    assert requests_made(emulator, "send") == 2

    deadline = time.monotonic() + 15
    while Message.objects.filter(status=Status.QUEUED).exists():
        assert time.monotonic() < deadline, list(Message.objects.values_list("status", "error"))
        time.sleep(0.2)
        services.send_due("default")
    assert sorted(Message.objects.values_list("status", "attempts")) == [(Status.SENT, 1)] * 3
    assert emulator.duplicates() == []


@pytest.mark.parametrize("cls", [HttpGateway, XmlGateway])
def test_http_and_xml_read_a_429_as_rate_limited_with_its_retry_after(canned, cls):
    canned.reply = (b"Too Many Requests", "text/plain", 429)
    canned.headers = {"Retry-After": "7"}
    gateway = cls("canned", USERNAME="380500000000", PASSWORD="pw-secret", BASE_URL=canned.url)

    [outcome] = gateway.send("Shop", [Outgoing("380501111111", "hi")])

    assert isinstance(outcome.error, RateLimited)
    assert outcome.error.retry_after == 7.0
    with pytest.raises(RateLimited):
        gateway.fetch_states(["106"])
    with pytest.raises(RateLimited):
        gateway.balance()
