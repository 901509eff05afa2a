"""Ukraine's mobile networks, as a message's ``operator`` names them, and which one a number is
of.

:func:`operator_of` reads the network from ``phonenumbers``' carrier data (the network a number
range was given to), kept current by that package, not by a table of ours: its English carrier
name is matched to one of :class:`Operator`. A number ported to another network keeps its first
network's name there; Ukraine has had number portability since 2019, so the figures per
operator are those of the ranges, not of every phone.
"""

from __future__ import annotations

import functools
import re

import phonenumbers
from django.db import models
from django.utils.translation import gettext_lazy as _
from phonenumbers import carrier

__all__ = ["Operator", "operator_of"]


class Operator(models.TextChoices):
    KYIVSTAR = "kyivstar", "Kyivstar"
    VODAFONE = "vodafone", "Vodafone Ukraine"
    LIFECELL = "lifecell", "lifecell"
    OTHER = "other", _("other")


#: Ukraine's country calling code, as the international digits of a number begin.
UKRAINE = "380"

#: Words of the carrier names ``phonenumbers`` gives (in English) for each network: today's
#: names, and those it gave before (Vodafone Ukraine was MTS until 2015, lifecell was life:)
#: and Astelit). Any other carrier (3Mob/TriMob, PEOPLEnet, Intertelecom, ...) is "other".
CARRIER_WORDS: dict[Operator, re.Pattern[str]] = {
    Operator.KYIVSTAR: re.compile(r"\bkyivstar\b|\bkievstar\b", re.IGNORECASE),
    Operator.VODAFONE: re.compile(r"\bvodafone\b|\bmts\b", re.IGNORECASE),
    Operator.LIFECELL: re.compile(r"\blifecell\b|\blife\b|\bastelit\b", re.IGNORECASE),
}


def operator_of(number: str) -> str:
    """The :class:`Operator` value of a normalised number (international digits, as
    :func:`django_smsclub.phones.normalize_phone` gives them).

    Only Ukrainian numbers (``380...``) can be of Kyivstar, Vodafone Ukraine or lifecell; any
    other number, a landline, or a range ``phonenumbers`` does not know is ``"other"``. Fast
    enough for every message: numbers with the same first digits share one look-up.
    """
    digits = number[1:] if number[:1] == "+" else number
    if not digits.startswith(UKRAINE) or not digits.isdigit():
        return Operator.OTHER.value
    return _operator_of_prefix(digits[: _prefix_length()])


def operator_of_carrier(name: str) -> str:
    """The :class:`Operator` value of an English carrier name from ``phonenumbers``."""
    for operator, words in CARRIER_WORDS.items():
        if words.search(name):
            return operator.value
    return Operator.OTHER.value


@functools.lru_cache(maxsize=1024)
def _operator_of_prefix(prefix: str) -> str:
    # The carrier of a number depends only on its first _prefix_length() digits (the longest
    # prefix of Ukraine in the data): any number that begins so has this one.
    padded = prefix.ljust(len(UKRAINE) + 9, "0")
    try:
        parsed = phonenumbers.parse("+" + padded)
    except phonenumbers.NumberParseException:
        return Operator.OTHER.value
    return operator_of_carrier(carrier.name_for_valid_number(parsed, "en"))


@functools.cache
def _prefix_length() -> int:
    """How many leading digits decide the carrier of a Ukrainian number: the longest prefix of
    Ukraine in ``phonenumbers``' carrier data (five today: ``38067``)."""
    try:
        from phonenumbers.carrierdata import CARRIER_DATA

        lengths = [len(prefix) for prefix in CARRIER_DATA if prefix.startswith(UKRAINE)]
    except ImportError:  # pragma: no cover - every release ships the data
        lengths = []
    # Without the data's prefixes, the whole number (12 digits): exact, merely not shared.
    return max(lengths, default=len(UKRAINE) + 9)
