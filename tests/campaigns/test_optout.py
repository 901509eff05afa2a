"""The stop list (issue 13, part 1): its own rules, and every send path honouring them: adding
recipients, the claim of a batch, send_sms and send_personalized, retries and resends, and the
import of a CSV file."""

import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_smsclub import send_personalized, send_sms, services
from django_smsclub.exceptions import BadUpload, InvalidMessage
from django_smsclub.gateways import locmem
from django_smsclub.models import Campaign, Message, OptOut
from django_smsclub.services import optout
from django_smsclub.signals import message_finished, message_status_changed
from django_smsclub.status import Status

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pipeline_settings")]

MARKETING, ALL = OptOut.Scope.MARKETING, OptOut.Scope.ALL


def sent_to():
    return [sms.recipient for sms in locmem.outbox]


@pytest.fixture
def signalled():
    """(kind, message pk, old, new) of every status signal sent while the test runs."""
    events = []

    def changed(sender, message, old_status, new_status, **kwargs):
        events.append(("changed", message.pk, old_status, new_status))

    def finished(sender, message, old_status, new_status, **kwargs):
        events.append(("finished", message.pk, old_status, new_status))

    message_status_changed.connect(changed, dispatch_uid="test-optout-changed")
    message_finished.connect(finished, dispatch_uid="test-optout-finished")
    yield events
    message_status_changed.disconnect(dispatch_uid="test-optout-changed")
    message_finished.disconnect(dispatch_uid="test-optout-finished")


# --- the list itself ------------------------------------------------------------------------


def test_a_number_is_stored_as_messages_store_their_recipients_whichever_way_it_is_written():
    entry, created = optout.opt_out("+380 (50) 123-45-67", reason="asked by phone")
    again, created_again = optout.opt_out("050 123 45 67")

    [message] = send_sms("0501234567", "Hi")
    assert entry.phone == message.recipient == "380501234567"
    assert (created, created_again) == (True, False)
    assert again.pk == entry.pk and OptOut.objects.count() == 1
    assert (entry.scope, entry.source, entry.reason) == (MARKETING, "code", "asked by phone")


def test_asking_for_all_widens_a_marketing_entry_and_nothing_narrows_an_all_one():
    first, _ = optout.opt_out("0501234567", MARKETING, source="link")
    widened, _ = optout.opt_out("0501234567", ALL, source="api")
    kept, created = optout.opt_out("0501234567", MARKETING, source="link", reason="again")

    stored = OptOut.objects.get()
    assert widened.scope == kept.scope == stored.scope == ALL
    assert not created
    # The entry keeps where it came from first.
    assert (stored.source, stored.reason, stored.created_at) == ("link", "", first.created_at)


def test_a_bad_number_scope_or_source_is_refused_naming_each():
    with pytest.raises(InvalidMessage) as caught:
        optout.opt_out("050 12", "everything", source="fax")

    assert caught.value.problems == [
        "phone number '050 12' is not a valid number",
        "scope 'everything' is not one of all, marketing",
        "source 'fax' is not one of admin, api, code, import, link",
    ]
    assert not OptOut.objects.exists()


def test_remove_takes_a_number_off_in_any_spelling_and_says_whether_it_was_on():
    optout.opt_out("0501234567")

    assert optout.remove("+380 50 123 45 67") is True
    assert optout.remove("0501234567") is False
    with pytest.raises(InvalidMessage, match="'nope' is not a phone number"):
        optout.remove("nope")


def test_all_stops_every_message_and_marketing_only_marketing_ones():
    optout.opt_out("0501234567", MARKETING)
    optout.opt_out("0671234567", ALL)
    numbers = ["380501234567", "380671234567", "380631234567"]

    assert optout.blocked(numbers, marketing=True) == {"380501234567", "380671234567"}
    assert optout.blocked(numbers, marketing=False) == {"380671234567"}
    assert optout.blocked([], marketing=True) == set()


