"""The domain operations: queue messages, claim and send them, record what the provider
answered, follow the delivery reports, and move campaigns along.

Sending is at most once and never loses a message. A message is claimed by one worker alone
(``SELECT ... FOR UPDATE SKIP LOCKED`` where the database has it, a conditional ``UPDATE``
elsewhere); a send whose outcome cannot be known becomes ``unknown`` and is never sent again
unless ``RESEND_AMBIGUOUS`` says so; a claim a dead worker left behind is swept to ``unknown``
after ``STALE_SENDING_AFTER``. Every status change is a conditional ``UPDATE ... WHERE status =
<old>`` made under row locks, so a change is made, and signalled after commit, exactly once.
"""

from __future__ import annotations

import json
import logging
import re
import string
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache, partial
from itertools import chain, islice
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connections, router, transaction
from django.db.models import (
    Case,
    CharField,
    Count,
    DateTimeField,
    Exists,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
    When,
)
from django.db.models.fields import NOT_PROVIDED
from django.db.models.functions import Greatest, Least
from django.utils import timezone

from . import conf, phones, ratelimit, signals
from .exceptions import (
    AmbiguousSend,
    CampaignStateError,
    ConfigurationError,
    GatewayError,
    InvalidMessage,
    ProviderRefused,
)
from .gateways import Gateway, Outgoing, SendOutcome, get_gateway
from .models import (
    ERROR_MAX_LENGTH,
    PENDING_STATUSES,
    RAW_STATUS_MAX_LENGTH,
    Campaign,
    DeliveryReport,
    Message,
)
from .status import FINAL_STATUSES, Status, aggregate, status_from_word
from .text import count_parts, sender_problem, text_problem

logger = logging.getLogger("django_smsclub")

#: Statuses :meth:`Campaign.retry_failed` sends anew: the provider or the network surely did
#: not deliver them. ``unknown`` is not among them: such a message may have arrived.
RETRY_STATUSES: frozenset[str] = frozenset(
    {Status.FAILED, Status.UNDELIVERED, Status.EXPIRED, Status.REJECTED}
)
IDEMPOTENCY_KEY_MAX_LENGTH = 200
#: The error of a message whose parts had no final report when the tracking window closed.
WINDOW_CLOSED = "no final delivery report before the provider's tracking window closed"

# Rows per conditional UPDATE: one statement per chunk keeps the CASE expressions short.
_UPDATE_CHUNK = 500
#: ``\u0000`` in JSON text, not preceded by an escaped backslash.
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
#: Distinct value sets one batch writes with plain UPDATEs before one UPDATE with CASEs
#: (which Django builds slowly for big batches) is cheaper.
_MAX_VALUE_GROUPS = 6
# How often a claim that lost rows to another worker is tried again before giving up.
_CLAIM_ATTEMPTS = 5
#: Distinct rendered texts add_recipients remembers the check of (then it starts afresh).
_CHECKED_TEXTS = 1024


@dataclass(frozen=True)
class Transition:
    """One status change of one message, as recorded and signalled."""

    message: Message
    old_status: str
    new_status: str


@dataclass(frozen=True)
class RefusedRow:
    """A recipient row :meth:`Campaign.add_recipients` did not add, and why."""

    row: int
    value: str
    reason: str


@dataclass
class RecipientsResult:
    """What :meth:`Campaign.add_recipients` did: rows added, repeats skipped, rows refused."""

    added: int = 0
    duplicates: int = 0
    refused: list[RefusedRow] = field(default_factory=list)


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
) -> list[Message]:
    """Queue ``text`` to every number of ``to`` (one number or an iterable of them).

    Everything is checked before anything is stored: a bad number, sender, text or option
    raises one :class:`InvalidMessage` naming each bad value. A number given twice (in any
    spelling) gets one message. The send is enqueued when the transaction commits, for
    ``send_at`` if given.

    ``idempotency_key``: the i-th message of a call is stored with the key ``f"{key}:{i}"``
    (unique in the database); a later call with the same key returns the messages of the first
    and sends nothing new, even when both calls race.
    """
    options, problems = _check_options(gateway, sender, send_at, idempotency_key, metadata)
    numbers = _recipients(to, problems)
    valid, number_problems = phones.split_valid(numbers)
    problems += number_problems
    if not numbers:
        problems.append("no recipient: 'to' is empty")
    problem = _text_problem(text, options.gateway)
    if problem:
        problems.append(problem)
    if problems:
        raise InvalidMessage(problems)
    rows = [(number, text) for number in dict.fromkeys(valid)]
    return _queue(rows, options, created_by)


def send_personalized(
    items: Iterable[tuple[str | int, str]],
    *,
    sender: str | None = None,
    gateway: str | None = None,
    send_at: datetime | None = None,
    idempotency_key: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    created_by: Any = None,
) -> list[Message]:
    """Queue a personal text to each number: ``items`` are (number, text) pairs.

    Checked, stored, enqueued and keyed like :func:`send_sms`; every pair is a message.
    """
    options, problems = _check_options(gateway, sender, send_at, idempotency_key, metadata)
    pairs = _recipients(items, problems)
    if not pairs:
        problems.append("no recipient: 'items' is empty")
    rows: list[tuple[str, str]] = []
    checked: dict[str, str | None] = {}
    for position, pair in enumerate(pairs, start=1):
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            problems.append(f"item {position} must be a (number, text) pair, not {pair!r:.60}")
            continue
        raw, message_text = pair
        number, number_problem = _normalized(raw)
        if number_problem:
            problems.append(number_problem)
        key = message_text if isinstance(message_text, str) else repr(message_text)
        if key not in checked:
            checked[key] = _text_problem(message_text, options.gateway)
            if checked[key]:
                problems.append(checked[key])
        rows.append((number, message_text))
    if problems:
        raise InvalidMessage(list(dict.fromkeys(problems)))
    return _queue(rows, options, created_by)


