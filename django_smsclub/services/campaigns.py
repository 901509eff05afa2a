"""Campaigns: check, fill with recipients, start, cancel, retry the failed, and move along.

:data:`ALLOWED_ACTIONS` is the one table of which campaign state allows which action; the
services, the admin and the REST API all read it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import partial
from itertools import islice
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import router, transaction
from django.db.models import Count, Exists, Max, OuterRef, QuerySet
from django.utils import timezone

from .. import conf, signals
from ..exceptions import CampaignStateError, ConfigurationError, InvalidMessage
from ..gateways import get_gateway
from ..logs import fields
from ..models import PENDING_STATUSES, Campaign, Message
from ..operators import operator_of
from ..status import Status
from . import optout, webhooks
from .rows import drop_repeats, insert_messages, with_row_locks
from .sending import enqueue_send, priority_problems
from .templates import CampaignTemplate, placeholders, with_longest_link
from .transitions import UPDATE_CHUNK, cancel_messages
from .validation import sender_problems, text_problem_for
from .windows import due_at, due_for, window_problems

logger = logging.getLogger("django_smsclub")

#: The permission of the explicit "resend messages of unknown fate" step (migration 0003).
RESEND_UNKNOWN_PERMISSION = "django_smsclub.resend_unknown"


class Action(StrEnum):
    """What can be done to a campaign; the value completes "it cannot ..." in an error."""

    EDIT = "have its text, sender, gateway or send time changed"
    ADD_RECIPIENTS = "have recipients added"
    START = "start"
    CANCEL = "be cancelled"
    RETRY_FAILED = "retry failed messages"
    DELETE = "be deleted"


#: Which campaign state allows which action: the one table the services, admin and API read.
#: A scheduled or running campaign is not deleted from under its workers: cancel it first.
ALLOWED_ACTIONS: Mapping[str, frozenset[Action]] = {
    Campaign.State.DRAFT: frozenset(
        {Action.EDIT, Action.ADD_RECIPIENTS, Action.START, Action.CANCEL, Action.DELETE}
    ),
    Campaign.State.SCHEDULED: frozenset({Action.CANCEL, Action.RETRY_FAILED}),
    Campaign.State.RUNNING: frozenset({Action.CANCEL, Action.RETRY_FAILED}),
    Campaign.State.DONE: frozenset({Action.RETRY_FAILED, Action.DELETE}),
    Campaign.State.CANCELLED: frozenset({Action.DELETE}),
}


def allows(campaign: Campaign, action: Action) -> bool:
    """Whether ``campaign``'s state (as loaded) allows ``action``."""
    return action in ALLOWED_ACTIONS.get(campaign.state, frozenset())


def require(campaign: Campaign, action: Action) -> None:
    """Raise :class:`CampaignStateError` unless ``campaign``'s state allows ``action``."""
    if not allows(campaign, action):
        raise CampaignStateError(
            f"campaign {campaign.name!r} is {campaign.state}; it cannot {action}"
        )


#: Statuses :meth:`Campaign.retry_failed` sends anew: the provider or the network surely did
#: not deliver them. ``unknown`` is not among them: such a message may have arrived.
RETRY_STATUSES: frozenset[str] = frozenset(
    {Status.FAILED, Status.UNDELIVERED, Status.EXPIRED, Status.REJECTED}
)


@dataclass(frozen=True)
class RefusedRow:
    """A recipient row :meth:`Campaign.add_recipients` did not add, and why."""

    row: int
    #: The number as given (a string, at most 80 characters).
    value: str
    reason: str


@dataclass
class RecipientsResult:
    """What :meth:`Campaign.add_recipients` did: rows added, repeats skipped, rows refused."""

    added: int = 0
    duplicates: int = 0
    refused: list[RefusedRow] = field(default_factory=list)
    #: Of the refused rows, those whose number is on the stop list (reason "opted out").
    opted_out: int = 0


