"""Recipient numbers: normalisation to the digits SMSClub expects."""

from __future__ import annotations

import pytest
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from django_smsclub import phones
from django_smsclub.exceptions import InvalidMessage, SmsClubError

UA_ONLY = {"GATEWAYS": {}, "DEFAULT_REGION": "UA"}


@pytest.fixture(autouse=True)
def _ukraine_by_default(settings):
    settings.SMSCLUB = {"GATEWAYS": {}}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # the SOAP example's free forms
        ("(050)123-45-67", "380501234567"),
        ("+380(99)123-45-67", "380991234567"),
        ("0671234567", "380671234567"),
        # other usual ways to write a Ukrainian number
        ("380661234567", "380661234567"),
        ("095-123-45-67", "380951234567"),
        ("+380 50 123 45 67", "380501234567"),
        ("+38 (050) 123-45-67", "380501234567"),
        ("38 050 123 45 67", "380501234567"),
        ("050 123 45 67", "380501234567"),
        ("  0501234567  ", "380501234567"),
        ("tel:+380501234567", "380501234567"),
        ("+380501234567", "380501234567"),
        ("0931234567", "380931234567"),
        ("0631234567", "380631234567"),
        # other countries are allowed, written with their country code
        ("+48 501 234 567", "48501234567"),
        ("+39 06 1234 5678", "390612345678"),  # Italy keeps its leading zero
        ("+44 7911 123456", "447911123456"),
        ("+1 202 555 0123", "12025550123"),
    ],
)
def test_normalises(raw, expected):
    assert phones.normalize_phone(raw) == expected
    assert phones.phone_problem(raw) is None
    assert phones.normalize_phones([raw]) == [expected]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(380501234567, "380501234567"), (501234567, "380501234567")],
)
def test_int_input(raw, expected):
    assert phones.normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "(063)123456",  # a digit short
        "0501234",
        "05012345678",  # a digit too many
        "3805012345678",
        "+380 00 123 45 67",  # no such operator code
        "80501234567",
        "12345",
        "1",
        "abc",
        "+",
        "+++",
        "not a number",
        "050-CALL-ME",
        "+999 123 456 789",  # no such country
        "0501234567;0671234567",  # two numbers in one: not one recipient
        "0501234567 ext. 12",
        "0501234567, 0671234567",
    ],
)
def test_invalid_numbers_raise_invalid_message_naming_the_value(raw):
    with pytest.raises(InvalidMessage) as excinfo:
        phones.normalize_phone(raw)
    assert repr(raw) in str(excinfo.value)
    assert excinfo.value.problems == [str(excinfo.value)]
    assert phones.phone_problem(raw) == str(excinfo.value)


def test_the_doc_example_063_123456_is_not_a_valid_number():
    with pytest.raises(InvalidMessage, match=r"'\(063\)123456' is not a valid number"):
        phones.normalize_phone("(063)123456")


def test_invalid_message_is_a_value_error():
    with pytest.raises(ValueError):
        phones.normalize_phone("123")
    with pytest.raises(SmsClubError):
        phones.normalize_phone("123")


def test_two_numbers_in_one_string_are_refused_not_cut_to_the_first():
    with pytest.raises(InvalidMessage) as excinfo:
        phones.normalize_phone("0501234567;0671234567")
    assert "extension" in str(excinfo.value)
    assert "0671234567" in str(excinfo.value)


@pytest.mark.parametrize("raw", ["", "   ", "\t\n"])
def test_empty_is_refused(raw):
    with pytest.raises(InvalidMessage, match="empty"):
        phones.normalize_phone(raw)


@pytest.mark.parametrize(
    ("raw", "type_name"),
    [(None, "NoneType"), (True, "bool"), (3.8e11, "float"), (b"0501234567", "bytes")],
)
def test_non_string_is_refused(raw, type_name):
    with pytest.raises(InvalidMessage) as excinfo:
        phones.normalize_phone(raw)
    assert type_name in str(excinfo.value)
    assert "string" in str(excinfo.value)


def test_overly_long_input_is_refused_without_echoing_all_of_it():
    raw = "0501234567" + "0" * 5000
    with pytest.raises(InvalidMessage) as excinfo:
        phones.normalize_phone(raw)
    message = str(excinfo.value)
    assert "too long" in message
    assert len(message) < 200
    assert "0501234567" in message


def test_length_limit_is_40_characters_of_the_stripped_input():
    inner = "+380" + " " * 27 + "501234567"
    assert len(inner) == 40
    assert phones.normalize_phone("   " + inner + "   ") == "380501234567"
    with pytest.raises(InvalidMessage, match="too long"):
        phones.normalize_phone(inner.replace("+380", "+380 "))


# --- many numbers -----------------------------------------------------------------------------


def test_normalize_phones_keeps_order_and_duplicates():
    assert phones.normalize_phones(["0671234567", "(050)123-45-67", "0671234567"]) == [
        "380671234567",
        "380501234567",
        "380671234567",
    ]


def test_normalize_phones_names_every_bad_one_at_once():
    raws = ["0501234567", "123", "0671234567", "abc", "", None]
    with pytest.raises(InvalidMessage) as excinfo:
        phones.normalize_phones(raws)
    problems = excinfo.value.problems
    assert len(problems) == 4
    assert "'123'" in problems[0]
    assert "'abc'" in problems[1]
    assert "''" in problems[2]
    assert "NoneType" in problems[3]
    message = str(excinfo.value)
    for problem in problems:
        assert problem in message
    assert "0501234567" not in message
    assert "0671234567" not in message


