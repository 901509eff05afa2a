"""A faithful SMSClub server for development, tests and the demo.

Plain Python (no Django settings needed)::

    with Emulator() as emu:
        settings = emu.gateway_settings("xml")
"""

from .core import Emulator
from .faults import Fault
from .state import (
    DEFAULT_PASSWORD,
    DEFAULT_TOKEN,
    DEFAULT_USERNAME,
    AcceptedSms,
    Account,
    RequestRecord,
)

__all__ = [
    "DEFAULT_PASSWORD",
    "DEFAULT_TOKEN",
    "DEFAULT_USERNAME",
    "AcceptedSms",
    "Account",
    "Emulator",
    "Fault",
    "RequestRecord",
]
