"""``Idempotency-Key``: a retried POST gets the first response and creates nothing new."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from django_smsclub import services
from django_smsclub.models import ApiIdempotencyKey, Campaign, Message
from django_smsclub.status import Status
from tests.api.test_api import ALL_PERMS, API, campaign, client_for, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pipeline_settings")]

SEND = {"to": ["0501234567", "0671234567"], "text": "Hello"}


@pytest.fixture
def owner():
    return make_user("owner", *ALL_PERMS)


@pytest.fixture
def api(owner):
    return client_for(owner)


def post(client, path, body=None, key="key-1", fmt="json", **extra):
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.post(API + path, body, format=fmt, headers=headers, **extra)


def world():
    """What a POST may change: every message and campaign as it stands."""
    messages = list(Message.objects.order_by("pk").values_list("pk", "status", "next_attempt_at"))
    campaigns = list(Campaign.objects.order_by("pk").values_list("pk", "state"))
    return messages, campaigns


def csv_file(content="phone\n0501234567\n0671234567\n"):
    return SimpleUploadedFile("r.csv", content.encode(), content_type="text/csv")


def running_with_failures(user):
    sale = campaign(user)
    sale.add_recipients(["0501234567", "0671234567"])
    sale.start()
    sale.messages.filter(recipient="380501234567").update(status=Status.FAILED)
    return sale


# (path, body, format) for each POST of the API, made fresh for each run.
POSTS = {
    "send": lambda user: ("messages/", SEND, "json"),
    "personal": lambda user: ("messages/", {"items": [{"to": "0501234567", "text": "Hi"}]}, "json"),
    "campaign": lambda user: ("campaigns/", {"name": "Sale", "text": "Hi"}, "json"),
    "recipients": lambda user: (
        f"campaigns/{campaign(user).pk}/recipients/",
        ["0501234567", "0671234567"],
        "json",
    ),
    "upload": lambda user: (f"campaigns/{campaign(user).pk}/recipients/", "csv", "multipart"),
    "start": lambda user: (f"campaigns/{_draft_with_recipients(user).pk}/start/", None, "json"),
    "cancel": lambda user: (f"campaigns/{_draft_with_recipients(user).pk}/cancel/", None, "json"),
    "retry-failed": lambda user: (
        f"campaigns/{running_with_failures(user).pk}/retry-failed/",
        {},
        "json",
    ),
}


def _draft_with_recipients(user):
    draft = campaign(user)
    draft.add_recipients(["0501234567", "0671234567"])
    return draft


@pytest.mark.parametrize("name", list(POSTS))
def test_every_post_repeated_with_its_key_gets_the_first_response_and_changes_nothing(
    api, owner, name
):
    path, body, fmt = POSTS[name](owner)

    def send():
        return post(api, path, {"file": csv_file()} if body == "csv" else body, fmt=fmt)

    first = send()
    assert first.status_code in (200, 201), first.content
    after_first = world()
    again = send()
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert world() == after_first


def test_without_a_key_a_repeat_is_a_new_request(api):
    post(api, "messages/", SEND, key=None)
    post(api, "messages/", SEND, key=None)
    assert Message.objects.count() == 4


def test_the_same_body_in_other_json_spelling_is_the_same_request(api):
    first = api.post(
        API + "messages/",
        '{"to": ["0501234567", "0671234567"], "text": "Hello"}',
        content_type="application/json",
        headers={"Idempotency-Key": "k"},
    )
    again = api.post(
        API + "messages/",
        '{"text":"Hello","to":["0501234567","0671234567"]}',
        content_type="application/json",
        headers={"Idempotency-Key": "k"},
    )
    assert again.json() == first.json() and Message.objects.count() == 2


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("messages/", {**SEND, "text": "Hello!"}),
        ("messages/?x=1", SEND),
        ("campaigns/", {"name": "Sale", "text": "Hi"}),
    ],
)
def test_the_same_key_for_another_request_is_refused_naming_the_conflict(api, path, body):
    assert post(api, "messages/", SEND).status_code == 201
    response = post(api, path, body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "'key-1'" in detail and "different request" in detail
    assert Message.objects.count() == 2 and not Campaign.objects.exists()


def test_an_upload_counts_by_its_content(api, owner):
    draft = campaign(owner)
    path = f"campaigns/{draft.pk}/recipients/"
    assert post(api, path, {"file": csv_file()}, fmt="multipart").json()["added"] == 2
    replay = post(api, path, {"file": csv_file()}, fmt="multipart")
    assert replay.headers["Idempotent-Replayed"] == "true"
    other = post(api, path, {"file": csv_file("phone\n0931234567\n")}, fmt="multipart")
    assert other.status_code == 422 and draft.messages.count() == 2


def test_keys_belong_to_their_user(api):
    other = client_for(make_user("other", *ALL_PERMS))
    post(api, "messages/", SEND)
    response = post(other, "messages/", SEND)
    assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers
    assert Message.objects.count() == 4


def test_an_error_response_is_replayed_as_it_was(api, owner):
    bad = post(api, "messages/", {"to": "123", "text": "Hi"})
    assert bad.status_code == 400
    again = post(api, "messages/", {"to": "123", "text": "Hi"})
    assert (again.status_code, again.json()) == (400, bad.json())
    assert again.headers["Idempotent-Replayed"] == "true"

    draft = _draft_with_recipients(owner)
    draft.start()
    conflict = post(api, f"campaigns/{draft.pk}/start/", key="start")
    assert conflict.status_code == 409
    assert post(api, f"campaigns/{draft.pk}/start/", key="start").json() == conflict.json()


def test_a_crash_keeps_neither_the_work_nor_the_key(api, monkeypatch):
    real = services.send_sms

    def crash(*args, **kwargs):
        real(*args, **kwargs)
        raise RuntimeError("worker died")

    monkeypatch.setattr(services, "send_sms", crash)
    with pytest.raises(RuntimeError):
        post(api, "messages/", SEND)
    assert not Message.objects.exists() and not ApiIdempotencyKey.objects.exists()

    monkeypatch.setattr(services, "send_sms", real)
    response = post(api, "messages/", SEND)
    assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers
    assert Message.objects.count() == 2


@pytest.mark.parametrize("key", [" ", "k" * 256, "k\x01"])
def test_a_bad_key_is_refused(api, key):
    response = post(api, "messages/", SEND, key=key)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()
    assert not Message.objects.exists()


def test_the_stored_response_is_what_was_sent(api, owner):
    first = post(api, "messages/", SEND)
    record = ApiIdempotencyKey.objects.get()
    assert (record.user, record.key, record.response_status) == (owner, "key-1", 201)
    assert record.body == first.json() and len(record.fingerprint) == 64


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_identical_requests_create_one_result(race, pipeline_settings):
    user = make_user("racer", *ALL_PERMS)
    clients = [client_for(user) for _ in range(2)]
    first, second = race(*(lambda c=c: post(c, "messages/", SEND, key="race") for c in clients))
    assert Message.objects.count() == 2
    assert {first.status_code, second.status_code} == {201}
    assert first.json() == second.json()
    replayed = sorted(str(r.headers.get("Idempotent-Replayed")) for r in (first, second))
    assert replayed == ["None", "true"]
    assert ApiIdempotencyKey.objects.count() == 1
