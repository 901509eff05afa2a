"""The fast path of phone normalisation decides exactly what phonenumbers decides."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from django_smsclub import phones

UA = phonenumbers.PhoneMetadata.metadata_for_region("UA")


def reference_valid(national: str, country_code: int = 380) -> bool:
    """phonenumbers' own verdict on a national significant number."""
    number = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))
    if len(national) > 1 and national.startswith("0"):
        number.italian_leading_zero = True
        # An all-zero number keeps one zero as its national_number.
        zeros = len(national) - len(national.lstrip("0") or "0")
        if zeros > 1:
            number.number_of_leading_zeros = zeros
    assert phonenumbers.national_significant_number(number) == national
    return phonenumbers.is_valid_number(number)


def test_every_ukrainian_prefix_of_every_length():
    """All 10,000 four-digit prefixes, each filled to every length 5 to 12 three ways."""
    valid = phones.national_number_validator("UA")
    rng = random.Random(380)
    for prefix in range(10_000):
        head = f"{prefix:04d}"
        for length in range(5, 13):
            for fill in ("0", "9", None):
                tail = "".join(fill or rng.choice("0123456789") for _ in range(length - len(head)))
                national = head + tail
                assert valid(national) == reference_valid(national), national
    # The case that matters most: a mobile number is valid.
    assert valid("501234567")
    assert not valid("001234567")


@settings(deadline=None, max_examples=3000)
@given(st.text(alphabet="0123456789", min_size=1, max_size=17))
def test_validator_agrees_with_phonenumbers_on_any_digits(national):
    assert phones.national_number_validator("UA")(national) == reference_valid(national)


@pytest.mark.parametrize(("region", "country_code"), [("PL", 48), ("IT", 39), ("DE", 49)])
@settings(deadline=None, max_examples=300)
@given(national=st.text(alphabet="0123456789", min_size=1, max_size=17))
def test_validator_is_generic(region, country_code, national):
    assert phones.national_number_validator(region)(national) == reference_valid(
        national, country_code
    )


def test_validator_of_an_unknown_region_is_refused():
    with pytest.raises(ValueError, match="'ZZ'"):
        phones.national_number_validator("ZZ")


# --- the whole parse: fast path on, fast path off ----------------------------------------------

separator = st.sampled_from(["", "", "", " ", "-", "(", ")", "  ", ". ", "x", "/"])
tidy_separator = st.sampled_from(["", "", "", "", " ", "-", "(", ")"])
region = st.sampled_from(["UA", "ua", " UA ", "PL", "US", "ZZ"])


@st.composite
def ukrainian_looking(draw):
    """Mostly what the fast path takes (or nearly: a digit more or less, a stray character)."""
    tidy = draw(st.booleans())
    heads = ["+380", "380", "0"] if tidy else ["+38", "38", "+", "", "00380", "+3800", "80", "8"]
    head = draw(st.sampled_from(heads))
    operator = f"{draw(st.integers(0, 99)):02d}"
    size = 7 if tidy else draw(st.integers(5, 9))
    rest = draw(st.text(alphabet="0123456789", min_size=size, max_size=size))
    between = tidy_separator if tidy else separator
    chars = list(head + operator + rest)
    opening = draw(st.sampled_from(["", "", "", "(", " (", "(("]))
    return (opening + "".join(c + draw(between) for c in chars)).strip()


@settings(deadline=None, max_examples=3000)
@given(ukrainian_looking(), region)
@example("380501234567", "UA")
@example("+380501234567", "PL")
@example("0501234567", "PL")
@example("+380 (50) 123-45-67", "ZZ")
@example("+380(0)501234567", "UA")
@example("3800501234567", "UA")
@example("(380)501234567", "UA")
@example("(380)501234567", "PL")
@example("(+380)501234567", "PL")
@example("(0501234567", "UA")
def test_fast_path_changes_nothing(raw, region):
    assert phones._parse(raw, region) == phones._parse(raw, region, fast=False)


@settings(deadline=None, max_examples=2000)
@given(
    st.one_of(
        st.text(alphabet="+0123456789 -()x;.,#*٠١٢٣٤٥٦٧٨٩", max_size=20),
        st.text(max_size=20),
        st.integers(min_value=0, max_value=10**13),
    ),
    region,
)
def test_fast_path_changes_nothing_for_anything(raw, region):
    assert phones._parse(raw, region) == phones._parse(raw, region, fast=False)


@pytest.mark.parametrize(
    ("text", "region", "expected"),
    [
        ("380501234567", "UA", "380501234567"),
        ("+380501234567", "UA", "380501234567"),
        ("380501234567", "PL", "380501234567"),
        ("+380 (50) 123-45-67", "ZZ", "380501234567"),
        ("0501234567", "UA", "380501234567"),
        ("(050) 123-45-67", "UA", "380501234567"),
        ("(380) 50 123-45-67", "UA", "380501234567"),
        ("(+380) 50 123-45-67", "PL", None),  # a bracket first, outside Ukraine: phonenumbers
        ("(050) 123-45-67", "PL", None),
        ("0501234567", "PL", None),  # the national form only in Ukraine
        ("380001234567", "UA", None),  # invalid: phonenumbers words the refusal
        ("3805012345678", "UA", None),
        ("٣٨٠٥٠١٢٣٤٥٦٧", "UA", None),  # other scripts' digits
    ],
)
def test_what_takes_the_fast_path(text, region, expected):
    assert phones._fast_ukrainian(text, region) == expected


def test_normalize_or_problem(settings):
    settings.SMSCLUB = {"GATEWAYS": {}}
    assert phones.normalize_or_problem("0501234567") == ("380501234567", None)
    assert phones.normalize_or_problem("501234567", region="PL") == ("48501234567", None)
    number, problem = phones.normalize_or_problem("123")
    assert number == ""
    assert problem == phones.phone_problem("123")
    assert "'123'" in problem
