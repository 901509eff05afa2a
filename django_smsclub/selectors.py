"""Read-only queries the tasks, admin and API share: which gateways have work due, what a
campaign costs and how it went, the reports still pending, deliveries over time.

Selectors only read; the services change state. Counting messages per status is
:meth:`django_smsclub.models.MessageQuerySet.status_counts` (behind
:meth:`~django_smsclub.models.Campaign.status_counts`), and ``Campaign.objects
.with_status_counts()`` for a list of campaigns; the selectors here that count per status
agree with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import CharField, Count, F, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import Cast, Substr
from django.utils import timezone

from . import conf
from .gateways import get_gateway
from .models import Campaign, DeliveryReport, Message
from .status import FAILURE_STATUSES, Status


def has_due_messages(gateway_name: str, *, more_urgent_than: int | None = None) -> bool:
    """Whether ``gateway_name`` has queued messages due now (only those with a priority
    below ``more_urgent_than``, if given): one probe of the claim index."""
    due = Message.objects.filter(
        gateway=gateway_name, status=Status.QUEUED, next_attempt_at__lte=timezone.now()
    )
    if more_urgent_than is not None:
        due = due.filter(priority__lt=more_urgent_than)
    return due.exists()


def next_poll_at(gateway_name: str) -> datetime | None:
    """When the next report of ``gateway_name`` still waiting for a final word is due."""
    return (
        DeliveryReport.objects.filter(gateway=gateway_name, status=Status.SENT)
        .order_by("next_poll_at")
        .values_list("next_poll_at", flat=True)
        .first()
    )


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
class PartsSummary:
    """A campaign's messages and their SMS parts: fewest and most in one message, and in all
    (what a draft will cost)."""

    messages: int
    parts_min: int
    parts_max: int
    parts_total: int


def parts_summary(campaign: Campaign) -> PartsSummary:
    """The :class:`PartsSummary` of ``campaign``, in one query whatever its size."""
    totals = campaign.messages.aggregate(
        messages=Count("pk"), parts_min=Min("parts"), parts_max=Max("parts"), parts=Sum("parts")
    )
    return PartsSummary(
        messages=totals["messages"],
        parts_min=totals["parts_min"] or 0,
        parts_max=totals["parts_max"] or 0,
        parts_total=totals["parts"] or 0,
    )


def campaign_stats(campaign: Campaign) -> dict[str, Any]:
    """Messages and parts per status, parts paid for and to pay for, in one grouped query.

    ``counts`` is what :meth:`Campaign.status_counts` gives; parts are counted beside them.
    """
    counts = dict.fromkeys(Status.values, 0)
    parts = dict.fromkeys(Status.values, 0)
    spent = 0
    rows = (
        campaign.messages.order_by()
        .values("status")
        .annotate(
            messages=Count("pk"),
            part_count=Sum("parts"),
            # Accepted by the provider (sent_at is set then): those parts are paid for.
            spent=Sum("parts", filter=Q(sent_at__isnull=False)),
        )
    )
    for row in rows:
        counts[row["status"]] = row["messages"]
        parts[row["status"]] = row["part_count"] or 0
        spent += row["spent"] or 0
    pending = parts[Status.QUEUED] + parts[Status.SENDING]
    return {
        "campaign": campaign.pk,
        "state": campaign.state,
        "total": sum(counts.values()),
        "counts": counts,
        "parts": parts,
        "parts_total": sum(parts.values()),
        "spent_parts": spent,
        "cost_parts": spent + pending,
    }


def pending_reports(campaign: Campaign) -> QuerySet[DeliveryReport]:
    """The reports of ``campaign``'s parts still waiting for a final word, due or not."""
    return DeliveryReport.objects.filter(message__campaign=campaign, status=Status.SENT)


#: The bucket sizes of :func:`finished_over_time` and :func:`sent_over_time`: the characters
#: of "YYYY-MM-DD HH:MM:SS" a bucket keeps.
BUCKET_CHARS = {"second": 19, "minute": 16, "hour": 13, "day": 10}
_EPOCH_TEXT = "0000-01-01 00:00:00"


