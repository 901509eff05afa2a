"""Moving messages from one status to another, and telling the host project after commit.

Every change is a conditional ``UPDATE ... WHERE status = <old>`` made under row locks, so a
change is made, and signalled, exactly once however many workers race.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import router, transaction
from django.db.models import Case, Field, QuerySet, Value, When
from django.utils import timezone

from .. import signals
from ..logs import fields as log_fields
from ..models import ERROR_MAX_LENGTH, Message
from ..status import Status
from . import webhooks
from .rows import with_row_locks

logger = logging.getLogger("django_smsclub")


# Rows per conditional UPDATE: one statement per chunk keeps the CASE expressions short.
UPDATE_CHUNK = 500


#: Distinct value sets one batch writes with plain UPDATEs before one UPDATE with CASEs
#: (which Django builds slowly for big batches) is cheaper.
MAX_VALUE_GROUPS = 6


@dataclass(frozen=True)
class Transition:
    """One status change of one message, as recorded and signalled."""

    message: Message
    old_status: str
    new_status: str
    #: The message was final before (a corrected ``unknown``): not signalled finished again.
    finished_before: bool = False


def move_messages(
    messages: Sequence[Message],
    new_status: str | Mapping[int, str],
    **values: Any,
) -> list[Transition]:
    """Move ``messages`` to ``new_status`` with ``UPDATE ... WHERE status = <old>``.

    ``new_status`` and each value may be one for all or a dict per message pk. Messages that
    end with the same values share one plain UPDATE (a batch has few distinct outcomes);
    past :data:`MAX_VALUE_GROUPS` of them, one UPDATE with CASE per field does the chunk.
    The callers hold the rows' locks, so every row moves; were one moved by another process
    first, that process signals it, and this group is logged rather than signalled twice.
    """
    fields = {"status": new_status, **values}
    by_old: dict[str, list[Message]] = defaultdict(list)
    for message in messages:
        by_old[message.status].append(message)
    transitions: list[Transition] = []
    for old_status, group in by_old.items():
        for start in range(0, len(group), UPDATE_CHUNK):
            chunk = group[start : start + UPDATE_CHUNK]
            resolved = {
                m.pk: {name: v[m.pk] if isinstance(v, Mapping) else v for name, v in fields.items()}
                for m in chunk
            }
            updates = _updates(chunk, resolved)
            moved = sum(
                Message.objects.filter(pk__in=pks, status=old_status).update(**update)
                for pks, update in updates
            )
            if moved != len(chunk):
                logger.error(
                    "%d of %d message(s) left %s before this change reached them; not signalled",
                    len(chunk) - moved,
                    len(chunk),
                    old_status,
                    extra=log_fields(
                        message_ids=[m.pk for m in chunk],
                        count=len(chunk),
                        old_status=str(old_status),
                        outcome="raced",
                    ),
                )
                continue
            for message in chunk:
                finished_before = message.finished_at is not None
                for name, value in resolved[message.pk].items():
                    setattr(message, name, value)
                transitions.append(Transition(message, old_status, message.status, finished_before))
    return transitions


def cancel_messages(messages: QuerySet[Message]) -> int:
    """Cancel the queued messages of ``messages`` (others are left as they are); return how
    many. Each is signalled once, after commit."""
    now = timezone.now()
    # No joins: PostgreSQL locks no row of the nullable side of an outer join.
    queued = messages.select_related(None).filter(status=Status.QUEUED).order_by("pk")
    cancelled = last_pk = 0
    while True:
        # One transaction per chunk: a campaign of a million never holds a million in memory.
        # Locked rows are skipped by a worker's claim, so none of them is taken mid-way.
        with transaction.atomic():
            batch = list(with_row_locks(queued.filter(pk__gt=last_pk))[:UPDATE_CHUNK])
            transitions = move_messages(batch, Status.CANCELLED, finished_at=now)
            notify(transitions)
        cancelled += len(transitions)
        if len(batch) < UPDATE_CHUNK:
            return cancelled
        last_pk = batch[-1].pk


def clip_errors(errors: Mapping[int, str]) -> dict[int, str]:
    return {pk: text[:ERROR_MAX_LENGTH] for pk, text in errors.items()}


def notify(transitions: Iterable[Transition]) -> None:
    """Signal each transition once the surrounding transaction commits; owe the webhook
    events they make in that transaction (rows only, in bulk: no request is made here)."""
    transitions = list(transitions)
    if transitions:
        webhooks.record_message_events(transitions)
        transaction.on_commit(
            partial(_send_signals, transitions),
            using=router.db_for_write(Message),
            robust=True,
        )


def _updates(
    chunk: Sequence[Message], resolved: Mapping[int, Mapping[str, Any]]
) -> list[tuple[list[int], dict[str, Any]]]:
    """(pks, field values) per UPDATE: one per distinct set of values, or one with CASEs."""
    groups: dict[tuple[tuple[str, Any], ...], list[int]] = defaultdict(list)
    for pk, row in resolved.items():
        groups[tuple(sorted(row.items()))].append(pk)
    if len(groups) <= MAX_VALUE_GROUPS:
        return [(pks, dict(key)) for key, pks in groups.items()]
    names = next(iter(resolved.values())).keys()
    update = {}
    for name in names:
        output = Message._meta.get_field(name)
        if not isinstance(output, Field):
            raise TypeError(f"Message.{name} is not a concrete field")
        update[name] = Case(
            *[When(pk=m.pk, then=Value(resolved[m.pk][name], output_field=output)) for m in chunk],
            output_field=output,
        )
    return [([m.pk for m in chunk], update)]


def _send_signals(transitions: list[Transition]) -> None:
    log_transitions(transitions)
    for transition in transitions:
        signals.notify(
            transition.message,
            transition.old_status,
            transition.new_status,
            finished_before=transition.finished_before,
        )


def log_transitions(transitions: Sequence[Transition]) -> None:
    """One record per gateway, campaign, status change and attempt count: the messages that
    made it.

    Claims and their release (``queued`` <-> ``sending``) are DEBUG; every other change is
    INFO, a refusal or an unknown fate WARNING. Only fields already loaded are read (a
    message may come with some deferred: reading one would cost a query per message).
    """
    groups: dict[tuple[str, int | None, str, str, int | None], list[Any]] = defaultdict(list)
    for t in transitions:
        loaded = t.message.__dict__
        key = (
            loaded.get("gateway") or "",
            loaded.get("campaign_id"),
            t.old_status,
            t.new_status,
            loaded.get("attempts"),
        )
        groups[key].append(t.message.pk)
    for (gateway, campaign_id, old, new, attempts), pks in groups.items():
        if {old, new} == {Status.QUEUED, Status.SENDING}:
            level = logging.DEBUG
        elif new in (Status.FAILED, Status.UNKNOWN):
            level = logging.WARNING
        else:
            level = logging.INFO
        logger.log(
            level,
            "gateway %s: %d message(s) %s -> %s",
            gateway,
            len(pks),
            old,
            new,
            extra=log_fields(
                gateway=gateway or None,
                campaign_id=campaign_id,
                message_ids=pks,
                count=len(pks),
                old_status=str(old),
                outcome=str(new),
                attempts=attempts,
            ),
        )
