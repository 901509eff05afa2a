"""The REST API: every endpoint with its permissions, its bad inputs and its query counts."""

import io
import socket
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from django_smsclub.api.recipients import CsvRecipients
from django_smsclub.exceptions import BadUpload
from django_smsclub.models import Campaign, DeliveryReport, Message
from django_smsclub.status import Status
from tests.support.settings import smsclub_settings

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pipeline_settings")]

API = "/api/sms/"
ALL_PERMS = (
    "view_message",
    "add_message",
    "view_campaign",
    "add_campaign",
    "change_campaign",
    "delete_campaign",
    "view_balance",
    "view_optout",
    "add_optout",
    "delete_optout",
)


def make_user(username, *perms, staff=False):
    user = get_user_model().objects.create_user(username, is_staff=staff)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="django_smsclub", codename__in=perms)
    )
    return user


def client_for(user):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def owner():
    return make_user("owner", *ALL_PERMS)


@pytest.fixture
def other():
    return make_user("other", *ALL_PERMS)


@pytest.fixture
def staff():
    return make_user("staff", *ALL_PERMS, staff=True)


@pytest.fixture
def api(owner):
    """A client logged in as ``owner``, a user who is not staff and has every permission."""
    return client_for(owner)


def message(user, number="380501234567", **fields):
    fields = {"sender": "Shop", "text": "Hello", "gateway": "default", **fields}
    return Message.objects.create(recipient=number, created_by=user, **fields)


def campaign(user, **fields):
    fields = {"name": "Sale", "text": "Sale today", **fields}
    return Campaign.objects.create(created_by=user, **fields)


def campaign_with_recipients(user, count=3, **fields):
    draft = campaign(user, **fields)
    draft.add_recipients([f"3805012{i:05d}" for i in range(count)])
    return draft


def upload(content, name="recipients.csv", encoding="utf-8"):
    return SimpleUploadedFile(name, content.encode(encoding), content_type="text/csv")


