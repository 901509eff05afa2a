"""System checks: settings that would only fail when the first SMS goes out.

Messages name the setting and the value that is wrong; they never contain a password or token.
"""

from __future__ import annotations

import difflib
import math
from typing import Any
from urllib.parse import urlsplit

import phonenumbers
from django.conf import settings
from django.core.checks import Error, Warning, register
from django.utils.module_loading import import_string

from . import conf, text
from .exceptions import ConfigurationError
from .gateways.base import Gateway

NEEDS_PASSWORD = {"HttpGateway", "XmlGateway", "SoapGateway", "SmppGateway"}
NEEDS_TOKEN = {"JsonGateway"}
#: Settings keys only some gateways read, by the name of a class in the backend's MRO. A
#: project's own gateway class may list its keys in a ``settings_keys`` attribute.
BACKEND_KEYS = {
    "SmppGateway": {"HOST", "PORT", "WINDOW", "ENQUIRE_LINK", "SYSTEM_TYPE", "THROTTLE_RETRIES"},
    "SoapGateway": {"WSDL", "BALANCE_URL"},
}
#: Caches that count per process (or not at all): a rate limit kept there is no shared limit.
PROCESS_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
}
SQLITE_OPTIONS = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
#: The shortest busy timeout, in seconds, taken for one: sqlite3's own default. Below it a
#: writer gives up while another's batch is still being written.
SQLITE_MIN_TIMEOUT = 5.0


@register("django_smsclub")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    try:
        config = conf.smsclub_settings()
    except ConfigurationError as exc:
        return [Error(str(exc), id="django_smsclub.E001")]
    gateways = config["GATEWAYS"]
    if not gateways:
        return [
            Error(
                "SMSCLUB['GATEWAYS'] configures no gateway.",
                hint="Add at least one, e.g. {'default': {'BACKEND': 'xml', ...}}.",
                id="django_smsclub.E001",
            )
        ]
    errors: list[Error | Warning] = _unknown_keys("SMSCLUB", config, set(conf.DEFAULTS))
    default = config["DEFAULT_GATEWAY"]
    if not (isinstance(default, str) and default in gateways):
        errors.append(
            Error(
                f"SMSCLUB['DEFAULT_GATEWAY'] is {default!r}, which is not in SMSCLUB['GATEWAYS'] "
                f"({', '.join(map(repr, gateways))}).",
                id="django_smsclub.E002",
            )
        )
    for name in gateways:
        errors.extend(_check_gateway(name))
    errors.extend(_check_values())
    return errors


def _check_gateway(name: str) -> list[Error | Warning]:
    where = f"SMSCLUB['GATEWAYS'][{name!r}]"
    try:
        options = conf.gateway_settings(name)
    except ConfigurationError as exc:
        return [Error(str(exc), id="django_smsclub.E003")]
    hint = f"Use one of {', '.join(sorted(conf.BACKEND_ALIASES))} or a dotted path."
    path = options["BACKEND"]
    try:
        if not isinstance(path, str):
            raise ImportError(f"BACKEND must be a dotted path, not {type(path).__name__}")
        backend = import_string(path)
    except Exception as exc:  # an import error, or any error the module raises as it loads
        return [
            Error(
                f"{where}['BACKEND'] {path!r} cannot be imported ({type(exc).__name__}: {exc}).",
                hint=hint,
                id="django_smsclub.E003",
            )
        ]
    if not (isinstance(backend, type) and issubclass(backend, Gateway)):
        return [
            Error(
                f"{where}['BACKEND'] {path!r} is not a django_smsclub Gateway class.",
                hint=hint,
                id="django_smsclub.E003",
            )
        ]
    # A subclass of XmlGateway logs in like XmlGateway does.
    kinds = {klass.__name__ for klass in backend.__mro__}
    kind = backend.__name__
    errors: list[Error | Warning] = _unknown_keys(
        where, conf.smsclub_settings()["GATEWAYS"][name], _gateway_keys(backend, kinds)
    )
    if kinds & NEEDS_PASSWORD:
        missing = [key for key in ("USERNAME", "PASSWORD") if not options[key]]
        if missing:
            errors.append(
                Error(
                    f"{where} has no {' or '.join(missing)}; {kind} cannot log in.",
                    id="django_smsclub.E004",
                )
            )
    if kinds & NEEDS_TOKEN and not options["TOKEN"]:
        errors.append(
            Error(f"{where} has no TOKEN; {kind} cannot log in.", id="django_smsclub.E004")
        )
    errors.extend(_check_numbers(where, backend, options))
    errors.extend(_check_connection(where, options))
    sender = options["SENDER"]
    if sender:
        problem = text.sender_problem(sender)
        if problem:
            errors.append(Error(f"{where}['SENDER']: {problem}.", id="django_smsclub.E005"))
    else:
        errors.append(
            Warning(
                f"{where} has no SENDER; every send must name one.",
                id="django_smsclub.W001",
            )
        )
    return errors


