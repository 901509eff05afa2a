"""The send pipeline: claim a batch of due messages, send it, record what became of each, and
settle the claims of workers that died.

Sending is at most once and never loses a message. A message is claimed by one worker alone;
a send whose outcome cannot be known becomes ``unknown`` and is never sent again unless
``RESEND_AMBIGUOUS`` says so; a claim a dead worker left behind is swept to ``unknown`` after
``STALE_SENDING_AFTER``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from .. import conf, ratelimit
from ..gateways import Gateway, Outgoing, SendOutcome, get_gateway
from ..models import DeliveryReport, Message
from ..status import Status
from .rows import claim_rows, with_row_locks
from .transitions import Transition, clip_errors, move_messages, notify

logger = logging.getLogger("django_smsclub")


def send_due(
    gateway_name: str, *, batch_size: int | None = None, time_budget: float | None = None
) -> int:
    """Claim, send and record batches of due messages of one gateway until none are left
    (or ``time_budget`` seconds have passed); return how many messages were handled."""
    gateway = get_gateway(gateway_name)
    limit = batch_size or conf.send_batch_size()
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
    claimed = claim_rows(
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
    notify(Transition(m, Status.QUEUED, Status.SENDING) for m in claimed)
    return claimed


def send_claimed(gateway: Gateway, messages: Sequence[Message]) -> list[SendOutcome]:
    """Send claimed messages in as few requests as ``gateway`` allows; one outcome each.

    One call of the gateway's fixed flow (:meth:`Gateway.send`): it groups by sender and text,
    refuses a malformed message alone, stops the batch after a request fails for a reason
    other than a refusal, and takes a crash or a wrong count of outcomes as ambiguous. Every
    request first takes one token of the account's rate limit.
    """
    limiter = ratelimit.for_gateway(gateway)
    outgoing = [Outgoing(m.recipient, m.text, m.pk, sender=m.sender) for m in messages]
    return gateway.send(
        None,
        outgoing,
        before_request=limiter.acquire if limiter is not None else None,
        skip_invalid=True,
    )


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
    max_attempts = conf.max_send_attempts()
    resend_ambiguous = conf.resend_ambiguous()
    first_poll = now + timedelta(seconds=conf.poll_intervals()[0])
    sent: list[Message] = []
    reports: list[DeliveryReport] = []
    failed: dict[int, str] = {}
    retry: dict[int, tuple[str, datetime]] = {}
    unknown: dict[int, str] = {}
    by_pk = {m.pk: m for m in messages}
    with transaction.atomic():
        owned = set(
            with_row_locks(
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
        transitions = move_messages(sent, Status.SENT, sent_at=now, error="")
        DeliveryReport.objects.bulk_create(reports)
        transitions += move_messages(
            [by_pk[pk] for pk in failed],
            Status.FAILED,
            error=clip_errors(failed),
            finished_at=now,
        )
        transitions += move_messages(
            [by_pk[pk] for pk in retry],
            Status.QUEUED,
            error=clip_errors({pk: e for pk, (e, _) in retry.items()}),
            next_attempt_at={pk: at for pk, (_, at) in retry.items()},
        )
        transitions += move_messages(
            [by_pk[pk] for pk in unknown],
            Status.UNKNOWN,
            error=clip_errors(unknown),
            finished_at=now,
        )
        notify(transitions)
    return transitions


def release_claims(messages: Sequence[Message]) -> int:
    """Put claimed messages that were never submitted back to ``queued``, their attempt not
    counted; return how many moved. Each move is signalled after commit, as a claim is."""
    if not messages:
        return 0
    with transaction.atomic():
        claimed = Message.objects.filter(pk__in=[m.pk for m in messages], status=Status.SENDING)
        owned = set(with_row_locks(claimed).values_list("pk", flat=True))
        Message.objects.filter(pk__in=owned, status=Status.SENDING).update(
            status=Status.QUEUED, claimed_at=None, attempts=Greatest(F("attempts") - 1, 0)
        )
        moved = [m for m in messages if m.pk in owned]
        for message in moved:
            message.status, message.claimed_at = Status.QUEUED, None
            message.attempts = max(message.attempts - 1, 0)
        notify(Transition(m, Status.SENDING, Status.QUEUED) for m in moved)
    return len(moved)


def sweep_stale_claims(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Settle claims older than ``STALE_SENDING_AFTER``: their worker died mid-send.

    Such a message may have gone out, so it is ``unknown`` (or queued again, when
    ``RESEND_AMBIGUOUS`` allows). Returns how many were settled.
    """
    now = now or timezone.now()
    cutoff = now - conf.stale_sending_after()
    resend_ambiguous = conf.resend_ambiguous()
    max_attempts = conf.max_send_attempts()
    stale_claims = Message.objects.filter(status=Status.SENDING, claimed_at__lt=cutoff)
    settled = 0
    while True:
        with transaction.atomic():
            stale = list(
                with_row_locks(stale_claims.order_by("claimed_at", "pk"), skip_locked=True)[:limit]
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
            transitions = move_messages(
                again,
                Status.QUEUED,
                error=clip_errors(why),
                next_attempt_at={m.pk: now + _backoff(m.attempts) for m in again},
            )
            transitions += move_messages(
                lost, Status.UNKNOWN, error=clip_errors(why), finished_at=now
            )
            notify(transitions)
        settled += len(transitions)
        if len(stale) < limit:
            return settled


def _backoff(attempts: int, error: Exception | None = None) -> timedelta:
    """The pause before attempt ``attempts + 1``: RETRY_BACKOFF doubled per attempt, capped."""
    base = conf.retry_backoff()
    cap = conf.retry_backoff_max()
    seconds = min(base * 2 ** max(attempts - 1, 0), cap)
    retry_after = getattr(error, "retry_after", None)
    if retry_after:
        seconds = max(seconds, float(retry_after))
    return timedelta(seconds=seconds)