def test_the_look_up_takes_one_query_per_chunk_of_numbers(monkeypatch):
    monkeypatch.setattr(optout, "LOOKUP_CHUNK", 10)
    optout.opt_out("380501200025", ALL)
    numbers = [f"3805012000{i:02d}" for i in range(35)]

    with CaptureQueriesContext(connection) as queries:
        found = optout.blocked(numbers, marketing=False)

    assert found == {"380501200025"}
    assert len(queries.captured_queries) == 4


# --- campaigns ------------------------------------------------------------------------------


def test_add_recipients_refuses_opted_out_rows_with_the_reason_and_adds_the_rest():
    optout.opt_out("0501234567", MARKETING)
    optout.opt_out("0671234567", ALL)
    campaign = Campaign.objects.create(name="Sale", text="Sale today")

    result = campaign.add_recipients(["050 123 45 67", "0631234567", "+380671234567"])

    assert [(r.row, r.value, r.reason) for r in result.refused] == [
        (1, "050 123 45 67", "opted out"),
        (3, "+380671234567", "opted out"),
    ]
    assert (result.added, result.opted_out) == (1, 2)
    assert list(campaign.messages.values_list("recipient", flat=True)) == ["380631234567"]


def test_an_opted_out_row_is_no_mistake_but_a_bad_row_still_stops_the_addition():
    optout.opt_out("0501234567")
    campaign = Campaign.objects.create(name="Sale", text="Hi {name}")

    with pytest.raises(InvalidMessage) as caught:
        campaign.add_recipients(
            [("0501234567", {"name": "Ann"}), ("0631234567", {}), ("0671234567", {"name": "B"})]
        )

    assert caught.value.problems == ["row 2: 380631234567: no value for {name}"]
    assert not campaign.messages.exists()
    result = campaign.add_recipients(
        [("0501234567", {"name": "Ann"}), ("0671234567", {"name": "B"})]
    )
    assert (result.added, len(result.refused), result.opted_out) == (1, 1, 1)


def test_adding_recipients_looks_the_stop_list_up_once_per_chunk_not_per_row():
    optout.opt_out("0501200005")
    campaign = Campaign.objects.create(name="c", text="Hi {name}", sender="Shop")
    rows = [(f"05012{i:05d}", {"name": f"N{i}"}) for i in range(60)]

    with CaptureQueriesContext(connection) as queries:
        result = campaign.add_recipients(rows, chunk_size=20)

    assert (result.added, result.opted_out) == (59, 1)
    lookups = [q["sql"] for q in queries.captured_queries if "django_smsclub_optout" in q["sql"]]
    # Whether the list is empty at all, then one look-up per chunk.
    assert len(lookups) == 1 + 3, lookups


def test_a_number_opted_out_after_it_was_added_is_cancelled_when_claimed_and_never_sent(
    signalled, django_capture_on_commit_callbacks
):
    campaign = Campaign.objects.create(name="Sale", text="Sale today")
    campaign.add_recipients(["0501234567", "0631234567"])
    optout.opt_out("0501234567", MARKETING, source="link")
    campaign.start()

    with django_capture_on_commit_callbacks(execute=True):
        assert services.send_due("default") == 1

    stopped = campaign.messages.get(recipient="380501234567")
    assert (stopped.status, stopped.error, stopped.attempts) == (Status.CANCELLED, "opted out", 0)
    assert stopped.finished_at is not None and stopped.claimed_at is None
    assert sent_to() == ["380631234567"]
    # Signalled once, as it went: from queued straight to cancelled.
    assert [e for e in signalled if e[1] == stopped.pk] == [
        ("changed", stopped.pk, Status.QUEUED, Status.CANCELLED),
        ("finished", stopped.pk, Status.QUEUED, Status.CANCELLED),
    ]


def test_a_claim_tops_its_batch_up_past_the_numbers_it_cancels():
    campaign = Campaign.objects.create(name="Sale", text="Sale today")
    campaign.add_recipients([f"05012345{i:02d}" for i in range(6)])
    for i in range(3):
        optout.opt_out(f"05012345{i:02d}")
    campaign.start()

    batch = services.claim_batch("default", 3)

    assert sorted(m.recipient for m in batch) == [f"3805012345{i:02d}" for i in range(3, 6)]
    assert all(m.status == Status.SENDING for m in batch)
    assert campaign.messages.filter(status=Status.CANCELLED, error="opted out").count() == 3