ENDPOINTS = [
    ("get", "messages/"),
    ("post", "messages/"),
    ("get", "messages/1/"),
    ("get", "campaigns/"),
    ("post", "campaigns/"),
    ("get", "campaigns/1/"),
    ("put", "campaigns/1/"),
    ("patch", "campaigns/1/"),
    ("delete", "campaigns/1/"),
    ("post", "campaigns/1/recipients/"),
    ("post", "campaigns/1/start/"),
    ("post", "campaigns/1/cancel/"),
    ("post", "campaigns/1/retry-failed/"),
    ("get", "campaigns/1/stats/"),
    ("get", "balance/"),
    ("get", "optout/"),
    ("post", "optout/"),
    ("delete", "optout/380501234567/"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_anonymous_requests_are_refused_everywhere(method, path):
    response = getattr(client_for(None), method)(API + path, {}, format="json")
    assert response.status_code in (401, 403)
    assert "credentials" in response.json()["detail"]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_a_user_without_permissions_is_refused_everywhere(method, path):
    nobody = make_user("nobody")
    response = getattr(client_for(nobody), method)(API + path, {}, format="json")
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("perms", "method", "path", "allowed"),
    [
        (["view_message"], "get", "messages/", True),
        (["view_message"], "post", "messages/", False),
        (["add_message"], "get", "messages/", False),
        (["view_campaign"], "get", "campaigns/{id}/stats/", True),
        (["view_campaign"], "post", "campaigns/{id}/start/", False),
        (["view_campaign"], "patch", "campaigns/{id}/", False),
        (["view_campaign", "change_campaign"], "post", "campaigns/{id}/start/", True),
        (["view_campaign", "change_campaign"], "delete", "campaigns/{id}/", False),
        (["delete_campaign"], "delete", "campaigns/{id}/", True),
        (["view_message", "view_campaign"], "get", "balance/", False),
    ],
)
def test_each_action_needs_its_model_permission(perms, method, path, allowed):
    user = make_user("limited", *perms)
    draft = campaign_with_recipients(user)
    response = getattr(client_for(user), method)(API + path.format(id=draft.pk), {}, format="json")
    assert (response.status_code != 403) == allowed, response.content


def test_send_to_one_number_queues_a_normalised_message(api, owner):
    response = api.post(
        API + "messages/",
        {"to": "+380 (50) 123-45-67", "text": "Ваше замовлення готове", "metadata": {"order": 7}},
        format="json",
    )
    assert response.status_code == 201, response.content
    [body] = response.json()["messages"]
    stored = Message.objects.get()
    assert body["id"] == stored.pk and body["recipient"] == "380501234567"
    assert (stored.status, stored.sender, stored.created_by) == (Status.QUEUED, "Shop", owner)
    assert stored.metadata == {"order": 7} and body["metadata"] == {"order": 7}


def test_send_to_a_list_gets_one_message_per_distinct_number(api):
    to = ["0501234567", "+380501234567", "0671234567"]
    send_at = timezone.now() + timedelta(hours=2)
    response = api.post(
        API + "messages/",
        {"to": to, "text": "Hi", "sender": "Cafe", "send_at": send_at.isoformat()},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert [m["recipient"] for m in response.json()["messages"]] == [
        "380501234567",
        "380671234567",
    ]
    assert {(m.sender, m.next_attempt_at) for m in Message.objects.all()} == {("Cafe", send_at)}


def test_personal_texts_go_as_items(api):
    items = [{"to": "0501234567", "text": "Іване, привіт"}, {"to": "0671234567", "text": "Hi Ann"}]
    response = api.post(API + "messages/", {"items": items}, format="json")
    assert response.status_code == 201, response.content
    assert [(m["recipient"], m["text"]) for m in response.json()["messages"]] == [
        ("380501234567", "Іване, привіт"),
        ("380671234567", "Hi Ann"),
    ]


def test_bad_input_names_each_bad_field_and_value_and_stores_nothing(api):
    response = api.post(
        API + "messages/",
        {"to": ["0501234567", "12345", "not a number"], "text": "   ", "sender": "Way Too Long!"},
        format="json",
    )
    assert response.status_code == 400
    errors = response.json()
    assert set(errors) == {"to", "text", "sender"}
    assert "'12345'" in errors["to"][0] and "'not a number'" in errors["to"][1]
    assert "'   '" in errors["text"][0]
    assert "'Way Too Long!'" in errors["sender"][0]
    assert not Message.objects.exists()


def test_bad_personal_items_are_named_by_position(api):
    items = [
        {"to": "0501234567", "text": "fine"},
        {"to": "123", "text": "fine"},
        {"to": "0671234567", "text": "x" * 2000},
    ]
    response = api.post(API + "messages/", {"items": items}, format="json")
    assert response.status_code == 400
    errors = response.json()["items"]
    assert set(errors) == {"1", "2"}
    assert "'123'" in errors["1"]["to"][0]
    assert "2000 characters" in errors["2"]["text"][0]
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"text": "Hi"}, "to", "give 'to' and 'text', or 'items'"),
        ({"to": "0501234567"}, "text", "required with 'to'"),
        ({"to": "0501234567", "text": "Hi", "items": [{"to": "1", "text": "x"}]}, "to", "not both"),
        ({"to": [], "text": "Hi"}, "to", "empty list"),
        ({"to": 380501234567, "text": "Hi"}, "to", "380501234567"),
        ({"to": ["0501234567", 5], "text": "Hi"}, "to", "item 1"),
        ({"to": "0501234567", "text": 5}, "text", "Got 5"),
        ({"to": "0501234567", "text": "Hi", "gateway": "nope"}, "gateway", "'nope'"),
        ({"to": "0501234567", "text": "Hi", "send_at": "soon"}, "send_at", "'soon'"),
        ({"to": "0501234567", "text": "Hi", "metadata": [1]}, "metadata", "[1]"),
        ({"to": "0501234567", "text": "Hi", "metadata": {"a": ["\x00"]}}, "metadata", "['a'][0]"),
        ({"to": "0501234567", "text": "Hi", "metadata": {"\x00": 1}}, "metadata", "NUL"),
        ({"items": [{"to": "0501234567", "text": "Hi"}], "gateway": "x"}, "gateway", "'x'"),
    ],
)
def test_each_bad_field_is_named(api, body, field, words):
    response = api.post(API + "messages/", body, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert words in str(response.json()[field])
    assert not Message.objects.exists()


def test_text_the_gateway_cannot_carry_is_refused_for_that_gateway(api):
    body = {"to": "0501234567", "text": "Hi 😀", "gateway": "cp1251"}
    response = api.post(API + "messages/", body, format="json")
    assert response.status_code == 400
    assert "Windows-1251" in response.json()["text"][0]


def test_users_see_their_own_messages_and_staff_see_all(owner, other, staff):
    mine, theirs = message(owner), message(other)
    assert [m["id"] for m in client_for(owner).get(API + "messages/").json()["results"]] == [
        mine.pk
    ]
    assert client_for(owner).get(API + f"messages/{theirs.pk}/").status_code == 404
    seen = client_for(staff).get(API + "messages/").json()["results"]
    assert [m["id"] for m in seen] == [theirs.pk, mine.pk]
    assert client_for(staff).get(API + f"messages/{theirs.pk}/").status_code == 200


def test_message_filters(api, owner):
    sale = campaign(owner)
    now = timezone.now()
    old = message(owner, "380501111111", created_at=now - timedelta(days=3))
    delivered = message(owner, "380502222222", status=Status.DELIVERED, campaign=sale)
    failed = message(owner, "380503333333", status=Status.FAILED)

    def ids(**query):
        response = api.get(API + "messages/", query)
        assert response.status_code == 200, response.content
        return {m["id"] for m in response.json()["results"]}

    assert ids(status=["delivered", "failed"]) == {delivered.pk, failed.pk}
    assert ids(campaign=sale.pk) == {delivered.pk}
    assert ids(number="+380 (50) 222-22-22") == {delivered.pk}
    assert ids(number="050 111 11 11") == {old.pk}
    assert ids(created_before=(now - timedelta(days=1)).isoformat()) == {old.pk}
    assert ids(created_after=(now - timedelta(days=1)).isoformat()) == {delivered.pk, failed.pk}


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ({"number": "12345"}, "number", "'12345'"),
        ({"status": "lost"}, "status", "lost"),
        ({"campaign": "abc"}, "campaign", "'abc'"),
        ({"created_after": "yesterday"}, "created_after", "'yesterday'"),
        (
            {"created_after": "2025-01-02T00:00:00Z", "created_before": "2025-01-01T00:00:00Z"},
            "created_before",
            "2025-01-01",
        ),
    ],
)
def test_bad_filters_are_named(api, query, field, words):
    response = api.get(API + "messages/", query)
    assert response.status_code == 400
    assert words in str(response.json()[field])


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ("campaign=1&campaign=2", "campaign", "given 2 times"),
        ("number=", "number", "is empty"),
        ("page_size=0", "page_size", "'0'"),
        ("page_size=abc", "page_size", "'abc'"),
        ("page_size=2&page_size=3", "page_size", "given 2 times"),
        ("cursor=a&cursor=b", "cursor", "given 2 times"),
    ],
)
def test_odd_query_parameters_are_refused_not_ignored(api, query, field, words):
    response = api.get(API + "messages/?" + query)
    assert response.status_code == 400
    assert words in str(response.json()[field])


