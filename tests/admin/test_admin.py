"""The admin: building, previewing, starting and watching campaigns; messages; reports.

Sending and polling go through the XML gateway to the emulator, over real HTTP.
"""

import re
import time
from datetime import timedelta

import pytest
from django.contrib.admin import site
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from django_smsclub import send_sms, services, signals
from django_smsclub.admin import balances, panel
from django_smsclub.charts import delivery_chart, progress
from django_smsclub.models import Campaign, DeliveryReport, Message
from django_smsclub.status import Status
from tests.support.settings import smsclub_settings

NUMBERS = ["050 123 45 01", "+380 (67) 123-45-02", "0931234503"]


@pytest.fixture(autouse=True)
def smsclub(settings, smsclub_emulator):
    """SMSCLUB aimed at the emulator: reports due at once, delivered at the first poll."""
    # The users of these tests log in by force_login: a slow hasher only costs time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    smsclub_emulator.deliver_after(polls=0)
    settings.SMSCLUB = smsclub_settings(
        default=smsclub_emulator.gateway_settings("xml"), POLL_INTERVALS=[0, 0, 60]
    )
    cache.clear()
    yield smsclub_emulator
    cache.clear()


@pytest.fixture
def staff_client(db):
    """A logged-in staff user with no permission on this app."""
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer_client(db):
    """A staff user who may look at campaigns and messages but change nothing."""
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="django_smsclub", codename__startswith="view_"
        )
    )
    client = Client()
    client.force_login(user)
    return client


def url(name, *args):
    return reverse(f"admin:django_smsclub_{name}", args=args)


def campaign_with(numbers, text="Your order is ready", **fields):
    campaign = Campaign.objects.create(name=fields.pop("name", "Orders"), text=text, **fields)
    campaign.add_recipients(numbers)
    return campaign


def fresh(obj):
    return type(obj).objects.get(pk=obj.pk)


def deliver(campaign):
    """Send the campaign's messages to the emulator and poll their reports once."""
    services.send_due("default")
    services.poll_due("default")
    services.refresh_campaigns()


