"""Gateways: one module per SMSClub interface, all behind :class:`base.Gateway`."""

from __future__ import annotations

import threading
from json import dumps  # by name: the submodule gateways.json shadows the module

from django.utils.module_loading import import_string

from .. import conf
from ..exceptions import ConfigurationError
from .base import Balance, Gateway, Outgoing, SendOutcome

__all__ = ["Balance", "Gateway", "Outgoing", "SendOutcome", "get_gateway"]

_instances: dict[tuple[str, str], Gateway] = {}
_lock = threading.Lock()


def get_gateway(name: str | None = None) -> Gateway:
    """The gateway configured as ``name`` (the default one if None).

    Instances are kept per process (each holds a pooled HTTP session) and made anew when the
    gateway's settings change, so ``override_settings`` takes effect.
    """
    options = conf.gateway_settings(name)
    key = (options["NAME"], dumps(options, sort_keys=True, default=str))
    with _lock:
        gateway = _instances.get(key)
        if gateway is None:
            try:
                cls = import_string(options["BACKEND"])
            except ImportError as exc:
                raise ConfigurationError(
                    f"gateway {options['NAME']!r}: cannot import BACKEND "
                    f"{options['BACKEND']!r} ({exc})"
                ) from None
            if not (isinstance(cls, type) and issubclass(cls, Gateway)):
                raise ConfigurationError(
                    f"gateway {options['NAME']!r}: BACKEND {options['BACKEND']!r} is not a Gateway"
                )
            params = {k: v for k, v in options.items() if k not in ("NAME", "BACKEND")}
            gateway = cls(options["NAME"], **params)
            _instances[key] = gateway
    return gateway
