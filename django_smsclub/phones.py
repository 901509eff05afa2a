"""Recipient numbers: whatever way a person writes them, to the digits SMSClub expects.

Ukrainian numbers come out as ``380XXXXXXXXX``; other valid numbers in international digits
(country code and national number, no ``+``).
"""

from __future__ import annotations

from collections.abc import Iterable

import phonenumbers

from . import conf
from .exceptions import InvalidMessage

MAX_INPUT_LENGTH = 40


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


def _parse(raw: object, region: str) -> tuple[str, str | None]:
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
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:], None
