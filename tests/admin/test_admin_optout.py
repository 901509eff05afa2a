"""The stop list in the admin: search by number in any spelling, add and remove, import a CSV
file (bounded; refused lines listed with their values), and the campaign preview's count of
numbers on the list."""

import re

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from django_smsclub.models import Campaign, OptOut
from django_smsclub.services import optout
from tests.admin.test_admin import add_campaign, smsclub, url  # noqa: F401  (smsclub: a fixture)

pytestmark = pytest.mark.django_db


def client_with(*codenames):
    user = User.objects.create_user("_".join(codenames), password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_smsclub", codename__in=codenames)
    )
    client = Client()
    client.force_login(user)
    return client


def csv_upload(content, encoding="utf-8"):
    return SimpleUploadedFile("stop.csv", content.encode(encoding), content_type="text/csv")


def listed(response):
    return re.findall(r'<th class="field-phone"><a [^>]*>(\d+)</a>', response.content.decode())


def test_the_list_is_searched_by_a_number_in_any_spelling_or_by_some_digits(admin_client):
    optout.opt_out("0501234567")
    optout.opt_out("0671234567", "all")

    by_number = admin_client.get(url("optout_changelist"), {"q": "+380 (50) 123-45-67"})
    by_digits = admin_client.get(url("optout_changelist"), {"q": "123-45"})
    everything = admin_client.get(url("optout_changelist"))

    assert listed(by_number) == ["380501234567"]
    assert sorted(listed(by_digits)) == ["380501234567", "380671234567"]
    assert len(listed(everything)) == 2
    assert "Import from CSV" in everything.content.decode()


def test_a_number_added_in_the_admin_is_stored_normalised_with_its_source(admin_client):
    response = admin_client.post(
        url("optout_add"), {"phone": "050 123 45 67", "scope": "all", "reason": "by phone"}
    )

    assert response.status_code == 302
    entry = OptOut.objects.get()
    assert (entry.phone, entry.scope, entry.source, entry.reason) == (
        "380501234567",
        "all",
        "admin",
        "by phone",
    )
    page = admin_client.get(url("optout_change", entry.pk)).content.decode()
    assert 'name="phone"' not in page  # read-only once stored


def test_a_bad_or_listed_number_is_refused_naming_it(admin_client):
    optout.opt_out("0501234567")

    bad = admin_client.post(url("optout_add"), {"phone": "050 12", "scope": "marketing"})
    listed_already = admin_client.post(
        url("optout_add"), {"phone": "+380501234567", "scope": "marketing"}
    )

    assert "phone number &#x27;050 12&#x27; is not a valid number" in bad.content.decode()
    assert "already exists" in listed_already.content.decode()
    assert OptOut.objects.count() == 1


def test_a_number_is_removed_from_the_list(admin_client):
    entry, _ = optout.opt_out("0501234567")

    response = admin_client.post(url("optout_delete", entry.pk), {"post": "yes"})

    assert response.status_code == 302 and not OptOut.objects.exists()


def test_an_import_puts_the_numbers_on_and_lists_refused_lines_with_their_values(admin_client):
    optout.opt_out("0501234567")
    content = "phone;reason\n050 123 45 67;\nnope;\n0631234567;complained\n0661234567;\n"

    response = admin_client.post(
        url("optout_import"),
        {"csv_file": csv_upload(content), "encoding": "utf-8-sig", "scope": "all", "reason": ""},
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "2 numbers put on the stop list." in html and "1 was on it already." in html
    assert "<td>3</td><td>nope</td><td>phone number &#x27;nope&#x27; is not a phone number" in html
    # Scope "all" for every row: the number there before is widened to it.
    assert set(OptOut.objects.values_list("scope", flat=True)) == {"all"}
    assert OptOut.objects.count() == 3
    assert OptOut.objects.get(phone="380631234567").source == "import"


def test_an_import_reads_windows_1251(admin_client):
    content = "Phone,Reason\n0501234567,скарга\n"

    admin_client.post(
        url("optout_import"),
        {"csv_file": csv_upload(content, "cp1251"), "encoding": "cp1251", "scope": "marketing"},
    )

    assert OptOut.objects.get().reason == "скарга"


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("number\n0501234567\n", "has no &#x27;phone&#x27; column"),
        ("", "The submitted file is empty."),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_with_the_reason(admin_client, content, error):
    response = admin_client.post(
        url("optout_import"),
        {"csv_file": csv_upload(content), "encoding": "utf-8-sig", "scope": "marketing"},
    )

    assert error in response.content.decode()
    assert not OptOut.objects.exists()


def test_an_import_past_the_size_limit_is_refused_whole(admin_client, monkeypatch):
    monkeypatch.setattr(optout, "IMPORT_MAX_BYTES", 100)

    response = admin_client.post(
        url("optout_import"),
        {
            "csv_file": csv_upload("phone\n" + "0501234567\n" * 20),
            "encoding": "utf-8-sig",
            "scope": "marketing",
        },
    )

    assert "the file is over" in response.content.decode()
    assert not OptOut.objects.exists()


def test_only_a_user_who_may_add_to_the_list_may_import():
    viewer = client_with("view_optout")
    adder = client_with("view_optout", "add_optout")

    assert viewer.get(url("optout_import")).status_code == 403
    assert "Import from CSV" not in viewer.get(url("optout_changelist")).content.decode()
    assert adder.get(url("optout_import")).status_code == 200
    assert Client().get(url("optout_import")).status_code == 302  # to the login page


def test_the_campaign_preview_counts_the_numbers_on_the_stop_list(admin_client):
    optout.opt_out("0501234501")
    response = add_campaign(
        admin_client, numbers="050 123 45 01\n0671234502\n0931234503\n0661234504\n"
    )
    campaign = Campaign.objects.get()
    optout.opt_out("0671234502", "all")  # after it was added: cancelled when claimed

    html = admin_client.get(response["Location"]).content.decode()

    assert re.search(r'data-stat="accepted">3<', html)
    assert re.search(r'data-stat="opted-out">2<', html)
    assert "<td>1</td><td>opted out</td>" in html
    assert campaign.messages.count() == 3
