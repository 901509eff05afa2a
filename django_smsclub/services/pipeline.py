"""The send pipeline: claim a batch of due messages, send it, record what became of each, and
settle the claims of workers that died.

Sending is at most once and never loses a message. A message is claimed by one worker alone,
most urgent first (``priority``, then ``next_attempt_at``); the claim is a lease its worker
renews while it works, and only a lease that ran out (``STALE_SENDING_AFTER``) is swept, to
``unknown``. An attempt is counted when the message's request is made; a message whose request
was not made goes back to ``queued`` as it was. A message put back with a backoff schedules
its own send; a message sent schedules its first poll.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial

from django.db import transaction
from django.utils import timezone

from .. import conf, ratelimit, selectors
from ..exceptions import InvalidMessage, NotAttempted, RateLimited
from ..gateways import Gateway, Outgoing, SendOutcome, get_gateway
from ..logs import fields
from ..models import DeliveryReport, Message
from ..status import Status
from . import optout
from .leases import hold_claims
from .rows import claim_rows, with_row_locks
from .sending import enqueue_send
from .tracking import request_poll
from .transitions import Transition, clip_errors, move_messages, notify
from .windows import claim_within_windows

logger = logging.getLogger("django_smsclub")


def send_due(
    gateway_name: str, *, batch_size: int | None = None, time_budget: float | None = None
) -> int:
    """Claim, send and record batches of due messages of one gateway until none are left
    (or ``time_budget`` seconds have passed); return how many messages were handled.

    Each batch is claimed most urgent first, and messages more urgent than a batch that come
    due while it is sent go out between two of its requests (:func:`send_claimed`), so a login
    code is sent by whichever worker makes its next request, however big the campaign it works
    on. The loop ends after a request failed: what it put back is scheduled, not hammered at a
    provider that is down.
    """
    gateway = get_gateway(gateway_name)
    limit = batch_size or conf.send_batch_size()
    deadline = None if time_budget is None else time.monotonic() + time_budget
    handled = 0
    while True:
        batch = claim_batch(gateway_name, limit)
        if not batch:
            return handled
        with hold_claims(batch):
            outcomes = send_claimed(gateway, batch)
        record_outcomes(batch, outcomes)
        handled += sum(1 for o in outcomes if not isinstance(o.error, NotAttempted))
        if any(isinstance(o.error, NotAttempted | RateLimited) for o in outcomes):
            return handled
        if len(batch) < limit or (deadline is not None and time.monotonic() >= deadline):
            return handled


def claim_batch(
    gateway_name: str,
    limit: int,
    *,
    now: datetime | None = None,
    more_urgent_than: int | None = None,
) -> list[Message]:
    """Take up to ``limit`` due queued messages of one gateway for this worker alone, in
    claim order: ``priority`` (lower first), ``next_attempt_at``, pk.

    They come back ``sending`` with ``claimed_at`` set (the start of the lease). Two workers
    never take the same message. No attempt is counted yet: that is done when the message's
    request is made (:func:`record_outcomes`). A campaign message (or one sent with
    ``respect_window``) whose send window is closed is not taken: it waits for the opening
    (:func:`~django_smsclub.services.windows.claim_within_windows`). One the stop list keeps
    from its number is cancelled, "opted out", never sent (:func:`.optout.claim_sendable`).
    """
    now = now or timezone.now()
    due = Message.objects.filter(
        gateway=gateway_name, status=Status.QUEUED, next_attempt_at__lte=now
    )
    if more_urgent_than is not None:
        due = due.filter(priority__lt=more_urgent_than)
    claim = partial(
        claim_rows,
        optout.with_scope(due),
        ("priority", "next_attempt_at", "pk"),
        status=Status.SENDING,
        claimed_at=now,
    )
    # A message whose send window is closed is put back, due at its opening, unsignalled.
    claimed = claim_within_windows(partial(optout.claim_sendable, claim, now=now), limit, now=now)
    for message in claimed:
        message.status, message.claimed_at = Status.SENDING, now
    notify(Transition(m, Status.QUEUED, Status.SENDING) for m in claimed)
    return claimed


def send_claimed(gateway: Gateway, messages: Sequence[Message]) -> list[SendOutcome]:
    """Send claimed messages in as few requests as ``gateway`` allows; one outcome each.

    One call of the gateway's fixed flow (:meth:`Gateway.send`): it groups by sender and text,
    refuses a malformed message alone, stops the batch after a request fails for a reason
    other than a refusal, and takes a crash or a wrong count of outcomes as ambiguous. Every
    request first takes one token of the account's rate limit. Before each request after the
    first, messages more urgent than the batch that came due are claimed, sent and recorded
    first; then the batch goes on. The first worker to look takes them, the others find none:
    no batch is put back for them.
    """
    limiter = ratelimit.for_gateway(gateway)
    outgoing = [Outgoing(m.recipient, m.text, m.pk, sender=m.sender) for m in messages]
    least_urgent = max((m.priority for m in messages), default=0)
    requests = 0

    def before_request() -> None:
        nonlocal requests
        requests += 1
        # Nothing is more urgent than priority 0: a batch of such messages never probes.
        if (
            requests > 1
            and least_urgent > 0
            and selectors.has_due_messages(gateway.name, more_urgent_than=least_urgent)
        ):
            urgent = claim_batch(
                gateway.name, conf.send_batch_size(), more_urgent_than=least_urgent
            )
            if urgent:
                with hold_claims(urgent):
                    record_outcomes(urgent, send_claimed(gateway, urgent))
        if limiter is not None:
            limiter.acquire()

    return gateway.send(None, outgoing, before_request=before_request, skip_invalid=True)


def record_outcomes(
    messages: Sequence[Message],
    outcomes: Sequence[SendOutcome],
    *,
    now: datetime | None = None,
) -> list[Transition]:
    """Write what became of each claimed message, in a constant number of queries.

    accepted -> ``sent`` with one DeliveryReport per SMSC ID (and its first poll scheduled);
    refused for good (including a failed login) -> ``failed`` with the provider's words;
    surely not sent (unreachable) -> ``queued`` again after an exponential backoff, until
    ``MAX_SEND_ATTEMPTS``; maybe sent -> ``unknown``, never sent again unless
    ``RESEND_AMBIGUOUS``. An attempt is counted only when the message's request was made: a
    message whose request was not made goes back to ``queued`` as it was, and one the
    provider asked us to slow down for (429) waits its ``Retry-After``, uncounted. Messages
    put back schedule their own send.

    A claim swept while its worker was still at it (lease run out) that comes back accepted
    is recorded still: the message moves from ``unknown`` (or ``queued``, when swept for a
    resend) to ``sent`` with its reports, and is tracked to its real final status.
    """
    now = now or timezone.now()
    by_pk = {m.pk: m for m in messages}
    with transaction.atomic():
        current = dict(
            with_row_locks(Message.objects.filter(pk__in=list(by_pk)).order_by("pk")).values_list(
                "pk", "status"
            )
        )
        plan = _Plan(now)
        for message, outcome in zip(messages, outcomes, strict=True):
            status = current.get(message.pk)
            if status == Status.SENDING:
                plan.add(message, outcome)
            elif status in (Status.UNKNOWN, Status.QUEUED) and outcome.accepted:
                message.status = status
                plan.late(message, outcome)
            else:
                logger.warning(
                    "message %s was %s, no longer %s, when its outcome came (%s); left as it is",
                    message.pk,
                    status,
                    Status.SENDING,
                    outcome.error or f"accepted as SMSC IDs {', '.join(outcome.smsc_ids)}",
                    extra=fields(
                        gateway=message.gateway,
                        message_id=message.pk,
                        smsc_ids=list(outcome.smsc_ids) or None,
                        old_status=str(status),
                        outcome="late_" + (type(outcome.error).__name__ if outcome.error else "ok"),
                        attempts=message.attempts,
                    ),
                )
        transitions = plan.write(by_pk)
        notify(transitions)
        gateway_name = messages[0].gateway if messages else ""
        if plan.reports:
            transaction.on_commit(partial(request_poll, gateway_name, plan.first_poll))
        resend_at = plan.resend_at()
        if resend_at is not None:
            transaction.on_commit(partial(enqueue_send, gateway_name, resend_at))
    return transitions


class _Plan:
    """What :func:`record_outcomes` writes: the messages per new status and their values."""

    def __init__(self, now: datetime):
        self.now = now
        self.max_attempts = conf.max_send_attempts()
        self.resend_ambiguous = conf.resend_ambiguous()
        self.first_poll = now + timedelta(seconds=conf.poll_intervals()[0])
        self.sent: list[Message] = []
        self.corrected: list[Message] = []
        self.reports: list[DeliveryReport] = []
        self.failed: dict[int, str] = {}
        self.retry: dict[int, tuple[str, datetime]] = {}
        self.unknown: dict[int, str] = {}
        self.released: list[Message] = []
        self.attempts: dict[int, int] = {}

    def add(self, message: Message, outcome: SendOutcome) -> None:
        error = outcome.error
        if isinstance(error, NotAttempted):
            self.released.append(message)
            return
        if isinstance(error, RateLimited):
            # Nothing was acted on (our limiter could not count, or the provider said 429).
            wait = timedelta(seconds=float(error.retry_after or conf.retry_backoff()))
            self.retry[message.pk] = (str(error), self.now + wait)
            return
        if isinstance(error, InvalidMessage):
            # Refused before any request: malformed for this gateway.
            self.failed[message.pk] = str(error)
            return
        attempts = self.attempts[message.pk] = message.attempts + 1
        if error is None and outcome.smsc_ids:
            self._accept(message, outcome, self.sent)
        elif error is None:
            self.unknown[message.pk] = "the provider accepted it without an SMSC ID to track"
        elif getattr(error, "may_have_sent", False):
            if self.resend_ambiguous and attempts < self.max_attempts:
                self.retry[message.pk] = (str(error), self.now + _backoff(attempts, error))
            else:
                self.unknown[message.pk] = str(error)
        elif getattr(error, "retryable", False):
            if attempts < self.max_attempts:
                self.retry[message.pk] = (str(error), self.now + _backoff(attempts, error))
            else:
                self.failed[message.pk] = f"gave up after {attempts} attempts: {error}"
        else:
            self.failed[message.pk] = str(error)

    def late(self, message: Message, outcome: SendOutcome) -> None:
        logger.warning(
            "message %s was %s when its send came back accepted (its claim had been swept); "
            "recorded as sent and tracked",
            message.pk,
            message.status,
            extra=fields(
                gateway=message.gateway,
                message_id=message.pk,
                smsc_ids=list(outcome.smsc_ids),
                old_status=str(message.status),
                outcome="late_ok",
                attempts=message.attempts + 1,
            ),
        )
        self.attempts[message.pk] = message.attempts + 1
        self._accept(message, outcome, self.corrected)

    def _accept(self, message: Message, outcome: SendOutcome, into: list[Message]) -> None:
        into.append(message)
        self.reports.extend(
            DeliveryReport(
                message=message,
                part=part,
                smsc_id=str(smsc_id),
                gateway=message.gateway,
                created_at=self.now,
                changed_at=self.now,
                next_poll_at=self.first_poll,
            )
            for part, smsc_id in enumerate(outcome.smsc_ids, start=1)
        )

    def write(self, by_pk: dict[int, Message]) -> list[Transition]:
        now, attempts = self.now, self.attempts

        def counted(pks: Sequence[int]) -> dict[int, int]:
            return {pk: attempts.get(pk, by_pk[pk].attempts) for pk in pks}

        sent = self.sent + self.corrected
        # A corrected message keeps its finished_at: it was signalled finished once already.
        transitions = move_messages(
            sent, Status.SENT, sent_at=now, error="", attempts=counted([m.pk for m in sent])
        )
        DeliveryReport.objects.bulk_create(self.reports)
        transitions += move_messages(
            [by_pk[pk] for pk in self.failed],
            Status.FAILED,
            error=clip_errors(self.failed),
            finished_at=now,
            attempts=counted(list(self.failed)),
        )
        transitions += move_messages(
            [by_pk[pk] for pk in self.retry],
            Status.QUEUED,
            error=clip_errors({pk: e for pk, (e, _) in self.retry.items()}),
            next_attempt_at={pk: at for pk, (_, at) in self.retry.items()},
            claimed_at=None,
            attempts=counted(list(self.retry)),
        )
        transitions += move_messages(
            [by_pk[pk] for pk in self.unknown],
            Status.UNKNOWN,
            error=clip_errors(self.unknown),
            finished_at=now,
            attempts=counted(list(self.unknown)),
        )
        transitions += move_messages(self.released, Status.QUEUED, claimed_at=None)
        return transitions

    def resend_at(self) -> datetime | None:
        """When the messages put back are due: the earliest retry, or now for the unsent."""
        times = [at for _, at in self.retry.values()]
        if self.released:
            times.append(min(times, default=self.now))
        return min(times, default=None)


def release_claims(messages: Sequence[Message]) -> int:
    """Put claimed messages that were never submitted back to ``queued`` as they were (no
    attempt is counted for them); return how many moved. Each move is signalled after
    commit, as a claim is."""
    if not messages:
        return 0
    with transaction.atomic():
        claimed = Message.objects.filter(pk__in=[m.pk for m in messages], status=Status.SENDING)
        owned = set(with_row_locks(claimed).values_list("pk", flat=True))
        moved = move_messages(
            [m for m in messages if m.pk in owned], Status.QUEUED, claimed_at=None
        )
        notify(moved)
    return len(moved)


def sweep_stale_claims(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Settle claims whose lease ran out (not renewed for ``STALE_SENDING_AFTER``): their
    worker died mid-send. A worker that is alive renews its claims (:func:`hold_claims`).

    Such a message may have gone out, so it is ``unknown`` (or queued again, when
    ``RESEND_AMBIGUOUS`` allows). Should its worker record an acceptance after all, the
    message goes on to ``sent`` and is tracked (:func:`record_outcomes`). Returns how many
    were settled.
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
                    f"the worker that held it last renewed its claim at "
                    f"{m.claimed_at:%Y-%m-%d %H:%M:%S %Z} and never recorded an outcome; it "
                    "may have been sent"
                )
                for m in stale
            }
            # The request may have been made: count it, as a resend would be another.
            again = [m for m in stale if resend_ambiguous and m.attempts + 1 < max_attempts]
            lost = [m for m in stale if m not in again]
            transitions = move_messages(
                again,
                Status.QUEUED,
                error=clip_errors(why),
                next_attempt_at={m.pk: now + _backoff(m.attempts + 1) for m in again},
                attempts={m.pk: m.attempts + 1 for m in again},
            )
            transitions += move_messages(
                lost, Status.UNKNOWN, error=clip_errors(why), finished_at=now
            )
            notify(transitions)
            if again:
                transaction.on_commit(
                    partial(_enqueue_each, {m.gateway: now + _backoff(m.attempts) for m in again})
                )
        settled += len(transitions)
        if len(stale) < limit:
            return settled


def _enqueue_each(when_by_gateway: dict[str, datetime]) -> None:
    for name, when in when_by_gateway.items():
        enqueue_send(name, when)


def _backoff(attempts: int, error: Exception | None = None) -> timedelta:
    """The pause before attempt ``attempts + 1``: RETRY_BACKOFF doubled per attempt, capped."""
    base = conf.retry_backoff()
    cap = conf.retry_backoff_max()
    seconds = min(base * 2 ** max(attempts - 1, 0), cap)
    retry_after = getattr(error, "retry_after", None)
    if retry_after:
        seconds = max(seconds, float(retry_after))
    return timedelta(seconds=seconds)
