"""Status webhooks: events recorded as deliveries owed to endpoints, and the endpoints of
``SMSCLUB["WEBHOOKS"]`` kept in step. Delivering is :mod:`.webhook_delivery` (its public names
are here too).

Recording never makes a request. :func:`record_message_events` runs inside the transaction that
moves the messages (so an event exists exactly when its status change committed: nothing is
lost between a commit and a crash) and inserts one row per event and subscribed endpoint, in
one ``INSERT`` per batch of transitions. After commit it asks for a delivery task
(:data:`~django_smsclub.signals.webhooks_requested`).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    IntegrityError,
    connections,
    router,
    transaction,
)
from django.db.models import Q
from django.utils import timezone

from .. import conf
from ..exceptions import ConfigurationError
from ..models import Campaign, Message, WebhookDelivery, WebhookEndpoint
from ..status import FINAL_STATUSES, Status
from ..webhooks import CAMPAIGN_DONE, MESSAGE_FINAL
from .rows import _copies, with_row_locks
from .webhook_delivery import (
    BEHIND,
    CLAIM_LEASE,
    CLAIM_SIZE,
    attempt,
    body,
    claim_due,
    deliver_due,
    due_deliveries,
    enable_endpoint,
    enabled_endpoints,
    envelope,
    request_delivery,
    retry_delay,
    retry_deliveries,
    send_claimed,
    send_test_event,
    timestamp,
)

if TYPE_CHECKING:
    from .transitions import Transition

__all__ = [
    "BEHIND",
    "CLAIM_LEASE",
    "CLAIM_SIZE",
    "INSERT_CHUNK",
    "SyncResult",
    "attempt",
    "body",
    "campaign_data",
    "claim_due",
    "deliver_due",
    "due_deliveries",
    "enable_endpoint",
    "envelope",
    "message_data",
    "record_campaign_events",
    "record_message_events",
    "retry_delay",
    "retry_deliveries",
    "send_claimed",
    "send_test_event",
    "sync_endpoints",
    "sync_endpoints_quietly",
]

logger = logging.getLogger("django_smsclub")

INSERT_CHUNK = 1000


def record_message_events(transitions: Iterable[Transition]) -> int:
    """Owe a ``message.final`` event to each subscribed endpoint for every transition that
    ends a message; return the deliveries recorded. Call it in the transaction that moved them.

    A message corrected from ``unknown`` to its real final status gets a second event, with
    ``"correction": true``.
    """
    finished = [t for t in transitions if t.new_status in FINAL_STATUSES]
    if not finished:
        return 0
    endpoints = _subscribed(MESSAGE_FINAL)
    if not endpoints:
        return 0
    now = timezone.now()
    _load_fields([t.message for t in finished])
    rows: list[tuple[int, _Event]] = []
    for transition in finished:
        message = transition.message
        event_id = uuid.uuid4()
        correction = transition.finished_before
        occurred = now if correction else (message.finished_at or now)
        payload = envelope(
            MESSAGE_FINAL,
            event_id,
            occurred,
            {
                "message": message_data(message),
                "previous_status": transition.old_status,
                "correction": correction,
            },
        )
        event = _Event(event_id, MESSAGE_FINAL, message.pk, message.campaign_id, payload)
        rows.extend((pk, event) for pk in endpoints)
    _store(rows, now)
    request_delivery()
    return len(rows)


def record_campaign_events(campaigns: Sequence[Campaign]) -> int:
    """Owe a ``campaign.done`` event to each subscribed endpoint for every campaign of
    ``campaigns`` (just done); return the deliveries recorded. Call it in the transaction that
    made them done."""
    if not campaigns:
        return 0
    endpoints = _subscribed(CAMPAIGN_DONE)
    if not endpoints:
        return 0
    now = timezone.now()
    counted = {
        c.pk: c
        for c in Campaign.objects.filter(pk__in=[c.pk for c in campaigns]).with_status_counts()
    }
    rows: list[tuple[int, _Event]] = []
    for campaign in campaigns:
        event_id = uuid.uuid4()
        payload = envelope(
            CAMPAIGN_DONE, event_id, now, {"campaign": campaign_data(counted.get(campaign.pk))}
        )
        event = _Event(event_id, CAMPAIGN_DONE, None, campaign.pk, payload)
        rows.extend((pk, event) for pk in endpoints)
    _store(rows, now)
    request_delivery()
    return len(rows)


def message_data(message: Message) -> dict[str, Any]:
    """What an event tells about a message (not its text, which may hold a code)."""
    return {
        "id": message.pk,
        "recipient": message.recipient,
        "status": message.status,
        "error": message.error,
        "sender": message.sender,
        "gateway": message.gateway,
        "operator": message.operator,
        "parts": message.parts,
        "campaign_id": message.campaign_id,
        "retry_of_id": message.retry_of_id,
        "metadata": message.metadata,
        "created_at": timestamp(message.created_at),
        "sent_at": timestamp(message.sent_at),
        "finished_at": timestamp(message.finished_at),
    }


def campaign_data(campaign: Campaign | None) -> dict[str, Any]:
    """What a ``campaign.done`` event tells: the campaign and its messages per status."""
    if campaign is None:
        return {}
    counts = {status: getattr(campaign, f"count_{status}", 0) for status in Status.values}
    return {
        "id": campaign.pk,
        "name": campaign.name,
        "state": campaign.state,
        "sender": campaign.sender,
        "gateway": campaign.gateway,
        "created_at": timestamp(campaign.created_at),
        "done_at": timestamp(campaign.updated_at),
        "messages": getattr(campaign, "count_total", 0),
        "statuses": {status: count for status, count in counts.items() if count},
    }


@dataclass(frozen=True)
class SyncResult:
    """What :func:`sync_endpoints` changed, by endpoint name."""

    created: list[str]
    updated: list[str]
    removed: list[str]
    invalid: list[str]


def sync_endpoints() -> SyncResult:
    """Bring the endpoints marked ``from_settings`` in step with ``SMSCLUB["WEBHOOKS"]``.

    An entry becomes (or updates) the endpoint of its name, taking over one made in the admin;
    a changed URL forgets its failures and enables it. An endpoint whose entry is gone is
    turned off and left to the admin (with its log). An invalid entry is skipped and logged
    (``manage.py check`` names its problems); its endpoint keeps what it had.
    """
    configured = conf.webhook_endpoints()
    valid: dict[str, dict[str, Any]] = {}
    invalid = []
    for name, entry in configured.items():
        problems = conf.webhook_problems(name, entry)
        if problems:
            logger.error("webhook endpoint %r is not synced: %s", name, "; ".join(problems))
            invalid.append(str(name))
        else:
            valid[name] = entry
    result = SyncResult([], [], [], invalid)
    with transaction.atomic(using=router.db_for_write(WebhookEndpoint)):
        existing = {
            e.name: e
            for e in with_row_locks(
                WebhookEndpoint.objects.filter(Q(from_settings=True) | Q(name__in=list(valid)))
            )
        }
        for name, entry in valid.items():
            wanted = {"url": entry["URL"], "secret": entry["SECRET"], "events": entry["EVENTS"]}
            row = existing.get(name)
            if row is None:
                try:
                    with transaction.atomic(using=router.db_for_write(WebhookEndpoint)):
                        WebhookEndpoint.objects.create(name=name, from_settings=True, **wanted)
                except IntegrityError:
                    continue  # another process synced it at the same moment
                result.created.append(name)
                continue
            changes = {key: value for key, value in wanted.items() if getattr(row, key) != value}
            if not row.from_settings:
                changes.update(from_settings=True, is_active=True)
            if "url" in changes:
                changes.update(consecutive_failures=0, disabled_at=None, disabled_reason="")
            if changes:
                WebhookEndpoint.objects.filter(pk=row.pk).update(**changes)
                result.updated.append(name)
        for name, row in existing.items():
            if row.from_settings and name not in configured:
                WebhookEndpoint.objects.filter(pk=row.pk).update(
                    from_settings=False, is_active=False
                )
                result.removed.append(name)
    return result


def sync_endpoints_quietly(**kwargs: Any) -> None:
    """:func:`sync_endpoints` for ``post_migrate``: a bad setting is logged, never raised (the
    migration succeeded; ``manage.py check`` reports it), and so is a database without the
    endpoints' table (migrated back before it). A ``flush`` is not a migration."""
    if kwargs.get("plan") is None:
        return
    if kwargs.get("using", DEFAULT_DB_ALIAS) != router.db_for_write(WebhookEndpoint):
        return
    try:
        sync_endpoints()
    except (ConfigurationError, DatabaseError) as exc:
        logger.error("webhook endpoints are not synced: %s", exc)


