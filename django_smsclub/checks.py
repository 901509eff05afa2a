"""System checks: settings that would only fail when the first SMS goes out."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, Warning, register
from django.utils.module_loading import import_string

from . import conf, text
from .exceptions import ConfigurationError

NEEDS_PASSWORD = {"HttpGateway", "XmlGateway", "SoapGateway", "SmppGateway"}
NEEDS_TOKEN = {"JsonGateway"}


@register("django_smsclub")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    try:
        config = conf.smsclub_settings()
    except ConfigurationError as exc:
        return [Error(str(exc), id="django_smsclub.E001")]
    gateways = config["GATEWAYS"]
    if not isinstance(gateways, dict) or not gateways:
        return [
            Error(
                "SMSCLUB['GATEWAYS'] configures no gateway.",
                hint="Add at least one, e.g. {'default': {'BACKEND': 'xml', ...}}.",
                id="django_smsclub.E001",
            )
        ]
    errors: list[Error | Warning] = []
    default = config["DEFAULT_GATEWAY"]
    if default not in gateways:
        errors.append(
            Error(
                f"SMSCLUB['DEFAULT_GATEWAY'] is {default!r}, which is not in SMSCLUB['GATEWAYS'] "
                f"({', '.join(map(repr, gateways))}).",
                id="django_smsclub.E002",
            )
        )
    for name in gateways:
        errors.extend(_check_gateway(name))
    return errors


def _check_gateway(name: str) -> list[Error | Warning]:
    where = f"SMSCLUB['GATEWAYS'][{name!r}]"
    try:
        options = conf.gateway_settings(name)
    except ConfigurationError as exc:
        return [Error(str(exc), id="django_smsclub.E003")]
    try:
        backend = import_string(options["BACKEND"])
    except ImportError:
        return [
            Error(
                f"{where}['BACKEND'] {options['BACKEND']!r} cannot be imported.",
                hint=f"Use one of {', '.join(sorted(conf.BACKEND_ALIASES))} or a dotted path.",
                id="django_smsclub.E003",
            )
        ]
    errors: list[Error | Warning] = []
    kind = backend.__name__
    if kind in NEEDS_PASSWORD and not (options["USERNAME"] and options["PASSWORD"]):
        errors.append(
            Error(
                f"{where} has no USERNAME or PASSWORD; {kind} cannot log in.",
                id="django_smsclub.E004",
            )
        )
    if kind in NEEDS_TOKEN and not options["TOKEN"]:
        errors.append(
            Error(f"{where} has no TOKEN; {kind} cannot log in.", id="django_smsclub.E004")
        )
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
