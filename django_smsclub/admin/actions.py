"""What the admin's buttons and actions do, and what its campaign page shows.

The buttons of a campaign (start, cancel, retry failed, poll now) are views that change state
only on POST, through :mod:`django_smsclub.services`. The operations services do not offer
(poll one campaign now, resend a message, cancel chosen messages) are built here on top of its
public functions. The account balance is fetched in the background and cached, so a slow or
failing gateway costs a page at most :data:`BALANCE_WAIT` seconds and never breaks it.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, Max, Min, OuterRef, QuerySet, Sum
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from . import conf, services
from .charts import Progress, delivery_chart, progress
from .exceptions import CampaignStateError, ConfigurationError, GatewayError, SmsClubError
from .gateways import get_gateway
from .models import Campaign, DeliveryReport, Message
from .status import FAILURE_STATUSES, FINAL_STATUSES, Status
from .text import TextInfo, describe

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

    from .admin_forms import RecipientRows

logger = logging.getLogger("django_smsclub")

#: Seconds a page waits for balances it has not cached; a slower answer shows next time.
BALANCE_WAIT = 3.0
BALANCE_CACHE_SECONDS = 60
BALANCE_ERROR_CACHE_SECONDS = 30
#: Reports "poll statuses now" asks about in one click (the provider takes 100 per request).
POLL_NOW_LIMIT = 500
#: Refused rows the preview lists; the rest are counted.
REFUSED_SHOWN = 50
#: Seconds between reloads of the page of a campaign on its way.
REFRESH_SECONDS = 10
SESSION_KEY = "django_smsclub.recipients"
#: Who may see the account's money: the same permission the REST API asks for.
BALANCE_PERMISSION = "django_smsclub.view_balance"


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
    outcome = CAMPAIGN_ACTIONS[action](campaign)
    messages.add_message(request, outcome.level, outcome.text)
    if action == "start" and outcome.level == messages.SUCCESS:
        forget_recipients(request, campaign)
    opts = model_admin.opts
    return redirect(
        reverse(
            f"admin:{opts.app_label}_{opts.model_name}_change",
            args=[campaign.pk],
            current_app=model_admin.admin_site.name,
        )
    )


def start(campaign: Campaign) -> Outcome:
    """Release a draft's messages, now or at its send time."""
    try:
        services.start_campaign(campaign)
    except CampaignStateError:
        return _refusal(campaign, _("only a draft can be started"), {Campaign.State.DRAFT})
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
    if campaign.state in (Campaign.State.DONE, Campaign.State.CANCELLED):
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
            {Campaign.State.SCHEDULED, Campaign.State.RUNNING, Campaign.State.DONE},
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
    answered = ngettext(
        "it answered for %(answered)d, and %(changed)d message changed status.",
        "it answered for %(answered)d, and %(changed)d messages changed status.",
        result.changed,
    ) % {"answered": result.answered, "changed": result.changed}
    level = messages.SUCCESS if result.answered else messages.WARNING
    return Outcome(level, f"{asked}; {answered}")


#: The campaign buttons by URL name.
CAMPAIGN_ACTIONS: dict[str, Callable[[Campaign], Outcome]] = {
    "start": start,
    "cancel": cancel,
    "retry": retry,
    "poll": poll,
}


def _refusal(campaign: Campaign, rule: str, allowed: set[str]) -> Outcome:
    """Why a service refused ``campaign`` in its present state, read afresh (it may have moved
    since the page was drawn)."""
    state = Campaign.objects.filter(pk=campaign.pk).values_list("state", flat=True).first()
    if state is None or state in allowed:
        return Outcome(
            messages.ERROR,
            _("Campaign “%(name)s” has no recipients to send to.") % {"name": campaign.name},
        )
    return Outcome(
        messages.ERROR,
        _("Campaign “%(name)s” is %(state)s: %(rule)s.")
        % {"name": campaign.name, "state": Campaign.State(state).label, "rule": rule},
    )


