"""System checks of ``SMSCLUB["WEBHOOKS"]`` and the delivery settings: an endpoint that would
never get a request, or get one it cannot verify. Messages name the bad value, never a secret.

Registered when the app is ready (imported by ``AppConfig.ready()``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.checks import Error, Warning, register

from .. import conf
from ..checks import _unknown_keys
from ..exceptions import ConfigurationError


@register("django_smsclub")
def check_webhooks(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    """``SMSCLUB["WEBHOOKS"]`` and the delivery settings: an endpoint that would never get a
    request, or get one it cannot verify. Names the bad value, never a secret."""
    try:
        endpoints = conf.webhook_endpoints()
    except ConfigurationError as exc:
        return [Error(f"{exc}.", id="django_smsclub.E030")]
    errors: list[Error | Warning] = []
    configured = conf.get("WEBHOOKS")
    for name, entry in endpoints.items():
        errors.extend(
            Error(f"{problem}.", id="django_smsclub.E030")
            for problem in conf.webhook_problems(name, entry)
        )
        errors.extend(
            _unknown_keys(
                f"SMSCLUB['WEBHOOKS'][{name!r}]", configured[name], set(conf.WEBHOOK_KEYS)
            )
        )
    readers = (
        conf.webhook_timeout,
        conf.webhook_retry_backoff,
        conf.webhook_retry_backoff_max,
        conf.webhook_max_attempts,
        conf.webhook_disable_after,
    )
    for read in readers:
        try:
            read()
        except ConfigurationError as exc:
            errors.append(Error(f"{exc}.", id="django_smsclub.E030"))
    return errors


@register("django_smsclub", deploy=True)
def check_webhook_urls(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """A webhook over plain HTTP shows every event (numbers, statuses) to the network between."""
    try:
        endpoints = conf.webhook_endpoints()
    except ConfigurationError:
        return []  # check_webhooks reports it
    warnings = []
    for name, entry in endpoints.items():
        url = entry.get("URL")
        if not (isinstance(url, str) and url.lower().startswith("http://")):
            continue
        host = urlsplit(url).hostname or ""
        if host in ("localhost", "127.0.0.1", "::1"):
            continue
        warnings.append(
            Warning(
                f"SMSCLUB['WEBHOOKS'][{name!r}]['URL'] is plain http:// ({host}): every event, "
                "with the numbers it names, crosses the network readable.",
                hint="Use an https:// URL.",
                id="django_smsclub.W030",
            )
        )
    return warnings
