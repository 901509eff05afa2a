"""The one place the ``SMSCLUB`` setting is read.

Every function reads ``django.conf.settings`` when it is called, so ``override_settings``
works in tests and nothing is cached at import time.
"""

from __future__ import annotations

import copy
import math
import re
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings

from . import sendwindow
from .exceptions import ConfigurationError

BACKEND_ALIASES = {
    "http": "django_smsclub.gateways.http.HttpGateway",
    "xml": "django_smsclub.gateways.xml.XmlGateway",
    "json": "django_smsclub.gateways.json.JsonGateway",
    "soap": "django_smsclub.gateways.soap.SoapGateway",
    "smpp": "django_smsclub.gateways.smpp.SmppGateway",
    "locmem": "django_smsclub.gateways.locmem.LocmemGateway",
}

DEFAULTS: dict[str, Any] = {
    "DEFAULT_GATEWAY": "default",
    "GATEWAYS": {},
    "DEFAULT_REGION": "UA",
    # Seconds between polls of one report, growing; the last one repeats.
    "POLL_INTERVALS": [30, 60, 120, 300, 600, 1800, 3600],
    "TRACKING_WINDOW": 3 * 24 * 3600,
    "STALE_SENDING_AFTER": 15 * 60,
    "MAX_SEND_ATTEMPTS": 5,
    "RETRY_BACKOFF": 30,
    "RETRY_BACKOFF_MAX": 3600,
    "RESEND_AMBIGUOUS": False,
    "SEND_BATCH_SIZE": 500,
    # Send tasks a started campaign is split into (each claims its own batches).
    "SEND_CONCURRENCY": 4,
    "POLL_BATCH_SIZE": 500,
    # Bytes a message's metadata may take, serialized as JSON (UTF-8).
    "METADATA_MAX_BYTES": 4096,
    # Status webhooks: endpoints by name (URL, SECRET, EVENTS), and how they are delivered.
    "WEBHOOKS": {},
    "WEBHOOK_TIMEOUT": 10.0,
    "WEBHOOK_RETRY_BACKOFF": 30,
    "WEBHOOK_RETRY_BACKOFF_MAX": 3600,
    "WEBHOOK_MAX_ATTEMPTS": 20,
    "WEBHOOK_DISABLE_AFTER": 20,
    # Seconds added to the rate limit's one-second window, so requests that reach the provider
    # a little late (network, scheduling) still never put RATE_LIMIT + 1 in one of its seconds.
    "RATE_LIMIT_MARGIN": 0.04,
    # Quiet hours: the daily window, (opens, closes) in local "HH:MM", campaign messages are
    # sent in; None: no window. A campaign's own window overrides it (docs/sendwindow.rst).
    "SEND_WINDOW": None,
    # The time zone of the send windows (an IANA name, read with zoneinfo).
    "TIME_ZONE": "Europe/Kyiv",
    # Where {unsubscribe_url} links point: the address django_smsclub.urls' "u/" is served at,
    # such as "https://example.com/u/"; each link is it plus a token (docs/optout.rst).
    "UNSUBSCRIBE_URL": None,
}

GATEWAY_DEFAULTS: dict[str, Any] = {
    "USERNAME": "",
    "PASSWORD": "",
    "TOKEN": "",
    "SENDER": "",
    "BASE_URL": None,
    "TIMEOUT": 30.0,
    "CONNECT_TIMEOUT": 5.0,
    "BATCH_SIZE": None,
    "RATE_LIMIT": None,
    "METHOD": "POST",
    # HTTP and XML: "legacy" (the document's hfw_smpp_addon paths), "current" (/http/, /xml/
    # on gate.smsclub.mobi) or, HTTP only, "token" (/token/, TOKEN instead of PASSWORD).
    "ENDPOINTS": "legacy",
    # SMPP: bases of message IDs in submit_sm_resp and in receipts, say (16, 10); None: the
    # same base on both sides, matched whatever their leading zeros and case.
    "MESSAGE_ID_BASES": None,
    # The account's currency, shown with its balance where the reply does not name one (only
    # the JSON API does): SMSClub keeps accounts in hryvnias.
    "CURRENCY": "UAH",
    "OPTIONS": {},
}