def _subscribed(event: str) -> list[int]:
    """The enabled endpoints that chose ``event``, by pk."""
    return [
        pk
        for pk, events in enabled_endpoints().values_list("pk", "events")
        if isinstance(events, list) and event in events
    ]


def _load_fields(messages: Sequence[Message]) -> None:
    """Load in one query the fields an event needs that some ``messages`` deferred."""
    needed = {"recipient", "status", "error", "sender", "gateway", "operator", "parts", "metadata"}
    deferred = [m for m in messages if needed & m.get_deferred_fields()]
    if not deferred:
        return
    fresh = Message.objects.in_bulk([m.pk for m in deferred])
    for message in deferred:
        loaded = fresh.get(message.pk)
        if loaded is None:
            continue
        for name in message.get_deferred_fields():
            setattr(message, name, getattr(loaded, name))


@dataclass
class _Event:
    """One event, to be owed to each endpoint that chose it."""

    event_id: uuid.UUID
    name: str
    message_id: int | None
    campaign_id: int | None
    payload: dict[str, Any]
    #: ``payload`` as JSON text, made once for all its endpoints.
    text: str = ""


#: The columns :func:`_store` writes; the others are NULL (claimed_at, delivered_at, ...).
_COLUMNS = (
    "endpoint",
    "event_id",
    "event",
    "message",
    "campaign",
    "payload",
    "status",
    "attempts",
    "last_error",
    "next_attempt_at",
    "created_at",
)


