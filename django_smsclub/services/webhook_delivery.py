"""Delivering webhook events: claim the due deliveries, POST each one signed, record what came
of it; back off, give up, disable and re-enable.

Deliveries are claimed with ``SKIP LOCKED``, at most :data:`CLAIM_SIZE` at a time, and sent one
by one (:mod:`django_smsclub.webhooks.sender`):

- a 2xx reply delivers one; anything else (another status, a timeout, a refused connection) is
  tried again after ``WEBHOOK_RETRY_BACKOFF`` seconds, doubled for each failure in a row of the
  delivery or of its endpoint, up to ``WEBHOOK_RETRY_BACKOFF_MAX``;
- an endpoint that fails is not hammered: its other due deliveries wait for the same retry
  time (the one that failed a second behind them, so one refused event holds back no other),
  and the rest of the claimed batch for it is released untried;
- after ``WEBHOOK_DISABLE_AFTER`` failed attempts in a row the endpoint is disabled with the
  reason; its pending deliveries stay, and :func:`enable_endpoint` resumes them;
- a delivery is given up (``failed``) after ``WEBHOOK_MAX_ATTEMPTS`` attempts if its endpoint
  took other events meanwhile; while the whole endpoint fails, it waits for the endpoint;
- per endpoint and message, a delivery is not sent while an earlier one is pending.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import router, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from .. import conf, signals
from ..models import WebhookDelivery, WebhookEndpoint
from ..webhooks import TEST_EVENT, sender
from .rows import claim_rows, with_row_locks

logger = logging.getLogger("django_smsclub")

#: Deliveries one claim takes; they are sent one after another.
CLAIM_SIZE = 50
#: Seconds a claim holds its deliveries: a worker that dies mid-batch leaves them due again
#: after this. A worker stops sending from a batch in time to stay inside it.

CLAIM_LEASE = 300
#: How far behind its endpoint's other waiting deliveries a failed one is tried again.

BEHIND = timedelta(seconds=1)
#: Rows per INSERT when events are recorded.

Pending = WebhookDelivery.Status.PENDING


def deliver_due(*, time_budget: float | None = None) -> int:
    """Deliver the due deliveries, batch after batch, until none is due or ``time_budget``
    seconds have passed; return the attempts made."""
    started = time.monotonic()
    made = 0
    while True:
        batch = claim_due(CLAIM_SIZE)
        if not batch:
            return made
        made += send_claimed(batch)
        if time_budget is not None and time.monotonic() - started >= time_budget:
            return made


def due_deliveries(now: datetime | None = None) -> QuerySet[WebhookDelivery]:
    """Pending deliveries whose time came, to endpoints that are on, not claimed by a live
    worker, and with no earlier delivery pending for the same endpoint and message."""
    now = now or timezone.now()
    earlier = WebhookDelivery.objects.filter(
        endpoint=OuterRef("endpoint"),
        message=OuterRef("message"),
        status=Pending,
        pk__lt=OuterRef("pk"),
    )
    return WebhookDelivery.objects.filter(
        Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - timedelta(seconds=CLAIM_LEASE)),
        ~Exists(earlier),
        status=Pending,
        next_attempt_at__lte=now,
        # A subquery, not a join: a claim locks delivery rows only, never the endpoint's.
        endpoint__in=enabled_endpoints().values("pk"),
    )


def claim_due(limit: int = CLAIM_SIZE) -> list[WebhookDelivery]:
    """Take up to ``limit`` due deliveries, oldest first, for this worker alone."""
    now = timezone.now()
    return claim_rows(due_deliveries(now), ("next_attempt_at", "pk"), limit, claimed_at=now)


def send_claimed(batch: Sequence[WebhookDelivery]) -> int:
    """Send the claimed ``batch`` one by one and record each outcome; return the attempts.

    Deliveries of an endpoint that failed (or was turned off) meanwhile are released untried,
    and so is the rest of the batch when the claim's lease is nearly over.
    """
    timeout = conf.webhook_timeout()
    endpoints = WebhookEndpoint.objects.in_bulk({d.endpoint_id for d in batch})
    started = time.monotonic()
    failed: set[int] = set()
    made = 0
    for index, delivery in enumerate(batch):
        endpoint = endpoints.get(delivery.endpoint_id)
        if delivery.endpoint_id in failed:
            continue  # released when its endpoint failed
        if endpoint is None or not _is_enabled(endpoint):
            _release([delivery])
            continue
        if time.monotonic() - started > CLAIM_LEASE - 2 * timeout - 5:
            _release(batch[index:])
            break
        reply = attempt(delivery, endpoint, timeout=timeout)
        made += 1
        if reply.ok:
            _record_success(delivery, endpoint, reply)
        else:
            _record_failure(delivery, endpoint, reply, batch)
            failed.add(endpoint.pk)
    return made


def attempt(
    delivery: WebhookDelivery, endpoint: WebhookEndpoint, *, timeout: float | None = None
) -> sender.Reply:
    """POST ``delivery`` to ``endpoint`` once; record nothing."""
    return sender.post(
        endpoint.url,
        body(delivery.payload),
        secret=endpoint.secret,
        event=delivery.event,
        event_id=str(delivery.event_id),
        attempt=delivery.attempts + 1,
        timeout=conf.webhook_timeout() if timeout is None else timeout,
    )


def body(payload: dict[str, Any]) -> bytes:
    """The request body of a stored payload: compact JSON, keys sorted, UTF-8."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def retry_delay(failures: int) -> float:
    """Seconds before the next attempt after ``failures`` failures in a row (at least 1)."""
    base, ceiling = conf.webhook_retry_backoff(), conf.webhook_retry_backoff_max()
    return float(min(ceiling, base * 2 ** min(max(failures, 1) - 1, 40)))