@dataclass(frozen=True)
class PollResult:
    """What polling a campaign now did: reports pending, asked about, answered, and messages
    that changed status."""

    pending: int
    asked: int
    answered: int
    changed: int


def poll_campaign_now(campaign: Campaign, *, limit: int = POLL_NOW_LIMIT) -> PollResult:
    """Ask the provider now about up to ``limit`` pending reports of ``campaign``, due or not.

    The ones due soonest go first; the rest follow on the regular schedule. Runs in the
    request: ``limit`` keeps it to a few provider requests.
    """
    waiting = DeliveryReport.objects.filter(message__campaign=campaign, status=Status.SENT)
    pending = waiting.count()
    picked = list(waiting.order_by("next_poll_at", "pk").values_list("gateway", "smsc_id")[:limit])
    by_gateway: dict[str, list[str]] = defaultdict(list)
    for gateway_name, smsc_id in picked:
        by_gateway[gateway_name].append(smsc_id)
    answered = changed = 0
    for gateway_name, smsc_ids in by_gateway.items():
        states = services.fetch_states(get_gateway(gateway_name), smsc_ids)
        answered += len(states)
        changed += len(services.apply_states(gateway_name, states))
    if changed:
        services.refresh_campaigns()
    return PollResult(pending=pending, asked=len(picked), answered=answered, changed=changed)


@dataclass
class ResendResult:
    """What resending chosen messages did: the new messages, and the ones left alone."""

    resent: list[Message] = field(default_factory=list)
    in_flight: int = 0
    already: int = 0
    errors: list[str] = field(default_factory=list)


def resend_messages(messages_: QuerySet[Message], created_by: Any = None) -> ResendResult:
    """Send each final message of ``messages_`` again, as a NEW message.

    The copy points back at the original (``retry_of``, unique) and is keyed by it, so a
    message is resent at most once however often the button is pressed: to send it yet
    again, resend the copy. A message still on its way (queued, sending, sent) is left alone.
    """
    result = ResendResult()
    copies = Message.objects.filter(retry_of=OuterRef("pk"))
    for message in messages_.annotate(resent=Exists(copies)).order_by("pk"):
        if message.status not in FINAL_STATUSES:
            result.in_flight += 1
        elif message.resent:
            result.already += 1
        else:
            try:
                result.resent.append(_resend(message, created_by))
            except IntegrityError:
                result.already += 1
            except SmsClubError as exc:
                result.errors.append(f"{message.recipient}: {exc}")
    return result


def _resend(message: Message, created_by: Any) -> Message:
    with transaction.atomic():
        copy = services.send_sms(
            message.recipient,
            message.text,
            sender=message.sender or None,
            gateway=message.gateway or None,
            idempotency_key=f"django_smsclub.resend:{message.pk}",
            metadata={**message.metadata, "resend_of": message.pk},
            created_by=created_by,
        )[0]
        if copy.retry_of_id is None:
            Message.objects.filter(pk=copy.pk).update(retry_of=message)
            copy.retry_of = message
    return copy


@dataclass(frozen=True)
class BalanceInfo:
    """A gateway's balance, or why it cannot be shown (``error``, or ``pending`` while the
    provider has not answered yet)."""

    gateway: str
    amount: Decimal | None = None
    currency: str = ""
    credit: Decimal | None = None
    error: str = ""
    pending: bool = False
    checked_at: datetime | None = None


_balance_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="smsclub-balance")
_balance_fetches: dict[str, Future[BalanceInfo]] = {}
_balance_lock = threading.Lock()


def gateway_balances(names: Iterable[str], *, wait: float | None = None) -> list[BalanceInfo]:
    """The balance of each gateway: cached, or fetched in parallel for up to ``wait`` seconds
    (:data:`BALANCE_WAIT` by default).

    A fetch still running when the wait ends keeps running and caches its answer for the next
    page. A gateway that fails (GatewayError, a bad setting, a defect) gives an ``error``.
    """
    names = list(dict.fromkeys(names))
    keys = {name: _balance_key(name) for name in names}
    cached = cache.get_many(list(keys.values()))
    fetches = {name: _fetch_balance(name) for name in names if keys[name] not in cached}
    if fetches:
        wait_for(list(fetches.values()), timeout=BALANCE_WAIT if wait is None else wait)
    balances = []
    for name in names:
        if keys[name] in cached:
            balances.append(cached[keys[name]])
        elif fetches[name].done():
            balances.append(fetches[name].result())
        else:
            balances.append(BalanceInfo(name, pending=True))
    return balances


