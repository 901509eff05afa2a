"""Following delivery: poll the provider for due reports, apply the words it gives (from a
poll or an SMPP receipt) and move each message to the aggregate of its parts."""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.cache import caches
from django.db import transaction
from django.db.models import Case, DateTimeField, F, Q, Subquery, Value, When
from django.db.models.functions import Least
from django.utils import timezone

from .. import conf, ratelimit, selectors, signals
from ..exceptions import GatewayError
from ..gateways import Gateway, get_gateway
from ..logs import fields
from ..models import RAW_STATUS_MAX_LENGTH, DeliveryReport, Message
from ..status import FINAL_STATUSES, Status, aggregate, status_from_word
from .rows import claim_rows, with_row_locks
from .transitions import MAX_VALUE_GROUPS, UPDATE_CHUNK, Transition, move_messages, notify

logger = logging.getLogger("django_smsclub")


#: The error of a message whose parts had no final report when the tracking window closed.
WINDOW_CLOSED = "no final delivery report before the provider's tracking window closed"

POLL_KEY_PREFIX = "django_smsclub:poll"


def poll_due(
    gateway_name: str,
    *,
    batch_size: int | None = None,
    time_budget: float | None = None,
    now: datetime | None = None,
) -> int:
    """Poll the provider for the due reports of one gateway, batch after batch, until none
    are due (or ``time_budget`` seconds have passed); return how many reports were polled.

    A report still pending when the tracking window closes becomes ``unknown`` without a poll.
    """
    polled = _poll_rounds(gateway_name, batch_size, time_budget, now)
    upcoming = selectors.next_poll_at(gateway_name)
    if upcoming is not None:
        request_poll(gateway_name, upcoming)
    return polled


def request_poll(gateway_name: str, when: datetime) -> None:
    """Ask a worker to poll ``gateway_name``'s reports at ``when`` (rounded up to a second),
    through :data:`~django_smsclub.signals.poll_requested`.

    One request per gateway and second: the cache keeps which seconds are asked for already
    (a cache that fails asks again, which is harmless). Without a broker, the periodic
    ``poll_reports`` finds the reports.
    """
    at = math.ceil(when.timestamp())
    ttl = max(at - time.time(), 0) + 60
    try:
        first = caches["default"].add(f"{POLL_KEY_PREFIX}:{gateway_name}:{at}", 1, timeout=ttl)
    except Exception:
        first = True
    if not first:
        return
    moment = datetime.fromtimestamp(at, tz=UTC)
    for _, result in signals.poll_requested.send_robust(
        sender=Message, gateway=gateway_name, when=moment
    ):
        if isinstance(result, Exception):
            logger.warning(
                "could not schedule a poll of gateway %s (%s: %s); the periodic poll_reports "
                "task will poll its reports",
                gateway_name,
                type(result).__name__,
                result,
                extra=fields(gateway=gateway_name, outcome=type(result).__name__),
            )


def _poll_rounds(
    gateway_name: str, batch_size: int | None, time_budget: float | None, now: datetime | None
) -> int:
    gateway = get_gateway(gateway_name)
    limit = batch_size or conf.poll_batch_size()
    deadline = None if time_budget is None else time.monotonic() + time_budget
    polled = 0
    while True:
        moment = now or timezone.now()
        reports = claim_due_reports(gateway_name, limit, now=moment)
        if not reports:
            return polled
        closed = moment - conf.tracking_window()
        expired = [r for r in reports if r.created_at <= closed]
        if expired:
            logger.warning(
                "gateway %s: %d report(s) had no final state when the tracking window closed",
                gateway_name,
                len(expired),
                extra=fields(
                    gateway=gateway_name,
                    smsc_ids=[r.smsc_id for r in expired],
                    count=len(expired),
                    outcome="window_closed",
                ),
            )
            _settle_reports(
                Q(pk__in=[r.pk for r in expired]),
                lambda r: (r.raw_status, Status.UNKNOWN),
                moment,
            )
        live = [r.smsc_id for r in reports if r.created_at > closed]
        if live:
            apply_states(gateway_name, fetch_states(gateway, live), now=moment)
        polled += len(reports)
        if len(reports) < limit or (deadline is not None and time.monotonic() >= deadline):
            return polled


def claim_due_reports(
    gateway_name: str, limit: int, *, now: datetime | None = None
) -> list[DeliveryReport]:
    """Take up to ``limit`` due reports of one gateway for this poller alone.

    Taking a report schedules its next poll (the intervals grow with each poll, never past
    the close of the tracking window), so another poller skips it, and a poller that dies
    leaves it for the next regular poll.
    """
    now = now or timezone.now()
    intervals = conf.poll_intervals()
    after_poll = Case(
        *[
            When(polls=done, then=Value(now + timedelta(seconds=seconds)))
            for done, seconds in enumerate(intervals[1:])
        ],
        default=Value(now + timedelta(seconds=intervals[-1])),
        output_field=DateTimeField(),
    )
    window_closes = F("created_at") + Value(conf.tracking_window())
    due = DeliveryReport.objects.filter(
        gateway=gateway_name, status=Status.SENT, next_poll_at__lte=now
    )
    return claim_rows(
        due,
        ("next_poll_at", "pk"),
        limit,
        polls=F("polls") + 1,
        next_poll_at=Least(after_poll, window_closes, output_field=DateTimeField()),
    )


