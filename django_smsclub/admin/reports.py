"""The campaign page's delivery by operator (a table and bars) and its CSV download.

The figures are :mod:`django_smsclub.reports`' (one grouped query on PostgreSQL), the bars
:func:`django_smsclub.charts.operator_chart`'s, the CSV :mod:`django_smsclub.exports`'. The
download lists every message's number and metadata: it needs the view permission on campaigns
and on messages (or the change permission, which includes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.admin import ModelAdmin
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    StreamingHttpResponse,
)

from .. import exports, reports
from ..charts import OperatorChart, duration_text, operator_chart
from ..models import Campaign

#: Permissions that let one see campaigns and messages (change includes view in the admin).
_SEES_CAMPAIGNS = ("django_smsclub.view_campaign", "django_smsclub.change_campaign")
_SEES_MESSAGES = ("django_smsclub.view_message", "django_smsclub.change_message")


@dataclass(frozen=True)
class OperatorRow:
    """One line of the table: an operator's figures as the page shows them."""

    operator: str
    label: str
    messages: int
    sent: int
    delivered: int
    failed: int
    delivery_percent: float | None
    time_to_deliver: list[str]


@dataclass(frozen=True)
class OperatorReport:
    rows: list[OperatorRow]
    chart: OperatorChart | None
    percentiles: tuple[int, ...]


def operator_report(campaign: Campaign) -> OperatorReport:
    """The table and bars of ``campaign``'s delivery by operator (operators with a message)."""
    stats = reports.campaign_operator_stats(campaign)
    rows = [
        OperatorRow(
            operator=row.operator,
            label=row.label,
            messages=row.messages,
            sent=row.sent,
            delivered=row.delivered,
            failed=row.failed,
            delivery_percent=row.delivery_percent,
            time_to_deliver=[duration_text(row.time_to_deliver[p]) for p in reports.PERCENTILES],
        )
        for row in stats
        if row.messages
    ]
    return OperatorReport(rows=rows, chart=operator_chart(stats), percentiles=reports.PERCENTILES)


def may_export(request: HttpRequest) -> bool:
    """Whether the person may download a campaign's results: they see campaigns and messages."""
    user: Any = request.user
    return any(user.has_perm(p) for p in _SEES_CAMPAIGNS) and any(
        user.has_perm(p) for p in _SEES_MESSAGES
    )


def export_view(
    model_admin: ModelAdmin, request: HttpRequest, object_id: str
) -> StreamingHttpResponse | HttpResponse:
    """GET: the campaign's results as a CSV file (with a byte order mark, for Excel)."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    campaign = model_admin.get_object(request, object_id)
    if campaign is None:
        raise Http404(f"no campaign {object_id!r}")
    if not (model_admin.has_view_permission(request, campaign) and may_export(request)):
        raise PermissionDenied
    return exports.csv_response(campaign, byte_order_mark=True)
