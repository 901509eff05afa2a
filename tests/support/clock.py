"""A clock the tests set: ``django.utils.timezone.now`` frozen at a chosen instant.

Every service reads the time through ``timezone.now()`` (``from django.utils import timezone``),
so replacing that one function moves the whole app to the instant a test names::

    def test_something(clock):
        clock.set(kyiv(2027, 3, 28, 2, 30))
        ...
        clock.advance(hours=7)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

KYIV = ZoneInfo("Europe/Kyiv")


def kyiv(*args: int, fold: int = 0) -> datetime:
    """A wall-clock time in Kyiv as an aware instant in UTC (``fold=1``: the second of a
    time the clock shows twice)."""
    return datetime(*args, tzinfo=KYIV, fold=fold).astimezone(UTC)  # type: ignore[misc]


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def set(self, now: datetime) -> datetime:
        self.now = now
        return now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    """``timezone.now()`` frozen at noon in Kyiv on 2027-06-01 until the test sets it."""
    frozen = Clock(kyiv(2027, 6, 1, 12, 0))
    monkeypatch.setattr(timezone, "now", frozen)
    return frozen