def test_the_claim_costs_no_query_more_for_the_stop_list(django_assert_max_num_queries):
    optout.opt_out("0501234599", ALL)
    send_sms([f"05012345{i:02d}" for i in range(50)], "Hello")

    # As tests/pipeline/test_services.py's batch of 100: the look-up rides in the claim.
    with django_assert_max_num_queries(10):
        assert services.send_due("default") == 50


def test_the_preview_count_is_the_drafts_queued_numbers_now_on_the_list():
    campaign = Campaign.objects.create(name="Sale", text="Sale today")
    campaign.add_recipients(["0501234567", "0631234567", "0671234567"])
    optout.opt_out("0631234567")
    optout.opt_out("0671234567", ALL)

    assert optout.count_in_campaign(campaign) == 2


# --- single sends ---------------------------------------------------------------------------


def test_send_sms_stores_a_message_to_an_all_number_cancelled_and_raises_nothing(
    signalled, django_capture_on_commit_callbacks
):
    optout.opt_out("0501234567", ALL)
    optout.opt_out("0631234567", MARKETING)

    with django_capture_on_commit_callbacks(execute=True):
        stopped, _, _ = send_sms(["0501234567", "0631234567", "0671234567"], "Code 1")
    services.send_due("default")

    assert (stopped.status, stopped.error) == (Status.CANCELLED, "opted out")
    assert Message.objects.get(pk=stopped.pk).status == Status.CANCELLED
    assert sorted(sent_to()) == ["380631234567", "380671234567"]
    assert [e for e in signalled if e[1] == stopped.pk] == [
        ("changed", stopped.pk, Status.QUEUED, Status.CANCELLED),
        ("finished", stopped.pk, Status.QUEUED, Status.CANCELLED),
    ]


def test_a_marketing_send_skips_marketing_numbers_too():
    optout.opt_out("0631234567", MARKETING)

    stopped, _ = send_sms(["0631234567", "0671234567"], "Sale", marketing=True)
    [personal] = send_personalized([("0631234567", "Sale, Ann")], marketing=True)
    services.send_due("default")

    assert stopped.status == personal.status == Status.CANCELLED
    assert stopped.error == personal.error == "opted out"
    assert sent_to() == ["380671234567"]


def test_send_personalized_skips_all_numbers_without_being_asked():
    optout.opt_out("0501234567", ALL)

    [stopped] = send_personalized([("0501234567", "Your code: 1234")])

    assert (stopped.status, stopped.error) == (Status.CANCELLED, "opted out")


def test_marketing_must_be_true_or_false():
    with pytest.raises(InvalidMessage, match="marketing must be True or False, not 'yes'"):
        send_sms("0501234567", "Sale", marketing="yes")
    assert not Message.objects.exists()


def test_a_message_outside_campaigns_is_stopped_at_the_claim_only_by_scope_all():
    code, other = send_sms(["0501234567", "0631234567"], "Code 1")
    optout.opt_out("0501234567", ALL)
    optout.opt_out("0631234567", MARKETING)

    services.send_due("default")

    assert Message.objects.get(pk=code.pk).status == Status.CANCELLED
    assert Message.objects.get(pk=other.pk).status == Status.SENT
    assert sent_to() == ["380631234567"]


# --- retries and resends --------------------------------------------------------------------


def failed(campaign, number):
    campaign.add_recipients([number])
    campaign.start()
    Message.objects.filter(campaign=campaign).update(status=Status.FAILED)
    return campaign.messages.get()


def test_a_retry_of_a_number_opted_out_since_is_cancelled_never_sent():
    campaign = Campaign.objects.create(name="Sale", text="Sale today")
    original = failed(campaign, "0501234567")
    optout.opt_out("0501234567", MARKETING)

    assert campaign.retry_failed() == 1
    services.send_due("default")

    copy = Message.objects.get(retry_of=original)
    assert (copy.status, copy.error) == (Status.CANCELLED, "opted out")
    assert sent_to() == []


