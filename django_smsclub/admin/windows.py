"""Quiet hours in the admin: when a campaign that waits for its send window resumes, and the
time zone choices of the campaign form."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import available_timezones

from django.utils import timezone
from django.utils.timesince import timeuntil
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import conf
from ..exceptions import ConfigurationError
from ..models import Campaign
from ..services.windows import resumes_at, window_of


def pause_note(campaign: Campaign, *, waiting: int, now: datetime | None = None) -> str | None:
    """ "Paused by the send window until 09:00 EET (in 3 hours)" for a campaign on its way
    with ``waiting`` messages still queued and its window closed now; None otherwise."""
    if not waiting:
        return None
    now = now or timezone.now()
    opening = resumes_at(campaign, now=now)
    if opening is None:
        return None
    _window, zone = window_of(campaign)
    local = opening.astimezone(zone)
    shown = f"{local:%H:%M} {local.tzname()}"
    if local.date() != now.astimezone(zone).date():
        shown = f"{local:%d.%m.%Y} {shown}"
    return _("Paused by the send window until %(time)s (in %(left)s)") % {
        "time": shown,
        "left": timeuntil(opening, now),
    }


def time_zone_choices(current: str = "") -> list[tuple[str, str]]:
    """Every IANA time zone zoneinfo knows, after the empty choice (the TIME_ZONE setting);
    ``current`` kept if it is not among them."""
    try:
        default = str(conf.time_zone())
    except ConfigurationError:
        default = "?"
    choices = [("", gettext_lazy("The default time zone (%(name)s)") % {"name": default})]
    zones = _zones()
    choices += [(name, name) for name in zones]
    if current and current not in zones:
        choices.append((current, gettext_lazy("%(name)s (unknown)") % {"name": current}))
    return choices


@lru_cache(maxsize=1)
def _zones() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))