def visible_balances(request: HttpRequest, names: Iterable[str]) -> list[BalanceInfo]:
    """The balances of ``names`` if the user may see them (:data:`BALANCE_PERMISSION`)."""
    if not request.user.has_perm(BALANCE_PERMISSION):
        return []
    return gateway_balances(names)


def _balance_key(name: str) -> str:
    return f"django_smsclub:admin:balance:{name}"


def _fetch_balance(name: str) -> Future[BalanceInfo]:
    with _balance_lock:
        running = _balance_fetches.get(name)
        if running is None or running.done():
            running = _balance_pool.submit(_read_balance, name)
            _balance_fetches[name] = running
        return running


def _read_balance(name: str) -> BalanceInfo:
    try:
        balance = get_gateway(name).balance()
    except (GatewayError, ConfigurationError) as exc:
        info = BalanceInfo(name, error=str(exc), checked_at=timezone.now())
    except Exception as exc:
        # A defect in a gateway must not break the admin: show it as unavailable, and log it.
        logger.exception("gateway %s: balance failed", name)
        info = BalanceInfo(name, error=type(exc).__name__, checked_at=timezone.now())
    else:
        info = BalanceInfo(
            name,
            amount=balance.amount,
            currency=balance.currency or "",
            credit=balance.credit,
            checked_at=timezone.now(),
        )
    timeout = BALANCE_ERROR_CACHE_SECONDS if info.error else BALANCE_CACHE_SECONDS
    cache.set(_balance_key(name), info, timeout)
    return info


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


def preview(request: HttpRequest, campaign: Campaign) -> Preview:
    """The preview of a draft, in two queries, whatever its size."""
    totals = campaign.messages.aggregate(
        accepted=Count("pk"), parts_min=Min("parts"), parts_max=Max("parts"), parts=Sum("parts")
    )
    sample = campaign.messages.order_by("pk").first()
    return Preview(
        accepted=totals["accepted"],
        parts_min=totals["parts_min"] or 0,
        parts_max=totals["parts_max"] or 0,
        total_parts=totals["parts"] or 0,
        sample=sample,
        sample_info=describe(sample.text) if sample else None,
        last_added=recalled_recipients(request, campaign),
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


def campaign_panel(request: HttpRequest, campaign: Campaign, *, can_change: bool) -> dict[str, Any]:
    """The context of the panel above a campaign's form: progress, chart or preview, balance,
    and the buttons the person may press now."""
    counts = campaign.status_counts()
    bar: Progress = progress(counts)
    state = campaign.state
    failed = sum(counts[s] for s in FAILURE_STATUSES if s != Status.UNKNOWN)
    pending = bar.total - bar.final
    gateway_name = campaign.gateway or conf.default_gateway_name()
    panel: dict[str, Any] = {
        "campaign": campaign,
        "gateway_name": gateway_name,
        "sender": campaign.sender or _default_sender(gateway_name),
        "progress": bar,
        "balance": next(iter(visible_balances(request, [gateway_name])), None),
        "buttons": {
            "start": can_change and state == Campaign.State.DRAFT and bar.total > 0,
            "cancel": can_change
            and state in (Campaign.State.DRAFT, Campaign.State.SCHEDULED, Campaign.State.RUNNING),
            "retry": can_change
            and failed > 0
            and state in (Campaign.State.SCHEDULED, Campaign.State.RUNNING, Campaign.State.DONE),
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
    return panel


def _default_sender(gateway_name: str) -> str:
    try:
        return get_gateway(gateway_name).default_sender
    except SmsClubError:
        return ""