def page_messages(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


def add_campaign(client, **data):
    form = {
        "name": "Spring sale",
        "sender": "",
        "text": "Sale today",
        "gateway": "",
        "send_at_0": "",
        "send_at_1": "",
        "numbers": "",
        "encoding": "utf-8-sig",
        "_save": "Save",
    }
    form.update(data)
    return client.post(url("campaign_add"), form)


@pytest.mark.django_db
def test_pasted_numbers_make_a_draft_and_its_page_previews_it(admin_client):
    pasted = "\n".join([*NUMBERS[:2], "", "call me", NUMBERS[2], "050-12"]) + "\n"

    response = add_campaign(admin_client, numbers=pasted)

    campaign = Campaign.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url("campaign_change", campaign.pk)
    assert campaign.state == Campaign.State.DRAFT
    assert sorted(campaign.messages.values_list("recipient", flat=True)) == [
        "380501234501",
        "380671234502",
        "380931234503",
    ]
    page = admin_client.get(response["Location"])
    html = page.content.decode()
    assert re.search(r'data-stat="accepted">3<', html)
    assert re.search(r'data-stat="refused">2<', html)
    assert re.search(r'data-stat="parts-per-message">1<', html)
    assert re.search(r'data-stat="total-parts">3<', html)
    assert "<td>4</td><td>phone number &#x27;call me&#x27; is not a phone number</td>" in html
    assert "<td>6</td>" in html
    assert "Sale today" in html
    assert "Start: send 3 messages" in html


@pytest.mark.django_db
def test_csv_upload_fills_the_placeholders_of_each_text(admin_client):
    upload = SimpleUploadedFile(
        "people.csv",
        "phone,name,order\n050 123 45 01,Олена,A-1\n0671234502,Тарас,B-2\n".encode(),
        content_type="text/csv",
    )

    add_campaign(admin_client, text="Вітаємо, {name}! Замовлення {order} готове.", csv_file=upload)

    campaign = Campaign.objects.get()
    texts = dict(campaign.messages.values_list("recipient", "text"))
    assert texts == {
        "380501234501": "Вітаємо, Олена! Замовлення A-1 готове.",
        "380671234502": "Вітаємо, Тарас! Замовлення B-2 готове.",
    }
    html = admin_client.get(url("campaign_change", campaign.pk)).content.decode()
    assert "Вітаємо, Олена! Замовлення A-1 готове." in html
    assert "The text is not plain Latin" in html


@pytest.mark.django_db
def test_a_semicolon_csv_from_excel_in_windows_1251_is_read(admin_client):
    upload = SimpleUploadedFile("people.csv", "Phone;name\r\n0501234501;Олена\r\n".encode("cp1251"))

    add_campaign(admin_client, text="Привіт, {name}", csv_file=upload, encoding="cp1251")

    assert Campaign.objects.get().messages.get().text == "Привіт, Олена"


@pytest.mark.django_db
def test_csv_rows_refused_are_listed_with_their_file_lines(admin_client):
    upload = SimpleUploadedFile(
        "people.csv", b"phone,name\n0501234501,Ann\n\n12345,Bob\n0671234502\n0671234503,Cid\n"
    )

    add_campaign(admin_client, text="Hi {name}", csv_file=upload)

    campaign = Campaign.objects.get()
    assert campaign.messages.count() == 2
    stash = admin_client.session[panel.SESSION_KEY][str(campaign.pk)]
    assert stash["refused_total"] == 2
    assert [line for line, _ in stash["refused"]] == [4, 5]
    assert "no value for {name}" in stash["refused"][1][1]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "text", "encoding", "error"),
    [
        (b"number,name\n0501234501,Ann\n", "Hi", "utf-8-sig", "no “phone” column"),
        ("phone,name\n0501234501,Олена\n".encode("cp1251"), "Hi", "utf-8-sig", "not UTF-8 text"),
        (b"phone\n0501234501\n", "Hi {name}", "utf-8-sig", "no column of that name"),
        (b"", "Hi", "utf-8-sig", "The submitted file is empty"),
        (b"\r\n\r\n", "Hi", "utf-8-sig", "The file is empty"),
        (b"phone,name\n", "Hi", "utf-8-sig", "header but no rows"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "Hi", "utf-8-sig", "not UTF-8 text"),
        (b"phone\n" + b"1" * 200_000 + b"\n", "Hi", "utf-8-sig", "longer than 65536 bytes"),
    ],
    ids=[
        "no-phone-column",
        "wrong-encoding",
        "placeholder-column-missing",
        "empty",
        "blank-lines",
        "no-rows",
        "binary",
        "huge-field",
    ],
)
def test_a_bad_csv_is_refused_and_nothing_is_created(admin_client, content, text, encoding, error):
    upload = SimpleUploadedFile("bad.csv", content)

    response = add_campaign(admin_client, text=text, csv_file=upload, encoding=encoding)

    assert response.status_code == 200
    assert error in str(response.context["adminform"].form.errors["csv_file"])
    assert not Campaign.objects.exists()
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_a_big_upload_is_streamed_from_disk_into_the_campaign(admin_client, settings, monkeypatch):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024  # anything larger goes to a temporary file
    rows = "".join(f"38050{i:07d};Name {i}\r\n" for i in range(500))
    upload = SimpleUploadedFile("big.csv", ("phone;name\r\n" + rows).encode())
    given = []
    add_recipients = services.add_recipients

    def spy(campaign, recipients, **options):
        given.append(recipients)
        return add_recipients(campaign, recipients, **options)

    monkeypatch.setattr(services, "add_recipients", spy)

    add_campaign(admin_client, text="Hi {name}", csv_file=upload)

    campaign = Campaign.objects.get()
    assert campaign.messages.count() == 500
    assert campaign.messages.get(recipient="380500000499").text == "Hi Name 499"
    [recipients] = given
    assert not isinstance(recipients, list | tuple)  # an iterator over the file, not its rows


@pytest.mark.django_db
def test_pasted_garbage_makes_an_empty_draft_that_cannot_start(admin_client):
    response = add_campaign(admin_client, numbers="hello\n+++\n0\nDROP TABLE;\n")

    campaign = Campaign.objects.get()
    assert not campaign.messages.exists()
    html = admin_client.get(response["Location"]).content.decode()
    assert "4 numbers were refused" in html
    assert "No recipients yet" in html
    assert url("campaign_start", campaign.pk) not in html