@pytest.mark.parametrize(("page", "status"), [("", 404), ("1.0", 404), ("2", 404), ("last", 200)])
def test_a_campaign_page_must_be_a_page_number(api, owner, page, status):
    campaign(owner)
    assert api.get(API + "campaigns/?page=" + page).status_code == status


def test_message_list_pages_by_cursor(api, owner):
    for i in range(5):
        message(owner, f"38050123456{i}")
    first = api.get(API + "messages/", {"page_size": 3}).json()
    second = api.get(first["next"]).json()
    assert len(first["results"]) == 3 and len(second["results"]) == 2
    assert second["next"] is None


def test_message_list_takes_one_query_whatever_its_length(api, owner, django_assert_num_queries):
    sale = campaign(owner)
    api.get(API + "messages/")  # the user's permissions are cached from here on
    message(owner, campaign=sale)
    with django_assert_num_queries(1):
        assert len(api.get(API + "messages/").json()["results"]) == 1
    for i in range(40):
        message(owner, f"3805011{i:05d}", campaign=sale if i % 2 else None)
    with django_assert_num_queries(1):
        results = api.get(API + "messages/").json()["results"]
    assert len(results) == 41 and results[0]["campaign_name"] == "Sale"


def test_a_message_comes_with_its_reports_in_two_queries(api, owner, django_assert_num_queries):
    sms = message(owner, text="x" * 200, parts=2, status=Status.SENT, campaign=campaign(owner))
    for part in (1, 2):
        DeliveryReport.objects.create(
            message=sms, part=part, smsc_id=f"id{part}", gateway="default", raw_status="ENROUTE"
        )
    api.get(API + "messages/")
    with django_assert_num_queries(2):
        body = api.get(API + f"messages/{sms.pk}/").json()
    assert [(r["part"], r["smsc_id"], r["raw_status"]) for r in body["reports"]] == [
        (1, "id1", "ENROUTE"),
        (2, "id2", "ENROUTE"),
    ]
    assert body["campaign_name"] == "Sale"


