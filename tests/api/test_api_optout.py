"""The stop list over the API: list, create, delete, each with its model permission; numbers in
any spelling; a 400 naming a bad number; and the send endpoint's ``marketing`` switch."""

import pytest

from django_smsclub.models import Message, OptOut
from django_smsclub.services import optout
from django_smsclub.status import Status
from tests.api.test_api import ALL_PERMS, API, client_for, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pipeline_settings")]

LIST = API + "optout/"


@pytest.fixture
def api():
    return client_for(make_user("keeper", *ALL_PERMS))


@pytest.mark.parametrize(
    ("perms", "method", "path", "allowed"),
    [
        (["view_optout"], "get", "optout/", True),
        (["view_optout"], "post", "optout/", False),
        (["view_optout"], "delete", "optout/0501234567/", False),
        (["add_optout"], "post", "optout/", True),
        (["add_optout"], "get", "optout/", False),
        (["delete_optout"], "delete", "optout/0501234567/", True),
        (["view_message", "add_message", "view_campaign"], "get", "optout/", False),
    ],
)
def test_each_action_needs_its_model_permission(perms, method, path, allowed):
    optout.opt_out("0501234567")
    client = client_for(make_user("someone", *perms))

    response = getattr(client, method)(API + path, {"phone": "0671234567"}, format="json")

    assert (response.status_code < 300) is allowed, response.content
    assert response.status_code < 300 or response.status_code == 403


@pytest.mark.parametrize(
    ("method", "path"), [("get", "optout/"), ("post", "optout/"), ("delete", "optout/1/")]
)
def test_anonymous_requests_are_refused(method, path):
    response = getattr(client_for(None), method)(API + path, {}, format="json")

    assert response.status_code in (401, 403)


def test_create_normalises_the_number_and_says_whether_it_is_new(api):
    created = api.post(LIST, {"phone": "+380 (50) 123-45-67", "reason": "asked"}, format="json")
    again = api.post(LIST, {"phone": "050 123 45 67", "scope": "all"}, format="json")

    assert (created.status_code, again.status_code) == (201, 200)
    body = created.json()
    assert {k: body[k] for k in ("phone", "scope", "reason", "source")} == {
        "phone": "380501234567",
        "scope": "marketing",
        "reason": "asked",
        "source": "api",
    }
    assert body["created_at"].endswith("Z")
    # Asking again for "all" widened it; the entry is the first one.
    assert again.json()["scope"] == "all" and again.json()["reason"] == "asked"
    assert OptOut.objects.get().scope == "all"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"phone": "050 12"}, "phone", "phone number '050 12' is not a valid number"),
        ({"phone": "call me"}, "phone", "phone number 'call me' is not a phone number"),
        ({"phone": 380501234567}, "phone", "380501234567"),
        ({}, "phone", "required"),
        ({"phone": "0501234567", "scope": "some"}, "scope", '"some"'),
    ],
)
def test_a_bad_number_or_scope_is_a_400_naming_it(api, body, field, message):
    response = api.post(LIST, body, format="json")

    assert response.status_code == 400
    assert message in " ".join(response.json()[field])
    assert not OptOut.objects.exists()


def test_the_list_is_paged_newest_first_and_filtered_by_number_in_any_spelling_or_scope(api):
    for i in range(5):
        optout.opt_out(f"05012345{i:02d}", "all" if i % 2 else "marketing")

    first = api.get(LIST, {"page_size": 2}).json()
    second = api.get(first["next"]).json()
    by_number = api.get(LIST, {"phone": "+380 50 123 45 03"}).json()["results"]
    by_scope = api.get(LIST, {"scope": "all"}).json()["results"]

    assert [e["phone"] for e in first["results"] + second["results"]] == [
        f"3805012345{i:02d}" for i in (4, 3, 2, 1)
    ]
    assert [e["phone"] for e in by_number] == ["380501234503"]
    assert sorted(e["phone"] for e in by_scope) == ["380501234501", "380501234503"]
    bad = api.get(LIST, {"phone": "nope"})
    assert bad.status_code == 400 and "'nope'" in bad.json()["phone"][0]


def test_delete_takes_a_number_off_in_any_spelling(api):
    optout.opt_out("0501234567")

    assert api.delete(LIST + "+380%20(50)%20123-45-67/").status_code == 204
    assert not OptOut.objects.exists()
    assert api.delete(LIST + "0501234567/").status_code == 404
    assert api.delete(LIST + "nope/").status_code == 404


def test_a_repeated_create_with_an_idempotency_key_is_replayed(api):
    first = api.post(LIST, {"phone": "0501234567"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    optout.remove("0501234567")
    replay = api.post(LIST, {"phone": "0501234567"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")

    assert replay.status_code == first.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert not OptOut.objects.exists()


def test_a_marketing_send_skips_numbers_opted_out_of_marketing(api):
    optout.opt_out("0501234567", "marketing")
    body = {"to": ["0501234567", "0671234567"], "text": "Sale today", "marketing": True}

    response = api.post(API + "messages/", body, format="json")

    assert response.status_code == 201
    statuses = {m["recipient"]: (m["status"], m["error"]) for m in response.json()["messages"]}
    assert statuses == {
        "380501234567": (Status.CANCELLED, "opted out"),
        "380671234567": (Status.QUEUED, ""),
    }
    plain = api.post(API + "messages/", {**body, "marketing": False}, format="json")
    assert {m["status"] for m in plain.json()["messages"]} == {Status.QUEUED}
    assert Message.objects.filter(status=Status.CANCELLED).count() == 1


def test_marketing_must_be_a_boolean(api):
    response = api.post(
        API + "messages/", {"to": "0501234567", "text": "Hi", "marketing": "maybe"}, format="json"
    )

    assert response.status_code == 400 and "marketing" in response.json()