@pytest.mark.django_db
def test_pasted_numbers_for_a_text_with_placeholders_are_refused(admin_client):
    response = add_campaign(admin_client, text="Hi {name}", numbers=NUMBERS[0])

    assert "pasted numbers carry no values" in str(response.context["adminform"].form.errors)
    assert not Campaign.objects.exists()


@pytest.mark.django_db
def test_pasting_and_uploading_at_once_is_refused(admin_client):
    upload = SimpleUploadedFile("a.csv", b"phone\n0501234501\n")

    response = add_campaign(admin_client, numbers=NUMBERS[0], csv_file=upload)

    assert "not both" in str(response.context["adminform"].form.errors)
    assert not Campaign.objects.exists()


@pytest.mark.django_db
def test_a_bad_sender_or_text_is_a_form_error(admin_client):
    response = add_campaign(admin_client, sender="Магазин", text="Hi {0}", numbers=NUMBERS[0])

    errors = str(response.context["adminform"].form.errors)
    assert "only Latin letters" in errors
    assert "not a plain name" in errors
    assert not Campaign.objects.exists()


@pytest.mark.django_db
def test_recipients_cannot_be_added_once_a_campaign_started(admin_client):
    campaign = campaign_with(NUMBERS[:1])
    campaign.start()

    admin_client.post(url("campaign_change", campaign.pk), {"name": "Other", "numbers": NUMBERS[1]})

    assert campaign.messages.count() == 1
    assert fresh(campaign).name == "Orders"


@pytest.mark.django_db
def test_start_releases_the_messages_and_a_second_start_changes_nothing(admin_client, smsclub):
    campaign = campaign_with(NUMBERS)

    first = admin_client.post(url("campaign_start", campaign.pk), follow=True)
    released = list(campaign.messages.values_list("pk", "next_attempt_at"))
    second = admin_client.post(url("campaign_start", campaign.pk), follow=True)

    assert fresh(campaign).state == Campaign.State.RUNNING
    assert all(at is not None for _, at in released)
    assert "started" in page_messages(first)[0]
    assert page_messages(second) == ["Campaign “Orders” is running: only a draft can be started."]
    assert list(campaign.messages.values_list("pk", "next_attempt_at")) == released
    services.send_due("default")
    assert len(smsclub.accepted) == 3


@pytest.mark.django_db
def test_start_with_a_send_time_schedules_the_campaign(admin_client):
    campaign = campaign_with(NUMBERS[:1], send_at=timezone.now() + timedelta(hours=2))

    response = admin_client.post(url("campaign_start", campaign.pk), follow=True)

    assert fresh(campaign).state == Campaign.State.SCHEDULED
    assert "scheduled for" in page_messages(response)[0]


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["start", "cancel", "retry", "poll"])
def test_get_on_a_button_url_changes_nothing(admin_client, action):
    campaign = campaign_with(NUMBERS)
    before = list(Message.objects.values_list("pk", "status", "next_attempt_at"))

    response = admin_client.get(url(f"campaign_{action}", campaign.pk))

    assert response.status_code == 405
    assert fresh(campaign).state == Campaign.State.DRAFT
    assert list(Message.objects.values_list("pk", "status", "next_attempt_at")) == before


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["start", "cancel", "retry", "poll"])
def test_anonymous_and_unpermitted_users_get_nothing_done(
    client, staff_client, viewer_client, action
):
    campaign = campaign_with(NUMBERS)
    before = list(Message.objects.values_list("pk", "status", "next_attempt_at"))

    anonymous = client.post(url(f"campaign_{action}", campaign.pk))
    staff = staff_client.post(url(f"campaign_{action}", campaign.pk))
    viewer = viewer_client.post(url(f"campaign_{action}", campaign.pk))

    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith(reverse("admin:login"))
    assert staff.status_code == 403
    assert viewer.status_code == 403
    assert fresh(campaign).state == Campaign.State.DRAFT
    assert list(Message.objects.values_list("pk", "status", "next_attempt_at")) == before