@pytest.mark.parametrize("pk", ["abc", "0", "99999999999999999999999"])
def test_odd_ids_are_not_found(api, pk):
    assert api.get(API + f"messages/{pk}/").status_code == 404
    assert api.post(API + f"campaigns/{pk}/start/").status_code == 404


def test_create_a_campaign(api, owner):
    response = api.post(
        API + "campaigns/", {"name": "Sale", "text": "Hi {name}, -20% today "}, format="json"
    )
    assert response.status_code == 201, response.content
    created = Campaign.objects.get()
    assert response.json()["id"] == created.pk and response.json()["state"] == "draft"
    assert created.created_by == owner and created.text == "Hi {name}, -20% today "


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"name": "Sale", "text": "Hi {user.name}"}, "text", "{user.name}"),
        ({"name": "Sale", "text": "Hi {"}, "text", "braces"),
        ({"name": "Sale", "text": "Hi", "gateway": "nope"}, "gateway", "'nope'"),
        ({"name": "Sale", "text": "Hi", "sender": "Bad!Sender"}, "sender", "'Bad!Sender'"),
        ({"name": 5, "text": "Hi"}, "name", "Got 5"),
        ({"text": "Hi"}, "name", "required"),
        ({"name": "Sale", "text": "Hi", "send_at": "later"}, "send_at", "'later'"),
    ],
)
def test_bad_campaigns_are_refused_naming_the_field(api, body, field, words):
    response = api.post(API + "campaigns/", body, format="json")
    assert response.status_code == 400
    assert words in str(response.json()[field]), response.json()
    assert not Campaign.objects.exists()


def test_campaigns_are_scoped_to_their_creator(owner, other, staff):
    mine, theirs = campaign(owner), campaign(other)
    assert [c["id"] for c in client_for(owner).get(API + "campaigns/").json()["results"]] == [
        mine.pk
    ]
    for method, path in ENDPOINTS:
        if "campaigns/1/" in path:
            response = getattr(client_for(owner), method)(
                API + path.replace("1", str(theirs.pk)), {}, format="json"
            )
            assert response.status_code == 404, (method, path)
    assert client_for(staff).get(API + f"campaigns/{theirs.pk}/stats/").status_code == 200
    assert client_for(staff).get(API + "campaigns/").json()["count"] == 2


