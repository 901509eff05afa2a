"""A campaign's results as CSV (django_smsclub.exports, shared by the admin and the API): every
message's columns, formula-like cells escaped, streamed from a cursor a chunk at a time."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext

from django_smsclub import exports
from django_smsclub.models import Campaign, Message
from django_smsclub.operators import Operator
from django_smsclub.status import Status

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pipeline_settings")]

SENT = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)


def parsed(response):
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(body)))


def add(campaign, recipient, **fields):
    fields = {"sender": "Shop", "text": "Hi", "gateway": "default", **fields}
    return Message.objects.create(campaign=campaign, recipient=recipient, **fields)


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_a_spreadsheet_would_run_gets_a_quote_in_front(start):
    assert exports.escape_cell(f"{start}SUM(A1:A9)") == f"'{start}SUM(A1:A9)"


@pytest.mark.parametrize("text", ["", "plain", " =1+1", "1+1", "'quoted", "a=b", '{"x": 1}'])
def test_other_cells_stay_as_they_are(text):
    assert exports.escape_cell(text) == text


def test_every_message_with_its_columns_in_order_of_storage(settings):
    settings.TIME_ZONE = "Europe/Kyiv"
    campaign = Campaign.objects.create(name="Sale", text="Hi")
    first = add(
        campaign,
        "380671234567",
        operator=Operator.KYIVSTAR,
        status=Status.DELIVERED,
        sent_at=SENT,
        finished_at=SENT + timedelta(seconds=12),
        parts=2,
        metadata={"order": 7, "name": "Олена"},
    )
    second = add(campaign, "380501234567", operator="", status=Status.QUEUED)
    add(Campaign.objects.create(name="Other", text="Hi"), "380631234567")

    response = exports.csv_response(campaign)

    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="campaign-{campaign.pk}-results.csv"'
    )
    assert parsed(response) == [
        list(exports.HEADER),
        [
            str(first.pk),
            "380671234567",
            "kyivstar",
            "delivered",
            "",
            "2027-03-01T12:00:00+02:00",
            "2027-03-01T12:00:12+02:00",
            "2",
            '{"name": "Олена", "order": 7}',
        ],
        # A message stored before operators were recorded: other.
        [str(second.pk), "380501234567", "other", "queued", "", "", "", "1", "{}"],
    ]


def test_formula_like_errors_and_metadata_are_escaped():
    campaign = Campaign.objects.create(name="Sale", text="Hi")
    add(campaign, "380671234567", status=Status.FAILED, error='=HYPERLINK("http://x","y")')
    add(campaign, "380671234568", status=Status.FAILED, error="@SUM(1+1)*cmd|' /C calc'!A0")
    add(campaign, "380671234569", status=Status.FAILED, error="\t=1", metadata=-1)
    add(campaign, "380671234560", status=Status.FAILED, error="-2+3", metadata="+1 coupon")

    rows = parsed(exports.csv_response(campaign))[1:]

    assert [row[4] for row in rows] == [
        '\'=HYPERLINK("http://x","y")',
        "'@SUM(1+1)*cmd|' /C calc'!A0",
        "'\t=1",
        "'-2+3",
    ]
    assert [row[8] for row in rows] == ["{}", "{}", "'-1", '"+1 coupon"']


def test_the_admins_download_starts_with_a_byte_order_mark_for_excel():
    campaign = Campaign.objects.create(name="Sale", text="Hi")
    add(campaign, "380671234567")
    body = b"".join(exports.csv_response(campaign, byte_order_mark=True).streaming_content)
    assert body.startswith("\ufeffid,number,".encode())


def test_rows_are_read_and_sent_a_chunk_at_a_time_through_a_cursor(monkeypatch):
    monkeypatch.setattr(exports, "CHUNK_ROWS", 3)
    campaign = Campaign.objects.create(name="Sale", text="Hi")
    Message.objects.bulk_create(
        Message(campaign=campaign, recipient=f"38067{i:07d}", sender="S", text="Hi", gateway="g")
        for i in range(10)
    )
    cursors = []
    chunked_cursor = connection.chunked_cursor

    def spy():
        cursor = chunked_cursor()
        cursors.append(cursor)
        return cursor

    monkeypatch.setattr(connection, "chunked_cursor", spy)

    with CaptureQueriesContext(connection) as queries:
        response = exports.csv_response(campaign)
    # Nothing is read until the body is: the view returns at once.
    assert queries.captured_queries == []

    pieces = list(response.streaming_content)
    # The header with the first three rows, then three by three: never all at once.
    assert [piece.count(b"\r\n") for piece in pieces] == [4, 3, 3, 1]
    assert len(cursors) == 1
    if connection.vendor == "postgresql":
        # A server-side (named) cursor: PostgreSQL hands the rows over a chunk at a time.
        assert cursors[0].cursor.name