@pytest.mark.django_db
def test_button_posts_need_a_csrf_token(db):
    user = User.objects.create_superuser("root", password="pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    campaign = campaign_with(NUMBERS)

    response = client.post(url("campaign_start", campaign.pk))

    assert response.status_code == 403
    assert fresh(campaign).state == Campaign.State.DRAFT


@pytest.mark.django_db
def test_a_button_for_a_missing_campaign_is_not_found(admin_client):
    assert admin_client.post(url("campaign_start", 999)).status_code == 404


@pytest.mark.django_db
def test_cancel_after_sent_keeps_the_sent_messages_and_their_tracking(admin_client):
    campaign = campaign_with(NUMBERS)
    campaign.start()
    services.send_due("default")

    response = admin_client.post(url("campaign_cancel", campaign.pk), follow=True)

    assert fresh(campaign).state == Campaign.State.CANCELLED
    assert set(campaign.messages.values_list("status", flat=True)) == {Status.SENT}
    assert "0 queued messages will not be sent" in page_messages(response)[0]
    again = admin_client.post(url("campaign_cancel", campaign.pk), follow=True)
    assert "there is nothing to cancel" in page_messages(again)[0]


@pytest.mark.django_db
def test_cancel_a_running_campaign_cancels_its_queued_messages(admin_client):
    campaign = campaign_with(NUMBERS)
    campaign.start()

    admin_client.post(url("campaign_cancel", campaign.pk))

    assert set(campaign.messages.values_list("status", flat=True)) == {Status.CANCELLED}


@pytest.mark.django_db
def test_retry_failed_queues_new_messages_once(admin_client, smsclub):
    smsclub.set_outcome("380501234501", "UNDELIV")
    campaign = campaign_with(NUMBERS)
    campaign.start()
    deliver(campaign)
    failed = campaign.messages.get(recipient="380501234501")
    assert failed.status == Status.UNDELIVERED

    first = admin_client.post(url("campaign_retry", campaign.pk), follow=True)
    second = admin_client.post(url("campaign_retry", campaign.pk), follow=True)

    copy = Message.objects.get(retry_of=failed)
    assert copy.status == Status.QUEUED and copy.campaign == campaign
    assert campaign.messages.count() == 4
    assert "1 failed message of “Orders” is queued again" in page_messages(first)[0]
    assert "no failed message to retry" in page_messages(second)[0]


@pytest.mark.django_db
def test_retry_on_a_draft_is_refused(admin_client):
    campaign = campaign_with(NUMBERS)

    response = admin_client.post(url("campaign_retry", campaign.pk), follow=True)

    assert "only a started campaign can retry" in page_messages(response)[0]
    assert campaign.messages.count() == 3


@pytest.mark.django_db
def test_poll_now_asks_the_provider_and_finishes_the_campaign(admin_client, smsclub):
    campaign = campaign_with(NUMBERS)
    campaign.start()
    services.send_due("default")
    polls_before = sum(1 for r in smsclub.requests if r.op == "state")

    response = admin_client.post(url("campaign_poll", campaign.pk), follow=True)

    assert set(campaign.messages.values_list("status", flat=True)) == {Status.DELIVERED}
    assert fresh(campaign).state == Campaign.State.DONE
    assert sum(1 for r in smsclub.requests if r.op == "state") == polls_before + 1
    assert page_messages(response) == [
        "Asked SMSClub about 3 of 3 parts waiting for a report; 3 messages changed status."
    ]


@pytest.mark.django_db
def test_poll_now_with_nothing_pending_says_so(admin_client):
    campaign = campaign_with(NUMBERS)

    response = admin_client.post(url("campaign_poll", campaign.pk), follow=True)

    assert "is waiting for a delivery report" in page_messages(response)[0]


@pytest.mark.django_db
def test_list_actions_start_the_drafts_and_report_the_others(admin_client):
    drafts = [campaign_with(NUMBERS, name=f"Draft {i}") for i in range(2)]
    running = campaign_with(NUMBERS[:1], name="Running")
    running.start()
    empty = Campaign.objects.create(name="Empty", text="Hi")

    response = admin_client.post(
        url("campaign_changelist"),
        {
            "action": "start_selected",
            "_selected_action": [c.pk for c in [*drafts, running, empty]],
        },
        follow=True,
    )

    assert [fresh(c).state for c in drafts] == [Campaign.State.RUNNING] * 2
    assert fresh(empty).state == Campaign.State.DRAFT
    shown = page_messages(response)
    assert "Campaign “Running” is running: only a draft can be started." in shown
    assert "Campaign “Empty” has no recipients to send to." in shown
    assert sum("started;" in m for m in shown) == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    "action", ["start_selected", "cancel_selected", "retry_selected", "poll_selected"]
)
def test_list_actions_need_a_login_and_the_change_permission(
    client, staff_client, viewer_client, action
):
    campaign = campaign_with(NUMBERS)
    before = list(Message.objects.values_list("pk", "status", "next_attempt_at"))
    data = {"action": action, "_selected_action": [campaign.pk]}

    anonymous = client.post(url("campaign_changelist"), data)
    staff = staff_client.post(url("campaign_changelist"), data)
    viewer = viewer_client.post(url("campaign_changelist"), data)

    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith(reverse("admin:login"))
    assert staff.status_code == 403
    assert viewer.status_code == 200  # the list, without the action
    assert action not in viewer.content.decode()
    assert fresh(campaign).state == Campaign.State.DRAFT
    assert list(Message.objects.values_list("pk", "status", "next_attempt_at")) == before