def test_campaign_list_filters_by_state(api, owner):
    draft, done = campaign(owner), campaign(owner, state=Campaign.State.DONE)
    listed = api.get(API + "campaigns/", {"state": "done"}).json()
    assert [c["id"] for c in listed["results"]] == [done.pk] and draft.pk != done.pk
    assert '"nope"' in str(api.get(API + "campaigns/", {"state": "nope"}).json()["state"])


def test_a_draft_can_be_changed(api, owner):
    draft = campaign(owner)
    response = api.patch(
        API + f"campaigns/{draft.pk}/", {"text": "New {name}", "sender": "Cafe"}, format="json"
    )
    assert response.status_code == 200, response.content
    draft.refresh_from_db()
    assert (draft.text, draft.sender) == ("New {name}", "Cafe")
    put = {"name": "Renamed", "text": "New {name}", "sender": "Cafe"}
    assert api.put(API + f"campaigns/{draft.pk}/", put, format="json").status_code == 200


def test_texts_made_with_a_campaigns_text_pin_it(api, owner):
    draft = campaign_with_recipients(owner)
    response = api.patch(API + f"campaigns/{draft.pk}/", {"text": "Other"}, format="json")
    assert response.status_code == 400
    assert "recipients" in response.json()["text"][0]
    renamed = api.patch(API + f"campaigns/{draft.pk}/", {"name": "Renamed"}, format="json")
    assert renamed.status_code == 200


def test_only_the_name_of_a_started_campaign_can_change(api, owner):
    running = campaign_with_recipients(owner)
    running.start()
    response = api.patch(
        API + f"campaigns/{running.pk}/", {"send_at": timezone.now().isoformat()}, format="json"
    )
    assert response.status_code == 400 and "draft" in response.json()["send_at"][0]
    assert api.patch(API + f"campaigns/{running.pk}/", {"name": "X"}, format="json").json()[
        "state"
    ] == ("running")


def test_a_draft_can_be_deleted_with_its_messages(api, owner):
    draft = campaign_with_recipients(owner)
    assert api.delete(API + f"campaigns/{draft.pk}/").status_code == 204
    assert not Campaign.objects.exists() and not Message.objects.exists()


def test_a_campaign_on_its_way_cannot_be_deleted(api, owner):
    running = campaign_with_recipients(owner)
    running.start()
    response = api.delete(API + f"campaigns/{running.pk}/")
    assert response.status_code == 409 and "cancel it first" in response.json()["detail"]
    assert Message.objects.count() == 3


@pytest.mark.parametrize("state", [Campaign.State.DONE, Campaign.State.CANCELLED])
def test_a_done_or_cancelled_campaign_can_be_deleted_as_in_the_admin(api, owner, state):
    finished = campaign_with_recipients(owner)
    Campaign.objects.filter(pk=finished.pk).update(state=state)
    assert api.delete(API + f"campaigns/{finished.pk}/").status_code == 204
    assert not Campaign.objects.exists() and not Message.objects.exists()


def test_recipients_as_json_numbers_and_rows(api, owner):
    draft = campaign(owner, text="Hi {name}")
    rows = [{"phone": "0501234567", "name": "Ivan"}, {"phone": "+380671234567", "name": 7}]
    response = api.post(API + f"campaigns/{draft.pk}/recipients/", rows, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"added": 2, "duplicates": 0, "refused_count": 0, "refused": []}
    assert sorted(draft.messages.values_list("text", flat=True)) == ["Hi 7", "Hi Ivan"]
    again = api.post(
        API + f"campaigns/{draft.pk}/recipients/", {"recipients": rows[:1]}, format="json"
    )
    assert again.json()["duplicates"] == 1