def campaign_problems(campaign: Campaign) -> list[str]:
    """What stops ``campaign`` from being sent as it stands: gateway, sender, text, send
    window."""
    problems: list[str] = window_problems(campaign)
    try:
        gateway = get_gateway(campaign.gateway or None)
    except ConfigurationError as exc:
        return [str(exc), *problems]
    problems.extend(sender_problems(campaign.sender or gateway.default_sender, gateway))
    problems.extend(priority_problems(campaign.priority))
    names, template_problem = placeholders(campaign.text)
    text, link_problem = with_longest_link(campaign.text)
    if template_problem or link_problem:
        problems.append(template_problem or link_problem or "")
    elif not names:
        problem = text_problem_for(text, gateway)
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
    :class:`InvalidMessage` names every bad row and nothing is added. A number on the stop
    list is no mistake: its row is always listed as refused, "opted out", and the rest go in.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, not {chunk_size!r}")
    if campaign.pk is None:
        raise CampaignStateError(f"campaign {campaign.name!r} must be saved before recipients")
    result = RecipientsResult()
    with transaction.atomic():
        # Locked, then read: the text, sender and gateway the messages are made from are the
        # campaign's as they are now; an edit made meanwhile went in first, or waits.
        locked = lock_campaign(campaign, Action.ADD_RECIPIENTS)
        problems = campaign_problems(locked)
        if problems:
            raise InvalidMessage(problems)
        template = CampaignTemplate(locked, get_gateway(locked.gateway or None))
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
        bad = [f"row {r.row}: {r.reason}" for r in result.refused if r.reason != optout.OPTED_OUT]
        if bad and not skip_invalid:
            raise InvalidMessage(bad)
        if result.added:
            repeats = drop_repeats(locked, before)
            result.added -= repeats
            result.duplicates += repeats
    return result