def _store(rows: Sequence[tuple[int, _Event]], now: datetime) -> None:
    """Insert one pending delivery per (endpoint pk, event), due ``now``.

    On PostgreSQL through psycopg 3 with one ``COPY`` (each payload dumped to JSON once):
    ``bulk_create`` would pass every payload through an array parameter, escaping each one
    character by character, at several times the cost. Elsewhere with ``bulk_create``.
    """
    using = router.db_for_write(WebhookDelivery)
    connection = connections[using]
    if not _copies(connection):
        deliveries = [
            WebhookDelivery(
                endpoint_id=pk,
                event_id=e.event_id,
                event=e.name,
                message_id=e.message_id,
                campaign_id=e.campaign_id,
                payload=e.payload,
                next_attempt_at=now,
                created_at=now,
            )
            for pk, e in rows
        ]
        WebhookDelivery.objects.using(using).bulk_create(deliveries, batch_size=INSERT_CHUNK)
        return
    meta = WebhookDelivery._meta
    qn = connection.ops.quote_name
    fields = {f.name: f.column for f in meta.concrete_fields}
    columns = ", ".join(qn(fields[name]) for name in _COLUMNS)
    sql = f"COPY {qn(meta.db_table)} ({columns}) FROM STDIN"
    started = time.monotonic()
    pending = WebhookDelivery.Status.PENDING.value
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for pk, e in rows:
            if not e.text:
                e.text = json.dumps(e.payload, cls=DjangoJSONEncoder, ensure_ascii=False)
            copy.write_row(
                (
                    pk,
                    e.event_id,
                    e.name,
                    e.message_id,
                    e.campaign_id,
                    e.text,
                    pending,
                    0,
                    "",
                    now,
                    now,
                )
            )
    if connection.queries_logged:
        # COPY goes past Django's cursor wrapper: log it as that would (for debugging, counts).
        connection.queries_log.append(
            {"sql": f"{sql} -- {len(rows)} rows", "time": f"{time.monotonic() - started:.3f}"}
        )
