"""Quiet hours in the pipeline: which window binds a message, when it may go, and holding back
claimed messages whose window is closed.

The rule itself (is a window open, when does it open next, daylight saving time) is
:mod:`django_smsclub.sendwindow`; this module applies it to campaigns and messages. A campaign
message is bound by its campaign's window (``send_window_start``/``send_window_end`` in its
``time_zone``), or by ``SMSCLUB['SEND_WINDOW']`` in ``SMSCLUB['TIME_ZONE']`` where the
campaign has none of its own. A message outside campaigns is bound by the setting only when it
was queued with ``respect_window=True``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from .. import conf
from ..exceptions import ConfigurationError
from ..models import Campaign, Message
from ..sendwindow import Window, next_opening, parse_time_zone
from ..status import Status
from .rows import claim_topped_up, with_row_locks
from .sending import enqueue_send

logger = logging.getLogger("django_smsclub")

#: A window and the time zone it is read in; a window of None is always open.
Bound = tuple[Window | None, ZoneInfo]

#: The campaign fields a campaign's window is made of.
WINDOW_FIELDS = ("send_window_start", "send_window_end", "time_zone")


def default_window() -> Bound:
    """``SMSCLUB['SEND_WINDOW']`` in ``SMSCLUB['TIME_ZONE']``."""
    return conf.send_window(), conf.time_zone()


def window_of(campaign: Any) -> Bound:
    """The window that binds ``campaign``'s messages: its own, or the default one.

    ``campaign`` is a :class:`Campaign` or anything with its window fields. A time zone the
    campaign names that zoneinfo does not know (stored before it was checked, or dropped from
    the system's zone data) falls back to the default zone, with a warning.
    """
    start, end = campaign.send_window_start, campaign.send_window_end
    window = conf.send_window()
    if start is not None and end is not None:
        if start != end:
            window = Window(start, end)
        else:
            # Refused by the checks; one stored past them must not stop the workers.
            logger.warning(
                "campaign %s has a send window that opens and closes at %s; the SEND_WINDOW "
                "setting binds it instead",
                getattr(campaign, "pk", None),
                start,
            )
    return window, _zone(campaign.time_zone, getattr(campaign, "pk", None))


def window_problems(campaign: Campaign) -> list[str]:
    """What is wrong with ``campaign``'s window fields, each problem naming its field and
    value: both times or neither, not the same time, a time zone zoneinfo knows."""
    problems: list[str] = []
    start, end = campaign.send_window_start, campaign.send_window_end
    if (start is None) != (end is None):
        empty, given = ("send_window_end", start) if end is None else ("send_window_start", end)
        other = "send_window_start" if empty == "send_window_end" else "send_window_end"
        problems.append(
            f"{empty} is empty while {other} is {_shown(given)}: give both times of the send "
            "window, or neither (the SEND_WINDOW setting)"
        )
    elif start is not None and start == end:
        problems.append(
            f"send_window_end {_shown(end)} is the time the window opens: a send window "
            "cannot open and close at the same time (leave both empty for the SEND_WINDOW "
            "setting)"
        )
    if campaign.time_zone:
        try:
            parse_time_zone(campaign.time_zone)
        except ValueError as exc:
            problems.append(f"time_zone {exc}")
    return problems


def due_at(campaign: Any, when: datetime) -> datetime:
    """When a message of ``campaign`` due at ``when`` may go: ``when``, or the next opening of
    its window if that is closed then."""
    window, zone = window_of(campaign)
    return next_opening(when, window, zone)


def due_by_campaign(
    campaign_ids: Iterable[int | None], when: datetime
) -> dict[int | None, datetime]:
    """:func:`due_at` for the campaigns ``campaign_ids`` in one query; ``None`` (messages
    outside campaigns) maps to ``when``."""
    ids = {pk for pk in campaign_ids if pk is not None}
    due: dict[int | None, datetime] = {None: when}
    for row in Campaign.objects.filter(pk__in=ids).only("pk", *WINDOW_FIELDS):
        due[row.pk] = due_at(row, when)
    return due


def due_for(messages: Sequence[Message], when: datetime) -> list[datetime]:
    """When each of ``messages`` (or a copy of it) may go if due at ``when``: the opening of
    its window where that is closed then (one query for their campaigns)."""
    due = due_by_campaign({m.campaign_id for m in messages}, when)
    if any(m.campaign_id is None and m.respect_window for m in messages):
        window, zone = default_window()
        bound = next_opening(when, window, zone)
    else:
        bound = when
    return [
        due[m.campaign_id] if m.campaign_id is not None else bound if m.respect_window else when
        for m in messages
    ]


def resumes_at(campaign: Campaign, *, now: datetime | None = None) -> datetime | None:
    """When a scheduled or running ``campaign`` whose window is closed now resumes sending;
    None when its window is open (or it has none), or it is not on its way."""
    if campaign.state not in (Campaign.State.SCHEDULED, Campaign.State.RUNNING):
        return None
    now = now or timezone.now()
    if campaign.send_at is not None and campaign.send_at > now:
        now = campaign.send_at
    try:
        opening = due_at(campaign, now)
    except (ConfigurationError, ValueError):  # the system checks name a bad setting
        logger.exception("could not read the send window of campaign %s", campaign.pk)
        return None
    return opening if opening > now else None


def claim_within_windows(
    claim: Callable[[int], list[Message]], limit: int, *, now: datetime
) -> list[Message]:
    """Claim up to ``limit`` messages with ``claim`` (which claims up to n, marking them
    ``sending``), keeping only those whose window is open at ``now``.

    The others go back to ``queued``, due at their window's opening, as if never claimed (no
    attempt counted, nothing signalled), and so do the other waiting messages of their
    campaign (:func:`hold_until_opening`); then the batch is topped up. Each round holds back
    every due message of at least one campaign, so the rounds end.
    """
    return claim_topped_up(claim, limit, partial(hold_until_opening, now=now))


def hold_until_opening(claimed: Sequence[Message], *, now: datetime) -> list[Message]:
    """Of messages just claimed (``sending``, not yet signalled), return those whose window
    is open at ``now``; put the others back to ``queued``, due at their window's next
    opening, with the other queued messages of their campaign (or, outside campaigns, the
    gateway's ``respect_window`` ones) due before it, and ask for a send at that opening.

    No query is made for a batch bound by no window; one for the campaigns of the batch
    otherwise, and the writes only when a window is closed.
    """
    bound = [m for m in claimed if m.campaign_id is not None or m.respect_window]
    if not bound:
        return list(claimed)
    openings = _openings({m.campaign_id for m in bound}, now)
    closed = {group: at for group, at in openings.items() if at > now}
    if not closed:
        return list(claimed)
    held = [m for m in bound if m.campaign_id in closed]
    with transaction.atomic():
        # Campaigns locked in one order: two workers holding back one campaign take turns.
        list(with_row_locks(Campaign.objects.filter(pk__in=sorted(closed.keys() - {None}))))
        for group, opening in sorted(closed.items(), key=lambda item: item[0] or 0):
            pks = [m.pk for m in held if m.campaign_id == group]
            Message.objects.filter(pk__in=pks, status=Status.SENDING).update(
                status=Status.QUEUED, claimed_at=None, next_attempt_at=opening
            )
            waiting = Message.objects.filter(status=Status.QUEUED, next_attempt_at__lt=opening)
            if group is None:
                gateways = {m.gateway for m in held if m.campaign_id is None}
                waiting = waiting.filter(campaign=None, respect_window=True, gateway__in=gateways)
            else:
                waiting = waiting.filter(campaign_id=group)
            waiting.update(next_attempt_at=opening)
        sends = {(m.gateway, closed[m.campaign_id]) for m in held}
        for gateway_name, opening in sorted(sends):
            transaction.on_commit(partial(enqueue_send, gateway_name, opening))
    logger.info(
        "held back %d claimed message(s) outside their send window, until %s",
        len(held),
        ", ".join(sorted({f"{at:%Y-%m-%d %H:%M %Z}" for at in closed.values()})),
    )
    held_pks = {m.pk for m in held}
    return [m for m in claimed if m.pk not in held_pks]


def _openings(groups: set[int | None], now: datetime) -> dict[int | None, datetime]:
    """The next opening (``now`` if open) of each group: a campaign's ID, or None for the
    messages outside campaigns that respect the default window."""
    openings = due_by_campaign(groups, now)
    if None in groups:
        window, zone = default_window()
        openings[None] = next_opening(now, window, zone)
    return {group: openings.get(group, now) for group in groups}


def _zone(name: str, campaign_pk: object = None) -> ZoneInfo:
    if not name:
        return conf.time_zone()
    try:
        return parse_time_zone(name)
    except ValueError:
        logger.warning(
            "campaign %s names the time zone %r, which zoneinfo does not know; its send window "
            "is read in SMSCLUB['TIME_ZONE']",
            campaign_pk,
            name,
        )
        return conf.time_zone()


def _shown(value: object) -> str:
    return value.strftime("%H:%M") if hasattr(value, "strftime") else repr(value)
