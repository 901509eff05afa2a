"""The send window rule (:mod:`django_smsclub.sendwindow`): parsing, open or closed, the next
opening, midnight wraps and both 2027 daylight saving days in Kyiv; its settings and checks."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.checks import run_checks
from hypothesis import given, settings
from hypothesis import strategies as st

from django_smsclub import conf
from django_smsclub.exceptions import ConfigurationError
from django_smsclub.sendwindow import (
    Window,
    is_open,
    next_opening,
    opening_and_closing,
    parse_time,
    parse_time_zone,
    parse_window,
    window_problem,
)
from tests.support.clock import KYIV, kyiv
from tests.support.settings import gateway, smsclub_settings

DAY = Window(time(9), time(21))
NIGHT = Window(time(22), time(6))  # a night shift: wraps midnight


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("09:00", time(9)), ("21:30", time(21, 30)), (" 07:05 ", time(7, 5))],
)
def test_times_are_read_as_hh_mm(value, expected):
    assert parse_time(value) == expected


def test_seconds_and_time_objects_are_taken():
    assert parse_time("08:59:30") == time(8, 59, 30)
    assert parse_time(time(9, 15)) == time(9, 15)


@pytest.mark.parametrize("value", ["9", "24:00", "09:60", "9am", "", None, 900, "09:00+02"])
def test_a_malformed_time_is_refused_naming_it(value):
    with pytest.raises(ValueError, match="HH:MM") as caught:
        parse_time(value)
    assert repr(value)[:20] in str(caught.value)


def test_a_time_with_a_zone_is_refused():
    with pytest.raises(ValueError, match="time zone"):
        parse_time(time(9, tzinfo=UTC))


def test_a_window_is_a_pair_of_times_or_none():
    assert parse_window(("09:00", "21:00")) == DAY
    assert parse_window(["22:00", "06:00"]) == NIGHT
    assert parse_window(None) is None


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("09:00-21:00", "'09:00-21:00' is not a send window"),
        (("09:00",), "('09:00',) is not a send window"),
        (("09:00", "21:00", "23:00"), "is not a send window"),
        (("09:00", "25:00"), "'25:00' is not a time of day"),
        (("09:00", "09:00"), "opens and closes at the same time (09:00)"),
        (("09:00", None), "needs both times"),
    ],
)
def test_a_malformed_window_is_refused_naming_the_value(value, words):
    with pytest.raises(ValueError) as caught:
        parse_window(value)
    assert words in str(caught.value)


def test_window_problem_is_none_for_no_window_or_a_good_one():
    assert window_problem(None, None) is None
    assert window_problem("09:00", "21:00") is None
    assert "needs both" in window_problem(None, "21:00")


def test_time_zones_are_read_with_zoneinfo():
    assert parse_time_zone("Europe/Kyiv") == KYIV
    for bad in ("Europe/Kiyv", "Mars/Olympus", "", None, 3, "../etc/passwd"):
        with pytest.raises(ValueError, match="not a time zone"):
            parse_time_zone(bad)


def test_str_of_a_window():
    assert str(DAY) == "09:00-21:00"
    assert str(NIGHT) == "22:00-06:00" and NIGHT.wraps and not DAY.wraps


# --- open or closed, and the next opening -----------------------------------------------------


def test_no_window_is_always_open():
    now = utc(2027, 6, 1, 23, 0)
    assert is_open(now, None, KYIV)
    assert next_opening(now, None, KYIV) == now


@pytest.mark.parametrize(
    ("local", "open_"),
    [
        ((8, 59), False),
        ((9, 0), True),  # the opening is in the window
        ((15, 0), True),
        ((20, 59), True),
        ((21, 0), False),  # the closing is not
        ((23, 30), False),
        ((0, 0), False),
    ],
)
def test_a_day_window_is_open_from_its_opening_until_its_closing(local, open_):
    assert is_open(kyiv(2027, 6, 1, *local), DAY, KYIV) is open_


def test_the_next_opening_is_today_before_it_and_tomorrow_after_it():
    assert next_opening(kyiv(2027, 6, 1, 7, 0), DAY, KYIV) == kyiv(2027, 6, 1, 9, 0)
    assert next_opening(kyiv(2027, 6, 1, 21, 0), DAY, KYIV) == kyiv(2027, 6, 2, 9, 0)
    assert next_opening(kyiv(2027, 6, 1, 23, 59), DAY, KYIV) == kyiv(2027, 6, 2, 9, 0)
    inside = kyiv(2027, 6, 1, 12, 0)
    assert next_opening(inside, DAY, KYIV) == inside


def test_the_next_opening_is_in_utc_and_any_aware_now_is_taken():
    opening = next_opening(datetime(2027, 6, 1, 22, 0, tzinfo=KYIV), DAY, KYIV)
    assert opening.utcoffset() == timedelta(0)
    assert opening == utc(2027, 6, 2, 6, 0)  # 09:00 EEST


def test_a_naive_now_is_refused():
    with pytest.raises(ValueError, match="naive"):
        is_open(datetime(2027, 6, 1, 12), DAY, KYIV)


@pytest.mark.parametrize(
    ("local", "open_"),
    [
        ((21, 59), False),
        ((22, 0), True),
        ((23, 59), True),
        ((0, 0), True),
        ((5, 59), True),
        ((6, 0), False),
        ((12, 0), False),
    ],
)
def test_a_window_that_wraps_midnight_is_open_through_the_night(local, open_):
    assert is_open(kyiv(2027, 6, 1, *local), NIGHT, KYIV) is open_


def test_a_wrapping_window_opens_again_the_same_evening():
    assert next_opening(kyiv(2027, 6, 1, 6, 0), NIGHT, KYIV) == kyiv(2027, 6, 1, 22, 0)
    assert next_opening(kyiv(2027, 6, 1, 3, 0), NIGHT, KYIV) == kyiv(2027, 6, 1, 3, 0)


def test_a_window_is_read_in_its_own_time_zone():
    tokyo = ZoneInfo("Asia/Tokyo")
    # 12:00 in Kyiv is 18:00 in Tokyo: inside 09-21 there, and 21:00 in Tokyo is 15:00 Kyiv.
    assert is_open(kyiv(2027, 6, 1, 12, 0), DAY, tokyo)
    assert not is_open(kyiv(2027, 6, 1, 15, 0), DAY, tokyo)
    assert next_opening(kyiv(2027, 6, 1, 15, 0), DAY, tokyo) == utc(2027, 6, 2, 0, 0)


def test_the_end_of_the_year_and_a_leap_day():
    assert next_opening(kyiv(2027, 12, 31, 22, 0), DAY, KYIV) == kyiv(2028, 1, 1, 9, 0)
    assert next_opening(kyiv(2028, 2, 28, 21, 30), DAY, KYIV) == kyiv(2028, 2, 29, 9, 0)


# --- daylight saving time: 2027-03-28 (03:00 EET -> 04:00 EEST) and 2027-10-31 (04:00 EEST
# --- -> 03:00 EET) in Kyiv --------------------------------------------------------------------

SPRING = date(2027, 3, 28)
AUTUMN = date(2027, 10, 31)


def test_the_2027_transitions_are_where_these_tests_expect_them():
    assert kyiv(2027, 3, 28, 2, 59).utcoffset() == timedelta(0)
    assert datetime(2027, 3, 28, 2, 0, tzinfo=KYIV).utcoffset() == timedelta(hours=2)
    assert datetime(2027, 3, 28, 4, 0, tzinfo=KYIV).utcoffset() == timedelta(hours=3)
    assert datetime(2027, 10, 31, 3, 30, tzinfo=KYIV).utcoffset() == timedelta(hours=3)
    assert datetime(2027, 10, 31, 3, 30, fold=1, tzinfo=KYIV).utcoffset() == timedelta(hours=2)


def test_spring_a_day_window_keeps_its_wall_times():
    opening, closing = opening_and_closing(SPRING, DAY, KYIV)
    assert (opening, closing) == (utc(2027, 3, 28, 6, 0), utc(2027, 3, 28, 18, 0))  # EEST
    assert next_opening(kyiv(2027, 3, 28, 1, 0), DAY, KYIV) == utc(2027, 3, 28, 6, 0)


def test_spring_a_window_opening_in_the_skipped_hour_opens_when_the_clock_jumps():
    # 03:30 does not exist on 2027-03-28: the clock goes 02:59:59 EET -> 04:00:00 EEST.
    window = Window(time(3, 30), time(8, 0))
    jump = utc(2027, 3, 28, 1, 0)  # 04:00 EEST
    assert opening_and_closing(SPRING, window, KYIV) == (jump, utc(2027, 3, 28, 5, 0))
    assert next_opening(kyiv(2027, 3, 28, 2, 30), window, KYIV) == jump
    assert not is_open(jump - timedelta(seconds=1), window, KYIV)
    assert is_open(jump, window, KYIV)
    # The days around it open at 03:30 as usual.
    assert opening_and_closing(date(2027, 3, 27), window, KYIV)[0] == kyiv(2027, 3, 27, 3, 30)
    assert opening_and_closing(date(2027, 3, 29), window, KYIV)[0] == kyiv(2027, 3, 29, 3, 30)


def test_spring_a_window_around_the_skipped_hour_is_an_hour_shorter():
    window = Window(time(2, 0), time(5, 0))  # 02:00 EET to 05:00 EEST: two real hours
    opening, closing = opening_and_closing(SPRING, window, KYIV)
    assert (opening, closing) == (utc(2027, 3, 28, 0, 0), utc(2027, 3, 28, 2, 0))
    assert is_open(utc(2027, 3, 28, 0, 59, 59), window, KYIV)  # 02:59:59 EET
    assert is_open(utc(2027, 3, 28, 1, 0), window, KYIV)  # 04:00 EEST, a second later


def test_spring_a_window_closing_in_the_skipped_hour_closes_when_the_clock_jumps():
    window = Window(time(22, 0), time(3, 30))  # wraps into the night of the change
    opening, closing = opening_and_closing(date(2027, 3, 27), window, KYIV)
    assert (opening, closing) == (kyiv(2027, 3, 27, 22, 0), utc(2027, 3, 28, 1, 0))
    assert not is_open(utc(2027, 3, 28, 1, 0), window, KYIV)
    assert next_opening(utc(2027, 3, 28, 1, 0), window, KYIV) == kyiv(2027, 3, 28, 22, 0)


def test_spring_a_window_wholly_in_the_skipped_hour_does_not_open_that_day():
    window = Window(time(3, 10), time(3, 50))
    opening, closing = opening_and_closing(SPRING, window, KYIV)
    assert opening == closing
    assert next_opening(kyiv(2027, 3, 28, 0, 0), window, KYIV) == kyiv(2027, 3, 29, 3, 10)


def test_autumn_a_day_window_keeps_its_wall_times():
    opening, closing = opening_and_closing(AUTUMN, DAY, KYIV)
    assert (opening, closing) == (utc(2027, 10, 31, 7, 0), utc(2027, 10, 31, 19, 0))  # EET


def test_autumn_a_window_opening_in_the_repeated_hour_opens_the_first_time():
    # 03:30 happens twice on 2027-10-31: at 00:30 UTC (EEST) and at 01:30 UTC (EET).
    window = Window(time(3, 30), time(8, 0))
    first = kyiv(2027, 10, 31, 3, 30)
    assert first == utc(2027, 10, 31, 0, 30)
    assert next_opening(kyiv(2027, 10, 31, 1, 0), window, KYIV) == first
    # The clock going back to 03:00 does not close it: one stretch of real time.
    for minutes in range(0, 5 * 60 + 30, 10):  # 00:30 to 06:00 UTC, 5 h 30 min
        assert is_open(first + timedelta(minutes=minutes), window, KYIV)
    assert opening_and_closing(AUTUMN, window, KYIV) == (first, kyiv(2027, 10, 31, 8, 0))


def test_autumn_a_window_around_the_repeated_hour_is_an_hour_longer():
    window = Window(time(3, 0), time(5, 0))
    opening, closing = opening_and_closing(AUTUMN, window, KYIV)
    assert (opening, closing) == (utc(2027, 10, 31, 0, 0), utc(2027, 10, 31, 3, 0))
    assert closing - opening == timedelta(hours=3)
    second_three_thirty = kyiv(2027, 10, 31, 3, 30, fold=1)
    assert is_open(second_three_thirty, window, KYIV)


def test_autumn_a_window_closing_in_the_repeated_hour_closes_the_first_time():
    window = Window(time(22, 0), time(3, 30))
    _opening, closing = opening_and_closing(date(2027, 10, 30), window, KYIV)
    assert closing == kyiv(2027, 10, 31, 3, 30)  # 03:30 EEST, 00:30 UTC
    assert not is_open(kyiv(2027, 10, 31, 3, 15, fold=1), window, KYIV)  # not reopened
    assert next_opening(closing, window, KYIV) == kyiv(2027, 10, 31, 22, 0)


def test_autumn_a_window_in_the_repeated_hour_only():
    window = Window(time(3, 15), time(3, 45))
    opening, closing = opening_and_closing(AUTUMN, window, KYIV)
    # From the first 03:15 to the first 03:45: once, not twice.
    assert (opening, closing) == (utc(2027, 10, 31, 0, 15), utc(2027, 10, 31, 0, 45))
    assert next_opening(utc(2027, 10, 31, 0, 45), window, KYIV) == kyiv(2027, 11, 1, 3, 15)


# --- properties -------------------------------------------------------------------------------

times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
windows = st.tuples(times, times).filter(lambda pair: pair[0] != pair[1]).map(Window._make)
# 2027, with both transition days more likely than the rest.
instants = st.one_of(
    st.datetimes(datetime(2027, 1, 1), datetime(2027, 12, 31)),
    st.datetimes(datetime(2027, 3, 27), datetime(2027, 3, 29)),
    st.datetimes(datetime(2027, 10, 30), datetime(2027, 11, 1)),
).map(lambda naive: naive.replace(tzinfo=UTC))
zones = st.sampled_from([KYIV, ZoneInfo("America/New_York"), ZoneInfo("Australia/Lord_Howe")])


@settings(max_examples=150, deadline=None)
@given(now=instants, window=windows, zone=zones)
def test_the_next_opening_is_open_and_nothing_before_it_is(now, window, zone):
    opening = next_opening(now, window, zone)
    assert opening >= now
    assert opening - now <= timedelta(days=2)
    assert is_open(opening, window, zone)
    if opening > now:
        assert not is_open(opening - timedelta(seconds=1), window, zone)
        step = (opening - now) / 40
        assert not any(is_open(now + step * i, window, zone) for i in range(40))


# --- settings and checks ----------------------------------------------------------------------


def test_the_defaults_are_no_window_in_kyiv(settings):
    settings.SMSCLUB = smsclub_settings(default=gateway("locmem", SENDER="Shop"))
    assert conf.send_window() is None
    assert conf.time_zone() == KYIV


def test_the_settings_are_read(settings):
    settings.SMSCLUB = smsclub_settings(
        default=gateway("locmem", SENDER="Shop"),
        SEND_WINDOW=("09:00", "21:00"),
        TIME_ZONE="Europe/Warsaw",
    )
    assert conf.send_window() == DAY
    assert conf.time_zone() == ZoneInfo("Europe/Warsaw")


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("SEND_WINDOW", ("09:00", "9pm"), "'9pm' is not a time of day"),
        ("SEND_WINDOW", "09:00-21:00", "'09:00-21:00' is not a send window"),
        ("SEND_WINDOW", ("21:00", "21:00"), "opens and closes at the same time"),
        ("TIME_ZONE", "Europe/Kiyv", "'Europe/Kiyv' is not a time zone"),
        ("TIME_ZONE", "", "'' is not a time zone"),
    ],
)
def test_a_bad_window_setting_is_a_check_error_naming_the_value(settings, key, value, words):
    settings.SMSCLUB = smsclub_settings(default=gateway("locmem", SENDER="Shop"), **{key: value})
    with pytest.raises(ConfigurationError, match=key):
        conf.send_window() if key == "SEND_WINDOW" else conf.time_zone()
    errors = [e for e in run_checks(tags=["django_smsclub"]) if e.id == "django_smsclub.E006"]
    assert len(errors) == 1
    assert f"SMSCLUB[{key!r}]" in errors[0].msg and words in errors[0].msg


def test_good_window_settings_pass_the_checks(settings):
    settings.SMSCLUB = smsclub_settings(
        default=gateway("locmem", SENDER="Shop"),
        SEND_WINDOW=("22:00", "06:00"),
        TIME_ZONE="Europe/Kyiv",
    )
    assert not [e for e in run_checks(tags=["django_smsclub"]) if e.level >= 40]