def enqueue_send(gateway_name: str, when: datetime | None = None, *, tasks_count: int = 1) -> None:
    """Ask workers to send the due messages of ``gateway_name`` (at ``when`` if later):
    ``tasks_count`` tasks, which claim disjoint batches, for a big campaign.

    A broker that cannot be reached loses nothing: the messages are stored, and the periodic
    ``send_due`` task finds them. A gateway with a dedicated process (SMPP) finds its own.
    """
    from . import tasks

    if not sent_by_workers(gateway_name):
        return
    try:
        for _ in range(tasks_count):
            if when is not None and when > timezone.now():
                tasks.send_queued.apply_async((gateway_name,), eta=when)
            else:
                tasks.send_queued.delay(gateway_name)
    except Exception as exc:
        logger.warning(
            "could not enqueue the send for gateway %s (%s: %s); the periodic send_due task "
            "will send its messages",
            gateway_name,
            type(exc).__name__,
            exc,
        )


def campaign_problems(campaign: Campaign) -> list[str]:
    """What stops ``campaign`` from being sent as it stands: gateway, sender, text."""
    problems: list[str] = []
    try:
        gateway = get_gateway(campaign.gateway or None)
    except ConfigurationError as exc:
        return [str(exc)]
    problems.extend(_sender_problems(campaign.sender or gateway.default_sender, gateway))
    names, template_problem = _placeholders(campaign.text)
    if template_problem:
        problems.append(template_problem)
    elif not names:
        problem = _text_problem(campaign.text, gateway)
        if problem:
            problems.append(problem)
    return problems


