"""The panel above a campaign's form: progress and chart (or a draft's preview), the balance,
and the buttons the person may press now.

What the last addition of recipients did (added, skipped, refused with their lines) is kept in
the session for the preview to show until the campaign starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest

from .. import conf, selectors, services
from ..charts import Progress, delivery_chart, progress
from ..exceptions import SmsClubError
from ..gateways import get_gateway
from ..models import Campaign, Message
from ..services import Action, optout
from ..status import Status
from ..text import TextInfo, describe
from .balances import visible_balances
from .reports import may_export, operator_report

if TYPE_CHECKING:
    from .forms import RecipientRows

#: Refused rows the preview lists; the rest are counted.
REFUSED_SHOWN = 50
#: Seconds between reloads of the page of a campaign on its way.
REFRESH_SECONDS = 10
SESSION_KEY = "django_smsclub.recipients"


def campaign_panel(request: HttpRequest, campaign: Campaign, *, can_change: bool) -> dict[str, Any]:
    """The context of the panel above a campaign's form: progress, chart or preview, balance,
    and the buttons the person may press now."""
    counts = campaign.status_counts()
    bar: Progress = progress(counts)
    state = campaign.state
    retryable = sum(counts[s] for s in services.RETRY_STATUSES)
    pending = bar.total - bar.final
    gateway_name = campaign.gateway or conf.default_gateway_name()
    panel: dict[str, Any] = {
        "campaign": campaign,
        "gateway_name": gateway_name,
        "sender": campaign.sender or _default_sender(gateway_name),
        "progress": bar,
        "balance": next(iter(visible_balances(request, [gateway_name])), None),
        "buttons": {
            "start": can_change and services.allows(campaign, Action.START) and bar.total > 0,
            "cancel": can_change and services.allows(campaign, Action.CANCEL),
            "retry": can_change
            and retryable > 0
            and services.allows(campaign, Action.RETRY_FAILED),
            "poll": can_change and counts[Status.SENT] > 0,
        },
        "refresh": (
            REFRESH_SECONDS
            if state in (Campaign.State.SCHEDULED, Campaign.State.RUNNING) and pending
            else None
        ),
    }
    if state == Campaign.State.DRAFT:
        panel["preview"] = preview(request, campaign)
    else:
        panel["chart"] = delivery_chart(campaign, bar.total)
        panel["operators"] = operator_report(campaign) if bar.total else None
    panel["can_export"] = bar.total > 0 and may_export(request)
    return panel


@dataclass(frozen=True)
class Preview:
    """What a draft will send: recipients, parts (what it costs) and one message as sent."""

    accepted: int
    parts_min: int
    parts_max: int
    total_parts: int
    sample: Message | None
    sample_info: TextInfo | None
    last_added: dict[str, Any] | None
    #: Numbers on the stop list: refused at the last addition, or put on it since added.
    opted_out: int


def preview(request: HttpRequest, campaign: Campaign) -> Preview:
    """The preview of a draft, in three queries, whatever its size."""
    summary = selectors.parts_summary(campaign)
    sample = campaign.messages.order_by("pk").first()
    last_added = recalled_recipients(request, campaign)
    return Preview(
        accepted=summary.messages,
        parts_min=summary.parts_min,
        parts_max=summary.parts_max,
        total_parts=summary.parts_total,
        sample=sample,
        sample_info=describe(sample.text) if sample else None,
        last_added=last_added,
        opted_out=optout.count_in_campaign(campaign) + (last_added or {}).get("opted_out", 0),
    )


def remember_recipients(
    request: HttpRequest,
    campaign: Campaign,
    result: services.RecipientsResult,
    rows: RecipientRows,
) -> None:
    """Keep what the last addition of recipients did, for the preview to show once."""
    refused = [[rows.line_of(r.row), r.reason] for r in result.refused[:REFUSED_SHOWN]]
    store = dict(request.session.get(SESSION_KEY, {}))
    store[str(campaign.pk)] = {
        "added": result.added,
        "duplicates": result.duplicates,
        "refused_total": len(result.refused),
        "opted_out": result.opted_out,
        "refused": refused,
    }
    # A few campaigns at most: the session is not a store of upload reports.
    request.session[SESSION_KEY] = dict(list(store.items())[-5:])


def recalled_recipients(request: HttpRequest, campaign: Campaign) -> dict[str, Any] | None:
    return request.session.get(SESSION_KEY, {}).get(str(campaign.pk))


def forget_recipients(request: HttpRequest, campaign: Campaign) -> None:
    store = dict(request.session.get(SESSION_KEY, {}))
    if store.pop(str(campaign.pk), None) is not None:
        request.session[SESSION_KEY] = store


def _default_sender(gateway_name: str) -> str:
    try:
        return get_gateway(gateway_name).default_sender
    except SmsClubError:
        return ""
