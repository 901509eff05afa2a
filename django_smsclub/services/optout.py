"""The stop list: the one place its rules live.

A number on the list (:class:`~django_smsclub.models.OptOut`, normalised as messages store
their recipients) gets no campaign message when its scope is ``marketing``, and nothing at all
when it is ``all``. Every send path asks here:

- :func:`~django_smsclub.services.add_recipients` refuses such rows with the reason
  :data:`OPTED_OUT` (one look-up per chunk of rows, :func:`blocked`);
- a campaign message whose number was put on the list after it was added, and any message
  whose number is on it with scope ``all``, is cancelled with that reason when a worker claims
  it (:func:`claim_sendable`), so retries and resends, which go through the claim, honour it
  too; it is never sent;
- ``send_sms``/``send_personalized`` store a message to a number on the list with scope
  ``all`` (``marketing`` too with ``marketing=True``) and cancel it at once
  (:func:`cancel_blocked`); nothing is raised.

Outside campaigns a message does not record whether it was marketing: after it is queued,
only scope ``all`` stops it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import IO, Any

from django.db import connections, router, transaction
from django.db.models import BooleanField, OuterRef, Subquery
from django.db.models.expressions import RawSQL

from ..exceptions import BadUpload, InvalidMessage
from ..models import Campaign, Message, OptOut
from ..phones import normalize_or_problem, normalize_phone
from ..status import Status
from .rows import claim_topped_up
from .transitions import move_messages, notify

#: The reason a row is refused, and the error of a message cancelled, for a number on the list.
OPTED_OUT = "opted out"
#: The largest CSV file :func:`import_csv` reads, in bytes.
IMPORT_MAX_BYTES = 4 * 1024 * 1024
#: The most numbers one CSV file may hold (its header aside).
IMPORT_MAX_ROWS = 100_000
#: Encodings an imported file may be in: UTF-8 (a BOM is skipped) and what Excel writes in
#: Ukrainian and Russian Windows.
IMPORT_ENCODINGS = ("utf-8", "cp1251")
#: Numbers looked up in one query (fewer where the database takes fewer parameters).
LOOKUP_CHUNK = 5000

_SCOPES = frozenset(OptOut.Scope.values)
_SOURCES = frozenset(OptOut.Source.values)
_REASON_MAX_LENGTH = OptOut._meta.get_field("reason").max_length or 255
_DELIMITERS = ",;\t"


def blocking_scopes(*, marketing: bool) -> list[str]:
    """The scopes that stop a message: ``all`` always, ``marketing`` for a marketing one (a
    campaign's, or one sent with ``marketing=True``)."""
    return [OptOut.Scope.ALL, OptOut.Scope.MARKETING] if marketing else [OptOut.Scope.ALL]


def blocked(numbers: Iterable[str], *, marketing: bool) -> set[str]:
    """Which of ``numbers`` (normalised) the stop list keeps from a message of that kind: one
    query per :data:`LOOKUP_CHUNK` numbers."""
    wanted = list(dict.fromkeys(numbers))
    if not wanted:
        return set()
    db = router.db_for_read(OptOut)
    connection = connections[db]
    size = min(LOOKUP_CHUNK, connection.features.max_query_params or LOOKUP_CHUNK)
    scopes = blocking_scopes(marketing=marketing)
    on_list = OptOut.objects.using(db).filter(scope__in=scopes).order_by()
    found: set[str] = set()
    for start in range(0, len(wanted), size):
        chunk = wanted[start : start + size]
        if connection.vendor == "postgresql":
            # One array parameter, not 5,000: a quarter of the time of IN (...).
            column = connection.ops.quote_name(OptOut._meta.get_field("phone").column)
            # The column's name is the model's, quoted; the numbers are a parameter.
            any_of = RawSQL(f"{column} = ANY(%s)", [chunk], BooleanField())  # noqa: S611
            query = on_list.filter(any_of)
        else:
            query = on_list.filter(phone__in=chunk)
        found.update(query.values_list("phone", flat=True))
    return found


def in_use() -> bool:
    """Whether the stop list has any number (one query): a caller that checks many numbers
    skips its look-ups while it is empty."""
    return OptOut.objects.exists()


def opt_out(
    phone: object,
    scope: str = OptOut.Scope.MARKETING,
    *,
    reason: str = "",
    source: str = OptOut.Source.CODE,
) -> tuple[OptOut, bool]:
    """Put ``phone`` (any spelling) on the stop list; return (its entry, whether it is new).

    A number already there keeps its entry (source, reason, date); asking for scope ``all``
    widens a ``marketing`` one, and nothing ever narrows an ``all``, so a request made twice
    (a replayed unsubscribe link) changes nothing. Raises :class:`InvalidMessage` naming a
    bad number, scope or source.
    """
    problems = _choice_problems(scope, source)
    number, problem = normalize_or_problem(phone)
    if problem:
        problems.insert(0, problem)
    if problems:
        raise InvalidMessage(problems)
    reason = str(reason or "")[:_REASON_MAX_LENGTH]
    entry, created = OptOut.objects.get_or_create(
        phone=number, defaults={"scope": scope, "reason": reason, "source": source}
    )
    if not created and scope == OptOut.Scope.ALL and entry.scope != OptOut.Scope.ALL:
        OptOut.objects.filter(pk=entry.pk).update(scope=OptOut.Scope.ALL)
        entry.scope = OptOut.Scope.ALL
    return entry, created


def remove(phone: object) -> bool:
    """Take ``phone`` (any spelling) off the stop list; return whether it was on it."""
    deleted, _ = OptOut.objects.filter(phone=normalize_phone(phone)).delete()
    return bool(deleted)


@dataclass(frozen=True)
class RefusedLine:
    """A line of an imported file that put no number on the list, and why."""

    line: int
    #: The number as the file gives it, cut to 80 characters.
    value: str
    reason: str


@dataclass
class ImportResult:
    """What :func:`import_csv` did: numbers put on the list, numbers there before (their
    scope widened where the file asked for ``all``), repeats in the file, lines refused."""

    added: int = 0
    already: int = 0
    repeated: int = 0
    refused: list[RefusedLine] = field(default_factory=list)


def import_csv(
    file: IO[bytes],
    *,
    scope: str = OptOut.Scope.MARKETING,
    reason: str = "",
    source: str = OptOut.Source.IMPORT,
    encoding: str = "utf-8",
) -> ImportResult:
    """Put the numbers of a CSV file on the stop list.

    The first line names the columns: ``phone`` (any case), and optionally ``scope`` and
    ``reason``, which override ``scope`` and ``reason`` for their row. Comma, semicolon or
    tab separated, as the header is. A line with a bad number or scope is refused (listed
    with its value) and the others go in. A file over :data:`IMPORT_MAX_BYTES` or
    :data:`IMPORT_MAX_ROWS` rows, not in ``encoding``, or without a ``phone`` column is
    refused whole (:class:`BadUpload`) before anything is stored. A number is looked up and
    stored a chunk at a time (a query or three per :data:`LOOKUP_CHUNK` numbers).
    """
    problems = _choice_problems(scope, source)
    if encoding not in IMPORT_ENCODINGS:
        problems.append(f"encoding {encoding!r} is not one of {', '.join(IMPORT_ENCODINGS)}")
    if problems:
        raise InvalidMessage(problems)
    result = ImportResult()
    wanted: dict[str, tuple[str, str]] = {}
    for line, raw, row_scope, row_reason in _read_csv(file, encoding):
        number, problem = normalize_or_problem(raw)
        row_scope = row_scope or scope
        if not problem and row_scope not in _SCOPES:
            problem = f"scope {row_scope!r} is not one of {', '.join(sorted(_SCOPES))}"
        if problem:
            shown = raw if len(raw) <= 80 else raw[:77] + "..."
            result.refused.append(RefusedLine(line, shown, problem))
        elif number in wanted:
            result.repeated += 1
        else:
            wanted[number] = (row_scope, (row_reason or reason)[:_REASON_MAX_LENGTH])
    numbers = list(wanted)
    for start in range(0, len(numbers), LOOKUP_CHUNK):
        _store({n: wanted[n] for n in numbers[start : start + LOOKUP_CHUNK]}, source, result)
    return result


def claim_sendable(
    claim: Callable[[int], list[Message]], limit: int, *, now: datetime
) -> list[Message]:
    """Claim up to ``limit`` messages with ``claim`` (which claims up to n, marking them
    ``sending``, each read with ``optout_scope``: see :func:`with_scope`) and return those the
    stop list lets go; cancel the others (:func:`cancel_claimed`) and claim more in their
    place."""
    return claim_topped_up(claim, limit, partial(cancel_claimed, now=now))


def with_scope(messages: Any) -> Any:
    """``messages`` (a queryset) with ``optout_scope``: their number's scope on the stop list,
    or None; a subquery of the unique index, in the same statement."""
    on_list = OptOut.objects.filter(phone=OuterRef("recipient")).values("scope")[:1]
    return messages.annotate(optout_scope=Subquery(on_list))


def cancel_claimed(claimed: Sequence[Message], *, now: datetime) -> list[Message]:
    """Of messages just claimed (``sending`` in the database, not yet signalled), read with
    :func:`with_scope`, return those the stop list lets go. The others end ``cancelled`` with
    the error :data:`OPTED_OUT`, signalled once as ``queued`` -> ``cancelled`` (they were
    never sent); a campaign's message is marketing, any other stops only for scope ``all``."""
    stopped = [m for m in claimed if _stops(m)]
    if not stopped:
        return list(claimed)
    for message in stopped:
        message.status = Status.SENDING
    with transaction.atomic(using=router.db_for_write(Message)):
        moved = move_messages(
            stopped, Status.CANCELLED, error=OPTED_OUT, finished_at=now, claimed_at=None
        )
        notify(replace(t, old_status=Status.QUEUED) for t in moved)
    gone = {m.pk for m in stopped}
    return [m for m in claimed if m.pk not in gone]


def cancel_blocked(messages: Sequence[Message], *, marketing: bool, now: datetime) -> None:
    """Cancel, with the error :data:`OPTED_OUT`, the just-stored ``queued`` messages whose
    number the stop list keeps from them (one look-up); each is signalled once. Call it in
    the transaction that stored them."""
    stopped = blocked({m.recipient for m in messages}, marketing=marketing)
    if stopped:
        notify(
            move_messages(
                [m for m in messages if m.recipient in stopped],
                Status.CANCELLED,
                error=OPTED_OUT,
                finished_at=now,
            )
        )


def count_in_campaign(campaign: Campaign) -> int:
    """How many of ``campaign``'s queued messages go to a number on the stop list (one query):
    they will be cancelled when claimed."""
    return campaign.messages.filter(
        status=Status.QUEUED, recipient__in=OptOut.objects.values("phone")
    ).count()


def _stops(message: Message) -> bool:
    scope = getattr(message, "optout_scope", None)
    return scope is not None and scope in blocking_scopes(marketing=message.campaign_id is not None)


def _choice_problems(scope: object, source: object) -> list[str]:
    problems = []
    if scope not in _SCOPES:
        problems.append(f"scope {scope!r:.40} is not one of {', '.join(sorted(_SCOPES))}")
    if source not in _SOURCES:
        problems.append(f"source {source!r:.40} is not one of {', '.join(sorted(_SOURCES))}")
    return problems


def _read_csv(file: IO[bytes], encoding: str) -> Iterable[tuple[int, str, str, str]]:
    """(line, phone, scope, reason) for each row of a bounded CSV file; see :func:`import_csv`."""
    data = file.read(IMPORT_MAX_BYTES + 1)
    if len(data) > IMPORT_MAX_BYTES:
        raise BadUpload(
            f"the file is over {IMPORT_MAX_BYTES // (1024 * 1024)} MiB; split it into smaller files"
        )
    try:
        text = data.decode("utf-8-sig" if encoding == "utf-8" else encoding)
    except UnicodeDecodeError as exc:
        other = next(e for e in IMPORT_ENCODINGS if e != encoding)
        raise BadUpload(
            f"the file is not {encoding} text (byte {exc.start + 1}); save it as CSV "
            f"{encoding.upper()}, or choose {other}"
        ) from None
    lines = io.StringIO(text, newline="")
    header_line = lines.readline()
    if not header_line.strip():
        raise BadUpload("the file is empty; its first line must name the columns, one 'phone'")
    delimiter = max(_DELIMITERS, key=header_line.count)
    try:
        header = [
            name.strip().lower() for name in next(csv.reader([header_line], delimiter=delimiter))
        ]
    except csv.Error as exc:
        raise BadUpload(f"line 1 (the header) is not valid CSV ({exc})") from None
    if "phone" not in header:
        raise BadUpload(
            f"the header {header_line.strip()[:200]!r} has no 'phone' column; the first line "
            "must name the columns: phone, and optionally scope and reason"
        )
    columns = [
        header.index(name) if name in header else None for name in ("phone", "scope", "reason")
    ]
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    rows: list[tuple[int, str, str, str]] = []
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) == IMPORT_MAX_ROWS:
                raise BadUpload(
                    f"the file has more than {IMPORT_MAX_ROWS} rows; split it into smaller files"
                )
            phone, scope, reason = (
                cells[i].strip() if i is not None and i < len(cells) else "" for i in columns
            )
            rows.append((reader.line_num + 1, phone, scope, reason))
    except csv.Error as exc:
        raise BadUpload(f"line {reader.line_num + 1} is not valid CSV ({exc})") from None
    return rows


def _store(wanted: dict[str, tuple[str, str]], source: str, result: ImportResult) -> None:
    """Put one chunk of numbers on the list: the new ones in one INSERT, the ones there with
    scope ``marketing`` that should have ``all`` widened in one UPDATE."""
    existing = dict(OptOut.objects.filter(phone__in=list(wanted)).values_list("phone", "scope"))
    result.already += len(existing)
    widen = [
        n
        for n, scope in existing.items()
        if wanted[n][0] == OptOut.Scope.ALL and scope != OptOut.Scope.ALL
    ]
    if widen:
        OptOut.objects.filter(phone__in=widen).update(scope=OptOut.Scope.ALL)
    new = [
        OptOut(phone=n, scope=scope, reason=reason, source=source)
        for n, (scope, reason) in wanted.items()
        if n not in existing
    ]
    # A number put on the list meanwhile (an unsubscribe link) keeps its entry.
    OptOut.objects.bulk_create(new, ignore_conflicts=True)
    result.added += len(new)
