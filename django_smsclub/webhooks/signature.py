"""Signing a webhook body, and checking a signature as a receiver does.

Standard library only: a receiver can use :func:`verify_signature` (or copy it) without Django.

The signature header reads ``t=<unix seconds>,v1=<hex>``, where the hex is
``HMAC-SHA256(secret, f"{t}.".encode() + body)`` over the exact bytes of the request body. The
time is the moment of that attempt (a retry is signed anew), so a receiver refuses a request
whose ``t`` is more than :data:`TOLERANCE` seconds away from its own clock: a body captured on
the way cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

#: The event's name, e.g. ``message.final``.
EVENT_HEADER = "X-SMSClub-Event"
#: The event's ID (a UUID): the same in every attempt, so a receiver can drop repeats.
EVENT_ID_HEADER = "X-SMSClub-Event-Id"
#: The attempt's time, Unix seconds (the same as ``t`` in the signature).
TIMESTAMP_HEADER = "X-SMSClub-Timestamp"
#: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of f"{t}." + body>``.
SIGNATURE_HEADER = "X-SMSClub-Signature"
#: Seconds a signature's time may be away from the receiver's clock: the replay window.
TOLERANCE = 300

SCHEME = "v1"


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}."`` followed by ``body``, keyed by ``secret``."""
    signed = f"{int(timestamp)}.".encode() + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def signature_header(body: bytes, secret: str, timestamp: int) -> str:
    """The value of :data:`SIGNATURE_HEADER` for ``body`` sent at ``timestamp``."""
    return f"t={int(timestamp)},{SCHEME}={sign(body, secret, timestamp)}"


def verify_signature(
    body: bytes | str,
    headers: Mapping[str, str] | str,
    secret: str | Iterable[str],
    tolerance: float = TOLERANCE,
    *,
    now: float | None = None,
) -> bool:
    """Whether ``body`` was signed with ``secret`` less than ``tolerance`` seconds ago.

    ``body``: the raw request body, as received (``request.body`` in Django); a ``str`` is
    encoded as UTF-8. ``headers``: the request's headers (any mapping; names in any case,
    Django's ``request.headers`` or ``request.META`` alike), or the signature header's value
    itself. ``secret``: the endpoint's secret, or several while one is being replaced.

    False for a missing or malformed header, a time outside the window (either way), or no
    matching ``v1`` signature. Drop repeats by :data:`EVENT_ID_HEADER` as well: within the
    window a captured request can still be sent again.
    """
    value = headers if isinstance(headers, str) else _header(headers, SIGNATURE_HEADER)
    if not value:
        return False
    timestamp, signatures = _parse(value)
    if timestamp is None or not signatures:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    secrets = [secret] if isinstance(secret, str) else list(secret)
    expected = [sign(raw, key, timestamp) for key in secrets if key]
    # Every comparison made, in constant time each: no early exit tells which one matched.
    matches = [hmac.compare_digest(e, s) for e in expected for s in signatures]
    return any(matches)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """``name`` from ``headers`` in any case, or as ``request.META`` spells it."""
    meta = "HTTP_" + name.upper().replace("-", "_")
    for key in (name, meta):
        value = headers.get(key)
        if value is not None:
            return value
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted:
            return value
    return None


def _parse(value: str) -> tuple[int | None, list[str]]:
    """(``t``, the ``v1`` signatures) of a signature header; ``t`` None if it has none."""
    timestamp: int | None = None
    signatures: list[str] = []
    for item in value.split(","):
        key, _, part = item.strip().partition("=")
        if key == "t" and part.isascii() and part.isdigit() and len(part) <= 12:
            timestamp = int(part)
        elif key == SCHEME and part:
            signatures.append(part)
    return timestamp, signatures
