"""The fast paths of Campaign.add_recipients: COPY, one pass for repeats, cached text checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_smsclub import conf
from django_smsclub.exceptions import InvalidMessage
from django_smsclub.models import Campaign, Message
from django_smsclub.operators import operator_of
from django_smsclub.services import campaigns, templates
from django_smsclub.services import rows as row_storage
from django_smsclub.status import Status

pytestmark = [pytest.mark.usefixtures("pipeline_settings"), pytest.mark.django_db]

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="COPY is PostgreSQL's (SQLite uses bulk_create)"
)

# Texts that COPY's text format must escape, and others a careless writer would mangle.
AWKWARD_TEXTS = [
    "plain",
    "tab\there",
    "new\nline and\r\ncarriage",
    "back\\slash \\N \\t \\\\",
    "\\N",
    "quotes ' \" and commas, ; |",
    "Привіт, Олено! Ваше замовлення №5 готове.",
    "emoji 😀 and 中文",
    " leading and trailing ",
    "x" * 1071,
]


def columns_of(pks):
    """Every column of the given messages but the ID, as the database holds them (as text)."""
    table = Message._meta.db_table
    names = [f.column for f in Message._meta.concrete_fields if not f.primary_key]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT {} FROM {} WHERE id = ANY(%s) ORDER BY id".format(  # noqa: S608
                ", ".join(f"{connection.ops.quote_name(n)}::text" for n in names), table
            ),
            [list(pks)],
        )
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def new_pks(before):
    return list(Message.objects.filter(pk__gt=before).order_by("pk").values_list("pk", flat=True))


def last_pk():
    return Message.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


@postgresql_only
@pytest.mark.parametrize("with_user", [False, True])
def test_copy_stores_exactly_what_bulk_create_stores(with_user):
    user = get_user_model().objects.create_user("olena") if with_user else None
    campaign = Campaign.objects.create(name="c", text="{t}", sender="Shop", created_by=user)
    common = {
        "campaign_id": campaign.pk,
        "sender": "Shop",
        "gateway": "default",
        "created_by_id": campaign.created_by_id,
        "created_at": datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC),
    }
    fields = ("recipient", "text", "parts")
    rows = [(f"38050{i:07d}", text, i % 7 + 1) for i, text in enumerate(AWKWARD_TEXTS)]

    before = last_pk()
    # insert_messages adds each recipient's operator (operator_of) to what it is given.
    Message.objects.bulk_create(
        [
            Message(**common, **dict(zip(fields, row, strict=True)), operator=operator_of(row[0]))
            for row in rows
        ]
    )
    middle = last_pk()
    row_storage.insert_messages(fields, rows, common)

    by_bulk_create = columns_of(new_pks(before)[: len(rows)])
    by_copy = columns_of(new_pks(middle))
    assert len(by_copy) == len(rows)
    assert by_copy == by_bulk_create
    # And as Django reads them back.
    copied = list(Message.objects.filter(pk__gt=middle).order_by("pk"))
    assert [(m.recipient, m.text, m.parts) for m in copied] == rows
    first = copied[0]
    assert (first.status, first.error, first.attempts, first.metadata) == (
        Status.QUEUED,
        "",
        0,
        {},
    )
    assert first.next_attempt_at is None and first.retry_of_id is None
    assert first.created_at == common["created_at"]
    assert first.idempotency_key == ""


@postgresql_only
def test_copy_in_a_different_time_zone_stores_the_same_instant(settings):
    settings.TIME_ZONE = "Europe/Kyiv"
    campaign = Campaign.objects.create(name="c", text="Hi", sender="Shop")
    moment = timezone.now().astimezone(timezone.get_fixed_timezone(180))
    row_storage.insert_messages(
        ("recipient", "text", "parts"),
        [("380501234567", "Hi", 1)],
        {"campaign_id": campaign.pk, "sender": "S", "gateway": "g", "created_at": moment},
    )
    assert Message.objects.get().created_at == moment


@postgresql_only
def test_copy_is_logged_as_one_query():
    campaign = Campaign.objects.create(name="c", text="Hi", sender="Shop")
    with CaptureQueriesContext(connection) as queries:
        row_storage.insert_messages(
            ("recipient", "text", "parts"),
            [(f"38050{i:07d}", "Hi", 1) for i in range(50)],
            {"campaign_id": campaign.pk, "sender": "S", "gateway": "g"},
        )
    [query] = queries.captured_queries
    assert query["sql"].startswith("COPY ") and "50 rows" in query["sql"]


def test_the_plan_writes_every_column_but_the_id():
    plan = row_storage.insert_plan(
        ("recipient", "text", "parts"),
        {"campaign_id": 1, "sender": "S", "gateway": "g"},
        connection,
    )
    expected = [f.column for f in Message._meta.concrete_fields if not f.primary_key]
    assert [c.name for c in plan] == expected


@pytest.mark.parametrize("left_out", ["recipient", "text", "sender", "gateway"])
def test_a_field_that_must_be_filled_in_is_not_left_empty(left_out):
    given = {"recipient": "380501234567", "text": "Hi", "sender": "S", "gateway": "g"}
    del given[left_out]
    fields = tuple(given)
    with pytest.raises(ImproperlyConfigured, match=f"Message.{left_out} has no default"):
        row_storage.insert_messages(fields, [tuple(given.values())], {})
    assert not Message.objects.exists()


def test_an_unknown_field_is_refused():
    with pytest.raises(ImproperlyConfigured, match="no fields"):
        row_storage.insert_messages(
            ("recipient", "text", "colour"),
            [("380501234567", "Hi", "red")],
            {"sender": "S", "gateway": "g"},
        )


def test_insert_messages_on_any_database():
    campaign = Campaign.objects.create(name="c", text="Hi", sender="Shop")
    rows = [(f"38050{i:07d}", text, 1) for i, text in enumerate(AWKWARD_TEXTS)]
    row_storage.insert_messages(
        ("recipient", "text", "parts"),
        rows,
        {"campaign_id": campaign.pk, "sender": "S", "gateway": "g"},
    )
    stored = campaign.messages.order_by("pk")
    assert [(m.recipient, m.text, m.parts) for m in stored] == rows
    assert {(m.status, m.error, m.attempts, m.idempotency_key) for m in stored} == {
        (Status.QUEUED, "", 0, "")
    }
    assert all(m.metadata == {} and m.next_attempt_at is None for m in stored)


# --- repeats --------------------------------------------------------------------------------


def test_repeats_across_chunks_and_against_earlier_adds_are_skipped_and_counted():
    campaign = Campaign.objects.create(name="c", text="Hi {name}", sender="Shop")
    first = campaign.add_recipients([("0501234567", {"name": "Ann"})])
    assert (first.added, first.duplicates) == (1, 0)

    rows = [
        ("0671234567", {"name": "Bob"}),
        ("+380 67 123 45 67", {"name": "Bob again"}),  # same chunk
        ("0631234567", {"name": "Cy"}),
        ("380501234567", {"name": "Ann again"}),  # added by the first call
        ("0661234567", {"name": "Di"}),
        ("063-123-45-67", {"name": "Cy again"}),  # an earlier chunk of this call
        ("0991234567", {"name": "Ed"}),
    ]
    result = campaign.add_recipients(rows, chunk_size=2)

    assert (result.added, result.duplicates, result.refused) == (4, 3, [])
    texts = dict(campaign.messages.values_list("recipient", "text"))
    assert texts == {
        "380501234567": "Hi Ann",
        "380671234567": "Hi Bob",
        "380631234567": "Hi Cy",
        "380661234567": "Hi Di",
        "380991234567": "Hi Ed",
    }


def test_repeats_leave_earlier_messages_alone_even_when_those_repeat():
    campaign = Campaign.objects.create(name="c", text="Hi", sender="Shop")
    campaign.add_recipients(["0501234567"])
    # A campaign can hold a number twice (a retry is a new message to the same number).
    original = campaign.messages.get()
    Message.objects.create(
        campaign=campaign, recipient=original.recipient, sender="Shop", text="Hi", gateway="x"
    )
    before = set(campaign.messages.values_list("pk", flat=True))

    result = campaign.add_recipients(["0501234567", "0671234567", "0671234567"], chunk_size=1)

    assert (result.added, result.duplicates) == (1, 2)
    assert before < set(campaign.messages.values_list("pk", flat=True))
    assert campaign.messages.filter(recipient="380501234567").count() == 2
    assert campaign.messages.filter(recipient="380671234567").count() == 1


def test_other_campaigns_numbers_are_not_repeats():
    other = Campaign.objects.create(name="other", text="Hi", sender="Shop")
    other.add_recipients(["0501234567"])
    campaign = Campaign.objects.create(name="c", text="Hi", sender="Shop")

    result = campaign.add_recipients(["0501234567"])

    assert (result.added, result.duplicates) == (1, 0)
    assert Message.objects.count() == 2


def test_a_bad_row_after_stored_chunks_stores_nothing():
    campaign = Campaign.objects.create(name="c", text="Hi", sender="Shop")
    rows = [f"05012345{i:02d}" for i in range(7)] + ["bad"] + ["0671234567"]

    with pytest.raises(InvalidMessage) as caught:
        campaign.add_recipients(rows, chunk_size=2)

    assert caught.value.problems[0].startswith("row 8: ")
    assert not Message.objects.exists()


def test_queries_do_not_grow_with_the_chunks():
    campaign = Campaign.objects.create(name="c", text="Hi {name}", sender="Shop")
    rows = [(f"05012{i:05d}", {"name": f"N{i}"}) for i in range(60)]
    with CaptureQueriesContext(connection) as queries:
        result = campaign.add_recipients(rows, chunk_size=20)
    assert result.added == 60
    inserts = [
        q["sql"] for q in queries.captured_queries if q["sql"].startswith(("COPY", "INSERT"))
    ]
    selects = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    if connection.vendor == "postgresql":
        assert len(inserts) == 3
    # The campaign's lock, the last ID, and nothing per chunk.
    assert len(selects) <= 3, selects


def test_rows_may_come_from_the_database_while_adding():
    source = Campaign.objects.create(name="source", text="Hi", sender="Shop")
    source.add_recipients([f"05012345{i:02d}" for i in range(7)])
    campaign = Campaign.objects.create(name="c", text="Hi", sender="Shop")

    # A server-side cursor on PostgreSQL: it reads between the chunks stored.
    rows = (m.recipient for m in source.messages.order_by("pk").iterator(chunk_size=2))
    result = campaign.add_recipients(rows, chunk_size=3)

    assert result.added == 7
    assert set(campaign.messages.values_list("recipient", flat=True)) == set(
        source.messages.values_list("recipient", flat=True)
    )


def test_an_error_while_storing_a_chunk_stores_nothing(monkeypatch):
    campaign = Campaign.objects.create(name="c", text="Hi {name}", sender="Shop")
    real = templates.CampaignTemplate.message

    def message(self, row):
        if row[0] == "0501234503":
            raise RuntimeError("boom")
        return real(self, row)

    monkeypatch.setattr(templates.CampaignTemplate, "message", message)
    rows = [(f"05012345{i:02d}", {"name": "N"}) for i in range(6)]

    with pytest.raises(RuntimeError, match="boom"):
        campaign.add_recipients(rows, chunk_size=2)

    assert not Message.objects.exists()
    assert campaign.add_recipients(rows[:3], chunk_size=2).added == 3


# --- texts and numbers ------------------------------------------------------------------------


def test_texts_are_checked_per_rendered_text_with_a_bounded_memory(monkeypatch):
    # Room for "Hi" and one 470-character text (about 1,065 bytes), not for a third text.
    monkeypatch.setattr(templates, "CHECKED_TEXTS_MAX_BYTES", 1100)
    checked = []
    real = templates.text_problem_for
    monkeypatch.setattr(
        templates,
        "text_problem_for",
        lambda body, gateway: (checked.append(body), real(body, gateway))[1],
    )
    campaign = Campaign.objects.create(name="c", text="{greeting}", sender="Shop")
    long = "д" * 470  # one character over the limit of a Unicode text
    rows = [
        ("0501234567", {"greeting": "Hi"}),
        ("0501234568", {"greeting": "Hi"}),
        ("0501234569", {"greeting": long}),
        ("0501234570", {"greeting": "Привіт, це довгий текст " * 4}),
        ("0501234571", {"greeting": "Bye"}),
        ("0501234572", {"greeting": long}),
        ("0501234573", {"greeting": "Hi"}),
    ]

    result = campaign.add_recipients(rows, skip_invalid=True)

    assert checked == ["Hi", long, "Привіт, це довгий текст " * 4, "Bye", long, "Hi"]
    assert [r.row for r in result.refused] == [3, 6]
    assert result.refused[0].reason.startswith("380501234569: text ")
    assert "469" in result.refused[0].reason
    parts = dict(campaign.messages.values_list("recipient", "parts"))
    assert parts == {
        "380501234567": 1,
        "380501234568": 1,
        "380501234570": 2,
        "380501234571": 1,
        "380501234573": 1,
    }


def test_a_text_without_placeholders_is_not_checked_per_row(monkeypatch):
    monkeypatch.setattr(templates, "text_problem_for", lambda *args: pytest.fail("checked again"))
    monkeypatch.setattr(campaigns, "campaign_problems", lambda campaign: [])
    campaign = Campaign.objects.create(name="c", text="Sale " * 40, sender="Shop")

    result = campaign.add_recipients(["0501234567", "0671234567"])

    assert result.added == 2
    assert set(campaign.messages.values_list("parts", flat=True)) == {2}


def test_the_region_is_read_once_per_call(settings, monkeypatch):
    settings.SMSCLUB = {**settings.SMSCLUB, "DEFAULT_REGION": "PL"}
    reads = []
    real = conf.default_region
    monkeypatch.setattr(conf, "default_region", lambda: (reads.append(1), real())[1])
    campaign = Campaign.objects.create(name="c", text="Hi", sender="Shop")

    result = campaign.add_recipients(
        ["501234567", "+380501234567", "0501234567"], skip_invalid=True
    )

    assert set(campaign.messages.values_list("recipient", flat=True)) == {
        "48501234567",
        "380501234567",
    }
    assert [r.row for r in result.refused] == [3]
    assert len(reads) == 1


def test_every_message_of_one_call_has_one_creation_time():
    campaign = Campaign.objects.create(name="c", text="Hi", sender="Shop")
    started = timezone.now()
    campaign.add_recipients([f"05012345{i:02d}" for i in range(5)], chunk_size=2)
    times = set(campaign.messages.values_list("created_at", flat=True))
    assert len(times) == 1
    assert started <= times.pop() <= started + timedelta(seconds=60)