def send_test_event(endpoint: WebhookEndpoint) -> tuple[WebhookDelivery, sender.Reply]:
    """Send a ``webhook.test`` event to ``endpoint`` now, whether it is on or not, and log it
    as a delivery: tried once, never again, and counted for nothing."""
    now = timezone.now()
    event_id = uuid.uuid4()
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        event_id=event_id,
        event=TEST_EVENT,
        payload=envelope(TEST_EVENT, event_id, now, {"endpoint": endpoint.name}),
        next_attempt_at=None,
        claimed_at=now,
        created_at=now,
    )
    reply = attempt(delivery, endpoint)
    _finish_test(delivery, reply)
    return delivery, reply


def enable_endpoint(endpoint: WebhookEndpoint) -> int:
    """Turn ``endpoint`` on again, with its failures forgotten; its pending deliveries are due
    now. Return how many are pending."""
    now = timezone.now()
    with transaction.atomic(using=router.db_for_write(WebhookEndpoint)):
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            is_active=True, disabled_at=None, disabled_reason="", consecutive_failures=0
        )
        pending = WebhookDelivery.objects.filter(endpoint=endpoint, status=Pending)
        pending.filter(claimed_at__isnull=True, next_attempt_at__gt=now).update(next_attempt_at=now)
        count = pending.count()
        if count:
            request_delivery()
    endpoint.refresh_from_db()
    return count


def retry_deliveries(deliveries: QuerySet[WebhookDelivery]) -> int:
    """Make the failed and pending ``deliveries`` due now (test events excepted); return how
    many. A delivery given up gets one more attempt each time."""
    now = timezone.now()
    lease = now - timedelta(seconds=CLAIM_LEASE)
    with transaction.atomic(using=router.db_for_write(WebhookDelivery)):
        retried = (
            WebhookDelivery.objects.filter(pk__in=deliveries.order_by().values("pk"))
            .filter(status__in=[Pending, WebhookDelivery.Status.FAILED])
            .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=lease))
            .exclude(event=TEST_EVENT)
            .update(status=Pending, next_attempt_at=now, claimed_at=None)
        )
        if retried:
            request_delivery()
    return retried


def envelope(
    event: str, event_id: uuid.UUID, occurred_at: datetime, data: dict[str, Any]
) -> dict[str, Any]:
    """The JSON body of an event, as stored and sent."""
    return {
        "event": event,
        "event_id": str(event_id),
        "occurred_at": timestamp(occurred_at),
        "data": data,
    }


def enabled_endpoints() -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(is_active=True, disabled_at__isnull=True)


def request_delivery(when: datetime | None = None) -> None:
    """Ask for a delivery task (at ``when``) once the surrounding transaction commits."""

    def request() -> None:
        signals.webhooks_requested.send_robust(sender=WebhookDelivery, when=when)

    transaction.on_commit(request, using=router.db_for_write(WebhookDelivery), robust=True)