def fetch_states(gateway: Gateway, smsc_ids: Sequence[str]) -> dict[str, str]:
    """The provider's words for ``smsc_ids``, one rate-limit token per status request.

    A failed request is logged and ends the round: its reports, and those of the requests
    not made, are polled at their next time.
    """
    limiter = ratelimit.for_gateway(gateway)
    states: dict[str, str] = {}
    answers = gateway.iter_states(
        smsc_ids, before_request=limiter.acquire if limiter is not None else None
    )
    try:
        for answer in answers:
            states.update(answer)
    except GatewayError as exc:
        # The request's own record (gateway.iter_states) has the error and the IDs.
        logger.info(
            "gateway %s: polling stopped after %d state(s) (%s); the rest polled again later",
            gateway.name,
            len(states),
            type(exc).__name__,
            extra=fields(
                gateway=gateway.name,
                count=len(smsc_ids) - len(states),
                outcome=type(exc).__name__,
            ),
        )
    return states


def apply_states(
    gateway_name: str, states: Mapping[str, object], *, now: datetime | None = None
) -> list[Transition]:
    """Record the provider's words for SMSC IDs of ``gateway_name`` and move their messages.

    Used by polling and by SMPP receipts. Words are kept verbatim (cut to the column's
    length); a report that is final already does not change. Each message whose status
    changes is signalled once, after commit, however many appliers race.
    """
    words = {str(smsc_id): _word(word) for smsc_id, word in states.items()}
    if not words:
        return []

    def decide(report: DeliveryReport) -> tuple[str, str] | None:
        word = words.get(report.smsc_id)
        return None if word is None else (word, status_from_word(word))

    return _settle_reports(
        Q(gateway=gateway_name, smsc_id__in=list(words)), decide, now or timezone.now()
    )


def poll_now(messages: Iterable[Message]) -> list[Transition]:
    """Ask the provider now for the pending reports of ``messages``, due or not."""
    pending = DeliveryReport.objects.filter(
        message__in=[m.pk for m in messages], status=Status.SENT
    ).values_list("gateway", "smsc_id")
    by_gateway: dict[str, list[str]] = defaultdict(list)
    for gateway_name, smsc_id in pending:
        by_gateway[gateway_name].append(smsc_id)
    transitions: list[Transition] = []
    for gateway_name, smsc_ids in by_gateway.items():
        states = fetch_states(get_gateway(gateway_name), smsc_ids)
        transitions += apply_states(gateway_name, states)
    return transitions


def _settle_reports(
    touched: Q,
    decide: Callable[[DeliveryReport], tuple[str, str] | None],
    now: datetime,
) -> list[Transition]:
    """Give the pending reports matching ``touched`` the (word, status) ``decide`` returns,
    then move their messages to the aggregate of their parts.

    Every part of every touched message is read and locked together with the message, in one
    query ordered by pk: two appliers of different parts of one message wait for each other
    rather than each missing the other's change.
    """
    with transaction.atomic():
        messages = (
            DeliveryReport.objects.filter(touched, status=Status.SENT)
            .order_by()
            .values("message_id")
        )
        reports = list(
            with_row_locks(
                DeliveryReport.objects.filter(message_id__in=Subquery(messages))
                .select_related("message")
                .order_by("pk")
            )
        )
        changed: list[DeliveryReport] = []
        for report in reports:
            decision = decide(report) if report.status == Status.SENT else None
            if decision is None:
                continue
            word, new_status = decision
            word = word[:RAW_STATUS_MAX_LENGTH]
            if word == report.raw_status and new_status == report.status:
                continue
            report.raw_status, report.status, report.changed_at = word, new_status, now
            if new_status in FINAL_STATUSES:
                report.next_poll_at = None
            changed.append(report)
        _save_reports(changed, now)
        parts: dict[int, list[str]] = defaultdict(list)
        owners: dict[int, Message] = {}
        for report in reports:
            parts[report.message_id].append(report.status)
            owners[report.message_id] = report.message
        settled = {
            pk: aggregate(statuses)
            for pk, statuses in parts.items()
            if owners[pk].status == Status.SENT
        }
        settled = {pk: status for pk, status in settled.items() if status != Status.SENT}
        errors = {pk: WINDOW_CLOSED if s == Status.UNKNOWN else "" for pk, s in settled.items()}
        # A message corrected from unknown keeps the time it was first final.
        finished = {pk: owners[pk].finished_at or now for pk in settled}
        transitions = move_messages(
            [owners[pk] for pk in settled], settled, error=errors, finished_at=finished
        )
        notify(transitions)
    return transitions


def _save_reports(changed: Sequence[DeliveryReport], now: datetime) -> None:
    """Write new words and statuses: one UPDATE per distinct (word, status), as a batch of
    replies holds few distinct words; ``bulk_update`` when a batch holds many."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for report in changed:
        groups[(report.raw_status, report.status)].append(report.pk)
    if len(groups) > MAX_VALUE_GROUPS:
        DeliveryReport.objects.bulk_update(
            changed, ["raw_status", "status", "changed_at", "next_poll_at"]
        )
        return
    for (word, status), pks in groups.items():
        update: dict[str, Any] = {"raw_status": word, "status": status, "changed_at": now}
        if status in FINAL_STATUSES:
            update["next_poll_at"] = None
        for start in range(0, len(pks), UPDATE_CHUNK):
            DeliveryReport.objects.filter(pk__in=pks[start : start + UPDATE_CHUNK]).update(**update)


def _word(word: object) -> str:
    if word is None:
        return ""
    if isinstance(word, bytes):
        return word.decode("utf-8", "replace")
    return str(word)
