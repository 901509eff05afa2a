"""The API under attack (issue 12): template bombs, metadata amplification, the upload racing
the campaign's edit, answers that enumerate the configuration, endless CSV lines; and the
refused rows as structured JSON (issue 14)."""

import json
import threading
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections

from django_smsclub import services
from django_smsclub.api.pagination import MessagePagination
from django_smsclub.api.recipients import MAX_LINE_BYTES, CsvRecipients
from django_smsclub.exceptions import BadUpload
from django_smsclub.models import Campaign, Message
from tests.api.test_api import ALL_PERMS, API, campaign, client_for, make_user, upload

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pipeline_settings")]


@pytest.fixture
def owner():
    return make_user("owner", *ALL_PERMS)


@pytest.fixture
def api(owner):
    return client_for(owner)


# --- placeholders -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["Hi {name:>50000000}", "Hi {name!r}", "Hi {name:{w}}"])
def test_a_campaign_text_with_a_format_spec_or_conversion_is_refused(api, owner, text):
    created = api.post(API + "campaigns/", {"name": "Sale", "text": text}, format="json")
    draft = campaign(owner, text="Hi {name}")
    patched = api.patch(API + f"campaigns/{draft.pk}/", {"text": text}, format="json")

    for response in (created, patched):
        assert response.status_code == 400
        [problem] = response.json()["text"]
        assert problem.startswith("placeholder {name") and "not a plain name" in problem
    assert Campaign.objects.get().text == "Hi {name}"


def test_recipients_for_a_bomb_saved_earlier_are_refused_unrendered(api, owner):
    bomb = campaign(owner, text="Hi {name:>50000000}")
    rows = [{"phone": f"050123{i:04d}", "name": f"Ivan{i}"} for i in range(40)]

    response = api.post(
        API + f"campaigns/{bomb.pk}/recipients/",
        {"recipients": rows, "skip_invalid": True},
        format="json",
    )

    assert response.status_code == 409
    assert "placeholder {name:>50000000}" in response.json()["detail"]
    assert not Message.objects.exists()


# --- refused rows -----------------------------------------------------------------------------