def delivery_span(campaign: Campaign) -> tuple[datetime, datetime] | None:
    """When ``campaign``'s messages were first and last sent or finished (cancelled ones
    aside); None before the first final one."""
    span = campaign.messages.aggregate(
        first_sent=Min("sent_at"),
        first_final=Min("finished_at", filter=~Q(status=Status.CANCELLED)),
        last_final=Max("finished_at", filter=~Q(status=Status.CANCELLED)),
        last_sent=Max("sent_at"),
    )
    if span["first_final"] is None:
        return None
    start = min(filter(None, [span["first_sent"], span["first_final"]]))
    end = max(filter(None, [span["last_final"], span["last_sent"]]))
    return start, end


def finished_over_time(campaign: Campaign, bucket: str) -> list[tuple[datetime, int, int]]:
    """(start of the bucket, delivered, failed) for each ``bucket`` (a key of
    :data:`BUCKET_CHARS`) in which messages of ``campaign`` became final, in order."""
    rows = (
        campaign.messages.filter(finished_at__isnull=False)
        .exclude(status=Status.CANCELLED)
        .order_by()
        .values(bucket=_bucket("finished_at", BUCKET_CHARS[bucket]))
        .annotate(
            delivered=Count("pk", filter=Q(status=Status.DELIVERED)),
            failed=Count("pk", filter=Q(status__in=FAILURE_STATUSES)),
        )
        .order_by("bucket")
    )
    return [(_moment(row["bucket"]), row["delivered"], row["failed"]) for row in rows]


def sent_over_time(campaign: Campaign, bucket: str) -> list[tuple[datetime, int]]:
    """(start of the bucket, sent) for each ``bucket`` in which messages of ``campaign`` were
    sent, in order."""
    rows = (
        campaign.messages.filter(sent_at__isnull=False)
        .order_by()
        .values(bucket=_bucket("sent_at", BUCKET_CHARS[bucket]))
        .annotate(sent=Count("pk"))
        .order_by("bucket")
    )
    return [(_moment(row["bucket"]), row["sent"]) for row in rows]


def _bucket(field: str, length: int) -> Substr:
    """The first ``length`` characters of a timestamp as text, in UTC.

    Not ``Trunc``: SQLite runs that as a Python function per row (a second for 100,000
    messages), while a cast and a substring are native on SQLite, PostgreSQL and MySQL, which
    all give the text of a timestamp in UTC as "YYYY-MM-DD HH:MM:SS...".
    """
    return Substr(Cast(F(field), CharField()), 1, length)


def _moment(bucket: str) -> datetime:
    """The UTC moment a bucket of :func:`_bucket` starts at."""
    return datetime.fromisoformat(bucket + _EPOCH_TEXT[len(bucket) :]).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Backlog:
    """What a gateway has not done yet: messages waiting to be sent, and reports waiting to
    be polled (for metrics at scrape time)."""

    gateway: str
    queued: int = 0
    sending: int = 0
    #: When the longest-waiting due message became due (None: nothing is due).
    oldest_due_message: datetime | None = None
    #: When the most overdue report of a message still ``sent`` was due to be polled.
    oldest_due_report: datetime | None = None


def backlogs() -> list[Backlog]:
    """The backlog of every gateway with one, in three grouped queries over the partial
    indexes of queued and sending messages and of pending reports, whatever the table's size
    in final rows."""
    now = timezone.now()
    found: dict[str, dict[str, Any]] = {}
    queued = (
        Message.objects.filter(status=Status.QUEUED)
        .order_by()
        .values("gateway")
        .annotate(n=Count("pk"), oldest=Min("next_attempt_at", filter=Q(next_attempt_at__lte=now)))
    )
    for row in queued:
        found.setdefault(row["gateway"], {}).update(
            queued=row["n"], oldest_due_message=row["oldest"]
        )
    sending = (
        Message.objects.filter(status=Status.SENDING)
        .order_by()
        .values("gateway")
        .annotate(n=Count("pk"))
    )
    for row in sending:
        found.setdefault(row["gateway"], {})["sending"] = row["n"]
    reports = (
        DeliveryReport.objects.filter(status=Status.SENT, next_poll_at__lte=now)
        .order_by()
        .values("gateway")
        .annotate(oldest=Min("next_poll_at"))
    )
    for row in reports:
        found.setdefault(row["gateway"], {})["oldest_due_report"] = row["oldest"]
    return [Backlog(gateway, **values) for gateway, values in sorted(found.items())]