def _check_numbers(where: str, backend: type[Gateway], options: dict[str, Any]) -> list[Error]:
    """BATCH_SIZE and the timeouts, read as the gateway reads them when it is first built."""
    errors: list[Error] = []
    batch_size = options["BATCH_SIZE"]
    if batch_size:  # unset (None or 0) means the gateway's own maximum
        try:
            usable = not isinstance(batch_size, bool) and 1 <= int(batch_size) <= backend.max_batch
        except (TypeError, ValueError):
            usable = False
        if not usable:
            errors.append(
                Error(
                    f"{where}['BATCH_SIZE'] is {batch_size!r}; {backend.__name__} takes a whole "
                    f"number from 1 to {backend.max_batch}.",
                    id="django_smsclub.E007",
                )
            )
    for key in ("TIMEOUT", "CONNECT_TIMEOUT"):
        value = options[key]
        if not value:  # unset means the default
            continue
        try:
            usable = not isinstance(value, bool) and 0 < float(value) < math.inf
        except (TypeError, ValueError):
            usable = False
        if not usable:
            errors.append(
                Error(
                    f"{where}[{key!r}] is {value!r}; it must be a positive number of seconds.",
                    id="django_smsclub.E007",
                )
            )
    return errors


def _check_values() -> list[Error]:
    """Top-level values read only when the tasks run: durations, the send window and its time
    zone, the address of unsubscribe links, and the default region."""
    errors: list[Error] = []
    readers = (
        conf.tracking_window,
        conf.stale_sending_after,
        conf.poll_intervals,
        conf.send_window,
        conf.time_zone,
        conf.unsubscribe_url,
    )
    for read in readers:
        try:
            read()
        except ConfigurationError as exc:
            errors.append(Error(f"{exc}.", id="django_smsclub.E006"))
    region = conf.get("DEFAULT_REGION")
    if not (isinstance(region, str) and region.strip().upper() in phonenumbers.SUPPORTED_REGIONS):
        errors.append(
            Error(
                f"SMSCLUB['DEFAULT_REGION'] {region!r} is not a region phonenumbers knows.",
                hint="Use a two-letter ISO 3166 code such as 'UA'.",
                id="django_smsclub.E006",
            )
        )
    return errors


def _gateway_keys(backend: type[Gateway], kinds: set[str]) -> set[str]:
    known = set(conf.GATEWAY_DEFAULTS) | {"BACKEND"}
    for kind in kinds:
        known |= BACKEND_KEYS.get(kind, set())
    return known | set(getattr(backend, "settings_keys", ()))


def _unknown_keys(where: str, given: dict[str, Any], known: set[str]) -> list[Error | Warning]:
    """A key nobody reads is most likely a typo: its value is silently ignored. Only the key
    is named, never its value (a mistyped ``PASSWROD`` holds a password)."""
    warnings: list[Error | Warning] = []
    for key in given:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key).upper(), sorted(known), n=1, cutoff=0.6)
        warnings.append(
            Warning(
                f"{where} has the unknown key {key!r}; its value is ignored.",
                hint=f"Did you mean {close[0]!r}?"
                if close
                else f"Known keys: {', '.join(sorted(known))}.",
                id="django_smsclub.W002",
            )
        )
    return warnings


def _check_connection(where: str, options: dict[str, Any]) -> list[Error | Warning]:
    """RATE_LIMIT, BASE_URL and METHOD, which would only fail on the first request."""
    errors: list[Error | Warning] = []
    rate = options["RATE_LIMIT"]
    if rate not in (None, "", 0) and _positive(rate) is None:
        errors.append(
            Error(
                f"{where}['RATE_LIMIT'] is {rate!r}; it must be a positive number of requests "
                "a second (0 turns the limit off).",
                id="django_smsclub.E008",
            )
        )
    for key in ("BASE_URL", "BALANCE_URL"):
        url = options.get(key)
        if url and not _is_web_url(url):
            errors.append(
                Error(
                    f"{where}[{key!r}] is {_without_userinfo(url)!r}; it must be an http:// or "
                    "https:// URL with a host.",
                    hint="e.g. 'https://im.smsclub.mobi'.",
                    id="django_smsclub.E009",
                )
            )
    method = options["METHOD"]
    if method and not (isinstance(method, str) and method.upper() in ("GET", "POST")):
        errors.append(
            Error(
                f"{where}['METHOD'] is {method!r}; it must be 'GET' or 'POST'.",
                id="django_smsclub.E010",
            )
        )
    return errors