def test_bad_rows_add_nothing_unless_skipped(api, owner):
    draft = campaign(owner)
    rows = ["0501234567", "123", "0671234567", "nope"]
    refused = api.post(API + f"campaigns/{draft.pk}/recipients/", rows, format="json")
    assert refused.status_code == 400
    problems = refused.json()["recipients"]
    assert len(problems) == 2 and problems[0].startswith("row 2:") and "'123'" in problems[0]
    assert not draft.messages.exists()

    body = {"recipients": rows, "skip_invalid": True}
    skipped = api.post(API + f"campaigns/{draft.pk}/recipients/", body, format="json")
    assert skipped.status_code == 200
    result = skipped.json()
    assert (result["added"], result["refused_count"]) == (2, 2)
    assert [(r["row"], r["line"]) for r in result["refused"]] == [(2, None), (4, None)]
    assert "'123'" in result["refused"][0]["reason"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([], "empty"),
        ({"recipients": [{"name": "x"}]}, "no 'phone'"),
        ({"recipients": [["0501234567"]]}, "not list"),
        ({"recipients": [{"phone": "0501234567", "x": {"y": 1}}]}, "value 'x'"),
        ({"recipients": ["0501234567"], "skip_invalid": 1}, "Got 1"),
    ],
)
def test_malformed_recipient_bodies_are_named(api, owner, body, words):
    draft = campaign(owner)
    response = api.post(API + f"campaigns/{draft.pk}/recipients/", body, format="json")
    assert response.status_code == 400
    assert words in str(response.json()), response.json()


def test_recipients_from_a_csv_upload_with_bad_rows_skipped(api, owner):
    draft = campaign(owner, text="Hi {name}, code {code}")
    content = (
        "name;phone;code\r\n"
        "Іван;0501234567;11\r\n"
        "\r\n"
        "Ann;12345;12\r\n"
        'Bob;0671234567;"1\n3"\r\n'
        "Eve;0931234567\r\n"
    )
    response = api.post(
        API + f"campaigns/{draft.pk}/recipients/",
        {"file": upload(content, encoding="cp1251"), "skip_invalid": "true", "encoding": "cp1251"},
        format="multipart",
    )
    assert response.status_code == 200, response.content
    result = response.json()
    assert result["added"] == 2
    assert [(r["row"], r["line"]) for r in result["refused"]] == [(2, 4), (4, 7)]
    assert "'12345'" in result["refused"][0]["reason"]
    assert "{code}" in result["refused"][1]["reason"]
    assert sorted(draft.messages.values_list("text", flat=True)) == [
        "Hi Bob, code 1\n3",
        "Hi Іван, code 11",
    ]


def test_a_bad_csv_row_names_its_line_and_adds_nothing(api, owner):
    draft = campaign(owner)
    response = api.post(
        API + f"campaigns/{draft.pk}/recipients/",
        {"file": upload("phone\n0501234567\n\n123\n")},
        format="multipart",
    )
    assert response.status_code == 400
    assert (
        response.json()["file"][0].startswith("line 4:") and "'123'" in response.json()["file"][0]
    )
    assert not draft.messages.exists()


@pytest.mark.parametrize(
    ("content", "encoding", "words"),
    [
        ("name,number\nIvan,0501234567\n", "utf-8", "no 'phone' column"),
        ("", "utf-8", "empty"),
        ("phone,phone\n0501234567,1\n", "utf-8", "twice"),
        ("phone\n0501234567,extra\n", "utf-8", "line 2 has 2 fields"),
        ("phone,name\n0501234567,Іван\n", "cp1251", "line 2 is not utf-8"),
    ],
)
def test_a_bad_csv_file_is_refused_naming_the_problem(api, owner, content, encoding, words):
    draft = campaign(owner, text="Hi")
    response = api.post(
        API + f"campaigns/{draft.pk}/recipients/",
        {"file": upload(content, encoding=encoding)},
        format="multipart",
    )
    assert response.status_code == 400
    assert words in response.json()["file"][0], response.json()
    assert not draft.messages.exists()


class ChunkOnlyUpload(TemporaryUploadedFile):
    """An upload large enough to be on disk, that fails the test if it is ever read whole."""

    def __init__(self, content):
        super().__init__("big.csv", "text/csv", len(content), "utf-8")
        self.file.write(content)
        self.file.seek(0)
        self.reads = []

    def read(self, size=-1):
        assert 0 < size <= self.DEFAULT_CHUNK_SIZE, f"read({size}) would read the file whole"
        self.reads.append(size)
        return self.file.read(size)


