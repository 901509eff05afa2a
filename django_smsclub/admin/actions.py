"""What the campaign buttons and the campaign list's actions do.

Each button (start, cancel, retry failed, poll now) is a view that changes state only on POST,
with the change permission, through :mod:`django_smsclub.services`; which campaign state
allows which button is the services' table (:func:`django_smsclub.services.allows`). The list
actions run the same functions on each chosen campaign.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .. import selectors, services
from ..exceptions import CampaignStateError, ConfigurationError
from ..models import Campaign, Message
from ..services import Action
from .panel import forget_recipients

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

#: Reports "poll statuses now" asks about in one click, give or take the other parts of their
#: messages (the provider takes 100 per request).
POLL_NOW_LIMIT = 500


@dataclass(frozen=True)
class Outcome:
    """What a button did, as the person is told: a ``django.contrib.messages`` level and text."""

    level: int
    text: str


def campaign_action_view(
    model_admin: ModelAdmin, request: HttpRequest, object_id: str, action: str
) -> HttpResponse:
    """Run the button ``action`` on a campaign; POST only, with the change permission."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    campaign = model_admin.get_object(request, unquote(object_id))
    if campaign is None:
        raise Http404(_("No campaign with the ID “%(key)s”.") % {"key": object_id})
    if not model_admin.has_change_permission(request, campaign):
        raise PermissionDenied
    outcome = run_action(request, campaign, action)
    messages.add_message(request, outcome.level, outcome.text)
    opts = model_admin.opts
    return redirect(
        reverse(
            f"admin:{opts.app_label}_{opts.model_name}_change",
            args=[campaign.pk],
            current_app=model_admin.admin_site.name,
        )
    )


def run_action(request: HttpRequest, campaign: Campaign, action: str) -> Outcome:
    """Do the button ``action`` (a key of :data:`CAMPAIGN_ACTIONS`) to ``campaign``."""
    outcome = CAMPAIGN_ACTIONS[action](campaign)
    if action == "start" and outcome.level == messages.SUCCESS:
        forget_recipients(request, campaign)
    return outcome


def start(campaign: Campaign) -> Outcome:
    """Release a draft's messages, now or at its send time."""
    try:
        services.start_campaign(campaign)
    except CampaignStateError:
        return _refusal(campaign, _("only a draft can be started"), Action.START)
    if campaign.state == Campaign.State.SCHEDULED and campaign.send_at:
        when = formats.date_format(timezone.localtime(campaign.send_at), "DATETIME_FORMAT")
        return Outcome(
            messages.SUCCESS,
            _("Campaign “%(name)s” is scheduled for %(when)s.")
            % {"name": campaign.name, "when": when},
        )
    return Outcome(
        messages.SUCCESS,
        _("Campaign “%(name)s” started; its messages are on their way.") % {"name": campaign.name},
    )


def cancel(campaign: Campaign) -> Outcome:
    """Cancel the campaign and its messages no worker has taken yet."""
    if not services.allows(campaign, Action.CANCEL):
        return Outcome(
            messages.WARNING,
            _("Campaign “%(name)s” is %(state)s; there is nothing to cancel.")
            % {"name": campaign.name, "state": campaign.get_state_display()},
        )
    count = services.cancel_campaign(campaign)
    return Outcome(
        messages.SUCCESS,
        ngettext(
            "Campaign “%(name)s” is cancelled: %(count)d queued message will not be sent. "
            "Messages already sent are still tracked.",
            "Campaign “%(name)s” is cancelled: %(count)d queued messages will not be sent. "
            "Messages already sent are still tracked.",
            count,
        )
        % {"name": campaign.name, "count": count},
    )


def retry(campaign: Campaign) -> Outcome:
    """Queue a new message for each message of the campaign that surely did not arrive."""
    try:
        count = services.retry_failed(campaign)
    except CampaignStateError:
        return _refusal(
            campaign,
            _("only a started campaign can retry its failed messages"),
            Action.RETRY_FAILED,
        )
    if not count:
        return Outcome(
            messages.WARNING,
            _(
                "Campaign “%(name)s” has no failed message to retry. Messages of unknown fate "
                "are never retried: they may have arrived."
            )
            % {"name": campaign.name},
        )
    return Outcome(
        messages.SUCCESS,
        ngettext(
            "%(count)d failed message of “%(name)s” is queued again as a new message.",
            "%(count)d failed messages of “%(name)s” are queued again as new messages.",
            count,
        )
        % {"name": campaign.name, "count": count},
    )


def poll(campaign: Campaign) -> Outcome:
    """Ask the provider now, synchronously, about the campaign's reports still pending."""
    try:
        result = poll_campaign_now(campaign)
    except ConfigurationError as exc:
        return Outcome(messages.ERROR, str(exc))
    if not result.pending:
        return Outcome(
            messages.WARNING,
            _("No message of “%(name)s” is waiting for a delivery report.")
            % {"name": campaign.name},
        )
    asked = ngettext(
        "Asked SMSClub about %(asked)d of %(pending)d parts waiting for a report",
        "Asked SMSClub about %(asked)d of %(pending)d parts waiting for a report",
        result.pending,
    ) % {"asked": result.asked, "pending": result.pending}
    changed = ngettext(
        "%(changed)d message changed status.",
        "%(changed)d messages changed status.",
        result.changed,
    ) % {"changed": result.changed}
    level = messages.SUCCESS if result.changed else messages.WARNING
    return Outcome(level, f"{asked}; {changed}")


#: The campaign buttons by URL name.
CAMPAIGN_ACTIONS: dict[str, Callable[[Campaign], Outcome]] = {
    "start": start,
    "cancel": cancel,
    "retry": retry,
    "poll": poll,
}


@dataclass(frozen=True)
class PollResult:
    """What polling a campaign now did: reports pending, asked about, and messages that
    changed status."""

    pending: int
    asked: int
    changed: int


def poll_campaign_now(campaign: Campaign, *, limit: int = POLL_NOW_LIMIT) -> PollResult:
    """Ask the provider now (:func:`django_smsclub.services.poll_now`) about the pending
    reports of ``campaign``, due or not: those of the messages whose reports are due soonest,
    up to about ``limit`` reports. The rest follow on the regular schedule.

    Runs in the request: ``limit`` keeps it to a few provider requests.
    """
    waiting = selectors.pending_reports(campaign)
    pending = waiting.count()
    soonest = waiting.order_by("next_poll_at", "pk").values_list("message_id", flat=True)[:limit]
    picked = Message.objects.filter(pk__in=set(soonest)).only("pk")
    asked = waiting.filter(message__in=picked).count() if pending else 0
    changed = len(services.poll_now(picked)) if pending else 0
    if changed:
        services.refresh_campaigns()
    return PollResult(pending=pending, asked=asked, changed=changed)


def _refusal(campaign: Campaign, rule: str, action: Action) -> Outcome:
    """Why a service refused ``action`` to ``campaign``, by its state read afresh (it may have
    moved since the page was drawn): the state, or no recipients when the state allows it."""
    fresh = Campaign.objects.filter(pk=campaign.pk).first()
    if fresh is None or services.allows(fresh, action):
        return Outcome(
            messages.ERROR,
            _("Campaign “%(name)s” has no recipients to send to.") % {"name": campaign.name},
        )
    return Outcome(
        messages.ERROR,
        _("Campaign “%(name)s” is %(state)s: %(rule)s.")
        % {"name": campaign.name, "state": fresh.get_state_display(), "rule": rule},
    )
