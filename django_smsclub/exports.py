"""A campaign's results as CSV: the one place its columns, cell rules and streaming live, for
the admin's download and the API's alike.

One row per message, in the order they were stored: ``id``, ``number``, ``operator``,
``status``, ``error``, ``sent_at``, ``finished_at``, ``parts``, ``metadata``. Times are ISO 8601
in the current time zone with its offset (empty when not reached); ``metadata`` is JSON with its
keys sorted; an operator not recorded (a message stored before operators were) is ``other``.

A cell that a spreadsheet would run as a formula (it starts with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return) gets a ``'`` in front: an error text, a metadata value or a number
from outside cannot run in the spreadsheet of whoever opens the file.

The rows are read with ``QuerySet.iterator()`` (a server-side cursor on PostgreSQL) and sent
as they are written, :data:`CHUNK_ROWS` at a time: memory stays flat whatever the campaign's
size (``bench/export.py`` measures it on 100,000 messages).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, tzinfo
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header

from .models import Campaign
from .operators import Operator

#: The Message fields of a row, in column order, and the header naming them.
FIELDS: tuple[str, ...] = (
    "pk",
    "recipient",
    "operator",
    "status",
    "error",
    "sent_at",
    "finished_at",
    "parts",
    "metadata",
)
HEADER: tuple[str, ...] = (
    "id",
    "number",
    "operator",
    "status",
    "error",
    "sent_at",
    "finished_at",
    "parts",
    "metadata",
)
#: What a cell a spreadsheet would take for a formula starts with.
FORMULA_STARTS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
#: Rows read from the database, and written to the response, at a time.
CHUNK_ROWS = 2000
CONTENT_TYPE = "text/csv; charset=utf-8"
# Keys sorted: the same text on every database (PostgreSQL's jsonb keeps its own order).
_json = DjangoJSONEncoder(ensure_ascii=False, sort_keys=True).encode
#: Put first by the admin's download: Excel reads a UTF-8 file as such only after it.
BYTE_ORDER_MARK = "\ufeff"


def escape_cell(text: str) -> str:
    """``text`` with a ``'`` in front if a spreadsheet would run it as a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def cells(row: Sequence[Any], zone: tzinfo | None = None) -> list[str]:
    """The CSV cells of one row of :data:`FIELDS` values, escaped; times in ``zone`` (the
    current time zone if None)."""
    zone = zone or timezone.get_current_timezone()
    pk, recipient, operator, status, error, sent_at, finished_at, parts, metadata = row
    values = [
        str(pk),
        recipient,
        operator or Operator.OTHER.value,
        status,
        error,
        _moment(sent_at, zone),
        _moment(finished_at, zone),
        str(parts),
        _json(metadata),
    ]
    return [escape_cell(value) for value in values]


def csv_lines(rows: Iterable[Sequence[Any]], *, chunk_rows: int | None = None) -> Iterator[str]:
    """The CSV text of ``rows`` (each the values of :data:`FIELDS`), the header first, in
    pieces of up to ``chunk_rows`` (:data:`CHUNK_ROWS`) rows."""
    chunk_rows = chunk_rows or CHUNK_ROWS
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    zone = timezone.get_current_timezone()
    written = 0
    for row in rows:
        writer.writerow(cells(row, zone))
        written += 1
        if written == chunk_rows:
            yield _drained(buffer)
            written = 0
    yield _drained(buffer)


def campaign_rows(campaign: Campaign, *, chunk_rows: int | None = None) -> Iterator[Any]:
    """The values of :data:`FIELDS` of each message of ``campaign``, by ID, read a chunk at a
    time (a server-side cursor on PostgreSQL)."""
    messages = campaign.messages.order_by("pk").values_list(*FIELDS)
    return messages.iterator(chunk_size=chunk_rows or CHUNK_ROWS)


def csv_response(campaign: Campaign, *, byte_order_mark: bool = False) -> StreamingHttpResponse:
    """A streamed download of ``campaign``'s results (``byte_order_mark``: for Excel)."""
    pieces = csv_lines(campaign_rows(campaign))
    if byte_order_mark:
        pieces = _after(BYTE_ORDER_MARK, pieces)
    response = StreamingHttpResponse(pieces, content_type=CONTENT_TYPE)
    response["Content-Disposition"] = (
        content_disposition_header(True, filename(campaign)) or "attachment"
    )
    # A list of phone numbers: no proxy or browser cache keeps it.
    response["Cache-Control"] = "private, no-store"
    return response


def filename(campaign: Campaign) -> str:
    return f"campaign-{campaign.pk}-results.csv"


def _moment(value: datetime | None, zone: tzinfo) -> str:
    if value is None:
        return ""
    if value.utcoffset() is not None:
        value = value.astimezone(zone)
    return value.isoformat(timespec="seconds")


def _drained(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _after(first: str, rest: Iterable[str]) -> Iterator[str]:
    yield first
    yield from rest