def start_campaign(campaign: Campaign) -> None:
    """Release a draft campaign's messages: now, or at its ``send_at`` (then it is scheduled);
    due when its send window opens, if that is closed then (the campaign runs meanwhile)."""
    now = timezone.now()
    with transaction.atomic():
        locked = lock_campaign(campaign, Action.START)
        starts = locked.send_at or now
        when = due_at(locked, starts)
        held = Message.objects.filter(campaign=locked, status=Status.QUEUED, next_attempt_at=None)
        per_gateway = dict(held.order_by().values_list("gateway").annotate(n=Count("pk")))
        if not held.update(next_attempt_at=when, priority=locked.priority):
            raise CampaignStateError(f"campaign {locked.name!r} has no recipients to send to")
        state = Campaign.State.SCHEDULED if starts > now else Campaign.State.RUNNING
        Campaign.objects.filter(pk=locked.pk).update(state=state, updated_at=now)
        batch = conf.send_batch_size()
        for name, count in per_gateway.items():
            # One task per batch, up to SEND_CONCURRENCY: idle workers help with a big campaign.
            tasks_count = max(1, min(conf.send_concurrency(), -(-count // batch)))
            transaction.on_commit(partial(enqueue_send, name, when, tasks_count=tasks_count))
    campaign.state, campaign.updated_at = state, now


def cancel_campaign(campaign: Campaign) -> int:
    """Cancel the campaign and every message of it no worker has claimed; return how many.

    Messages already sent (or being sent) are left as they are.
    """
    now = timezone.now()
    with transaction.atomic():
        locked = lock_campaign(campaign, None)
        if not allows(locked, Action.CANCEL):
            return 0
        Campaign.objects.filter(pk=locked.pk).update(state=Campaign.State.CANCELLED, updated_at=now)
    campaign.state, campaign.updated_at = Campaign.State.CANCELLED, now
    return cancel_messages(Message.objects.filter(campaign=campaign))


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
    with transaction.atomic():
        locked = lock_campaign(campaign, Action.RETRY_FAILED)
        created = _send_anew(Message.objects.filter(campaign=locked, status__in=wanted), now)
        if created and locked.state == Campaign.State.DONE:
            campaign.state = Campaign.State.RUNNING
    return created


def resend_messages(
    messages: QuerySet[Message], *, include_unknown: bool = False, by: Any = None
) -> int:
    """Queue a new message for each of ``messages`` that surely was not delivered; return how
    many.

    The rule of :func:`retry_failed`, message by message: only a status of
    :data:`RETRY_STATUSES` is resent, never ``unknown`` (it may have reached the phone), and a
    message is sent anew once (a failed copy can be resent in turn). The others are left
    alone: on their way, delivered, cancelled, unknown, or resent before. A copy joins its
    original's campaign, which runs again if it was done.

    ``include_unknown=True`` is the explicit "I accept a possible duplicate" step: the
    ``unknown`` ones are resent too, though each may arrive twice. Only a user ``by`` with the
    :data:`RESEND_UNKNOWN_PERMISSION` may take it (``PermissionDenied`` otherwise); the copies
    of unknown messages are created by ``by``, and the resend is logged (logger
    ``django_smsclub``, warning) with the user and the message IDs.
    """
    statuses = set(RETRY_STATUSES)
    if include_unknown:
        if by is None or not by.has_perm(RESEND_UNKNOWN_PERMISSION):
            raise PermissionDenied(
                f"resending messages of unknown fate may send them twice; it needs the "
                f"{RESEND_UNKNOWN_PERMISSION!r} permission, which {by or 'nobody'} does not have"
            )
        statuses.add(Status.UNKNOWN)
    chosen = Message.objects.filter(pk__in=messages.order_by().values("pk"), status__in=statuses)
    unknown: list[tuple[int, int]] = []
    with transaction.atomic():
        created = _send_anew(chosen, timezone.now(), accepted_by=by, unknown=unknown)
    for start in range(0, len(unknown), UPDATE_CHUNK):
        pairs = unknown[start : start + UPDATE_CHUNK]
        logger.warning(
            "%s (user #%s) resent %d message(s) of unknown fate, accepting that they may "
            "arrive twice: %s",
            by,
            getattr(by, "pk", None),
            len(pairs),
            ", ".join(f"#{old} as #{new}" for old, new in pairs),
            extra=fields(
                message_ids=[new for _, new in pairs],
                count=len(pairs),
                outcome="resent_unknown",
            ),
        )
    return created


def refresh_campaigns(*, now: datetime | None = None) -> int:
    """Scheduled campaigns whose time came are running; running ones with every message
    final are done. Returns how many campaigns changed state."""
    now = now or timezone.now()
    started = Campaign.objects.filter(state=Campaign.State.SCHEDULED, send_at__lte=now).update(
        state=Campaign.State.RUNNING, updated_at=now
    )
    return started + _finish_campaigns(now)


def _finish_campaigns(now: datetime) -> int:
    """Move the running campaigns with every message final to done; owe their webhook events
    in that transaction, and send ``campaign_finished`` for each after it commits."""
    pending = Message.objects.filter(campaign=OuterRef("pk"), status__in=PENDING_STATUSES)
    running = Campaign.objects.filter(state=Campaign.State.RUNNING).exclude(Exists(pending))
    with transaction.atomic():
        # Locked: each campaign is moved, and signalled, once however many sweeps run.
        done = list(with_row_locks(running, skip_locked=True))
        if not done:
            return 0
        Campaign.objects.filter(pk__in=[c.pk for c in done]).update(
            state=Campaign.State.DONE, updated_at=now
        )
        for campaign in done:
            campaign.state, campaign.updated_at = Campaign.State.DONE, now
        webhooks.record_campaign_events(done)
        transaction.on_commit(partial(signals.notify_campaign_finished, done), robust=True)
    return len(done)


def _send_anew(
    originals: QuerySet[Message],
    now: datetime,
    *,
    accepted_by: Any = None,
    unknown: list[tuple[int, int]] | None = None,
) -> int:
    """Queue a copy, due ``now`` (or when its send window opens, if that is closed now), of
    each of ``originals`` not sent anew before; return how many. Call it inside a
    transaction.

    The one way a message is sent anew: the copy has the original's campaign, recipient,
    sender, text, gateway, metadata and creator, and points back at it (``retry_of``,
    unique). The originals are locked a chunk at a time, then read again for a copy: two
    callers racing for one message make one copy. The sends are enqueued after commit, and a
    done campaign that got copies runs again.

    The copy of an ``unknown`` original is created by ``accepted_by`` (who accepted that it may
    arrive twice), and (original ID, copy ID) goes to ``unknown``.
    """
    created = 0
    sends: set[tuple[str, datetime]] = set()
    campaigns: set[int] = set()
    # NOT EXISTS, not a join on the copies: PostgreSQL cannot lock the nullable side of one.
    not_copied = ~Exists(Message.objects.filter(retry_of=OuterRef("pk")))
    originals = originals.filter(not_copied).order_by("pk")
    last_pk = 0
    while chunk := list(
        with_row_locks(originals.filter(pk__gt=last_pk)[:UPDATE_CHUNK]).values_list("pk", flat=True)
    ):
        last_pk = chunk[-1]
        # A new statement, after the locks: it sees the copies a racing caller committed.
        batch = list(Message.objects.filter(not_copied, pk__in=chunk).order_by("pk"))
        # Due now, or when the copy's send window opens if that is closed now.
        due = dict(zip((old.pk for old in batch), due_for(batch, now), strict=True))
        copies = Message.objects.bulk_create(
            Message(
                campaign_id=old.campaign_id,
                recipient=old.recipient,
                operator=old.operator or operator_of(old.recipient),
                sender=old.sender,
                text=old.text,
                gateway=old.gateway,
                parts=old.parts,
                metadata=old.metadata,
                created_by_id=(
                    accepted_by.pk
                    if accepted_by is not None and old.status == Status.UNKNOWN
                    else old.created_by_id
                ),
                retry_of=old,
                priority=old.priority,
                respect_window=old.respect_window,
                next_attempt_at=due[old.pk],
                created_at=now,
            )
            for old in batch
        )
        created += len(batch)
        if unknown is not None:
            unknown.extend(
                (old.pk, copy.pk)
                for old, copy in zip(batch, copies, strict=True)
                if old.status == Status.UNKNOWN
            )
        sends.update((old.gateway, due[old.pk]) for old in batch)
        campaigns.update(old.campaign_id for old in batch if old.campaign_id is not None)
    if campaigns:
        Campaign.objects.filter(pk__in=campaigns, state=Campaign.State.DONE).update(
            state=Campaign.State.RUNNING, updated_at=now
        )
    for name, when in sorted(sends):
        transaction.on_commit(partial(enqueue_send, name, None if when <= now else when))
    return created


def lock_campaign(campaign: Campaign, action: Action | None) -> Campaign:
    """``campaign`` read anew with its row locked until the transaction ends; its state must
    allow ``action`` (any state when None)."""
    try:
        locked = with_row_locks(Campaign.objects.filter(pk=campaign.pk)).get()
    except Campaign.DoesNotExist:
        raise CampaignStateError(
            f"campaign {campaign.name!r} (#{campaign.pk}) no longer exists: it was deleted"
        ) from None
    if action is not None:
        require(locked, action)
    return locked


def _store_recipients(
    template: CampaignTemplate,
    chunk: list[tuple[int, Any]],
    result: RecipientsResult,
    skip_invalid: bool,
) -> None:
    """Check a chunk of (row number, row) and store its messages, a number given twice once.

    Refused rows go to ``result``; after a bad one (not one "opted out"), without
    ``skip_invalid``, rows are only checked (to name every bad one). A number the campaign had
    before (or an earlier chunk gave) is stored too, and dropped by :func:`drop_repeats` at the
    end: one statement in all, where a look-up per chunk reads all the campaign's messages each
    time (no index has campaign and recipient together).
    """

    def storable() -> Iterator[tuple[Any, ...]]:
        present: set[str] = set()
        for row_number, row, values, reason in template.messages(chunk):
            if reason is not None:
                result.refused.append(RefusedRow(row_number, _given_number(row), reason))
                result.opted_out += reason == optout.OPTED_OUT
            elif values is not None and (skip_invalid or len(result.refused) == result.opted_out):
                # The number is the first of template.fields.
                if values[0] in present:
                    result.duplicates += 1
                else:
                    present.add(values[0])
                    result.added += 1
                    yield values

    insert_messages(template.fields, storable(), template.common)


def _given_number(row: Any) -> str:
    """The number of a recipient row as it was given, cut to 80 characters: what a refused
    row is shown by (its reason says what is wrong)."""
    raw = row[0] if isinstance(row, tuple | list) and len(row) == 2 else row
    text = raw if isinstance(raw, str) else repr(raw)
    return text if len(text) <= 80 else text[:77] + "..."