def timestamp(value: datetime | None) -> str | None:
    """An aware datetime as ISO 8601 in UTC with a ``Z``, to the millisecond."""
    if value is None:
        return None
    utc = value.astimezone(UTC) if timezone.is_aware(value) else value
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_enabled(endpoint: WebhookEndpoint) -> bool:
    return endpoint.is_active and endpoint.disabled_at is None


def _record_success(
    delivery: WebhookDelivery, endpoint: WebhookEndpoint, reply: sender.Reply
) -> None:
    now = timezone.now()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.DELIVERED,
        attempts=F("attempts") + 1,
        last_status_code=reply.status_code,
        last_error="",
        delivered_at=now,
        next_attempt_at=None,
        claimed_at=None,
    )
    if endpoint.consecutive_failures:
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=0)
        endpoint.consecutive_failures = 0


def _record_failure(
    delivery: WebhookDelivery,
    endpoint: WebhookEndpoint,
    reply: sender.Reply,
    batch: Sequence[WebhookDelivery],
) -> None:
    """Count the failure; back the delivery off (or give it up) and the endpoint with it."""
    if delivery.event == TEST_EVENT:
        _finish_test(delivery, reply)
        return
    now = timezone.now()
    attempts = delivery.attempts + 1
    with transaction.atomic(using=router.db_for_write(WebhookEndpoint)):
        locked = with_row_locks(WebhookEndpoint.objects.filter(pk=endpoint.pk)).first()
        if locked is None:
            return  # deleted meanwhile, with its deliveries
        failures = locked.consecutive_failures + 1
        disables = locked.disabled_at is None and failures >= conf.webhook_disable_after()
        # Given up only while the endpoint takes other events (fewer failures in a row than
        # this delivery's attempts): while all of it fails, the delivery waits for it.
        gives_up = attempts >= conf.webhook_max_attempts() and failures < attempts
        gives_up = gives_up and not disables
        retry_at = now + timedelta(seconds=retry_delay(max(attempts, failures)))
        endpoint_changes: dict[str, Any] = {"consecutive_failures": failures}
        if disables:
            reason = f"{failures} failed attempts in a row; the last: {reply.error}"
            endpoint_changes.update(disabled_at=now, disabled_reason=reason[:255])
            logger.error(
                "webhook endpoint %r is disabled after %d failed attempts in a row (last: %s)",
                endpoint.name,
                failures,
                reply.error,
            )
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(**endpoint_changes)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=WebhookDelivery.Status.FAILED if gives_up else Pending,
            attempts=attempts,
            last_status_code=reply.status_code,
            last_error=reply.error,
            # Behind the endpoint's other waiting deliveries: the next try of the endpoint is
            # another event, so one event it refuses does not hold back the rest.
            next_attempt_at=None if gives_up else retry_at + BEHIND,
            claimed_at=None,
        )
        # The endpoint's other due deliveries wait as long (this batch's untried ones too):
        # one failing endpoint costs one attempt per retry time, not one per delivery.
        mine = [d.pk for d in batch if d.endpoint_id == endpoint.pk and d.pk != delivery.pk]
        lease = now - timedelta(seconds=CLAIM_LEASE)
        WebhookDelivery.objects.filter(
            Q(claimed_at__isnull=True) | Q(claimed_at__lt=lease) | Q(pk__in=mine),
            endpoint_id=endpoint.pk,
            status=Pending,
            next_attempt_at__lt=retry_at,
        ).exclude(pk=delivery.pk).update(next_attempt_at=retry_at, claimed_at=None)
        WebhookDelivery.objects.filter(pk__in=mine, status=Pending).update(claimed_at=None)
        if not disables:
            request_delivery(retry_at + BEHIND)  # one task for them all
    endpoint.consecutive_failures = failures


def _finish_test(delivery: WebhookDelivery, reply: sender.Reply) -> None:
    now = timezone.now()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.DELIVERED if reply.ok else WebhookDelivery.Status.FAILED,
        attempts=F("attempts") + 1,
        last_status_code=reply.status_code,
        last_error=reply.error,
        delivered_at=now if reply.ok else None,
        next_attempt_at=None,
        claimed_at=None,
    )


def _release(deliveries: Sequence[WebhookDelivery]) -> None:
    """Give claimed deliveries back untried (not counted as attempts)."""
    WebhookDelivery.objects.filter(pk__in=[d.pk for d in deliveries], status=Pending).update(
        claimed_at=None
    )
