"""Delivery by operator: read-only figures per mobile network, for a campaign or a period.

For each :class:`~django_smsclub.operators.Operator` (a message stored before operators were
recorded has none and counts as ``other``): messages, sent (accepted by the provider),
delivered, failed (a final status of :data:`~django_smsclub.status.FAILURE_STATUSES`, unknown
included), the delivery rate (delivered / sent) and how long delivery took: the 50th, 90th and
95th percentiles of ``finished_at - sent_at`` over the delivered messages, interpolated
linearly between the two nearest values (SQL's ``percentile_cont``).

On PostgreSQL all of it is one grouped query, the percentiles by ``percentile_cont``. Other
databases (SQLite) have no such aggregate: the counts are the same grouped query, and the
percentiles come from a second query that streams the delivered messages' delivery times in
order, per operator, and keeps only the values at the positions the percentiles need. Memory
stays a few values per operator whatever the count; the time is one pass over those rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connections
from django.db.models import (
    Aggregate,
    Case,
    CharField,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Q,
    QuerySet,
    Value,
    When,
)

from .models import Campaign, Message
from .operators import Operator
from .status import FAILURE_STATUSES, Status

#: The percentiles of the time to deliver, in percent.
PERCENTILES: tuple[int, ...] = (50, 90, 95)
#: Rows the percentile stream of the fallback reads from the database at a time.
STREAM_CHUNK = 2000

#: A message's operator as the figures group it: a value of Operator, "" (stored before
#: operators were recorded) as "other".
OPERATOR_GROUP = Case(
    *(When(operator=op.value, then=Value(op.value)) for op in Operator if op != Operator.OTHER),
    default=Value(Operator.OTHER.value),
    output_field=CharField(),
)
#: How long a message took from the provider's acceptance to its final report.
TIME_TO_DELIVER = ExpressionWrapper(F("finished_at") - F("sent_at"), output_field=DurationField())
#: The messages whose time to deliver counts.
TIMED = Q(status=Status.DELIVERED, sent_at__isnull=False, finished_at__isnull=False)


class PercentileCont(Aggregate):
    """PostgreSQL's ``percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)``."""

    function = "PERCENTILE_CONT"
    name = "PercentileCont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    arity = 1

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError(f"a percentile's fraction is from 0 to 1, not {fraction!r}")
        # A float of ours, written into the SQL as a number literal.
        super().__init__(expression, fraction=repr(float(fraction)), **extra)


@dataclass(frozen=True)
class OperatorStats:
    """The figures of one operator."""

    operator: str
    messages: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    #: Time to deliver per percentile (a key of PERCENTILES); None without a delivered message.
    time_to_deliver: dict[int, timedelta | None] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return str(Operator(self.operator).label)

    @property
    def delivery_rate(self) -> float | None:
        """Delivered of sent, from 0 to 1; None when none was sent."""
        return self.delivered / self.sent if self.sent else None

    @property
    def delivery_percent(self) -> float | None:
        rate = self.delivery_rate
        return None if rate is None else round(rate * 100, 1)