def smsclub_settings() -> dict[str, Any]:
    """The ``SMSCLUB`` setting merged over the defaults."""
    configured = _configured()
    # A fresh copy of the defaults: a caller changing what it got must not change them.
    merged = {**copy.deepcopy(DEFAULTS), **configured}
    if not isinstance(merged["GATEWAYS"], dict):
        raise ConfigurationError(
            f"SMSCLUB['GATEWAYS'] must be a dict of name -> settings, "
            f"not {type(merged['GATEWAYS']).__name__}"
        )
    return merged


def get(key: str) -> Any:
    """One top-level value of the ``SMSCLUB`` setting (or its default).

    Cheap enough for a loop: only the value asked for is copied, not the whole setting.
    """
    if key == "GATEWAYS":
        return smsclub_settings()[key]
    configured = _configured()
    if key in configured:
        return configured[key]
    return copy.deepcopy(DEFAULTS[key])


def _configured() -> dict[str, Any]:
    configured = getattr(settings, "SMSCLUB", None)
    if configured is None:
        return {}
    if not isinstance(configured, dict):
        raise ConfigurationError(f"SMSCLUB must be a dict, not {type(configured).__name__}")
    return configured


def gateway_names() -> list[str]:
    return list(smsclub_settings()["GATEWAYS"])


def default_gateway_name() -> str:
    return str(smsclub_settings()["DEFAULT_GATEWAY"])


def gateway_settings(name: str | None = None) -> dict[str, Any]:
    """The settings of gateway ``name`` (the default one if None), with defaults filled in."""
    config = smsclub_settings()
    name = name or str(config["DEFAULT_GATEWAY"])
    gateways = config["GATEWAYS"]
    if name not in gateways:
        known = ", ".join(repr(n) for n in gateways) or "none"
        raise ConfigurationError(f"SMSCLUB has no gateway named {name!r} (configured: {known})")
    raw = gateways[name]
    if not isinstance(raw, dict):
        raise ConfigurationError(f"SMSCLUB['GATEWAYS'][{name!r}] must be a dict")
    merged = {**copy.deepcopy(GATEWAY_DEFAULTS), **raw, "NAME": name}
    backend = merged.get("BACKEND")
    if not backend:
        raise ConfigurationError(f"SMSCLUB['GATEWAYS'][{name!r}] has no BACKEND")
    merged["BACKEND"] = BACKEND_ALIASES.get(backend, backend)
    return merged


def gateway_currency(name: str | None = None) -> str:
    """The currency of gateway ``name``'s account where its balance reply does not say."""
    return str(gateway_settings(name)["CURRENCY"] or "")


def default_region() -> str:
    return str(get("DEFAULT_REGION"))


def max_send_attempts() -> int:
    """Requests made for one message before a surely-unsent one is given up as failed."""
    return int(get("MAX_SEND_ATTEMPTS"))


def retry_backoff() -> float:
    """Seconds before the second attempt; doubled for each one after."""
    return float(get("RETRY_BACKOFF"))


def retry_backoff_max() -> float:
    return float(get("RETRY_BACKOFF_MAX"))


def resend_ambiguous() -> bool:
    """Whether a maybe-sent message may be sent again (off: it becomes ``unknown``)."""
    return bool(get("RESEND_AMBIGUOUS"))


def send_batch_size() -> int:
    return int(get("SEND_BATCH_SIZE"))


def send_concurrency() -> int:
    """Send tasks a started campaign is split into."""
    return int(get("SEND_CONCURRENCY"))


def poll_batch_size() -> int:
    return int(get("POLL_BATCH_SIZE"))


def metadata_max_bytes() -> int:
    """Bytes a message's ``metadata`` may take, serialized as JSON in UTF-8."""
    value = get("METADATA_MAX_BYTES")
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ConfigurationError(
            f"SMSCLUB['METADATA_MAX_BYTES'] {value!r:.40} must be a whole number of bytes, "
            "at least 2 (the size of {})"
        )
    return value