def add_recipients(
    campaign: Campaign,
    recipients: Iterable[Any],
    *,
    skip_invalid: bool = False,
    chunk_size: int = 5000,
) -> RecipientsResult:
    """Add recipients to a draft ``campaign``, streamed in chunks of ``chunk_size``.

    A row is a number, or a (number, values) pair whose values fill the text's
    ``{placeholders}``. A number already in the campaign is skipped and counted as a
    duplicate. A bad row (number, missing value, text too long once filled in) is refused:
    with ``skip_invalid`` it is listed in the result and the rest go in; without it one
    :class:`InvalidMessage` names every bad row and nothing is added.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, not {chunk_size!r}")
    if campaign.pk is None:
        raise CampaignStateError(f"campaign {campaign.name!r} must be saved before recipients")
    problems = campaign_problems(campaign)
    if problems:
        raise InvalidMessage(problems)
    gateway = get_gateway(campaign.gateway or None)
    template = _CampaignTemplate(campaign, gateway)
    result = RecipientsResult()
    with transaction.atomic():
        _lock_campaign(campaign, {Campaign.State.DRAFT}, "have recipients added")
        # Every message this call stores gets a greater ID than any there is now (IDs come from
        # the table's sequence), and no one else adds to the locked campaign meanwhile.
        using = router.db_for_write(Message)
        before = Message.objects.using(using).aggregate(last=Max("pk"))["last"] or 0
        # Memory is one chunk's, whatever the count. The rows are taken from ``recipients``
        # between stores: it may read the database (a queryset's iterator()) meanwhile.
        numbered = enumerate(recipients, start=1)
        while True:
            chunk = list(islice(numbered, chunk_size))
            _store_recipients(template, chunk, result, skip_invalid)
            if len(chunk) < chunk_size:
                break
        if result.refused and not skip_invalid:
            raise InvalidMessage([f"row {r.row}: {r.reason}" for r in result.refused])
        if result.added:
            repeats = _drop_repeats(campaign, before)
            result.added -= repeats
            result.duplicates += repeats
    return result


def start_campaign(campaign: Campaign) -> None:
    """Release a draft campaign's messages: now, or at its ``send_at`` (then it is scheduled)."""
    now = timezone.now()
    with transaction.atomic():
        locked = _lock_campaign(campaign, {Campaign.State.DRAFT}, "start")
        when = locked.send_at or now
        held = Message.objects.filter(campaign=locked, status=Status.QUEUED, next_attempt_at=None)
        per_gateway = dict(held.order_by().values_list("gateway").annotate(n=Count("pk")))
        if not held.update(next_attempt_at=when):
            raise CampaignStateError(f"campaign {locked.name!r} has no recipients to send to")
        state = Campaign.State.SCHEDULED if when > now else Campaign.State.RUNNING
        Campaign.objects.filter(pk=locked.pk).update(state=state, updated_at=now)
        batch = int(conf.get("SEND_BATCH_SIZE"))
        for name, count in per_gateway.items():
            # One task per batch, up to SEND_CONCURRENCY: idle workers help with a big campaign.
            tasks_count = max(1, min(int(conf.get("SEND_CONCURRENCY")), -(-count // batch)))
            transaction.on_commit(partial(enqueue_send, name, when, tasks_count=tasks_count))
    campaign.state, campaign.updated_at = state, now


def cancel_campaign(campaign: Campaign) -> int:
    """Cancel the campaign and every message of it no worker has claimed; return how many.

    Messages already sent (or being sent) are left as they are.
    """
    now = timezone.now()
    with transaction.atomic():
        locked = _lock_campaign(campaign, set(Campaign.State), "be cancelled")
        if locked.state in (Campaign.State.DONE, Campaign.State.CANCELLED):
            return 0
        Campaign.objects.filter(pk=locked.pk).update(state=Campaign.State.CANCELLED, updated_at=now)
    campaign.state, campaign.updated_at = Campaign.State.CANCELLED, now
    return cancel_messages(Message.objects.filter(campaign=campaign))


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
            batch = list(_locked(queued.filter(pk__gt=last_pk))[:_UPDATE_CHUNK])
            transitions = _move(batch, Status.CANCELLED, finished_at=now)
            _notify(transitions)
        cancelled += len(transitions)
        if len(batch) < _UPDATE_CHUNK:
            return cancelled
        last_pk = batch[-1].pk


def retry_failed(campaign: Campaign, statuses: Iterable[str] | None = None) -> int:
    """Queue a new message for each message of ``campaign`` that surely was not delivered.

    ``statuses`` narrows :data:`RETRY_STATUSES`; ``unknown`` is refused, because such a
    message may have reached the phone. A message is retried once: the copy points back at it
    (``retry_of``, unique), and a failed copy can be retried in turn. Returns how many.
    """
    wanted = set(RETRY_STATUSES if statuses is None else statuses)
    if not wanted or wanted - RETRY_STATUSES:
        raise InvalidMessage(
            f"statuses {sorted(wanted)!r} cannot be retried; only {sorted(RETRY_STATUSES)} "
            "(an unknown message may have been delivered)"
        )
    now = timezone.now()
    created = 0
    gateway_names: set[str] = set()
    with transaction.atomic():
        locked = _lock_campaign(
            campaign,
            {Campaign.State.SCHEDULED, Campaign.State.RUNNING, Campaign.State.DONE},
            "retry failed messages",
        )
        failed = Message.objects.filter(
            campaign=locked, status__in=wanted, retry__isnull=True
        ).order_by("pk")
        last_pk = 0
        while batch := list(failed.filter(pk__gt=last_pk)[:_UPDATE_CHUNK]):
            last_pk = batch[-1].pk
            Message.objects.bulk_create(
                Message(
                    campaign=locked,
                    recipient=old.recipient,
                    sender=old.sender,
                    text=old.text,
                    gateway=old.gateway,
                    parts=old.parts,
                    metadata=old.metadata,
                    created_by_id=old.created_by_id,
                    retry_of=old,
                    next_attempt_at=now,
                    created_at=now,
                )
                for old in batch
            )
            created += len(batch)
            gateway_names.update(old.gateway for old in batch)
        if created and locked.state == Campaign.State.DONE:
            Campaign.objects.filter(pk=locked.pk).update(
                state=Campaign.State.RUNNING, updated_at=now
            )
            campaign.state = Campaign.State.RUNNING
        for name in sorted(gateway_names):
            transaction.on_commit(partial(enqueue_send, name))
    return created


def send_due(
    gateway_name: str, *, batch_size: int | None = None, time_budget: float | None = None
) -> int:
    """Claim, send and record batches of due messages of one gateway until none are left
    (or ``time_budget`` seconds have passed); return how many messages were handled."""
    gateway = get_gateway(gateway_name)
    limit = batch_size or int(conf.get("SEND_BATCH_SIZE"))
    deadline = None if time_budget is None else time.monotonic() + time_budget
    handled = 0
    while True:
        batch = claim_batch(gateway_name, limit)
        if not batch:
            return handled
        record_outcomes(batch, send_claimed(gateway, batch))
        handled += len(batch)
        if len(batch) < limit or (deadline is not None and time.monotonic() >= deadline):
            return handled


def claim_batch(gateway_name: str, limit: int, *, now: datetime | None = None) -> list[Message]:
    """Take up to ``limit`` due queued messages of one gateway for this worker alone.

    They come back ``sending``, with ``claimed_at`` set and one more attempt counted. Two
    workers never take the same message.
    """
    now = now or timezone.now()
    due = Message.objects.filter(
        gateway=gateway_name, status=Status.QUEUED, next_attempt_at__lte=now
    )
    claimed = _claim(
        due,
        ("next_attempt_at", "pk"),
        limit,
        status=Status.SENDING,
        claimed_at=now,
        attempts=F("attempts") + 1,
    )
    for message in claimed:
        message.status, message.claimed_at = Status.SENDING, now
        message.attempts += 1
    _notify(Transition(m, Status.QUEUED, Status.SENDING) for m in claimed)
    return claimed


def send_claimed(gateway: Gateway, messages: Sequence[Message]) -> list[SendOutcome]:
    """Send claimed messages in as few requests as ``gateway`` allows; one outcome each.

    Same sender and text travel together (the gateway's ``plan``); every request first takes
    one token of the account's rate limit. A message the gateway finds malformed fails alone.
    After a request fails for a reason other than a refusal, the rest are not attempted.
    """
    limiter = ratelimit.for_gateway(gateway)
    outcomes: dict[int, SendOutcome] = {}
    stop: GatewayError | None = None
    by_sender: dict[str, list[int]] = defaultdict(list)
    for position, message in enumerate(messages):
        by_sender[message.sender].append(position)
    for sender, positions in by_sender.items():
        outgoing = [
            Outgoing(messages[p].recipient, messages[p].text, messages[p].pk) for p in positions
        ]
        valid, refused = _validated(gateway, sender, outgoing)
        for index, error in refused:
            outcomes[positions[index]] = SendOutcome(outgoing[index], error=error)
        if not valid:
            continue
        items = [item for _, item in valid]
        if stop is not None:
            results = [SendOutcome(item, error=gateway.not_attempted(stop)) for item in items]
        else:
            results = _send_request(gateway, sender, items, limiter)
            stop = next((r.error for r in results if _stops_batch(r.error)), None)
        for (index, _), result in zip(valid, results, strict=True):
            outcomes[positions[index]] = result
    return [outcomes[p] for p in range(len(messages))]


def record_outcomes(
    messages: Sequence[Message],
    outcomes: Sequence[SendOutcome],
    *,
    now: datetime | None = None,
) -> list[Transition]:
    """Write what became of each claimed message, in a constant number of queries.

    accepted -> ``sent`` with one DeliveryReport per SMSC ID; refused for good (including a
    failed login) -> ``failed`` with the provider's words; surely not sent (unreachable, rate
    limited) -> ``queued`` again after an exponential backoff, until ``MAX_SEND_ATTEMPTS``;
    maybe sent -> ``unknown``, never sent again unless ``RESEND_AMBIGUOUS``.
    """
    now = now or timezone.now()
    max_attempts = int(conf.get("MAX_SEND_ATTEMPTS"))
    resend_ambiguous = bool(conf.get("RESEND_AMBIGUOUS"))
    first_poll = now + timedelta(seconds=conf.poll_intervals()[0])
    sent: list[Message] = []
    reports: list[DeliveryReport] = []
    failed: dict[int, str] = {}
    retry: dict[int, tuple[str, datetime]] = {}
    unknown: dict[int, str] = {}
    by_pk = {m.pk: m for m in messages}
    with transaction.atomic():
        owned = set(
            _locked(
                Message.objects.filter(pk__in=list(by_pk), status=Status.SENDING).order_by("pk")
            ).values_list("pk", flat=True)
        )
        for message, outcome in zip(messages, outcomes, strict=True):
            error = outcome.error
            if message.pk not in owned:
                logger.warning(
                    "message %s was no longer %s when its outcome came (%s); left as it is",
                    message.pk,
                    Status.SENDING,
                    error or f"accepted as SMSC IDs {', '.join(outcome.smsc_ids)}",
                )
            elif error is None and outcome.smsc_ids:
                sent.append(message)
                reports.extend(
                    DeliveryReport(
                        message=message,
                        part=part,
                        smsc_id=str(smsc_id),
                        gateway=message.gateway,
                        created_at=now,
                        changed_at=now,
                        next_poll_at=first_poll,
                    )
                    for part, smsc_id in enumerate(outcome.smsc_ids, start=1)
                )
            elif error is None:
                unknown[message.pk] = "the provider accepted it without an SMSC ID to track"
            elif getattr(error, "may_have_sent", False):
                if resend_ambiguous and message.attempts < max_attempts:
                    retry[message.pk] = (str(error), now + _backoff(message.attempts, error))
                else:
                    unknown[message.pk] = str(error)
            elif getattr(error, "retryable", False):
                if message.attempts < max_attempts:
                    retry[message.pk] = (str(error), now + _backoff(message.attempts, error))
                else:
                    failed[message.pk] = f"gave up after {message.attempts} attempts: {error}"
            else:
                failed[message.pk] = str(error)
        transitions = _move(sent, Status.SENT, sent_at=now, error="")
        DeliveryReport.objects.bulk_create(reports)
        transitions += _move(
            [by_pk[pk] for pk in failed],
            Status.FAILED,
            error=_errors(failed),
            finished_at=now,
        )
        transitions += _move(
            [by_pk[pk] for pk in retry],
            Status.QUEUED,
            error=_errors({pk: e for pk, (e, _) in retry.items()}),
            next_attempt_at={pk: at for pk, (_, at) in retry.items()},
        )
        transitions += _move(
            [by_pk[pk] for pk in unknown],
            Status.UNKNOWN,
            error=_errors(unknown),
            finished_at=now,
        )
        _notify(transitions)
    return transitions


def release_claims(messages: Sequence[Message]) -> int:
    """Put claimed messages that were never submitted back to ``queued``, their attempt not
    counted; return how many moved. Each move is signalled after commit, as a claim is."""
    if not messages:
        return 0
    with transaction.atomic():
        claimed = Message.objects.filter(pk__in=[m.pk for m in messages], status=Status.SENDING)
        owned = set(_locked(claimed).values_list("pk", flat=True))
        Message.objects.filter(pk__in=owned, status=Status.SENDING).update(
            status=Status.QUEUED, claimed_at=None, attempts=Greatest(F("attempts") - 1, 0)
        )
        moved = [m for m in messages if m.pk in owned]
        for message in moved:
            message.status, message.claimed_at = Status.QUEUED, None
            message.attempts = max(message.attempts - 1, 0)
        _notify(Transition(m, Status.SENDING, Status.QUEUED) for m in moved)
    return len(moved)


def sweep_stale_claims(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Settle claims older than ``STALE_SENDING_AFTER``: their worker died mid-send.

    Such a message may have gone out, so it is ``unknown`` (or queued again, when
    ``RESEND_AMBIGUOUS`` allows). Returns how many were settled.
    """
    now = now or timezone.now()
    cutoff = now - conf.stale_sending_after()
    resend_ambiguous = bool(conf.get("RESEND_AMBIGUOUS"))
    max_attempts = int(conf.get("MAX_SEND_ATTEMPTS"))
    stale_claims = Message.objects.filter(status=Status.SENDING, claimed_at__lt=cutoff)
    settled = 0
    while True:
        with transaction.atomic():
            stale = list(
                _locked(stale_claims.order_by("claimed_at", "pk"), skip_locked=True)[:limit]
            )
            why = {
                m.pk: (
                    f"the worker that claimed it at {m.claimed_at:%Y-%m-%d %H:%M:%S %Z} never "
                    "recorded an outcome; it may have been sent"
                )
                for m in stale
            }
            again = [m for m in stale if resend_ambiguous and m.attempts < max_attempts]
            lost = [m for m in stale if m not in again]
            transitions = _move(
                again,
                Status.QUEUED,
                error=_errors(why),
                next_attempt_at={m.pk: now + _backoff(m.attempts) for m in again},
            )
            transitions += _move(lost, Status.UNKNOWN, error=_errors(why), finished_at=now)
            _notify(transitions)
        settled += len(transitions)
        if len(stale) < limit:
            return settled


def poll_due(
    gateway_name: str,
    *,
    batch_size: int | None = None,
    time_budget: float | None = None,
    now: datetime | None = None,
) -> int:
    """Poll the provider for the due reports of one gateway, batch after batch, until none
    are due (or ``time_budget`` seconds have passed); return how many reports were polled.

    A report still pending when the tracking window closes becomes ``unknown`` without a poll.
    """
    gateway = get_gateway(gateway_name)
    limit = batch_size or int(conf.get("POLL_BATCH_SIZE"))
    deadline = None if time_budget is None else time.monotonic() + time_budget
    polled = 0
    while True:
        moment = now or timezone.now()
        reports = claim_due_reports(gateway_name, limit, now=moment)
        if not reports:
            return polled
        closed = moment - conf.tracking_window()
        expired = [r.pk for r in reports if r.created_at <= closed]
        if expired:
            _settle_reports(Q(pk__in=expired), lambda r: (r.raw_status, Status.UNKNOWN), moment)
        live = [r.smsc_id for r in reports if r.created_at > closed]
        if live:
            apply_states(gateway_name, fetch_states(gateway, live), now=moment)
        polled += len(reports)
        if len(reports) < limit or (deadline is not None and time.monotonic() >= deadline):
            return polled


def claim_due_reports(
    gateway_name: str, limit: int, *, now: datetime | None = None
) -> list[DeliveryReport]:
    """Take up to ``limit`` due reports of one gateway for this poller alone.

    Taking a report schedules its next poll (the intervals grow with each poll, never past
    the close of the tracking window), so another poller skips it, and a poller that dies
    leaves it for the next regular poll.
    """
    now = now or timezone.now()
    intervals = conf.poll_intervals()
    after_poll = Case(
        *[
            When(polls=done, then=Value(now + timedelta(seconds=seconds)))
            for done, seconds in enumerate(intervals[1:])
        ],
        default=Value(now + timedelta(seconds=intervals[-1])),
        output_field=DateTimeField(),
    )
    window_closes = F("created_at") + Value(conf.tracking_window())
    due = DeliveryReport.objects.filter(
        gateway=gateway_name, status=Status.SENT, next_poll_at__lte=now
    )
    return _claim(
        due,
        ("next_poll_at", "pk"),
        limit,
        polls=F("polls") + 1,
        next_poll_at=Least(after_poll, window_closes, output_field=DateTimeField()),
    )


def fetch_states(gateway: Gateway, smsc_ids: Sequence[str]) -> dict[str, str]:
    """The provider's words for ``smsc_ids``, one rate-limit token per status request.

    A failed request is logged and ends the round: its reports are polled at their next time.
    """
    limiter = ratelimit.for_gateway(gateway)
    unique = list(dict.fromkeys(smsc_ids))
    states: dict[str, str] = {}
    for start in range(0, len(unique), gateway.max_state_batch):
        chunk = unique[start : start + gateway.max_state_batch]
        try:
            if limiter is not None:
                limiter.acquire()
            states.update(gateway.fetch_states(chunk))
        except GatewayError as exc:
            logger.warning(
                "gateway %s: status request for %d ID(s) failed (%s); polled again later",
                gateway.name,
                len(chunk),
                exc,
            )
            break
    return states


def apply_states(
    gateway_name: str, states: Mapping[str, object], *, now: datetime | None = None
) -> list[Transition]:
    """Record the provider's words for SMSC IDs of ``gateway_name`` and move their messages.

    Used by polling and by SMPP receipts. Words are kept verbatim (cut to the column's
    length); a report that is final already does not change. Each message whose status
    changes is signalled once, after commit, however many appliers race.
    """
    words = {str(smsc_id): _word(word) for smsc_id, word in states.items()}
    if not words:
        return []

    def decide(report: DeliveryReport) -> tuple[str, str] | None:
        word = words.get(report.smsc_id)
        return None if word is None else (word, status_from_word(word))

    return _settle_reports(
        Q(gateway=gateway_name, smsc_id__in=list(words)), decide, now or timezone.now()
    )


def poll_now(messages: Iterable[Message]) -> list[Transition]:
    """Ask the provider now for the pending reports of ``messages``, due or not."""
    pending = DeliveryReport.objects.filter(
        message__in=[m.pk for m in messages], status=Status.SENT
    ).values_list("gateway", "smsc_id")
    by_gateway: dict[str, list[str]] = defaultdict(list)
    for gateway_name, smsc_id in pending:
        by_gateway[gateway_name].append(smsc_id)
    transitions: list[Transition] = []
    for gateway_name, smsc_ids in by_gateway.items():
        states = fetch_states(get_gateway(gateway_name), smsc_ids)
        transitions += apply_states(gateway_name, states)
    return transitions


def refresh_campaigns(*, now: datetime | None = None) -> int:
    """Scheduled campaigns whose time came are running; running ones with every message
    final are done. Returns how many campaigns changed state."""
    now = now or timezone.now()
    started = Campaign.objects.filter(state=Campaign.State.SCHEDULED, send_at__lte=now).update(
        state=Campaign.State.RUNNING, updated_at=now
    )
    pending = Message.objects.filter(campaign=OuterRef("pk"), status__in=PENDING_STATUSES)
    finished = (
        Campaign.objects.filter(state=Campaign.State.RUNNING)
        .exclude(Exists(pending))
        .update(state=Campaign.State.DONE, updated_at=now)
    )
    return started + finished


def has_due_messages(gateway_name: str) -> bool:
    return Message.objects.filter(
        gateway=gateway_name, status=Status.QUEUED, next_attempt_at__lte=timezone.now()
    ).exists()


def gateways_with_due_messages() -> list[str]:
    """The gateways Celery sends for with messages due (one index probe each)."""
    return [
        name for name in conf.gateway_names() if sent_by_workers(name) and has_due_messages(name)
    ]


def sent_by_workers(gateway_name: str) -> bool:
    """Whether the Celery tasks send for ``gateway_name``, not a dedicated process (SMPP)."""
    return not get_gateway(gateway_name).dedicated_process


def gateways_with_due_reports() -> list[str]:
    """The configured gateways with reports due to be polled (one index probe each)."""
    now = timezone.now()
    return [
        name
        for name in conf.gateway_names()
        if DeliveryReport.objects.filter(
            gateway=name, status=Status.SENT, next_poll_at__lte=now
        ).exists()
    ]


@dataclass(frozen=True)
class _Options:
    gateway: Gateway | None
    sender: str
    send_at: datetime | None
    idempotency_key: str | None
    metadata: dict[str, Any]


class _LostRace(Exception):
    """Another worker took some of the rows this claim was after."""


class _CampaignTemplate:
    """Turns one recipient row of a campaign into a message's values, or a reason.

    A message is ``common`` (the same for every message of the campaign) and, per row, the
    values of ``fields``: no model instance per row, see :func:`_insert_messages`.
    """

    fields = ("recipient", "text", "parts")

    def __init__(self, campaign: Campaign, gateway: Gateway):
        self.campaign = campaign
        self.gateway = gateway
        self.sender = campaign.sender or gateway.default_sender
        self.placeholders, _ = _placeholders(campaign.text)
        self.now = timezone.now()
        # Read once: a setting cannot change in the middle of one call.
        self.region = conf.default_region()
        self.common: dict[str, Any] = {
            "campaign_id": campaign.pk,
            "sender": self.sender,
            "gateway": gateway.name,
            "created_by_id": campaign.created_by_id,
            "created_at": self.now,
        }
        # Without placeholders every row has the campaign's text, checked once already.
        self.parts = None if self.placeholders else count_parts(campaign.text)
        # Rendered texts seen lately: (problem, parts). Bounded, so memory stays flat.
        self.checked: dict[str, tuple[str | None, int]] = {}

    def message(self, row: Any) -> tuple[tuple[str, str, int], None] | tuple[None, str]:
        if isinstance(row, tuple | list) and len(row) == 2:
            raw, values = row
        elif isinstance(row, str | int) and not isinstance(row, bool):
            raw, values = row, None
        else:
            return None, f"{row!r:.60} is neither a number nor a (number, values) pair"
        number, problem = _normalized(raw, self.region)
        if problem:
            return None, problem
        if self.parts is not None:
            return (number, self.campaign.text, self.parts), None
        body, problem = self._render(number, values)
        if problem:
            return None, problem
        problem, parts = self._check(body)
        if problem:
            return None, f"{number}: {problem}"
        return (number, body, parts), None

    def _render(self, number: str, values: Any) -> tuple[str, str | None]:
        if type(values) is not dict and not isinstance(values, Mapping):
            names = ", ".join(f"{{{n}}}" for n in self.placeholders)
            return "", f"{number}: the text needs values for {names}, got {values!r:.40}"
        missing = [n for n in self.placeholders if n not in values]
        if missing:
            names = ", ".join(f"{{{n}}}" for n in missing)
            return "", f"{number}: no value for {names}"
        try:
            return self.campaign.text.format_map(values), None
        except (ValueError, TypeError) as exc:
            return "", f"{number}: the values do not fit the text's placeholders ({exc})"

    def _check(self, body: str) -> tuple[str | None, int]:
        """Why ``body`` cannot go (or None) and its parts, remembered for repeated texts."""
        checked = self.checked.get(body)
        if checked is None:
            problem = _text_problem(body, self.gateway)
            checked = (problem, 0 if problem else count_parts(body))
            if len(self.checked) >= _CHECKED_TEXTS:
                self.checked.clear()
            self.checked[body] = checked
        return checked


def _check_options(
    gateway_name: str | None,
    sender: str | None,
    send_at: datetime | None,
    idempotency_key: str | None,
    metadata: Mapping[str, Any] | None,
) -> tuple[_Options, list[str]]:
    problems: list[str] = []
    gateway: Gateway | None = None
    try:
        gateway = get_gateway(gateway_name)
    except ConfigurationError as exc:
        problems.append(str(exc))
    if gateway is not None:
        sender = sender or gateway.default_sender
        problems.extend(_sender_problems(sender, gateway))
    if send_at is not None and not isinstance(send_at, datetime):
        problems.append(f"send_at must be a datetime, not {type(send_at).__name__} {send_at!r:.40}")
        send_at = None
    elif send_at is not None and timezone.is_naive(send_at):
        send_at = timezone.make_aware(send_at)
    if idempotency_key is not None and not (
        isinstance(idempotency_key, str)
        and idempotency_key.strip()
        and len(idempotency_key) <= IDEMPOTENCY_KEY_MAX_LENGTH
    ):
        problems.append(
            f"idempotency_key {idempotency_key!r:.60} must be a non-empty string of at most "
            f"{IDEMPOTENCY_KEY_MAX_LENGTH} characters"
        )
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, Mapping):
        problems.append(f"metadata must be a dict, not {type(metadata).__name__}")
        metadata = {}
    else:
        try:
            encoded = json.dumps(metadata, cls=DjangoJSONEncoder)
        except (TypeError, ValueError) as exc:
            problems.append(f"metadata cannot be stored as JSON: {exc}")
        else:
            # PostgreSQL's jsonb cannot hold a NUL character, escaped or not.
            if _JSON_NUL.search(encoded):
                problems.append("metadata cannot hold a NUL character (\\u0000)")
    options = _Options(
        gateway=gateway,
        sender=sender or "",
        send_at=send_at,
        idempotency_key=idempotency_key,
        metadata=dict(metadata),
    )
    return options, problems


def _recipients(given: Any, problems: list[str]) -> list[Any]:
    """``given`` as a list: one number alone, or the items of an iterable."""
    if isinstance(given, str | int):
        return [given]
    try:
        return list(given)
    except TypeError:
        problems.append(f"recipients must be a number or an iterable, not {given!r:.40}")
        return []


def _sender_problems(sender: str | None, gateway: Gateway) -> list[str]:
    if not sender:
        return [f"no sender: pass sender= or set SENDER of gateway {gateway.name!r}"]
    problem = sender_problem(sender)
    return [problem] if problem else []


def _text_problem(body: object, gateway: Gateway | None) -> str | None:
    """Why ``body`` cannot go, by the SMS rules and ``gateway``'s own (Windows-1251, ...)."""
    return text_problem(body) if gateway is None else gateway.text_problem(body)


def _normalized(raw: object, region: str | None = None) -> tuple[str, str | None]:
    """``(digits, None)`` or ``("", problem)``; ``region`` None reads the setting."""
    return phones.normalize_or_problem(raw, region=region)


def _placeholders(template: object) -> tuple[list[str], str | None]:
    """The ``{names}`` in a campaign text, or why the text cannot be a template.

    Only plain names: ``{user.password}`` or ``{0}`` would reach into the values' attributes
    or positions, which a text typed in the admin must not do.
    """
    if not isinstance(template, str):
        return [], f"text must be a string, not {type(template).__name__}"
    names: list[str] = []
    try:
        for _, name, spec, _ in string.Formatter().parse(template):
            if name is None:
                continue
            if not name.isidentifier() or "{" in (spec or ""):
                return [], (
                    f"placeholder {{{name}}} in the text is not a plain name; write "
                    "{name}, and {{ or }} for a brace"
                )
            names.append(name)
    except ValueError as exc:
        return [], f"the text's braces do not pair up ({exc}); write {{{{ or }}}} for a brace"
    return list(dict.fromkeys(names)), None


def _queue(rows: list[tuple[str, str]], options: _Options, created_by: Any) -> list[Message]:
    """Store validated rows as queued messages and enqueue their send after commit."""
    now = timezone.now()
    due = options.send_at or now
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
            sender=options.sender,
            text=body,
            gateway=gateway_name,
            parts=count_parts(body),
            next_attempt_at=due,
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


def _lock_campaign(campaign: Campaign, allowed: set[str], action: str) -> Campaign:
    locked = _locked(Campaign.objects.filter(pk=campaign.pk)).get()
    if locked.state not in allowed:
        raise CampaignStateError(f"campaign {locked.name!r} is {locked.state}; it cannot {action}")
    return locked


def _store_recipients(
    template: _CampaignTemplate,
    chunk: list[tuple[int, Any]],
    result: RecipientsResult,
    skip_invalid: bool,
) -> None:
    """Check a chunk of (row number, row) and store its messages, a number given twice once.

    Refused rows go to ``result``; after one, without ``skip_invalid``, rows are only checked
    (to name every bad one). The rows are checked as they are stored, so on PostgreSQL the
    database takes in one row while the next is checked. A number the campaign had before (or
    an earlier chunk gave) is stored too, and dropped by :func:`_drop_repeats` at the end: one
    statement in all, where a look-up per chunk reads all the campaign's messages each time
    (no index has campaign and recipient together).
    """

    def storable() -> Iterator[tuple[Any, ...]]:
        present: set[str] = set()
        for row_number, row in chunk:
            values, reason = template.message(row)
            if reason:
                result.refused.append(RefusedRow(row_number, f"{row!r:.80}", reason))
            elif skip_invalid or not result.refused:
                # The number is the first of template.fields.
                if values[0] in present:
                    result.duplicates += 1
                else:
                    present.add(values[0])
                    result.added += 1
                    yield values

    _insert_messages(template.fields, storable(), template.common)


def _drop_repeats(campaign: Campaign, before: int) -> int:
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


def _insert_messages(
    fields: Sequence[str], rows: Iterable[Sequence[Any]], common: Mapping[str, Any]
) -> None:
    """Store one new message per row: the row's values of ``fields``, ``common`` for the rest.

    Fields in neither get their defaults, as ``Message()`` would. On PostgreSQL the rows go in
    one ``COPY`` holding what ``bulk_create`` would write (each field's ``get_db_prep_save`` of
    its value), without a model instance per row or an INSERT to compile; elsewhere through
    ``bulk_create``. A field left out that has no default and cannot be empty is an error.

    ``rows`` is consumed while the ``COPY`` is open (it must not use the database): making a
    row overlaps with the database storing the ones before.
    """
    using = router.db_for_write(Message)
    connection = connections[using]
    columns = _insert_plan(fields, common, connection)
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
            None
            if c.value is None
            else bytes(transformer.get_dumper(c.value, PyFormat.TEXT).dump(c.value)).decode(
                encoding
            )
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
    """A column _insert_messages writes: a row's value (``index``, ``prepare``) or ``value``."""

    name: str
    index: int = -1
    prepare: Callable[[Any], Any] | None = None
    value: Any = None


def _insert_plan(
    fields: Sequence[str], common: Mapping[str, Any], connection: Any
) -> list[_Column]:
    """The columns of Message to write, each prepared as Django's ``bulk_create`` would."""
    given = {**common, **dict.fromkeys(fields)}
    unknown = set(given) - {f.attname for f in Message._meta.concrete_fields}
    if unknown:
        raise ImproperlyConfigured(f"Message has no fields {sorted(unknown)}")
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
                raise ImproperlyConfigured(
                    f"Message.{model_field.name} has no default and cannot be empty: give "
                    "_insert_messages a value for it"
                )
        if attname in fields:
            prepare = partial(model_field.get_db_prep_save, connection=connection)
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


def _claim(due: QuerySet, order: Sequence[str], limit: int, **changes: Any) -> list[Any]:
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


def _locked(queryset: QuerySet, *, skip_locked: bool = False) -> QuerySet:
    """``queryset`` with row locks where the database has them (SQLite locks the whole file)."""
    features = connections[queryset.db].features
    if not features.has_select_for_update:
        return queryset
    return queryset.select_for_update(
        skip_locked=skip_locked and features.has_select_for_update_skip_locked
    )


def _move(
    messages: Sequence[Message],
    new_status: str | Mapping[int, str],
    **values: Any,
) -> list[Transition]:
    """Move ``messages`` to ``new_status`` with ``UPDATE ... WHERE status = <old>``.

    ``new_status`` and each value may be one for all or a dict per message pk. Messages that
    end with the same values share one plain UPDATE (a batch has few distinct outcomes);
    past :data:`_MAX_VALUE_GROUPS` of them, one UPDATE with CASE per field does the chunk.
    The callers hold the rows' locks, so every row moves; were one moved by another process
    first, that process signals it, and this group is logged rather than signalled twice.
    """
    fields = {"status": new_status, **values}
    by_old: dict[str, list[Message]] = defaultdict(list)
    for message in messages:
        by_old[message.status].append(message)
    transitions: list[Transition] = []
    for old_status, group in by_old.items():
        for start in range(0, len(group), _UPDATE_CHUNK):
            chunk = group[start : start + _UPDATE_CHUNK]
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
                )
                continue
            for message in chunk:
                for name, value in resolved[message.pk].items():
                    setattr(message, name, value)
                transitions.append(Transition(message, old_status, message.status))
    return transitions


def _updates(
    chunk: Sequence[Message], resolved: Mapping[int, Mapping[str, Any]]
) -> list[tuple[list[int], dict[str, Any]]]:
    """(pks, field values) per UPDATE: one per distinct set of values, or one with CASEs."""
    groups: dict[tuple[tuple[str, Any], ...], list[int]] = defaultdict(list)
    for pk, row in resolved.items():
        groups[tuple(sorted(row.items()))].append(pk)
    if len(groups) <= _MAX_VALUE_GROUPS:
        return [(pks, dict(key)) for key, pks in groups.items()]
    names = next(iter(resolved.values())).keys()
    update = {}
    for name in names:
        output = Message._meta.get_field(name)
        update[name] = Case(
            *[When(pk=m.pk, then=Value(resolved[m.pk][name], output_field=output)) for m in chunk],
            output_field=output,
        )
    return [([m.pk for m in chunk], update)]


def _settle_reports(
    touched: Q,
    decide: Callable[[DeliveryReport], tuple[str, str] | None],
    now: datetime,
) -> list[Transition]:
    """Give the pending reports matching ``touched`` the (word, status) ``decide`` returns,
    then move their messages to the aggregate of their parts.

    Every part of every touched message is read and locked together with the message, in one
    query ordered by pk: two appliers of different parts of one message wait for each other
    rather than each missing the other's change.
    """
    with transaction.atomic():
        messages = (
            DeliveryReport.objects.filter(touched, status=Status.SENT)
            .order_by()
            .values("message_id")
        )
        reports = list(
            _locked(
                DeliveryReport.objects.filter(message_id__in=Subquery(messages))
                .select_related("message")
                .order_by("pk")
            )
        )
        changed: list[DeliveryReport] = []
        for report in reports:
            decision = decide(report) if report.status == Status.SENT else None
            if decision is None:
                continue
            word, new_status = decision
            word = word[:RAW_STATUS_MAX_LENGTH]
            if word == report.raw_status and new_status == report.status:
                continue
            report.raw_status, report.status, report.changed_at = word, new_status, now
            if new_status in FINAL_STATUSES:
                report.next_poll_at = None
            changed.append(report)
        _save_reports(changed, now)
        parts: dict[int, list[str]] = defaultdict(list)
        owners: dict[int, Message] = {}
        for report in reports:
            parts[report.message_id].append(report.status)
            owners[report.message_id] = report.message
        settled = {
            pk: aggregate(statuses)
            for pk, statuses in parts.items()
            if owners[pk].status == Status.SENT
        }
        settled = {pk: status for pk, status in settled.items() if status != Status.SENT}
        errors = {pk: WINDOW_CLOSED if s == Status.UNKNOWN else "" for pk, s in settled.items()}
        transitions = _move([owners[pk] for pk in settled], settled, error=errors, finished_at=now)
        _notify(transitions)
    return transitions


def _save_reports(changed: Sequence[DeliveryReport], now: datetime) -> None:
    """Write new words and statuses: one UPDATE per distinct (word, status), as a batch of
    replies holds few distinct words; ``bulk_update`` when a batch holds many."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for report in changed:
        groups[(report.raw_status, report.status)].append(report.pk)
    if len(groups) > _MAX_VALUE_GROUPS:
        DeliveryReport.objects.bulk_update(
            changed, ["raw_status", "status", "changed_at", "next_poll_at"]
        )
        return
    for (word, status), pks in groups.items():
        update: dict[str, Any] = {"raw_status": word, "status": status, "changed_at": now}
        if status in FINAL_STATUSES:
            update["next_poll_at"] = None
        for start in range(0, len(pks), _UPDATE_CHUNK):
            DeliveryReport.objects.filter(pk__in=pks[start : start + _UPDATE_CHUNK]).update(
                **update
            )


def _validated(
    gateway: Gateway, sender: str, outgoing: list[Outgoing]
) -> tuple[list[tuple[int, Outgoing]], list[tuple[int, InvalidMessage]]]:
    """Split ``outgoing`` into what the gateway accepts and what it finds malformed."""
    try:
        return list(enumerate(gateway.validate(sender, outgoing))), []
    except InvalidMessage:
        pass
    valid: list[tuple[int, Outgoing]] = []
    refused: list[tuple[int, InvalidMessage]] = []
    for index, item in enumerate(outgoing):
        try:
            valid.append((index, gateway.validate(sender, [item])[0]))
        except InvalidMessage as exc:
            refused.append((index, exc))
    return valid, refused


def _send_request(
    gateway: Gateway, sender: str, items: list[Outgoing], limiter: Any
) -> list[SendOutcome]:
    """The gateway's outcomes, one rate-limit token per request it makes.

    Gateways may come from other packages: one that crashes or answers for the wrong number
    of messages may still have sent them, so that is ambiguous, never a reason to resend.
    """
    acquire = limiter.acquire if limiter is not None else None
    try:
        outcomes = gateway.send(sender, items, before_request=acquire)
    except InvalidMessage as exc:
        return [SendOutcome(item, error=exc) for item in items]  # type: ignore[arg-type]
    except Exception as exc:
        logger.exception("gateway %s: unexpected error while sending", gateway.name)
        why = f"unexpected {type(exc).__name__} while sending; it may have been sent"
    else:
        if len(outcomes) == len(items):
            return outcomes
        why = f"{len(outcomes)} outcome(s) for {len(items)} message(s)"
    error = AmbiguousSend(f"gateway {gateway.name}: {why}", gateway=gateway.name)
    return [SendOutcome(item, error=error) for item in items]


def _stops_batch(error: Exception | None) -> bool:
    """Whether a request's failure means the rest of the batch should not be tried now."""
    return isinstance(error, GatewayError) and not isinstance(error, ProviderRefused)


def _backoff(attempts: int, error: Exception | None = None) -> timedelta:
    """The pause before attempt ``attempts + 1``: RETRY_BACKOFF doubled per attempt, capped."""
    base = float(conf.get("RETRY_BACKOFF"))
    cap = float(conf.get("RETRY_BACKOFF_MAX"))
    seconds = min(base * 2 ** max(attempts - 1, 0), cap)
    retry_after = getattr(error, "retry_after", None)
    if retry_after:
        seconds = max(seconds, float(retry_after))
    return timedelta(seconds=seconds)


def _errors(errors: Mapping[int, str]) -> dict[int, str]:
    return {pk: text[:ERROR_MAX_LENGTH] for pk, text in errors.items()}


def _word(word: object) -> str:
    if word is None:
        return ""
    if isinstance(word, bytes):
        return word.decode("utf-8", "replace")
    return str(word)


def _notify(transitions: Iterable[Transition]) -> None:
    """Signal each transition once the surrounding transaction commits."""
    transitions = list(transitions)
    if transitions:
        transaction.on_commit(
            partial(_send_signals, transitions),
            using=router.db_for_write(Message),
            robust=True,
        )


def _send_signals(transitions: list[Transition]) -> None:
    for transition in transitions:
        signals.notify(transition.message, transition.old_status, transition.new_status)
