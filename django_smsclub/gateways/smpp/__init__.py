"""SMPP 3.4: the gateway and the session behind it (``pip install django-smsclub[smpp]``).

- :mod:`.gateway`: :class:`SmppGateway` (``BACKEND``: ``django_smsclub.gateways.smpp.SmppGateway``);
- :mod:`.session`: :class:`SmppSession`, one bound transceiver session and its listener;
- :mod:`.submit`: the windowed submit run, through the session's small public interface;
- :mod:`.receipts`: delivery receipts handed to their handler off the listener thread;
- :mod:`.connection`: connecting and binding with smpplib;
- :mod:`.pdu`: command statuses, text encoding, receipt parsing and framing.
"""

from __future__ import annotations

from ...exceptions import NotSubmitted, OperationNotSupported
from .gateway import SmppGateway
from .pdu import Receipt, parse_receipt
from .session import SmppSession

__all__ = [
    "NotSubmitted",
    "OperationNotSupported",
    "Receipt",
    "SmppGateway",
    "SmppSession",
    "parse_receipt",
]
