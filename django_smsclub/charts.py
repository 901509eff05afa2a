"""The pictures of the campaign admin: progress bars, a chart of deliveries over time, and
bars of delivery by operator.

All are drawn on the server (HTML and inline SVG) from a few grouped queries, so a campaign
of any size costs the same to draw and the page needs no JavaScript.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import formats, timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from . import selectors
from .models import Campaign
from .reports import OperatorStats
from .status import Status

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
    # Accepted by the provider, its delivery report still to come: progress of its own.
    ("sent", _("sent, awaiting report"), (Status.SENT,)),
    # Claimed by a worker, in a request to the provider now.
    ("sending", _("sending"), (Status.SENDING,)),
    ("queued", _("queued"), (Status.QUEUED,)),
]
#: Bands whose messages are not final yet.
PENDING_BANDS = ("sent", "sending", "queued")

CHART_WIDTH = 640
CHART_HEIGHT = 160

# Bucket sizes by the length of the campaign, so a chart keeps at most a few hundred points.
_BUCKETS = [
    (timedelta(minutes=3), "second"),
    (timedelta(hours=3), "minute"),
    (timedelta(days=7), "hour"),
]


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
    def awaiting_report(self) -> int:
        """Messages the provider accepted whose delivery report is still to come."""
        return next((band.count for band in self.bands if band.key == "sent"), 0)

    @property
    def handed_over_percent(self) -> int:
        """Whole percent of messages final or accepted by the provider: how far sending got
        while the reports are still to come (a campaign all sent and unreported is 0 %
        final, but 100 % handed over)."""
        done = self.final + self.awaiting_report
        return done * 100 // self.total if self.total else 0

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
    pending = sum(band.count for band in bands if band.key in PENDING_BANDS)
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
    messages counted per time bucket (see :mod:`django_smsclub.selectors`).
    """
    if not total:
        return None
    span = selectors.delivery_span(campaign)
    if span is None:
        return None
    start, end = span
    if campaign.state in (Campaign.State.RUNNING, Campaign.State.SCHEDULED):
        # Still going: the chart runs up to now, so a pause in deliveries shows as flat.
        end = max(end, now or timezone.now())
    end = max(end, start + timedelta(seconds=1))
    bucket = next((unit for limit, unit in _BUCKETS if end - start <= limit), "day")
    finals = selectors.finished_over_time(campaign, bucket)
    sends = selectors.sent_over_time(campaign, bucket)
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
    for moment, delivered_then, failed_then in finals:
        delivered += delivered_then
        failed += failed_then
        x = x_of(moment)
        delivered_points.append((x, y_of(delivered)))
        failed_points.append((x, y_of(delivered + failed)))
    sent_points = [(0.0, float(height))]
    sent = 0
    for moment, sent_then in sends:
        sent += sent_then
        sent_points.append((x_of(moment), y_of(sent)))
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


#: The bar chart of delivery by operator: a row per operator that has messages.
OPERATOR_ROW_HEIGHT = 24
OPERATOR_BAR_HEIGHT = 14


@dataclass(frozen=True)
class OperatorBar:
    """One operator's row: its messages as a bar, delivered and failed stretches in it (the
    rest is on its way or cancelled), all scaled to the operator with the most messages."""

    operator: str
    label: str
    y: float
    width: float
    delivered_width: float
    failed_width: float
    messages: int
    delivered: int
    failed: int
    delivery_percent: float | None


@dataclass(frozen=True)
class OperatorChart:
    width: int
    height: int
    bar_height: int
    bars: list[OperatorBar]


def operator_chart(stats: Sequence[OperatorStats]) -> OperatorChart | None:
    """The bars of ``stats`` (as :mod:`django_smsclub.reports` gives them); None without a
    message. Drawn from the figures alone: no query."""
    shown = [row for row in stats if row.messages]
    if not shown:
        return None
    most = max(row.messages for row in shown)
    width = CHART_WIDTH

    def scaled(count: int) -> float:
        return round(count * width / most, 1)

    bars = [
        OperatorBar(
            operator=row.operator,
            label=row.label,
            y=index * OPERATOR_ROW_HEIGHT,
            width=scaled(row.messages),
            delivered_width=scaled(row.delivered),
            failed_width=scaled(row.failed),
            messages=row.messages,
            delivered=row.delivered,
            failed=row.failed,
            delivery_percent=row.delivery_percent,
        )
        for index, row in enumerate(shown)
    ]
    return OperatorChart(
        width=width,
        height=len(bars) * OPERATOR_ROW_HEIGHT,
        bar_height=OPERATOR_BAR_HEIGHT,
        bars=bars,
    )


def duration_text(value: timedelta | None) -> str:
    """A time to deliver as people read it: "4.2 s", "3 min 05 s", "2 h 10 min"; "—" for
    none."""
    if value is None:
        return "—"
    seconds = value.total_seconds()
    if seconds < 60:
        return _("%(seconds)s s") % {"seconds": formats.number_format(round(seconds, 1), 1)}
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return _("%(minutes)d min %(seconds)02d s") % {"minutes": minutes, "seconds": seconds}
    hours, minutes = divmod(minutes, 60)
    return _("%(hours)d h %(minutes)02d min") % {"hours": hours, "minutes": minutes}
