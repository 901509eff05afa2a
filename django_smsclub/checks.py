"""System checks: settings that would only fail when the first SMS goes out.

Messages name the setting and the value that is wrong; they never contain a password or token.
"""

from __future__ import annotations

import math
from typing import Any

import phonenumbers
from django.core.checks import Error, Warning, register
from django.utils.module_loading import import_string

from . import conf, text
from .exceptions import ConfigurationError
from .gateways.base import Gateway

NEEDS_PASSWORD = {"HttpGateway", "XmlGateway", "SoapGateway", "SmppGateway"}
NEEDS_TOKEN = {"JsonGateway"}


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
    errors: list[Error | Warning] = []
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
    errors: list[Error | Warning] = []
    # A subclass of XmlGateway logs in like XmlGateway does.
    kinds = {klass.__name__ for klass in backend.__mro__}
    kind = backend.__name__
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
    """Top-level values read only when the tasks run: durations and the default region."""
    errors: list[Error] = []
    for read in (conf.tracking_window, conf.stale_sending_after, conf.poll_intervals):
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