@pytest.mark.django_db
def test_the_running_campaign_page_shows_progress_chart_and_balance(admin_client, smsclub):
    smsclub.set_outcome("380671234502", "UNDELIV")
    campaign = campaign_with([*NUMBERS, "0991234504"])
    campaign.start()
    services.send_due("default")

    sent = admin_client.get(url("campaign_change", campaign.pk)).content.decode()
    services.poll_due("default")
    services.refresh_campaigns()
    done = admin_client.get(url("campaign_change", campaign.pk)).content.decode()

    assert 'aria-valuenow="0"' in sent
    assert "No delivery report yet." in sent
    assert 'http-equiv="refresh"' in sent
    assert url("campaign_poll", campaign.pk) in sent
    assert url("campaign_retry", campaign.pk) not in sent
    assert 'aria-valuenow="100"' in done
    assert "<svg" in done and "smsclub-area-delivered" in done
    assert "3 of 4 delivered, 1 failed" in done
    assert 'http-equiv="refresh"' not in done
    assert url("campaign_retry", campaign.pk) in done
    assert url("campaign_poll", campaign.pk) not in done
    assert url("campaign_start", campaign.pk) not in done
    assert re.search(r"Balance of default:</span> <strong>99[0-9.,\s]+ UAH</strong>", done)


@pytest.mark.django_db
def test_a_failing_gateway_shows_the_balance_as_unavailable(admin_client, settings, smsclub):
    settings.SMSCLUB["GATEWAYS"]["default"]["PASSWORD"] = "wrong"
    campaign = campaign_with(NUMBERS)

    change = admin_client.get(url("campaign_change", campaign.pk))
    listing = admin_client.get(url("campaign_changelist"))

    assert change.status_code == listing.status_code == 200
    assert "unavailable" in change.content.decode()
    assert "unavailable" in listing.content.decode()


@pytest.mark.django_db
def test_the_balance_is_shown_only_with_the_balance_permission(db, smsclub):
    user = User.objects.create_user("clerk", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(codename__in=["view_campaign", "change_campaign"])
    )
    client = Client()
    client.force_login(user)
    campaign = campaign_with(NUMBERS)

    pages = [
        client.get(url("campaign_change", campaign.pk)),
        client.get(url("campaign_changelist")),
    ]
    asked = sum(1 for r in smsclub.requests if r.op == "balance")
    user.user_permissions.add(Permission.objects.get(codename="view_balance"))
    client.force_login(User.objects.get(pk=user.pk))
    allowed = client.get(url("campaign_changelist"))

    assert all("Balance of" not in page.content.decode() for page in pages)
    assert asked == 0
    assert "Balance of default:" in allowed.content.decode()


@pytest.mark.django_db
def test_the_balance_is_cached_briefly(admin_client, smsclub):
    admin_client.get(url("campaign_changelist"))
    admin_client.get(url("campaign_changelist"))

    assert sum(1 for r in smsclub.requests if r.op == "balance") == 1


@pytest.mark.django_db
def test_a_slow_gateway_costs_the_page_the_wait_at_most(admin_client, monkeypatch, smsclub):
    monkeypatch.setattr(balances, "BALANCE_WAIT", 0.2)
    smsclub.faults.add("latency", op="balance", seconds=2.0)

    started = time.monotonic()
    response = admin_client.get(url("campaign_changelist"))
    waited = time.monotonic() - started
    late = balances.gateway_balances(["default"], wait=10)  # the same fetch, still running

    assert "no answer yet" in response.content.decode()
    assert waited < 1.5
    assert late[0].amount is not None


