"""The pictures of the campaign admin: progress bars and a chart of deliveries over time.

Both are drawn on the server (HTML and inline SVG) from a few grouped queries, so a campaign
of any size costs the same to draw and the page needs no JavaScript.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import CharField, Count, F, Max, Min, Q
from django.db.models.functions import Cast, Substr
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from .models import Campaign
from .status import FAILURE_STATUSES, Status

#: The bands of a progress bar, in drawing order: key, label, statuses it sums.
BANDS: list[tuple[str, Promise, tuple[str, ...]]] = [
    ("delivered", _("delivered"), (Status.DELIVERED,)),
    (
        "failed",
        _("failed"),
        (Status.UNDELIVERED, Status.EXPIRED, Status.REJECTED, Status.FAILED),
    ),
    ("unknown", _("unknown"), (Status.UNKNOWN,)),
    ("cancelled", _("cancelled"), (Status.CANCELLED,)),
    ("sent", _("sent"), (Status.SENT,)),
    ("queued", _("queued"), (Status.QUEUED, Status.SENDING)),
]

CHART_WIDTH = 640
CHART_HEIGHT = 160

# Bucket sizes by the length of the campaign, so a chart keeps at most a few hundred points:
# the characters of "YYYY-MM-DD HH:MM:SS" a bucket keeps (seconds, minutes, hours, days).
_BUCKETS = [
    (timedelta(minutes=3), 19),
    (timedelta(hours=3), 16),
    (timedelta(days=7), 13),
]
_DAYS = 10
_EPOCH_TEXT = "0000-01-01 00:00:00"


@dataclass(frozen=True)
class Band:
    """One coloured stretch of a progress bar."""

    key: str
    label: str
    count: int
    percent: float


@dataclass(frozen=True)
class Progress:
    """How far a campaign has got: every band, and the share of messages that are final."""

    total: int
    final: int
    bands: list[Band]

    @property
    def percent(self) -> int:
        """Whole percent of messages that are final; 100 only when every one is."""
        return self.final * 100 // self.total if self.total else 0

    @property
    def visible_bands(self) -> list[Band]:
        return [band for band in self.bands if band.count]


def progress(counts: Mapping[str, int]) -> Progress:
    """A :class:`Progress` from messages per status (as ``Campaign.status_counts`` gives)."""
    total = sum(counts.values())
    bands = []
    for key, label, statuses in BANDS:
        count = sum(counts.get(status, 0) for status in statuses)
        share = round(count * 100 / total, 2) if total else 0.0
        bands.append(Band(key, str(label), count, share))
    pending = sum(band.count for band in bands if band.key in ("sent", "queued"))
    return Progress(total=total, final=total - pending, bands=bands)


def counts_from_annotation(campaign: Campaign) -> dict[str, int]:
    """Messages per status from the ``count_<status>`` attributes of ``with_status_counts``."""
    return {status: getattr(campaign, f"count_{status}", 0) or 0 for status in Status.values}


@dataclass(frozen=True)
class DeliveryChart:
    """Messages sent, delivered and failed over time, summed up, scaled to the campaign.

    The ``*_path`` and ``*_line`` values are SVG path data in a box of ``width`` x ``height``:
    failed stacked on delivered as areas, and the sent messages as a line above them.
    """

    start: datetime
    end: datetime
    total: int
    sent: int
    delivered: int
    failed: int
    width: int
    height: int
    delivered_path: str
    failed_path: str
    delivered_line: str
    sent_line: str
    ticks: list[tuple[float, int]]

    @property
    def same_day(self) -> bool:
        return timezone.localtime(self.start).date() == timezone.localtime(self.end).date()


def delivery_chart(
    campaign: Campaign, total: int, *, now: datetime | None = None
) -> DeliveryChart | None:
    """The chart of ``campaign`` (``total`` messages), or None before the first final report.

    Three queries, whatever the campaign's size: its time span, then final messages and sent
    messages counted per time bucket.
    """
    if not total:
        return None
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
    if campaign.state in (Campaign.State.RUNNING, Campaign.State.SCHEDULED):
        # Still going: the chart runs up to now, so a pause in deliveries shows as flat.
        end = max(end, now or timezone.now())
    end = max(end, start + timedelta(seconds=1))
    length = next((length for limit, length in _BUCKETS if end - start <= limit), _DAYS)
    finals = (
        campaign.messages.filter(finished_at__isnull=False)
        .exclude(status=Status.CANCELLED)
        .order_by()
        .values(bucket=_bucket("finished_at", length))
        .annotate(
            delivered=Count("pk", filter=Q(status=Status.DELIVERED)),
            failed=Count("pk", filter=Q(status__in=FAILURE_STATUSES)),
        )
        .order_by("bucket")
    )
    sends = (
        campaign.messages.filter(sent_at__isnull=False)
        .order_by()
        .values(bucket=_bucket("sent_at", length))
        .annotate(sent=Count("pk"))
        .order_by("bucket")
    )
    width, height = CHART_WIDTH, CHART_HEIGHT
    seconds = (end - start).total_seconds()

    def x_of(moment: datetime) -> float:
        return round(max(0.0, min(1.0, (moment - start).total_seconds() / seconds)) * width, 1)

    def y_of(count: int) -> float:
        return round(height - count * height / total, 1)

    # Messages of a bucket became final (or were sent) during it: each step rises at its start.
    delivered_points = [(0.0, float(height))]
    failed_points = [(0.0, float(height))]
    delivered = failed = 0
    for row in finals:
        delivered += row["delivered"]
        failed += row["failed"]
        x = x_of(_moment(row["bucket"]))
        delivered_points.append((x, y_of(delivered)))
        failed_points.append((x, y_of(delivered + failed)))
    sent_points = [(0.0, float(height))]
    sent = 0
    for row in sends:
        sent += row["sent"]
        sent_points.append((x_of(_moment(row["bucket"])), y_of(sent)))
    return DeliveryChart(
        start=start,
        end=end,
        total=total,
        sent=sent,
        delivered=delivered,
        failed=failed,
        width=width,
        height=height,
        delivered_path=_area(delivered_points, width, height),
        failed_path=_area(failed_points, width, height),
        delivered_line=_steps(delivered_points, width),
        sent_line=_steps(sent_points, width),
        ticks=[(y_of(count), count) for count in _ticks(total)],
    )


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


def _ticks(total: int) -> list[int]:
    """Round numbers up the y axis, ending with ``total`` (the campaign's size)."""
    magnitude = 1
    while True:
        step = next((n * magnitude for n in (1, 2, 5) if total / (n * magnitude) <= 5), 0)
        if step:
            break
        magnitude *= 10
    ticks = list(range(step, total, step))
    # A round tick just under the top would print over the total's label.
    if ticks and total - ticks[-1] < step / 2:
        ticks.pop()
    return [*ticks, total]


def _steps(points: list[tuple[float, float]], width: int) -> str:
    """SVG path data of a step line through ``points``, held level to the right edge."""
    x, y = points[0]
    data = [f"M{x},{y}"]
    for x, new_y in points[1:]:
        data.append(f"H{x}V{new_y}")
        y = new_y
    data.append(f"H{width}")
    return "".join(data)


def _area(points: list[tuple[float, float]], width: int, height: int) -> str:
    """SVG path data of the area under the step line through ``points``."""
    return f"{_steps(points, width)}V{height}H0Z"
