"""Queueing messages outside campaigns: :func:`send_sms`, :func:`send_personalized`, their
idempotency keys, and asking the workers to send.

Everything is checked before anything is stored; messages are stored ``queued`` and the send
is requested when the transaction commits (see :data:`django_smsclub.signals.send_requested`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import conf, selectors, sendwindow, signals
from ..exceptions import InvalidMessage
from ..logs import fields
from ..models import PRIORITY_MAX, PRIORITY_MESSAGE, Message
from ..operators import operator_of
from ..phones import normalize_or_problem, split_valid
from ..text import count_parts
from . import optout
from .validation import Options, as_list, check_options, text_problem_for

logger = logging.getLogger("django_smsclub")


def send_sms(
    to: str | int | Iterable[str | int],
    text: str,
    *,
    sender: str | None = None,
    gateway: str | None = None,
    send_at: datetime | None = None,
    idempotency_key: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    created_by: Any = None,
    priority: int = PRIORITY_MESSAGE,
    respect_window: bool = False,
    marketing: bool = False,
) -> list[Message]:
    """Queue ``text`` to every number of ``to`` (one number or an iterable of them).

    Everything is checked before anything is stored: a bad number, sender, text or option
    raises one :class:`InvalidMessage` naming each bad value. A number given twice (in any
    spelling) gets one message. The send is enqueued when the transaction commits, for
    ``send_at`` if given.

    ``priority``: lower is claimed first (0, the default, before campaigns' 100), from 0 to
    32767.

    ``respect_window``: sent only inside ``SMSCLUB['SEND_WINDOW']`` (quiet hours), as campaign
    messages are: due at its next opening when it is closed. Off by default: a login code goes
    at night too.

    The stop list: a number on it with scope ``all`` (with ``marketing=True``, any scope) gets
    its message stored ``cancelled`` with the error "opted out", returned and signalled like
    the others; nothing is raised, nothing sent.

    ``idempotency_key``: the i-th message of a call is stored with the key ``f"{key}:{i}"``
    (unique in the database); a later call with the same key returns the messages of the first
    and sends nothing new, even when both calls race.
    """
    options, problems = check_options(gateway, sender, send_at, idempotency_key, metadata)
    problems += priority_problems(priority)
    problems += flag_problems(respect_window=respect_window, marketing=marketing)
    numbers = as_list(to, problems)
    valid, number_problems = split_valid(numbers)
    problems += number_problems
    if not numbers:
        problems.append("no recipient: 'to' is empty")
    problem = text_problem_for(text, options.gateway)
    if problem:
        problems.append(problem)
    if problems:
        raise InvalidMessage(problems)
    rows = [(number, text) for number in dict.fromkeys(valid)]
    return _queue(
        rows, options, created_by, priority, respect_window=respect_window, marketing=marketing
    )


def send_personalized(
    items: Iterable[tuple[str | int, str]],
    *,
    sender: str | None = None,
    gateway: str | None = None,
    send_at: datetime | None = None,
    idempotency_key: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    created_by: Any = None,
    priority: int = PRIORITY_MESSAGE,
    respect_window: bool = False,
    marketing: bool = False,
) -> list[Message]:
    """Queue a personal text to each number: ``items`` are (number, text) pairs.

    Checked, stored, enqueued, keyed and held to the stop list like :func:`send_sms`; every
    pair is a message.
    """
    options, problems = check_options(gateway, sender, send_at, idempotency_key, metadata)
    problems += priority_problems(priority)
    problems += flag_problems(respect_window=respect_window, marketing=marketing)
    pairs = as_list(items, problems)
    if not pairs:
        problems.append("no recipient: 'items' is empty")
    rows: list[tuple[str, str]] = []
    checked: dict[str, str | None] = {}
    for position, pair in enumerate(pairs, start=1):
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            problems.append(f"item {position} must be a (number, text) pair, not {pair!r:.60}")
            continue
        raw, message_text = pair
        number, number_problem = normalize_or_problem(raw)
        if number_problem:
            problems.append(number_problem)
        key = message_text if isinstance(message_text, str) else repr(message_text)
        if key not in checked:
            checked[key] = problem = text_problem_for(message_text, options.gateway)
            if problem:
                problems.append(problem)
        rows.append((number, message_text))
    if problems:
        raise InvalidMessage(list(dict.fromkeys(problems)))
    return _queue(
        rows, options, created_by, priority, respect_window=respect_window, marketing=marketing
    )


def enqueue_send(gateway_name: str, when: datetime | None = None, *, tasks_count: int = 1) -> None:
    """Ask workers to send the due messages of ``gateway_name`` (at ``when`` if later):
    ``tasks_count`` tasks, which claim disjoint batches, for a big campaign.

    The request goes out as :data:`~django_smsclub.signals.send_requested`, which the task
    layer receives (connected in ``AppConfig.ready()``): the services never import the tasks.
    A broker that cannot be reached loses nothing: the messages are stored, and the periodic
    ``send_due`` task finds them. A gateway with a dedicated process (SMPP) finds its own.
    """
    if not selectors.sent_by_workers(gateway_name):
        return
    results = signals.send_requested.send_robust(
        sender=Message, gateway=gateway_name, when=when, tasks_count=tasks_count
    )
    for _, result in results:
        if isinstance(result, Exception):
            logger.warning(
                "could not enqueue the send for gateway %s (%s: %s); the periodic send_due "
                "task will send its messages",
                gateway_name,
                type(result).__name__,
                result,
                extra=fields(gateway=gateway_name, outcome=type(result).__name__),
            )


def priority_problems(priority: object) -> list[str]:
    """What is wrong with a message's ``priority`` (an int from 0 to PRIORITY_MAX)."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        return [f"priority must be a whole number, not {priority!r:.40}"]
    if not 0 <= priority <= PRIORITY_MAX:
        return [f"priority {priority} must be from 0 to {PRIORITY_MAX}"]
    return []


def flag_problems(**flags: object) -> list[str]:
    """What is wrong with a send's switches (``respect_window``, ``marketing``): each True or
    False."""
    return [
        f"{name} must be True or False, not {value!r:.40}"
        for name, value in flags.items()
        if not isinstance(value, bool)
    ]


def _queue(
    rows: list[tuple[str, str]],
    options: Options,
    created_by: Any,
    priority: int,
    *,
    respect_window: bool = False,
    marketing: bool = False,
) -> list[Message]:
    """Store validated rows as queued messages and enqueue their send after commit; cancel at
    once those the stop list keeps from their number."""
    now = timezone.now()
    due = options.send_at or now
    if respect_window:
        # Quiet hours: due when the default send window opens, if it is closed then.
        due = sendwindow.next_opening(due, conf.send_window(), conf.time_zone())
    gateway_name = options.gateway.name if options.gateway else ""
    key = options.idempotency_key
    keys = [f"{key}:{i}" for i in range(len(rows))] if key else [""] * len(rows)
    if key:
        existing = _keyed(keys)
        if existing:
            return existing
    messages = [
        Message(
            recipient=number,
            operator=operator_of(number),
            sender=options.sender,
            text=body,
            gateway=gateway_name,
            parts=count_parts(body),
            next_attempt_at=due,
            priority=priority,
            respect_window=respect_window,
            idempotency_key=message_key,
            metadata=dict(options.metadata),
            created_by=created_by,
            created_at=now,
        )
        for (number, body), message_key in zip(rows, keys, strict=True)
    ]
    try:
        with transaction.atomic():
            Message.objects.bulk_create(messages)
            optout.cancel_blocked(messages, marketing=marketing, now=now)
    except IntegrityError:
        # Lost a race for the same key: the unique constraint let the other call in first.
        existing = _keyed(keys) if key else []
        if not existing:
            raise
        return existing
    transaction.on_commit(partial(enqueue_send, gateway_name, due))
    return messages


def _keyed(keys: list[str]) -> list[Message]:
    order = {k: i for i, k in enumerate(keys)}
    found = Message.objects.filter(idempotency_key__in=[k for k in keys if k])
    return sorted(found, key=lambda m: order[m.idempotency_key])