def test_refused_rows_are_structured_json_naming_the_number_and_the_placeholder(api, owner):
    draft = campaign(owner, text="{name}, your order {order} is ready")
    rows = [
        {"phone": "0501234567", "name": "Ivan", "order": ""},
        {"phone": "12345", "name": "Olena", "order": "7"},
        {"phone": "0501234569", "name": "Petro", "order": 8},
    ]

    response = api.post(
        API + f"campaigns/{draft.pk}/recipients/",
        {"recipients": rows, "skip_invalid": True},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert body["added"] == 1 and body["refused_count"] == 2
    assert body["refused"][0] == {
        "row": 1,
        "line": None,
        "value": "0501234567",
        "reason": "380501234567: the value of {order} is empty",
    }
    assert body["refused"][1]["value"] == "12345"  # the number as given, not a Python repr
    assert "'12345'" in body["refused"][1]["reason"]


# --- metadata -----------------------------------------------------------------------------------


def test_metadata_over_the_limit_is_refused_and_nothing_is_stored(api):
    body = {"to": [f"38050123{i:04d}" for i in range(100)], "text": "Hi"}

    response = api.post(
        API + "messages/", {**body, "metadata": {"blob": "x" * 1_500_000}}, format="json"
    )

    assert response.status_code == 400
    [problem] = response.json()["metadata"]
    assert problem.startswith(
        "metadata is over 4096 bytes as JSON; a message carries at most 4096 "
        "(SMSCLUB['METADATA_MAX_BYTES'])"
    )
    assert len(response.content) < 1000  # the 1.5 MB is not echoed
    assert not Message.objects.exists()
    fits = api.post(API + "messages/", {**body, "metadata": {"order": 17}}, format="json")
    assert fits.status_code == 201 and Message.objects.count() == 100


def test_a_message_list_page_is_bounded_in_bytes_and_next_goes_on_from_where_it_stopped(
    api, owner, monkeypatch
):
    monkeypatch.setattr(MessagePagination, "max_page_bytes", 100_000)
    # Stored before the limit (or by code that bypasses it): 40 KB of metadata each.
    created = [
        Message.objects.create(
            recipient=f"38050123{i:04d}",
            sender="Shop",
            text="Hi",
            gateway="default",
            metadata={"blob": "x" * 40_000},
            created_by=owner,
        )
        for i in range(7)
    ]

    seen, sizes, pages = [], [], 0
    link = API + "messages/?page_size=50"
    while link:
        response = api.get(link)
        assert response.status_code == 200
        sizes.append(len(response.content))
        seen += [row["id"] for row in response.json()["results"]]
        link = response.json()["next"]
        pages += 1

    assert sorted(seen) == sorted(m.pk for m in created) and len(seen) == 7
    assert pages == 4 and max(sizes) < 100_000 + 41_000
    # Going back works from a cut page too.
    first = api.get(API + "messages/?page_size=50").json()
    second = api.get(first["next"]).json()
    back = api.get(second["previous"]).json()
    assert [r["id"] for r in back["results"]] == [r["id"] for r in first["results"]]


def test_one_message_larger_than_a_page_still_comes_alone(api, owner, monkeypatch):
    monkeypatch.setattr(MessagePagination, "max_page_bytes", 1000)
    for i in range(3):
        Message.objects.create(
            recipient=f"3805012300{i:02d}",
            sender="Shop",
            text="Hi",
            gateway="default",
            metadata={"blob": "y" * 2000},
            created_by=owner,
        )

    page = api.get(API + "messages/").json()

    assert len(page["results"]) == 1 and page["next"]


# --- the configuration is not told ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("messages/", {"to": "0501234567", "text": "Hi", "gateway": "nope"}),
        ("messages/", {"items": [{"to": "0501234567", "text": "Hi"}], "gateway": "nope"}),
        ("campaigns/", {"name": "Sale", "text": "Hi", "gateway": "nope"}),
    ],
)
def test_an_unknown_gateway_is_unknown_without_listing_the_configured_ones(api, path, body):
    response = api.post(API + path, body, format="json")

    assert response.status_code == 400
    assert response.json()["gateway"] == ["gateway 'nope' is unknown"]
    assert "cp1251" not in response.content.decode()


def test_the_balance_of_an_unknown_gateway_lists_no_configured_one(api, owner):
    response = api.get(API + "balance/", {"gateway": "nope"})

    assert response.status_code == 400
    assert response.json() == {"gateway": ["gateway 'nope' is unknown"]}


def test_a_campaign_whose_gateway_went_away_does_not_list_the_configured_ones(api, owner):
    gone = campaign(owner, gateway="old")

    response = api.post(API + f"campaigns/{gone.pk}/recipients/", ["0501234567"], format="json")

    assert response.status_code == 409
    assert "'old'" in response.json()["detail"] and "cp1251" not in response.json()["detail"]


# --- CSV lines ------------------------------------------------------------------------------


def test_every_csv_line_is_held_to_the_limit_not_only_a_chunks_remainder():
    content = b"phone\n0501234567\n" + b"1" * 70_000 + b"\n0501234568\n"
    at_limit = b"phone,note\n0501234567," + b"n" * (MAX_LINE_BYTES - 11) + b"\n"

    with pytest.raises(BadUpload, match=f"line 3 is longer than {MAX_LINE_BYTES} bytes"):
        list(CsvRecipients(SimpleUploadedFile("r.csv", content)))
    assert len(list(CsvRecipients(SimpleUploadedFile("r.csv", at_limit)))) == 1


def test_an_uploaded_csv_with_a_long_line_is_refused_naming_it(api, owner):
    draft = campaign(owner)
    content = "phone\n0501234567\n" + "1" * 70_000 + "\n"

    response = api.post(
        API + f"campaigns/{draft.pk}/recipients/", {"file": upload(content)}, format="multipart"
    )

    assert response.status_code == 400
    assert response.json() == {
        "file": [f"line 3 is longer than {MAX_LINE_BYTES} bytes; is this a CSV file?"]
    }
    assert not Message.objects.exists()


