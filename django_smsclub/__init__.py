"""Send SMS through SMSClub (smsclub.mobi) from Django.

``send_sms`` and ``send_personalized`` (see :mod:`django_smsclub.services`) are loaded on first
use, so importing the package, from settings say, loads no models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["send_personalized", "send_sms"]

if TYPE_CHECKING:
    from .services import send_personalized, send_sms


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import services

        return getattr(services, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