def resend(client, *messages):
    return client.post(
        url("message_changelist"),
        {"action": "resend_selected", "_selected_action": [m.pk for m in messages]},
        follow=True,
    )


@pytest.mark.django_db
def test_message_resend_of_a_failed_message_queues_one_copy_however_often_pressed(
    admin_client, smsclub, django_capture_on_commit_callbacks
):
    smsclub.set_outcome("380501234501", "UNDELIV")
    campaign = campaign_with(NUMBERS[:1])
    campaign.start()
    deliver(campaign)
    original = campaign.messages.get()
    assert original.status == Status.UNDELIVERED and fresh(campaign).state == "done"

    with django_capture_on_commit_callbacks() as enqueued:
        first = resend(admin_client, original)
    second = resend(admin_client, original)

    copy = Message.objects.get(retry_of=original)
    assert Message.objects.count() == 2
    assert copy.status == Status.QUEUED and copy.next_attempt_at is not None
    assert (copy.recipient, copy.text, copy.campaign) == (
        original.recipient,
        original.text,
        campaign,
    )
    assert fresh(campaign).state == Campaign.State.RUNNING
    assert len(enqueued) == 1
    assert page_messages(first) == ["1 message is resent as a new message."]
    assert page_messages(second) == ["1 message was resent before; resend its copy instead."]


@pytest.mark.django_db
def test_message_resend_never_resends_an_unknown_or_delivered_message_and_says_why(
    admin_client,
):
    unknown, delivered = send_sms(NUMBERS[:2], "Hello")
    Message.objects.filter(pk=unknown.pk).update(status=Status.UNKNOWN)
    Message.objects.filter(pk=delivered.pk).update(status=Status.DELIVERED)

    response = resend(admin_client, unknown, delivered)

    assert Message.objects.count() == 2
    assert page_messages(response) == [
        "1 message of unknown fate was not resent: it may have arrived.",
        "1 message was delivered or cancelled and was not resent: only messages that surely "
        "did not arrive are resent.",
        # The superuser may take the explicit step; it is named, not taken.
        "If you accept that they may arrive twice, choose “Resend the selected messages of "
        "unknown fate”.",
    ]


@pytest.mark.django_db
def test_message_resend_leaves_messages_on_their_way_alone(admin_client):
    [message] = send_sms(NUMBERS[0], "Hello")

    response = resend(admin_client, message)

    assert Message.objects.count() == 1
    assert "still on its way" in page_messages(response)[0]


@pytest.mark.django_db
def test_message_cancel_cancels_queued_ones_only_and_signals_once(
    admin_client, django_capture_on_commit_callbacks
):
    queued = send_sms(NUMBERS[0], "Hello")[0]
    sent = send_sms(NUMBERS[1], "Hello")[0]
    services.send_due("default")
    queued_too = send_sms(NUMBERS[2], "Hello")[0]
    Message.objects.filter(pk=queued.pk).update(status=Status.QUEUED)
    finished = []
    signals.message_finished.connect(
        lambda message, **kw: finished.append(message.pk), weak=False, dispatch_uid="t"
    )
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(
                url("message_changelist"),
                {
                    "action": "cancel_selected",
                    "_selected_action": [queued.pk, sent.pk, queued_too.pk],
                },
                follow=True,
            )
    finally:
        signals.message_finished.disconnect(dispatch_uid="t")

    assert fresh(queued).status == fresh(queued_too).status == Status.CANCELLED
    assert fresh(sent).status == Status.SENT
    assert sorted(finished) == sorted([queued.pk, queued_too.pk])
    assert page_messages(response) == [
        "2 queued messages are cancelled.",
        "1 message was not queued any more and is left as it is.",
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["resend_selected", "cancel_selected"])
def test_message_actions_need_a_login_and_the_change_permission(
    client, staff_client, viewer_client, action
):
    [queued] = send_sms(NUMBERS[0], "Hello")
    [failed] = send_sms(NUMBERS[1], "Hello")
    Message.objects.filter(pk=failed.pk).update(status=Status.FAILED)
    data = {"action": action, "_selected_action": [queued.pk, failed.pk]}

    responses = [c.post(url("message_changelist"), data) for c in (client, staff_client)]
    viewer = viewer_client.post(url("message_changelist"), data)

    assert [r.status_code for r in responses] == [302, 403]
    assert viewer.status_code == 200 and action not in viewer.content.decode()
    assert fresh(queued).status == Status.QUEUED
    assert fresh(failed).status == Status.FAILED
    assert Message.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("term", ["050 123 45 01", "+380501234501", "501234501"])
