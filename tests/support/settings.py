"""The ``SMSCLUB`` setting for tests, built in one place.

::

    settings.SMSCLUB = smsclub_settings(
        default=smsclub_emulator.gateway_settings("xml"),
        backup=gateway("locmem", SENDER="Shop"),
        POLL_INTERVALS=[0],
    )

Lower-case keywords (or the ``gateways`` mapping, for names that are not identifiers) are
gateways by name; UPPER-CASE keywords are the setting's own keys. ``DEFAULT_GATEWAY`` is
``"default"``, the package's default, unless given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def gateway(backend: str, **options: Any) -> dict[str, Any]:
    """One gateway's settings: ``{"BACKEND": backend, **options}``."""
    return {"BACKEND": backend, **options}


def smsclub_settings(
    gateways: Mapping[str, Mapping[str, Any]] | None = None, /, **named: Any
) -> dict[str, Any]:
    """A fresh ``SMSCLUB`` dict: gateways from ``gateways`` and the lower-case keywords, the
    setting's keys from the UPPER-CASE keywords."""
    config: dict[str, Any] = {"DEFAULT_GATEWAY": "default", "GATEWAYS": {}}
    config["GATEWAYS"].update((name, dict(options)) for name, options in (gateways or {}).items())
    for name, value in named.items():
        if name.isupper():
            config[name] = value
        else:
            config["GATEWAYS"][name] = dict(value)
    return config
