"""Unsubscribe links: the short signed token of a number, and the URL a campaign text's
``{unsubscribe_url}`` becomes for each recipient.

The URL is ``SMSCLUB["UNSUBSCRIBE_URL"]`` followed by the token. A token is the number's
international digits written in base 62 (``0-9A-Za-z``), then a MAC of :data:`MAC_LENGTH`
base-62 characters: an HMAC-SHA256 of the digits keyed with ``SECRET_KEY`` and a salt of
ours, cut to about 47 bits. A Ukrainian number (12 digits) makes 7 + 8 = 15 characters, the
longest number SMSClub takes (15 digits) 9 + 8 = 17: every link costs the length of the
setting plus that many characters of the SMS.

Whoever changes a character gets another MAC: a made-up or edited token is refused, and the
MAC of another number cannot be worked out without ``SECRET_KEY`` (guessing one takes some
10^14 tries). Links sent before ``SECRET_KEY`` is rotated keep working while the old key is in
``SECRET_KEY_FALLBACKS``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import string

from django.conf import settings
from django.utils.crypto import constant_time_compare
from django.utils.encoding import force_bytes

from . import conf
from .exceptions import ConfigurationError
from .phones import MAX_DIGITS, MIN_DIGITS

#: The campaign text placeholder the link goes in: a reserved name, not a recipient's column.
PLACEHOLDER = "unsubscribe_url"
#: Characters of a token's MAC.
MAC_LENGTH = 8
ALPHABET = string.digits + string.ascii_letters
#: Characters of a token for the shortest number SMSClub takes (10 digits: 6 in base 62) and
#: the longest (15 digits: 9), MAC included; a Ukrainian number's (12 digits: 7) has 15.
MIN_TOKEN_LENGTH, MAX_TOKEN_LENGTH = 6 + MAC_LENGTH, 9 + MAC_LENGTH
_SALT = "django_smsclub.unsubscribe"
_BASE = len(ALPHABET)
_INDEX = {char: value for value, char in enumerate(ALPHABET)}


def make_token(phone: str) -> str:
    """The token of a normalised number (international digits, as messages store them)."""
    if not (phone.isascii() and phone.isdigit() and phone[0] != "0"):
        raise ValueError(f"{phone!r:.40} is not a normalised number")
    return _encode(int(phone)) + _mac(phone, settings.SECRET_KEY)


def read_token(token: str) -> str | None:
    """The number a token was made for, or None for a token that is not one of ours."""
    if not (MIN_TOKEN_LENGTH <= len(token) <= MAX_TOKEN_LENGTH) or token[0] == "0":
        return None
    if any(char not in _INDEX for char in token):
        return None
    value = 0
    for char in token[:-MAC_LENGTH]:
        value = value * _BASE + _INDEX[char]
    phone = str(value)
    if not MIN_DIGITS <= len(phone) <= MAX_DIGITS:
        return None
    given = token[-MAC_LENGTH:]
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    if any(constant_time_compare(given, _mac(phone, secret)) for secret in secrets):
        return phone
    return None


def url_for(phone: str) -> str:
    """The unsubscribe link of a normalised number; :class:`ConfigurationError` when
    ``SMSCLUB["UNSUBSCRIBE_URL"]`` is not set."""
    return base_url() + make_token(phone)


def base_url() -> str:
    """``SMSCLUB["UNSUBSCRIBE_URL"]``; :class:`ConfigurationError` when it is not set."""
    base = conf.unsubscribe_url()
    if base is None:
        raise ConfigurationError(missing_setting())
    return base


def missing_setting() -> str:
    return (
        f"the text has {{{PLACEHOLDER}}}, but SMSCLUB['UNSUBSCRIBE_URL'] is not set; set it "
        "to the address django_smsclub.urls is served at, such as 'https://example.com/u/'"
    )


def _mac(phone: str, secret: str | bytes) -> str:
    # Django's salted_hmac, with the key it derives from the salt and the secret kept: a
    # campaign makes one MAC per recipient.
    digest = hmac.new(_key(secret), phone.encode(), hashlib.sha256).digest()
    return _encode(int.from_bytes(digest[:8], "big") % _BASE**MAC_LENGTH).rjust(MAC_LENGTH, "0")


@functools.lru_cache(maxsize=8)
def _key(secret: str | bytes) -> bytes:
    return hashlib.sha256(force_bytes(_SALT) + force_bytes(secret)).digest()


def _encode(value: int) -> str:
    """``value`` in base 62, two characters a step."""
    pairs = []
    while value:
        value, rest = divmod(value, _BASE * _BASE)
        pairs.append(_PAIRS[rest])
    return "".join(reversed(pairs)).lstrip("0") or "0"


_PAIRS = [first + second for first in ALPHABET for second in ALPHABET]