def rate_limit_margin() -> float:
    """Seconds added to the rate limit's window (see ``RATE_LIMIT_MARGIN``)."""
    value = get("RATE_LIMIT_MARGIN")
    seconds = _as_seconds(value)
    if seconds is None or seconds > 1:
        raise ConfigurationError(
            f"SMSCLUB['RATE_LIMIT_MARGIN'] {value!r} must be a number of seconds from 0 to 1"
        )
    return seconds


def tracking_window() -> timedelta:
    return _seconds("TRACKING_WINDOW")


def stale_sending_after() -> timedelta:
    return _seconds("STALE_SENDING_AFTER")


def poll_intervals() -> list[int]:
    """Seconds between polls of one report, growing; the last one repeats."""
    value = get("POLL_INTERVALS")
    if isinstance(value, list | tuple) and value:
        seconds = [_as_seconds(item) for item in value]
        if None not in seconds:
            return [int(s) for s in seconds if s is not None]
    raise ConfigurationError(
        f"SMSCLUB['POLL_INTERVALS'] {value!r} must be a non-empty list of "
        "finite, non-negative numbers of seconds"
    )


#: Shortest webhook SECRET accepted: an HMAC key guessed by no one (``secrets.token_urlsafe(32)``
#: gives 43 characters).
WEBHOOK_SECRET_MIN_LENGTH = 32
#: The keys of one entry of ``WEBHOOKS``.
WEBHOOK_KEYS = ("URL", "SECRET", "EVENTS")


def webhook_endpoints() -> dict[str, dict[str, Any]]:
    """The entries of ``WEBHOOKS`` by name, each with ``URL``, ``SECRET`` and ``EVENTS`` (every
    event when not given). Their values are checked by :func:`webhook_problems`."""
    from .webhooks import EVENTS

    value = get("WEBHOOKS")
    if not isinstance(value, dict):
        raise ConfigurationError(
            f"SMSCLUB['WEBHOOKS'] must be a dict of name -> settings, not {type(value).__name__}"
        )
    endpoints: dict[str, dict[str, Any]] = {}
    for name, raw in value.items():
        if not isinstance(raw, dict):
            raise ConfigurationError(f"SMSCLUB['WEBHOOKS'][{name!r}] must be a dict")
        events = raw.get("EVENTS", list(EVENTS))
        endpoints[name] = {
            "URL": raw.get("URL"),
            "SECRET": raw.get("SECRET"),
            "EVENTS": list(events) if isinstance(events, list | tuple) else events,
        }
    return endpoints


def webhook_problems(name: object, entry: dict[str, Any]) -> list[str]:
    """What is wrong with one entry of ``WEBHOOKS``, naming the bad value (never the secret)."""
    from urllib.parse import urlsplit

    from .webhooks import EVENTS

    where = f"SMSCLUB['WEBHOOKS'][{name!r}]"
    problems = []
    if not (isinstance(name, str) and 0 < len(name) <= 100):
        problems.append(f"{where}: the name must be a string of 1 to 100 characters")
    url = entry.get("URL")
    usable = False
    if isinstance(url, str) and len(url) <= 500:
        try:
            parts = urlsplit(url)
            usable = parts.scheme in ("http", "https") and bool(parts.hostname)
            usable = usable and parts.username is None
        except ValueError:
            pass
    if not usable:
        shown = url.rpartition("@")[2] if isinstance(url, str) else url
        problems.append(
            f"{where}['URL'] is {shown!r:.120}; it must be an http:// or https:// URL with a "
            "host, without user:password@, of at most 500 characters"
        )
    secret = entry.get("SECRET")
    if not isinstance(secret, str) or len(secret) < WEBHOOK_SECRET_MIN_LENGTH:
        given = "missing" if not secret else f"{len(str(secret))} characters long"
        problems.append(
            f"{where}['SECRET'] is {given}; it must be a string of at least "
            f"{WEBHOOK_SECRET_MIN_LENGTH} characters"
        )
    elif len(secret) > 255:
        problems.append(f"{where}['SECRET'] is longer than 255 characters")
    events = entry.get("EVENTS")
    if not (isinstance(events, list) and events):
        problems.append(f"{where}['EVENTS'] {events!r:.80} must be a non-empty list of events")
    else:
        unknown = [e for e in events if e not in EVENTS]
        if unknown:
            problems.append(
                f"{where}['EVENTS'] has unknown event(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(EVENTS)}"
            )
    return problems