def _positive(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _is_web_url(url: object) -> bool:
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


def _without_userinfo(url: object) -> object:
    """``url`` without the ``user:password@`` part a URL may carry."""
    if isinstance(url, str) and "@" in url:
        scheme, _, rest = url.rpartition("://")
        return (
            f"{scheme}://***@{rest.rpartition('@')[2]}"
            if scheme
            else "***@" + url.rpartition("@")[2]
        )
    return url


@register("django_smsclub")
def check_rate_limit_cache(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """A rate limit is shared by the workers through the default cache; a cache in each
    process (or none) keeps one limit per process, and the provider counts per account."""
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if backend not in PROCESS_CACHES:
        return []
    limited = [name for name in _gateway_names() if _rate_limit(name)]
    if not limited:
        return []
    dummy = backend.endswith("DummyCache")
    consequence = (
        "keeps no count, so no request is made at all (each is refused as RateLimited)"
        if dummy
        else "counts in each process, so every worker may make the whole rate: the "
        "provider, which counts per account, refuses the excess"
    )
    return [
        Warning(
            f"Gateway(s) {', '.join(map(repr, limited))} have a RATE_LIMIT, but "
            f"CACHES['default'] is {backend.rpartition('.')[2]}, which {consequence}.",
            hint="Use a shared cache (RedisCache, a database cache or memcached) as "
            "CACHES['default'], or RATE_LIMIT: 0 where one process sends.",
            id="django_smsclub.W003",
        )
    ]


@register("django_smsclub", deploy=True)
def check_password_in_urls(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """The HTTP gateway with METHOD GET puts the password in every request's URL."""
    warnings: list[Warning] = []
    for name in _gateway_names():
        options = _options(name)
        backend = _backend(options)
        if backend is None or "HttpGateway" not in {k.__name__ for k in backend.__mro__}:
            continue
        if str(options.get("METHOD") or "POST").upper() == "GET":
            warnings.append(
                Warning(
                    f"SMSCLUB['GATEWAYS'][{name!r}] sends with METHOD 'GET', which puts the "
                    "account password in every request URL: proxies and the provider's access "
                    "logs keep it.",
                    hint="Remove METHOD (POST is the default).",
                    id="django_smsclub.W004",
                )
            )
    return warnings


@register("django_smsclub")
def check_sqlite_options(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """SQLite with several writers (workers, pollers, the web process) needs BEGIN IMMEDIATE
    and a busy timeout, or writers fail with "database is locked" and messages stay behind."""
    warnings: list[Warning] = []
    for alias, database in settings.DATABASES.items():
        if not str(database.get("ENGINE", "")).endswith("sqlite3"):
            continue
        options = database.get("OPTIONS") or {}
        mode = str(options.get("transaction_mode") or "").upper()
        timeout = _positive(options.get("timeout"))
        if timeout is not None and timeout >= SQLITE_MIN_TIMEOUT and mode == "IMMEDIATE":
            continue
        warnings.append(
            Warning(
                f"DATABASES[{alias!r}] is SQLite without OPTIONS {SQLITE_OPTIONS!r}. The "
                "Celery workers, the poller and the web process write at once; without "
                "transaction_mode IMMEDIATE a transaction that reads first fails with "
                '"database is locked" instead of waiting, and without a timeout (of at least '
                f"{SQLITE_MIN_TIMEOUT:g} s) no writer waits long enough, leaving messages "
                "behind in 'sending'.",
                hint=f'Add "OPTIONS": {SQLITE_OPTIONS!r} to DATABASES[{alias!r}], or use '
                "PostgreSQL.",
                id="django_smsclub.W005",
            )
        )
    return warnings


def _gateway_names() -> list[str]:
    try:
        return conf.gateway_names()
    except ConfigurationError:
        return []  # check_settings reports it


def _options(name: str) -> dict[str, Any]:
    try:
        return conf.gateway_settings(name)
    except ConfigurationError:
        return {}


def _backend(options: dict[str, Any]) -> type[Gateway] | None:
    try:
        backend = import_string(options["BACKEND"])
    except Exception:  # check_settings reports it
        return None
    return backend if isinstance(backend, type) and issubclass(backend, Gateway) else None


def _rate_limit(name: str) -> bool:
    """Whether gateway ``name`` makes its requests through a rate limiter."""
    options = _options(name)
    backend = _backend(options)
    if backend is None:
        return False
    rate = options.get("RATE_LIMIT")
    if rate is None or rate == "":
        rate = getattr(backend, "default_rate_limit", None)
    return bool(rate)