def test_csv_rows_are_read_chunk_by_chunk_as_they_are_taken():
    content = "phone,name\n" + "".join(f"3805012{i:05d},n{i}\n" for i in range(200_000))
    with ChunkOnlyUpload(content.encode()) as big:
        rows = iter(CsvRecipients(big))
        assert next(rows) == ("380501200000", {"name": "n0"})
        assert len(big.reads) == 1
        assert sum(1 for _ in rows) == 199_999
    assert len(big.reads) > 1


def test_an_endless_csv_line_is_refused_not_buffered():
    with ChunkOnlyUpload(b"phone\n" + b"1" * 10_000_000) as big:
        with pytest.raises(BadUpload, match="line 2 is longer than"):
            list(CsvRecipients(big))
    assert len(big.reads) == 2


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_csv_lines_may_end_any_way_even_across_chunks(newline):
    lines = ["phone,name"] + [f"3805012{i:05d},{'n' * 50}{i}" for i in range(3000)]
    with ChunkOnlyUpload(newline.join(lines).encode()) as big:
        rows = list(CsvRecipients(big))
    assert len(rows) == 3000 and rows[-1] == ("380501202999", {"name": "n" * 50 + "2999"})


def test_recipients_only_go_to_a_draft(api, owner):
    running = campaign_with_recipients(owner)
    running.start()
    response = api.post(API + f"campaigns/{running.pk}/recipients/", ["0931234567"], format="json")
    assert response.status_code == 409 and "running" in response.json()["detail"]


def test_start_releases_the_messages_once(api, owner):
    draft = campaign_with_recipients(owner)
    response = api.post(API + f"campaigns/{draft.pk}/start/")
    assert response.status_code == 200 and response.json()["state"] == "running"
    assert not draft.messages.filter(next_attempt_at=None).exists()
    again = api.post(API + f"campaigns/{draft.pk}/start/")
    assert again.status_code == 409 and "running" in again.json()["detail"]


def test_an_empty_draft_cannot_start(api, owner):
    response = api.post(API + f"campaigns/{campaign(owner).pk}/start/")
    assert response.status_code == 409 and "no recipients" in response.json()["detail"]


def test_cancel_cancels_what_was_not_sent(api, owner):
    running = campaign_with_recipients(owner)
    running.start()
    running.messages.filter(recipient="380501200000").update(status=Status.SENT)
    response = api.post(API + f"campaigns/{running.pk}/cancel/")
    assert response.status_code == 200
    assert response.json()["cancelled"] == 2
    assert response.json()["campaign"]["state"] == "cancelled"


def test_retry_failed_queues_a_copy_of_each_failed_message(api, owner):
    running = campaign_with_recipients(owner, count=4)
    running.start()
    numbers = sorted(running.messages.values_list("recipient", flat=True))
    running.messages.filter(recipient=numbers[0]).update(status=Status.FAILED)
    running.messages.filter(recipient=numbers[1]).update(status=Status.EXPIRED)
    running.messages.filter(recipient=numbers[2]).update(status=Status.UNKNOWN)
    only_failed = api.post(
        API + f"campaigns/{running.pk}/retry-failed/", {"statuses": ["failed"]}, format="json"
    )
    assert only_failed.status_code == 200 and only_failed.json()["queued"] == 1
    rest = api.post(API + f"campaigns/{running.pk}/retry-failed/", {}, format="json")
    assert rest.json()["queued"] == 1
    unknown = api.post(
        API + f"campaigns/{running.pk}/retry-failed/", {"statuses": ["unknown"]}, format="json"
    )
    assert unknown.status_code == 400 and '"unknown"' in str(unknown.json()["statuses"])


def test_a_draft_has_nothing_to_retry(api, owner):
    response = api.post(API + f"campaigns/{campaign_with_recipients(owner).pk}/retry-failed/")
    assert response.status_code == 409 and "draft" in response.json()["detail"]