def test_messages_are_found_by_a_number_written_any_way(admin_client, term):
    send_sms(NUMBERS[0], "Hello")
    send_sms(NUMBERS[1], "Hello")

    response = admin_client.get(url("message_changelist"), {"q": term})

    assert [m.recipient for m in response.context["cl"].result_list] == ["380501234501"]


@pytest.mark.django_db
def test_messages_are_found_by_smsc_id(admin_client):
    send_sms(NUMBERS[:2], "Hello")
    services.send_due("default")
    report = DeliveryReport.objects.order_by("pk").last()
    # A real SMSC ID: long enough not to be a piece of every number.
    DeliveryReport.objects.filter(pk=report.pk).update(smsc_id="7300412345")
    report.smsc_id = "7300412345"

    response = admin_client.get(url("message_changelist"), {"q": report.smsc_id})

    assert list(response.context["cl"].result_list) == [report.message]


@pytest.mark.django_db
def test_messages_filter_by_status_gateway_campaign_and_date(admin_client):
    campaign = campaign_with(NUMBERS[:2])
    send_sms(NUMBERS[2], "Hello")

    def shown(**params):
        response = admin_client.get(url("message_changelist"), params)
        assert response.status_code == 200
        return len(response.context["cl"].result_list)

    assert shown(campaign=campaign.pk) == 2
    assert shown(campaign="abc") == 0
    assert shown(status__exact="queued") == 3
    assert shown(status__exact="sent") == 0
    assert shown(gateway="default") == 3
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    assert shown(created_at__gte=str(midnight)) == 3
    assert shown(created_at__gte=str(midnight + timedelta(days=1))) == 0


@pytest.mark.django_db
def test_the_message_page_shows_its_reports_read_only(admin_client):
    [message] = send_sms(NUMBERS[0], "Hello " * 40)
    services.send_due("default")

    html = admin_client.get(url("message_change", message.pk)).content.decode()

    assert message.reports.count() == 2
    for report in message.reports.all():
        assert report.smsc_id in html
    assert 'name="reports-0-smsc_id"' not in html
    assert url("message_add") not in html
    assert 'name="_save"' not in html


@pytest.mark.django_db
def test_delivery_reports_are_read_only(admin_client):
    [message] = send_sms(NUMBERS[0], "Hello")
    services.send_due("default")
    report = message.reports.get()

    assert admin_client.get(url("deliveryreport_changelist")).status_code == 200
    assert admin_client.get(url("deliveryreport_add")).status_code == 403
    assert admin_client.post(url("deliveryreport_delete", report.pk)).status_code == 403
    admin_client.post(url("deliveryreport_change", report.pk), {"raw_status": "DELIVRD"})
    assert fresh(report).raw_status == ""
    assert admin_client.get(url("message_add")).status_code == 403


@pytest.mark.django_db
def test_a_running_campaign_cannot_be_deleted(admin_client):
    campaign = campaign_with(NUMBERS)
    campaign.start()

    response = admin_client.post(url("campaign_delete", campaign.pk), {"post": "yes"})

    assert response.status_code == 403
    assert Campaign.objects.filter(pk=campaign.pk).exists()


def make_campaigns(count, messages_each):
    campaigns = Campaign.objects.bulk_create(
        Campaign(name=f"Campaign {i}", text="Hello") for i in range(count)
    )
    statuses = [Status.QUEUED, Status.SENT, Status.DELIVERED, Status.FAILED, Status.UNKNOWN]
    Message.objects.bulk_create(
        Message(
            campaign=campaign,
            recipient=f"38050{i:03d}{j:04d}",
            sender="Shop",
            text="Hello",
            gateway="default",
            status=statuses[j % len(statuses)],
        )
        for i, campaign in enumerate(campaigns)
        for j in range(messages_each)
    )
    return campaigns