def webhook_timeout() -> float:
    """Seconds one webhook request may take: connecting, waiting, reading the reply."""
    value = get("WEBHOOK_TIMEOUT")
    seconds = _as_seconds(value)
    if not seconds or seconds > 300:
        raise ConfigurationError(
            f"SMSCLUB['WEBHOOK_TIMEOUT'] {value!r} must be a number of seconds above 0, at most 300"
        )
    return seconds


def webhook_retry_backoff() -> float:
    """Seconds before a webhook's second attempt; doubled for each one after."""
    return _seconds("WEBHOOK_RETRY_BACKOFF").total_seconds()


def webhook_retry_backoff_max() -> float:
    return _seconds("WEBHOOK_RETRY_BACKOFF_MAX").total_seconds()


def webhook_max_attempts() -> int:
    """Attempts of one webhook delivery before it is given up (``failed``)."""
    return _whole("WEBHOOK_MAX_ATTEMPTS")


def webhook_disable_after() -> int:
    """Failed attempts in a row after which an endpoint is disabled."""
    return _whole("WEBHOOK_DISABLE_AFTER")


def _whole(key: str) -> int:
    value = get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"SMSCLUB[{key!r}] {value!r:.40} must be a whole number above 0")
    return value


def send_window() -> sendwindow.Window | None:
    """The default send window (``SEND_WINDOW``), or None for none."""
    value = get("SEND_WINDOW")
    try:
        return sendwindow.parse_window(value)
    except ValueError as exc:
        raise ConfigurationError(f"SMSCLUB['SEND_WINDOW']: {exc}") from None


def time_zone() -> ZoneInfo:
    """The time zone of the send windows (``TIME_ZONE``)."""
    value = get("TIME_ZONE")
    try:
        return sendwindow.parse_time_zone(value)
    except ValueError as exc:
        raise ConfigurationError(f"SMSCLUB['TIME_ZONE']: {exc}") from None


def unsubscribe_url() -> str | None:
    """The start of unsubscribe links (``UNSUBSCRIBE_URL``), or None when it is not set."""
    value = get("UNSUBSCRIBE_URL")
    if value is None or value == "":
        return None
    if not (isinstance(value, str) and len(value) <= 100 and _UNSUBSCRIBE_URL.fullmatch(value)):
        raise ConfigurationError(
            f"SMSCLUB['UNSUBSCRIBE_URL'] {value!r:.120} must be a web address ending in '/' "
            "(ASCII, no spaces, at most 100 characters), such as 'https://example.com/u/' or, "
            "8 characters shorter in every SMS, 'example.com/u/'"
        )
    return value


#: A web address ending in "/", with or without its scheme: what phones turn into a link.
_UNSUBSCRIBE_URL = re.compile(
    r"(https?://[A-Za-z0-9.-]+|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+)(:[0-9]+)?/([!-~]*/)?"
)


def _seconds(key: str) -> timedelta:
    value = get(key)
    seconds = _as_seconds(value)
    if seconds is None:
        raise ConfigurationError(
            f"SMSCLUB[{key!r}] {value!r} is not a valid number of seconds (finite, not negative)"
        )
    return value if isinstance(value, timedelta) else timedelta(seconds=seconds)


def _as_seconds(value: object) -> float | None:
    """``value`` (a number, a numeric string or a timedelta) in seconds; None if it is not
    a finite, non-negative duration that a timedelta can hold."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        return None
    else:
        try:
            seconds = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    try:
        timedelta(seconds=seconds)
    except OverflowError:
        return None
    return seconds