def test_stats_count_messages_parts_and_cost_in_one_grouped_query(
    api, owner, django_assert_num_queries
):
    sale = campaign(owner)
    message(owner, campaign=sale, parts=2, status=Status.DELIVERED, sent_at=timezone.now())
    message(owner, campaign=sale, parts=2, status=Status.UNDELIVERED, sent_at=timezone.now())
    message(owner, campaign=sale, parts=1, status=Status.FAILED)  # refused: not paid for
    message(owner, campaign=sale, parts=3, status=Status.QUEUED)
    message(owner, campaign=sale, parts=1, status=Status.CANCELLED)
    api.get(API + f"campaigns/{sale.pk}/stats/")
    with django_assert_num_queries(2):  # the campaign, then the grouped counts
        stats = api.get(API + f"campaigns/{sale.pk}/stats/").json()
    assert stats["total"] == 5
    assert stats["counts"]["delivered"] == 1 and stats["counts"]["sent"] == 0
    assert stats["parts"]["queued"] == 3 and stats["parts_total"] == 9
    assert (stats["spent_parts"], stats["cost_parts"]) == (4, 7)


def test_campaign_list_takes_two_queries(api, owner, django_assert_num_queries):
    for i in range(30):
        campaign(owner, name=f"c{i}")
    api.get(API + "campaigns/")
    with django_assert_num_queries(2):  # the count, then the page
        body = api.get(API + "campaigns/", {"page_size": 20}).json()
    assert body["count"] == 30 and len(body["results"]) == 20


def test_balance_of_a_gateway(api, settings, smsclub_emulator):
    settings.SMSCLUB = smsclub_settings(
        default=smsclub_emulator.gateway_settings("xml"),
        api=smsclub_emulator.gateway_settings("json"),
    )
    for query in ({}, {"gateway": "api"}):
        response = api.get(API + "balance/", query)
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["gateway"] == query.get("gateway", "default")
        assert body["amount"].startswith("1000")
    unknown = api.get(API + "balance/", {"gateway": "nope"})
    assert unknown.status_code == 400 and "'nope'" in unknown.json()["gateway"][0]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("fault", ["wrong password", "unreachable"])
def test_balance_says_503_when_the_gateway_cannot_answer(api, settings, smsclub_emulator, fault):
    options = {"PASSWORD": "hunter2-wrong"}
    if fault == "unreachable":
        options["BASE_URL"] = f"http://127.0.0.1:{free_port()}"
        options["PASSWORD"] = "hunter2-secret"
    settings.SMSCLUB = smsclub_settings(
        default=smsclub_emulator.gateway_settings("http", **options)
    )
    response = api.get(API + "balance/")
    assert response.status_code == 503
    body = response.json()
    assert body["gateway"] == "default" and "could not report the balance" in body["detail"]
    assert body["error"] in ("AuthenticationError", "GatewayUnavailable")
    assert "hunter2" not in response.content.decode()


def test_the_smsclub_throttle_rate_applies_when_set(api):
    cache.clear()
    assert api.get(API + "messages/").status_code == 200  # unlimited while unset
    with override_settings(REST_FRAMEWORK={"DEFAULT_THROTTLE_RATES": {"smsclub": "2/min"}}):
        codes = [api.get(API + "messages/").status_code for _ in range(3)]
    cache.clear()
    assert codes == [200, 200, 429]


def test_the_projects_default_permissions_still_apply(api):
    with override_settings(
        REST_FRAMEWORK={"DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"]}
    ):
        assert api.get(API + "messages/").status_code == 403
    assert api.get(API + "messages/").status_code == 200


def test_csv_reader_strips_a_byte_order_mark():
    content = io.BytesIO("\ufeffphone,name\n0501234567,Ivan\n".encode())
    rows = CsvRecipients(SimpleUploadedFile("bom.csv", content.getvalue()))
    assert list(rows) == [("0501234567", {"name": "Ivan"})]
