"""Recipient numbers: whatever way a person writes them, to the digits SMSClub expects.

Ukrainian numbers come out as ``380XXXXXXXXX``; other valid numbers in international digits
(country code and national number, no ``+``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable

import phonenumbers

from . import conf
from .exceptions import InvalidMessage

MAX_INPUT_LENGTH = 40
#: How many international digits a number SMSClub takes has (country code included).
MIN_DIGITS, MAX_DIGITS = 10, 15


def normalize_phone(raw: object, *, region: str | None = None) -> str:
    """The international digits of ``raw``, or :class:`InvalidMessage` naming it."""
    number, problem = _parse(raw, region or conf.default_region())
    if problem:
        raise InvalidMessage(problem)
    return number


def normalize_phones(raws: Iterable[object], *, region: str | None = None) -> list[str]:
    """Normalise every number; if any is invalid, raise one error naming each bad one.

    A single number (a string or an int) is taken as a list of one, not as its characters.
    """
    numbers, problems = split_valid(raws, region=region)
    if problems:
        raise InvalidMessage(problems)
    return numbers


def split_valid(
    raws: Iterable[object], *, region: str | None = None
) -> tuple[list[str], list[str]]:
    """Normalise what can be; return (numbers, one problem line per invalid input).

    A single number (a string or an int) is taken as a list of one, not as its characters.
    """
    if isinstance(raws, str | int):
        raws = [raws]
    region = region or conf.default_region()
    numbers: list[str] = []
    problems: list[str] = []
    for raw in raws:
        number, problem = _parse(raw, region)
        if problem:
            problems.append(problem)
        else:
            numbers.append(number)
    return numbers, problems


def phone_problem(raw: object, *, region: str | None = None) -> str | None:
    """Why ``raw`` is not a valid recipient, or None."""
    return _parse(raw, region or conf.default_region())[1]


def normalize_or_problem(raw: object, *, region: str | None = None) -> tuple[str, str | None]:
    """``(digits, None)`` for a valid ``raw``, ``("", problem)`` otherwise; never raises.

    What :func:`normalize_phone` returns or raises, without the cost of an exception per bad
    number; pass ``region`` in a loop to read the setting once.
    """
    return _parse(raw, region or conf.default_region())


def _parse(raw: object, region: str, *, fast: bool = True) -> tuple[str, str | None]:
    # phonenumbers knows regions only in upper case ("UA", not "ua").
    region = str(region).strip().upper()
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        return "", f"phone number must be a string, not {type(raw).__name__} {raw!r:.40}"
    text = raw.strip()
    if not text:
        return "", f"phone number {raw!r} is empty"
    if len(text) > MAX_INPUT_LENGTH:
        return "", f"phone number {raw[:MAX_INPUT_LENGTH]!r}... is too long to be a number"
    if fast:
        number = _fast_ukrainian(text, region)
        if number is not None:
            return number, None
    candidate = text
    # People write Ukrainian numbers as 380XXXXXXXXX without a plus; phonenumbers reads that
    # as a national number unless told it is international.
    digits = "".join(c for c in text if c.isdecimal())
    if text[0].isdecimal() and len(digits) == 12 and digits.startswith("380"):
        candidate = "+" + digits
    try:
        parsed = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException as exc:
        if (
            exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE
            and region not in phonenumbers.SUPPORTED_REGIONS
        ):
            return "", (
                f"phone number {raw!r} has no country code and the region {region!r} "
                "to read it in is not a known region"
            )
        return "", f"phone number {raw!r} is not a phone number"
    if not phonenumbers.is_valid_number(parsed):
        return "", f"phone number {raw!r} is not a valid number"
    if parsed.extension:
        # "0501234567;0671234567" parses as one number with extension 0671234567: sending to
        # the first alone would silently drop the rest.
        return "", (
            f"phone number {raw!r} has an extension ({parsed.extension!r}), which an SMS cannot "
            "reach; give one number per recipient"
        )
    digits = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:]
    if not MIN_DIGITS <= len(digits) <= MAX_DIGITS:
        # Valid in a few small countries (Niue: +683 4002), but SMSClub takes 10 to 15 digits
        # and would refuse the whole request for it.
        return "", (
            f"phone number {raw!r} has {len(digits)} international digits; SMSClub takes "
            f"{MIN_DIGITS} to {MAX_DIGITS}"
        )
    return digits, None


# --- the fast path ----------------------------------------------------------------------------
# Most recipient lists hold Ukrainian numbers as 380XXXXXXXXX (or +380 ..., or 0XX ... read in
# Ukraine). For those, phonenumbers.parse + is_valid_number come down to matching the nine
# national digits against the patterns of Ukraine's metadata: match them with the patterns
# compiled once. The fast path only ever says "valid, and these are the digits"; anything it is
# not sure of (every invalid number among them) takes the full way, so every refusal and its
# wording stay phonenumbers'. tests/rules/test_phones_fast.py checks it against phonenumbers.

_SEPARATORS = str.maketrans("", "", " -()")
# With its country code: a plus or not, in any region (_parse reads 380XXXXXXXXX as
# international). Digits as ASCII only: phonenumbers' take on other scripts is left to it.
_UA_INTERNATIONAL = re.compile(r"\+?380([0-9]{9})")
# The national form, read in Ukraine: the national prefix 0, then nine digits (not "00", the
# international prefix).
_UA_NATIONAL = re.compile(r"0([1-9][0-9]{8})")


def _fast_ukrainian(text: str, region: str) -> str | None:
    """The digits of ``text`` if it is surely a valid Ukrainian number, else None (unsure)."""
    first = text[0]
    # phonenumbers skips to the first digit or plus; only _parse's 380 rule (a digit first) and
    # Ukraine's own reading of "(380) ..." make a number without a plus Ukrainian elsewhere.
    if not ("0" <= first <= "9" or first == "+" or (first == "(" and region == "UA")):
        return None
    compact = text.translate(_SEPARATORS)
    match = _UA_INTERNATIONAL.fullmatch(compact)
    if match is None and region == "UA":
        match = _UA_NATIONAL.fullmatch(compact)
    if match is not None and national_number_validator("UA")(match[1]):
        return "380" + match[1]
    return None


@functools.cache
def national_number_validator(region: str) -> Callable[[str], bool]:
    """Whether a national significant number (ASCII digits) is valid in ``region``.

    Decides what ``phonenumbers.is_valid_number_for_region`` decides for a number of that
    region's country code with that national number (``is_valid_number`` too, where the country
    code has one region, as Ukraine's has): it matches the general description and that of at
    least one number type (length first, then pattern), here with patterns compiled once.
    """
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        raise ValueError(f"phonenumbers has no metadata for region {region!r}")
    general = metadata.general_desc
    kinds = [
        desc
        for desc in (
            metadata.premium_rate,
            metadata.toll_free,
            metadata.shared_cost,
            metadata.voip,
            metadata.personal_number,
            metadata.pager,
            metadata.uan,
            metadata.voicemail,
            metadata.fixed_line,
            metadata.mobile,
        )
        if desc is not None and desc.national_number_pattern
    ]
    if general is None or not general.national_number_pattern or not kinds:
        return lambda national: False
    # One pattern per length: the general one, and any of the types that allow that length.
    patterns: dict[int, tuple[re.Pattern[str], re.Pattern[str]]] = {}
    for length in range(1, 18):
        if general.possible_length and length not in general.possible_length:
            continue
        fitting = [d for d in kinds if not d.possible_length or length in d.possible_length]
        if fitting:
            patterns[length] = (
                re.compile(general.national_number_pattern),
                re.compile("|".join(f"(?:{d.national_number_pattern})" for d in fitting)),
            )

    def valid(national: str) -> bool:
        pair = patterns.get(len(national))
        return (
            pair is not None
            and pair[0].fullmatch(national) is not None
            and pair[1].fullmatch(national) is not None
        )

    return valid