# --- the upload and the edit ------------------------------------------------------------------


def _meanwhile(monkeypatch, change):
    """Run ``change`` after the request's body was read, just before the campaign is locked."""
    real = services.add_recipients

    def add_recipients(campaign, rows, **options):
        change(campaign)
        return real(campaign, rows, **options)

    monkeypatch.setattr(services, "add_recipients", add_recipients)


@pytest.mark.parametrize("kind", ["json", "csv"])
def test_an_upload_uses_the_text_and_gateway_of_an_edit_made_meanwhile(
    api, owner, monkeypatch, kind
):
    draft = campaign(owner, text="Old {name}")
    _meanwhile(
        monkeypatch,
        lambda c: api.patch(
            API + f"campaigns/{c.pk}/", {"text": "New {name}", "gateway": "cp1251"}, format="json"
        ),
    )
    url = API + f"campaigns/{draft.pk}/recipients/"
    if kind == "json":
        response = api.post(url, [{"phone": "0501234567", "name": "Ivan"}], format="json")
    else:
        csv = upload("phone,name\n0501234567,Ivan\n")
        response = api.post(url, {"file": csv}, format="multipart")

    assert response.status_code == 200, response.content
    message = Message.objects.get()
    assert (message.text, message.gateway) == ("New Ivan", "cp1251")


def test_an_edit_that_makes_the_campaign_unsendable_meanwhile_is_a_409(api, owner, monkeypatch):
    draft = campaign(owner, text="Hi {name}")
    _meanwhile(
        monkeypatch,
        lambda c: Campaign.objects.filter(pk=c.pk).update(text="Hi {name!r}"),
    )

    response = api.post(
        API + f"campaigns/{draft.pk}/recipients/",
        [{"phone": "0501234567", "name": "I"}],
        format="json",
    )

    assert response.status_code == 409
    assert "placeholder {name!r}" in response.json()["detail"]


def test_a_campaign_deleted_during_the_upload_is_a_409_not_a_500(api, owner, monkeypatch):
    draft = campaign(owner, text="Hi")
    _meanwhile(monkeypatch, lambda c: api.delete(API + f"campaigns/{c.pk}/"))

    response = api.post(API + f"campaigns/{draft.pk}/recipients/", ["0501234567"], format="json")

    assert response.status_code == 409
    assert "no longer exists: it was deleted" in response.json()["detail"]
    assert not Campaign.objects.exists() and not Message.objects.exists()


def test_a_send_answer_stays_json(api):
    response = api.post(API + "messages/", {"to": "0501234567", "text": "Hi"}, format="json")
    assert json.loads(response.content)["messages"][0]["metadata"] == {}


@pytest.mark.django_db(transaction=True)
def test_an_edit_during_an_upload_waits_for_it_then_sees_its_recipients(owner):
    draft = campaign(owner, text="Hi {name}")
    locked, go, answers = threading.Event(), threading.Event(), {}

    def rows():
        locked.set()  # add_recipients takes rows only once it holds the campaign's lock
        assert go.wait(20)
        yield ("0501234567", {"name": "Ivan"})

    def upload_rows():
        try:
            answers["added"] = services.add_recipients(draft, rows()).added
        finally:
            connections.close_all()

    def edit():
        try:
            response = client_for(owner).patch(
                API + f"campaigns/{draft.pk}/", {"text": "Bye {name}"}, format="json"
            )
            answers["edit"] = (response.status_code, response.json())
        finally:
            connections.close_all()

    uploading = threading.Thread(target=upload_rows)
    uploading.start()
    assert locked.wait(20)
    editing = threading.Thread(target=edit)
    editing.start()
    time.sleep(0.5)
    waited = editing.is_alive()
    go.set()
    uploading.join(30)
    editing.join(30)

    assert waited, "the edit did not wait for the upload's lock"
    assert answers["added"] == 1
    status, body = answers["edit"]
    assert status == 400 and "has recipients whose texts were made with its text" in body["text"][0]
    assert Message.objects.get().text == "Hi Ivan"
    assert Campaign.objects.get().text == "Hi {name}"