def test_a_resend_honours_the_stop_list_too():
    [original] = send_sms("0501234567", "Code 1")
    Message.objects.filter(pk=original.pk).update(status=Status.FAILED)
    optout.opt_out("0501234567", ALL)

    assert services.resend_messages(Message.objects.filter(pk=original.pk)) == 1
    services.send_due("default")

    copy = Message.objects.get(retry_of=original)
    assert (copy.status, copy.error) == (Status.CANCELLED, "opted out")
    assert sent_to() == []


# --- importing a CSV file -------------------------------------------------------------------


def csv_file(text, encoding="utf-8"):
    return io.BytesIO(text.encode(encoding))


def test_an_import_adds_numbers_widens_scopes_and_lists_each_refused_line_with_its_value():
    optout.opt_out("0501234567", MARKETING, source="link")
    content = (
        "Phone;Reason;Scope\n"
        "050 123 45 67;asked;all\n"  # there already: widened
        "063 123 45 67;;\n"
        "\n"
        "nope;x;\n"
        "+380631234567;again;\n"  # a repeat of line 3
        "0671234567;;sometimes\n"
        "0661234567;complained;\n"
    )

    result = optout.import_csv(csv_file(content), reason="import 2027")

    assert (result.added, result.already, result.repeated) == (2, 1, 1)
    assert [(r.line, r.value, r.reason) for r in result.refused] == [
        (5, "nope", "phone number 'nope' is not a phone number"),
        (7, "0671234567", "scope 'sometimes' is not one of all, marketing"),
    ]
    entries = {e.phone: (e.scope, e.source, e.reason) for e in OptOut.objects.all()}
    assert entries == {
        "380501234567": (ALL, "link", ""),
        "380631234567": (MARKETING, "import", "import 2027"),
        "380661234567": (MARKETING, "import", "complained"),
    }


def test_an_import_reads_windows_1251_and_a_bom_and_stores_in_chunks(monkeypatch):
    monkeypatch.setattr(optout, "LOOKUP_CHUNK", 2)
    rows = "".join(f"05012345{i:02d},причина {i}\n" for i in range(5))

    result = optout.import_csv(csv_file("phone,reason\n" + rows, "cp1251"), encoding="cp1251")
    bom = optout.import_csv(csv_file("\ufeffphone\n0671234567\n"), scope=ALL)

    assert (result.added, bom.added) == (5, 1)
    assert OptOut.objects.get(phone="380501234503").reason == "причина 3"
    assert OptOut.objects.get(phone="380671234567").scope == ALL


@pytest.mark.parametrize(
    ("content", "encoding", "error"),
    [
        (b"", "utf-8", "the file is empty"),
        (b"number\n0501234567\n", "utf-8", "has no 'phone' column"),
        ("phone\nномер\n".encode("cp1251"), "utf-8", r"is not utf-8 text \(byte 7\)"),
        (b'phone\n"0501234567\n', "utf-8", "line 2 is not valid CSV"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_whole(content, encoding, error):
    with pytest.raises(BadUpload, match=error):
        optout.import_csv(io.BytesIO(content), encoding=encoding)
    assert not OptOut.objects.exists()


def test_an_import_is_bounded_in_bytes_and_rows_and_stores_nothing_past_them(monkeypatch):
    monkeypatch.setattr(optout, "IMPORT_MAX_BYTES", 64)
    with pytest.raises(BadUpload, match="the file is over 0 MiB"):
        optout.import_csv(csv_file("phone\n" + "0501234567\n" * 6))

    monkeypatch.setattr(optout, "IMPORT_MAX_BYTES", 1024)
    monkeypatch.setattr(optout, "IMPORT_MAX_ROWS", 3)
    with pytest.raises(BadUpload, match="more than 3 rows"):
        optout.import_csv(csv_file("phone\n" + "".join(f"050123456{i}\n" for i in range(4))))

    assert not OptOut.objects.exists()
    assert optout.import_csv(csv_file("phone\n0501234561\n0501234562\n0501234563\n")).added == 3


def test_an_import_refuses_a_bad_scope_source_or_encoding_argument():
    with pytest.raises(InvalidMessage) as caught:
        optout.import_csv(csv_file("phone\n"), scope="some", source="x", encoding="latin-1")
    assert len(caught.value.problems) == 3