@pytest.mark.django_db
def test_the_campaign_list_makes_no_query_per_row(admin_client, django_assert_max_num_queries):
    make_campaigns(5, 4)
    admin_client.get(url("campaign_changelist"))  # fills the balance cache
    with django_assert_max_num_queries(50) as small:
        admin_client.get(url("campaign_changelist"))
    make_campaigns(45, 4)

    with django_assert_max_num_queries(len(small.captured_queries)) as big:
        response = admin_client.get(url("campaign_changelist"))

    assert len(response.context["cl"].result_list) == 50
    assert len(big.captured_queries) <= 6
    assert 'aria-valuenow="50"' in response.content.decode()


@pytest.mark.django_db
def test_the_message_list_makes_no_query_per_row(
    admin_client, django_assert_max_num_queries, monkeypatch
):
    monkeypatch.setattr(site._registry[Message], "list_per_page", 200)
    make_campaigns(10, 20)

    with django_assert_max_num_queries(6):
        response = admin_client.get(url("message_changelist"), {"q": "050"})

    assert len(response.context["cl"].result_list) == 200
    with django_assert_max_num_queries(6):
        admin_client.get(url("message_changelist"), {"campaign": Campaign.objects.last().pk})


@pytest.mark.django_db
def test_the_report_list_makes_no_query_per_row(admin_client, django_assert_max_num_queries):
    send_sms([f"38050{i:07d}" for i in range(200)], "Hello")
    services.send_due("default")

    with django_assert_max_num_queries(5):
        response = admin_client.get(url("deliveryreport_changelist"))

    assert len(response.context["cl"].result_list) == 100


@pytest.mark.django_db
def test_a_campaign_page_costs_the_same_for_any_number_of_messages(
    admin_client, django_assert_max_num_queries
):
    [small, big] = make_campaigns(2, 1)
    Message.objects.bulk_create(
        Message(campaign=big, recipient=f"38067{i:07d}", sender="S", text="Hi", gateway="default")
        for i in range(2000)
    )
    for campaign in (small, big):
        Campaign.objects.filter(pk=campaign.pk).update(state=Campaign.State.RUNNING)
    admin_client.get(url("campaign_change", small.pk))
    with django_assert_max_num_queries(30) as one:
        admin_client.get(url("campaign_change", small.pk))

    with django_assert_max_num_queries(len(one.captured_queries)):
        admin_client.get(url("campaign_change", big.pk))


@pytest.mark.django_db
def test_the_admin_speaks_ukrainian(admin_client, settings):
    settings.LANGUAGE_CODE = "uk"
    campaign = campaign_with(NUMBERS)

    with translation.override("uk"):
        html = admin_client.get(
            url("campaign_change", campaign.pk), HTTP_ACCEPT_LANGUAGE="uk"
        ).content.decode()

    assert "Попередній перегляд" in html
    assert "чернетка" in html


def test_progress_is_100_only_when_every_message_is_final():
    assert progress({Status.DELIVERED: 199, Status.SENT: 1}).percent == 99
    assert progress({Status.DELIVERED: 199, Status.FAILED: 1}).percent == 100
    assert progress({}).percent == 0
    bands = {b.key: b for b in progress({Status.QUEUED: 1, Status.SENDING: 1}).bands}
    assert bands["queued"].count == 1 and bands["queued"].percent == 50.0
    assert bands["sending"].count == 1 and bands["sending"].percent == 50.0


@pytest.mark.django_db
def test_the_chart_sums_deliveries_up_to_the_campaign_size():
    campaign = Campaign.objects.create(name="C", text="Hi", state=Campaign.State.DONE)
    start = timezone.now() - timedelta(minutes=10)
    Message.objects.bulk_create(
        Message(
            campaign=campaign,
            recipient=f"38050{i:07d}",
            sender="S",
            text="Hi",
            gateway="default",
            status=Status.DELIVERED if i % 4 else Status.UNDELIVERED,
            sent_at=start,
            finished_at=start + timedelta(minutes=i),
        )
        for i in range(8)
    )

    chart = delivery_chart(campaign, 10)

    assert (chart.delivered, chart.failed, chart.total) == (6, 2, 10)
    assert chart.delivered_line.startswith("M0.0,160.0")
    assert chart.delivered_line.endswith("V64.0H640")  # 6 of 10: 60 % of 160 high
    assert delivery_chart(Campaign.objects.create(name="D", text="Hi"), 0) is None