def test_normalize_phones_of_nothing_is_nothing():
    assert phones.normalize_phones([]) == []
    assert phones.split_valid([]) == ([], [])


def test_normalize_phones_takes_any_iterable():
    assert phones.normalize_phones(n for n in ["0501234567", 380671234567]) == [
        "380501234567",
        "380671234567",
    ]


@pytest.mark.parametrize("raw", ["0501234567", 380501234567])
def test_one_number_is_a_list_of_one_not_its_characters(raw):
    assert phones.normalize_phones(raw) == ["380501234567"]
    assert phones.split_valid(raw) == (["380501234567"], [])


def test_split_valid():
    numbers, problems = phones.split_valid(["0501234567", "123", "+48 501 234 567", "x"])
    assert numbers == ["380501234567", "48501234567"]
    assert len(problems) == 2
    assert "'123'" in problems[0]
    assert "'x'" in problems[1]


# --- region -----------------------------------------------------------------------------------


def test_default_region_is_ukraine():
    assert phones.normalize_phone("501234567") == "380501234567"


@override_settings(SMSCLUB={"GATEWAYS": {}, "DEFAULT_REGION": "PL"})
def test_default_region_setting_is_honoured():
    assert phones.normalize_phone("501234567") == "48501234567"
    assert phones.normalize_phone("501 234 567") == "48501234567"
    assert phones.normalize_phones(["501234567"]) == ["48501234567"]
    assert phones.split_valid(["501234567"]) == (["48501234567"], [])
    assert phones.phone_problem("501234567") is None
    # numbers with a country code are read the same in any region
    assert phones.normalize_phone("+380501234567") == "380501234567"
    assert phones.normalize_phone("380501234567") == "380501234567"


def test_default_region_setting_is_read_at_call_time(settings):
    assert phones.normalize_phone("501234567") == "380501234567"
    settings.SMSCLUB = {"GATEWAYS": {}, "DEFAULT_REGION": "PL"}
    assert phones.normalize_phone("501234567") == "48501234567"


def test_region_argument():
    assert phones.normalize_phone("501234567", region="PL") == "48501234567"
    assert phones.normalize_phones(["501234567"], region="PL") == ["48501234567"]
    assert phones.split_valid(["501234567"], region="PL") == (["48501234567"], [])
    assert phones.phone_problem("0501234567", region="PL") is not None


@override_settings(SMSCLUB={"GATEWAYS": {}, "DEFAULT_REGION": "PL"})
def test_region_argument_beats_the_setting():
    assert phones.normalize_phone("0501234567", region="UA") == "380501234567"


def test_region_in_lower_case():
    assert phones.normalize_phone("501234567", region="pl") == "48501234567"
    with override_settings(SMSCLUB={"GATEWAYS": {}, "DEFAULT_REGION": "pl"}):
        assert phones.normalize_phone("501234567") == "48501234567"


def test_unknown_region_is_named():
    with pytest.raises(InvalidMessage) as excinfo:
        phones.normalize_phone("0501234567", region="ZZ")
    assert "'ZZ'" in str(excinfo.value)
    assert "'0501234567'" in str(excinfo.value)
    assert phones.normalize_phone("+380501234567", region="ZZ") == "380501234567"


# --- properties -------------------------------------------------------------------------------

subscriber = st.text(alphabet="0123456789", min_size=7, max_size=7)
operator = st.sampled_from(["50", "66", "67", "68", "95", "96", "97", "98", "99", "63", "73", "93"])


@settings(deadline=None)
@given(operator, subscriber, st.integers(min_value=0, max_value=6))
def test_any_ukrainian_mobile_in_any_usual_form(op, sub, form):
    raw = [
        f"0{op}{sub}",
        f"(0{op}){sub[:3]}-{sub[3:5]}-{sub[5:]}",
        f"+380({op}){sub[:3]}-{sub[3:5]}-{sub[5:]}",
        f"380{op}{sub}",
        f"+380 {op} {sub[:3]} {sub[3:5]} {sub[5:]}",
        f"0{op}-{sub[:3]}-{sub[3:5]}-{sub[5:]}",
        int(f"380{op}{sub}"),
    ][form]
    assert phones.normalize_phone(raw) == f"380{op}{sub}"


@settings(deadline=None)
@given(st.one_of(st.text(max_size=60), st.integers(), st.none(), st.floats(), st.binary()))
def test_never_crashes_and_either_normalises_or_names_the_value(raw):
    problem = phones.phone_problem(raw)
    if problem is None:
        number = phones.normalize_phone(raw)
        assert number.isascii()
        assert number.isdigit()
        assert 7 <= len(number) <= 15
        assert phones.normalize_phone(number) == number  # idempotent
    else:
        assert isinstance(problem, str)
        with pytest.raises(InvalidMessage) as excinfo:
            phones.normalize_phone(raw)
        assert str(excinfo.value) == problem
        if isinstance(raw, str) and raw.strip() and len(raw.strip()) <= phones.MAX_INPUT_LENGTH:
            assert repr(raw) in problem


@settings(deadline=None)
@given(st.lists(st.one_of(st.text(max_size=20), subscriber.map(lambda s: "050" + s)), max_size=8))
def test_split_valid_partitions_the_input(raws):
    numbers, problems = phones.split_valid(raws)
    assert len(numbers) + len(problems) == len(raws)
    expected = [phones.phone_problem(r) for r in raws]
    assert problems == [p for p in expected if p is not None]
    if problems:
        with pytest.raises(InvalidMessage) as excinfo:
            phones.normalize_phones(raws)
        assert excinfo.value.problems == problems
    else:
        assert phones.normalize_phones(raws) == numbers
