"""Quiet hours: the send window, as pure functions of a time, a window and a time zone.

A window is two local wall-clock times, ``Window(start, end)``: messages bound by it are sent
from ``start`` (included) until ``end`` (excluded), every day, in the window's time zone. A
window whose ``start`` is later than its ``end`` wraps midnight (``22:00``-``06:00`` opens in
the evening and closes the next morning); ``start == end`` is refused, since it could mean
"always" as well as "never".

Daylight saving time is read from the time zone (:mod:`zoneinfo`). The window of a day opens
at the first instant the local clock shows ``start`` or later, and closes at the first
instant it shows ``end`` or later:

- a time the clock skips (``03:30`` in Kyiv on 2027-03-28, when 03:00 EET becomes 04:00 EEST)
  is reached when the clock jumps past it, at 04:00 EEST;
- a time the clock shows twice (``03:30`` in Kyiv on 2027-10-31, when 04:00 EEST becomes 03:00
  EET) is reached the first time, at 03:30 EEST. The repeated hour does not close a window
  that was open, nor open one a second time: a window lasts one stretch of real time a day;
- a window that lies wholly in skipped time (``03:10``-``03:50`` on 2027-03-28) does not open
  that day.

Nothing here reads the settings or the database: :mod:`django_smsclub.services.windows` does.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "Window",
    "is_open",
    "next_opening",
    "opening_and_closing",
    "parse_time",
    "parse_time_zone",
    "parse_window",
    "window_problem",
]

_HH_MM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?")
#: Days after today looked at for the next opening: a day whose window lies in skipped time
#: does not open, the next one does.
_DAYS_AHEAD = 3


class Window(NamedTuple):
    """A daily send window: local wall-clock times, ``start`` included, ``end`` excluded."""

    start: time
    end: time

    @property
    def wraps(self) -> bool:
        """Whether it closes the day after it opens (``22:00``-``06:00``)."""
        return self.start > self.end

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


def parse_time(value: object) -> time:
    """``value`` (``"HH:MM"``, ``"HH:MM:SS"`` or a naive :class:`datetime.time`) as a time;
    ``ValueError`` naming the value otherwise."""
    if isinstance(value, time):
        if value.tzinfo is not None:
            raise ValueError(f"{value!r} has a time zone; give a local time (the zone is apart)")
        return value
    if isinstance(value, str):
        match = _HH_MM.fullmatch(value.strip())
        if match:
            hours, minutes, seconds = match.groups()
            return time(int(hours), int(minutes), int(seconds or 0))
    raise ValueError(f"{value!r:.40} is not a time of day as 'HH:MM' (00:00 to 23:59)")


def window_problem(start: object, end: object) -> str | None:
    """What is wrong with a window given as two times (either may be None: then both must
    be), or None. The problem names the bad value."""
    if start is None and end is None:
        return None
    if start is None or end is None:
        given = start if end is None else end
        return f"the send window needs both times, opening and closing; only {given!r:.40} is given"
    for value in (start, end):
        try:
            parse_time(value)
        except ValueError as exc:
            return f"the send window's time {exc}"
    if parse_time(start) == parse_time(end):
        return (
            f"the send window opens and closes at the same time ({_hhmm(parse_time(start))}); "
            "leave both empty for no window"
        )
    return None


def parse_window(value: object) -> Window | None:
    """A window given as a pair ``(start, end)`` of times, or None (no window);
    ``ValueError`` naming the value otherwise."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(
            f"{value!r:.60} is not a send window: give a pair of times such as "
            "('09:00', '21:00'), or None for none"
        )
    start, end = value
    problem = window_problem(start, end)
    if problem:
        raise ValueError(problem)
    return Window(parse_time(start), parse_time(end))


def parse_time_zone(value: object) -> ZoneInfo:
    """The IANA time zone named ``value`` (``"Europe/Kyiv"``); ``ValueError`` naming the
    value if there is none of that name."""
    if isinstance(value, ZoneInfo):
        return value
    if isinstance(value, str) and value.strip():
        try:
            return ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise ValueError(f"{value!r:.60} is not a time zone zoneinfo knows (such as 'Europe/Kyiv')")


def opening_and_closing(day: date, window: Window, tz: tzinfo) -> tuple[datetime, datetime]:
    """The instants (in UTC) the window of local date ``day`` opens and closes. They are
    equal when the window lies wholly in time the clock skips that day."""
    opening = _first_instant(day, window.start, tz)
    closing = _first_instant(day + timedelta(days=1) if window.wraps else day, window.end, tz)
    return opening, max(opening, closing)


def is_open(now: datetime, window: Window | None, tz: tzinfo) -> bool:
    """Whether the window is open at ``now`` (an aware datetime). No window is always open."""
    if window is None:
        return True
    today = _aware(now).astimezone(tz).date()
    for day in (today - timedelta(days=1), today):
        opening, closing = opening_and_closing(day, window, tz)
        if opening <= now < closing:
            return True
    return False


def next_opening(now: datetime, window: Window | None, tz: tzinfo) -> datetime:
    """The first instant from ``now`` on at which the window is open: ``now`` itself when it
    is open (or there is no window), else the next time it opens (in UTC)."""
    if is_open(now, window, tz):
        return now
    if window is None:  # no window is always open: is_open said so
        return now
    today = _aware(now).astimezone(tz).date()
    for ahead in range(_DAYS_AHEAD + 1):
        opening, closing = opening_and_closing(today + timedelta(days=ahead), window, tz)
        if opening >= now and closing > opening:
            return opening
    raise ValueError(f"the send window {window} does not open within {_DAYS_AHEAD} days")


def _first_instant(day: date, wall: time, tz: tzinfo) -> datetime:
    """The first instant (UTC) the local clock of ``tz`` shows ``wall`` or later on ``day``.

    An ambiguous time (shown twice as the clock goes back) is its first occurrence, PEP 495's
    ``fold=0``; a time the clock skips is the instant it jumps, found by bisection between
    the two readings zoneinfo gives such a time.
    """
    naive = datetime.combine(day, wall)
    earlier = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if earlier.astimezone(tz).replace(tzinfo=None) == naive:
        return earlier
    # Skipped: fold=0 reads it with the offset before the jump (an instant after it), fold=1
    # with the offset after (an instant before it). The jump lies between, on a whole second.
    low = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = earlier
    if low > high:
        low, high = high, low
    before = low.astimezone(tz).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + timedelta(seconds=int((high - low).total_seconds() // 2))
        if middle.astimezone(tz).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{value!r} is a naive datetime; give an aware one (timezone.now())")
    return value


def _hhmm(value: time) -> str:
    return value.strftime("%H:%M:%S" if value.second else "%H:%M")
