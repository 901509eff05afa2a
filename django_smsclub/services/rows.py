"""Row-level database work the services share: claiming rows for one worker, locking rows,
and storing many new messages fast (``COPY`` on PostgreSQL).

Nothing here knows what a status means; the callers say which rows and which changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from itertools import chain
from typing import Any

from django.db import connections, router, transaction
from django.db.models import CharField, IntegerField, QuerySet, TextField
from django.db.models.fields import NOT_PROVIDED

from ..exceptions import ConfigurationError
from ..models import Campaign, Message
from ..operators import operator_of

# How often a claim that lost rows to another worker is tried again before giving up.
_CLAIM_ATTEMPTS = 5


def claim_rows(due: QuerySet, order: Sequence[str], limit: int, **changes: Any) -> list[Any]:
    """Take up to ``limit`` rows of ``due`` for this process alone and apply ``changes``.

    With ``SKIP LOCKED`` (PostgreSQL, Oracle, MySQL 8) concurrent claimers lock disjoint rows.
    Elsewhere (SQLite) the rows are read, then changed by an UPDATE that repeats the ``due``
    conditions: when it changes fewer rows than were read, another claimer took some, and the
    claim is rolled back and tried again.
    """
    db = router.db_for_write(due.model)
    due = due.using(db)
    manager = due.model._default_manager.using(db)
    if connections[db].features.has_select_for_update_skip_locked:
        with transaction.atomic(using=db):
            rows = list(due.select_for_update(skip_locked=True).order_by(*order)[:limit])
            if rows:
                manager.filter(pk__in=[r.pk for r in rows]).update(**changes)
        return rows
    for _ in range(_CLAIM_ATTEMPTS):
        rows = list(due.order_by(*order)[:limit])
        if not rows:
            return []
        try:
            with transaction.atomic(using=db):
                if due.filter(pk__in=[r.pk for r in rows]).update(**changes) != len(rows):
                    raise _LostRace
        except _LostRace:
            continue
        return rows
    return []


def claim_topped_up(
    claim: Callable[[int], list[Any]], limit: int, keep: Callable[[list[Any]], list[Any]]
) -> list[Any]:
    """Claim up to ``limit`` rows with ``claim`` (which claims up to n), keep those ``keep``
    returns (it deals with the others itself), and claim again in place of the others, until
    the batch is full or nothing more is due. Each round takes rows out of the due set, so the
    rounds end."""
    batch: list[Any] = []
    while len(batch) < limit:
        wanted = limit - len(batch)
        claimed = claim(wanted)
        kept = keep(claimed)
        batch.extend(kept)
        if len(kept) == len(claimed) or len(claimed) < wanted:
            break
    return batch


def with_row_locks(queryset: QuerySet, *, skip_locked: bool = False) -> QuerySet:
    """``queryset`` with row locks where the database has them (SQLite locks the whole file)."""
    features = connections[queryset.db].features
    if not features.has_select_for_update:
        return queryset
    return queryset.select_for_update(
        skip_locked=skip_locked and features.has_select_for_update_skip_locked
    )


class _LostRace(Exception):
    """Another worker took some of the rows this claim was after."""


def insert_messages(
    fields: Sequence[str], rows: Iterable[Sequence[Any]], common: Mapping[str, Any]
) -> None:
    """Store one new message per row: the row's values of ``fields``, ``common`` for the rest.

    Fields in neither get their defaults, as ``Message()`` would. On PostgreSQL the rows go in
    one ``COPY`` holding what ``bulk_create`` would write (each field's ``get_db_prep_save`` of
    its value), without a model instance per row or an INSERT to compile; elsewhere through
    ``bulk_create``. A field left out that has no default and cannot be empty is an error.

    ``rows`` is consumed while the ``COPY`` is open (it must not use the database): making a
    row overlaps with the database storing the ones before.

    Each message's ``operator`` is its recipient's network (:func:`operator_of`) unless
    ``fields`` or ``common`` give it.
    """
    using = router.db_for_write(Message)
    connection = connections[using]
    if "recipient" in fields and "operator" not in fields and "operator" not in common:
        fields, rows = _with_operators(fields, rows)
    columns = insert_plan(fields, common, connection)
    if not _copies(connection):
        messages = [Message(**common, **dict(zip(fields, row, strict=True))) for row in rows]
        if messages:
            Message.objects.using(using).bulk_create(messages)
        return
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return
    from psycopg.adapt import PyFormat, Transformer

    qn = connection.ops.quote_name
    sql = "COPY {} ({}) FROM STDIN".format(
        qn(Message._meta.db_table), ", ".join(qn(c.name) for c in columns)
    )
    started, count = time.monotonic(), 0
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        # The values common to every row as the text COPY gets for them, dumped once (a Jsonb
        # or a datetime would be dumped again for each row).
        transformer = Transformer.from_context(cursor.cursor)
        encoding = cursor.cursor.connection.info.encoding
        line = [
            None if c.value is None else _dumped(transformer, c.value, PyFormat.TEXT, encoding)
            for c in columns
        ]
        own = [(position, c.index, c.prepare) for position, c in enumerate(columns) if c.prepare]
        write = copy.write_row
        for row in chain((first,), rows):
            for position, index, prepare in own:
                line[position] = prepare(row[index])
            write(line)
            count += 1
    if connection.queries_logged:
        # COPY goes past Django's cursor wrapper: log it as that would (for debugging, counts).
        connection.queries_log.append(
            {"sql": f"{sql} -- {count} rows", "time": f"{time.monotonic() - started:.3f}"}
        )


def _with_operators(
    fields: Sequence[str], rows: Iterable[Sequence[Any]]
) -> tuple[Sequence[str], Iterator[Sequence[Any]]]:
    """``fields`` and ``rows`` with the recipient's operator added to each row, lazily."""
    recipient = fields.index("recipient")
    return (*fields, "operator"), ((*row, operator_of(row[recipient])) for row in rows)