def operator_stats(messages: QuerySet[Message]) -> list[OperatorStats]:
    """The figures of ``messages`` per operator, every operator listed (zeros included), in
    the order of :class:`Operator`. One grouped query on PostgreSQL; two elsewhere."""
    database = messages.db
    in_sql = _has_percentile_cont(database)
    aggregates: dict[str, Any] = {
        "messages": Count("pk"),
        "sent": Count("pk", filter=Q(sent_at__isnull=False)),
        "delivered": Count("pk", filter=Q(status=Status.DELIVERED)),
        "failed": Count("pk", filter=Q(status__in=FAILURE_STATUSES)),
        "timed": Count("pk", filter=TIMED),
    }
    if in_sql:
        for p in PERCENTILES:
            aggregates[f"p{p}"] = PercentileCont(TIME_TO_DELIVER, p / 100, filter=TIMED)
    rows = {
        row["group"]: row
        for row in messages.order_by().values(group=OPERATOR_GROUP).annotate(**aggregates)
    }
    if in_sql:
        times = {
            group: {p: row[f"p{p}"] for p in PERCENTILES if row["timed"]}
            for group, row in rows.items()
        }
    else:
        times = _streamed_percentiles(messages, {g: row["timed"] for g, row in rows.items()})
    found = []
    for operator in Operator:
        row = rows.get(operator.value, {})
        found.append(
            OperatorStats(
                operator=operator.value,
                messages=row.get("messages", 0),
                sent=row.get("sent", 0),
                delivered=row.get("delivered", 0),
                failed=row.get("failed", 0),
                time_to_deliver={p: times.get(operator.value, {}).get(p) for p in PERCENTILES},
            )
        )
    return found


def campaign_operator_stats(campaign: Campaign) -> list[OperatorStats]:
    """The figures of ``campaign``'s messages per operator."""
    return operator_stats(campaign.messages.all())


def period_messages(
    since: datetime, until: datetime, *, campaign: Campaign | None = None
) -> QuerySet[Message]:
    """The messages of a period: sent from ``since`` up to (not including) ``until``, or, never
    sent (refused, cancelled), finished in it. Only ``campaign``'s, if given."""
    messages = Message.objects.filter(
        Q(sent_at__gte=since, sent_at__lt=until)
        | Q(sent_at__isnull=True, finished_at__gte=since, finished_at__lt=until)
    )
    if campaign is not None:
        messages = messages.filter(campaign=campaign)
    return messages


def period_operator_stats(
    since: datetime, until: datetime, *, campaign: Campaign | None = None
) -> list[OperatorStats]:
    """The figures per operator of :func:`period_messages`."""
    return operator_stats(period_messages(since, until, campaign=campaign))


def _has_percentile_cont(database: str) -> bool:
    return connections[database].vendor == "postgresql"


def _streamed_percentiles(
    messages: QuerySet[Message], counts: dict[str, int]
) -> dict[str, dict[int, timedelta | None]]:
    """The percentiles of the fallback: one ordered stream of delivery times, per operator, of
    which only the values at the wanted positions are kept (``counts``: the timed messages of
    each operator, from the grouped query)."""
    wanted: dict[str, set[int]] = {
        group: {i for p in PERCENTILES for i in _positions(n, p)}
        for group, n in counts.items()
        if n
    }
    if not wanted:
        return {}
    kept: dict[str, dict[int, timedelta]] = {group: {} for group in wanted}
    stream = (
        messages.filter(TIMED)
        .order_by()
        .annotate(group=OPERATOR_GROUP, took=TIME_TO_DELIVER)
        .order_by("group", "took")
        .values_list("group", "took")
        .iterator(chunk_size=STREAM_CHUNK)
    )
    group, position = None, 0
    for row_group, took in stream:
        if row_group != group:
            group, position = row_group, 0
        if position in wanted.get(row_group, ()):
            kept[row_group][position] = took
        position += 1
    return {
        group: {p: _interpolated(kept[group], counts[group], p) for p in PERCENTILES}
        for group in wanted
    }


def _positions(n: int, percent: int) -> Iterable[int]:
    """The (0-based) positions in ``n`` ordered values that ``percent`` is made of."""
    k = (n - 1) * percent / 100
    return {math.floor(k), math.ceil(k)}


def _interpolated(values: dict[int, timedelta], n: int, percent: int) -> timedelta | None:
    """``percentile_cont``: the value at ``(n - 1) * percent / 100``, interpolated linearly."""
    k = (n - 1) * percent / 100
    low, high = values.get(math.floor(k)), values.get(math.ceil(k))
    if low is None or high is None:
        # The rows changed between the two queries: a value too few.
        return low or high
    return low + (high - low) * (k - math.floor(k))