def drop_repeats(campaign: Campaign, before: int) -> int:
    """Delete the messages of ``campaign`` with IDs above ``before`` whose number it has in a
    message with a smaller ID; return how many. The first of each number stays."""
    connection = connections[router.db_for_write(Message)]
    qn = connection.ops.quote_name
    table, pk = qn(Message._meta.db_table), qn(Message._meta.pk.column)
    recipient = qn(Message._meta.get_field("recipient").column)
    campaign_id = qn(Message._meta.get_field("campaign").column)
    # One pass over the campaign's messages, the same plan whatever the statistics say (a
    # self-join could be planned as a nested loop over a campaign that has just grown).
    # Identifiers from the model, quoted; the values are parameters.
    sql = (
        f"DELETE FROM {table} WHERE {pk} IN (SELECT {pk} FROM ("  # noqa: S608
        f"SELECT {pk}, ROW_NUMBER() OVER (PARTITION BY {recipient} ORDER BY {pk}) AS n "
        f"FROM {table} WHERE {campaign_id} = %s) ranked WHERE n > 1 AND {pk} > %s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [campaign.pk, before])
        return cursor.rowcount


def _dumped(transformer: Any, value: Any, format: Any, encoding: str) -> str | None:
    """``value`` as the text ``COPY`` takes for it, by psycopg's own dumper (None: NULL)."""
    dumped = transformer.get_dumper(value, format).dump(value)
    return None if dumped is None else bytes(dumped).decode(encoding)


def _str_or(prepare: Callable[[Any], Any], value: Any) -> Any:
    return value if type(value) is str else prepare(value)


def _copies(connection: Any) -> bool:
    """Whether ``connection`` is PostgreSQL through psycopg 3 (which has ``COPY`` from Python)."""
    if connection.vendor != "postgresql":
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return is_psycopg3


@dataclass(frozen=True)
class _Column:
    """A column insert_messages writes: a row's value (``index``, ``prepare``) or ``value``."""

    name: str
    index: int = -1
    prepare: Callable[[Any], Any] | None = None
    value: Any = None


def insert_plan(fields: Sequence[str], common: Mapping[str, Any], connection: Any) -> list[_Column]:
    """The columns of Message to write, each prepared as Django's ``bulk_create`` would."""
    given = {**common, **dict.fromkeys(fields)}
    unknown = set(given) - {f.attname for f in Message._meta.concrete_fields}
    if unknown:
        raise ConfigurationError(f"Message has no fields {sorted(unknown)}")
    # Defaults and pre_save values as Django computes them for a new message.
    model = Message(**common)
    columns: list[_Column] = []
    for model_field in Message._meta.concrete_fields:
        attname = model_field.attname
        if attname not in given:
            if model_field.primary_key or getattr(model_field, "generated", False):
                continue  # the database numbers (or computes) it
            if model_field.db_default is not NOT_PROVIDED:
                continue  # the database fills it in
            # A blank text field's default is "" (what Django writes); a field that must be
            # filled in is not left to an empty string by accident.
            blank_text = model_field.blank and model_field.empty_strings_allowed
            if not (model_field.has_default() or model_field.null or blank_text):
                raise ConfigurationError(
                    f"Message.{model_field.name} has no default and cannot be empty: give "
                    "insert_messages a value for it"
                )
        if attname in fields:
            prepare: Callable[[Any], Any] = partial(
                model_field.get_db_prep_save, connection=connection
            )
            if type(model_field) in (CharField, TextField):
                # Django's own text fields save a str as it is: skip the calls for each row.
                prepare = partial(_str_or, prepare)
            elif isinstance(model_field, IntegerField):
                # Few distinct values (parts: 1 to 7), each prepared once.
                prepare = lru_cache(maxsize=64, typed=True)(prepare)
            columns.append(_Column(model_field.column, fields.index(attname), prepare))
        else:
            value = model_field.get_db_prep_save(model_field.pre_save(model, True), connection)
            columns.append(_Column(model_field.column, value=value))
    return columns
