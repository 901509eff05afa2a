"""The SMPP gateway: SMPP 3.4 over one long-lived transceiver session (``pip install
django-smsclub[smpp]``).

Settings keys beside USERNAME (the system_id), PASSWORD and SENDER: ``HOST``, ``PORT`` (2775),
``WINDOW`` (submits in flight, 10), ``ENQUIRE_LINK`` (idle seconds before a keepalive, 30),
``SYSTEM_TYPE``, ``THROTTLE_RETRIES`` (10), ``MESSAGE_ID_BASES`` (``(16, 10)`` when the
SMSC writes IDs in hexadecimal in ``submit_sm_resp`` and in decimal in receipts; by default
IDs match whatever their zeros and case); ``TIMEOUT`` is the wait for a reply, and
``CONNECT_TIMEOUT`` the wait for the connection.

Statuses are pushed by the SMSC as delivery receipts to whichever session is bound, so the
messages of an SMPP gateway are sent by the ``smsclub_smpp`` process, which holds the session
and records the receipts (:attr:`SmppGateway.dedicated_process`). :meth:`fetch_state_batch`
answers nothing: ``query_sm`` is optional in SMPP 3.4 and the test SMSC refuses it
(``ESME_RQUERYFAIL``), so polling an SMPP report only moves it towards the close of the tracking
window. SMPP has no balance query: :meth:`SmppGateway.balance` raises
:class:`OperationNotSupported`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ...exceptions import ConfigurationError, GatewayError, OperationNotSupported
from ..base import Balance, Gateway, Outgoing
from .pdu import id_bases
from .receipts import ReceiptBatchHandler, ReceiptHandler
from .session import SmppSession

DEFAULT_PORT = 2775


class SmppGateway(Gateway):
    """SMSClub over SMPP: every message one ``submit_sm`` per part, with receipts pushed back."""

    max_batch = 1000
    max_state_batch = 1000
    personal_texts_per_request = True
    #: Sent by ``manage.py smsclub_smpp``, not by the Celery send task: providers cap the
    #: sessions of an account and push receipts to whichever one is bound.
    dedicated_process: ClassVar[bool] = True

    def __init__(self, name: str = "default", **options: Any):
        super().__init__(name, **options)
        host = options.get("HOST") or ""
        self.smpp = SmppSession(
            host,
            _integer(name, "PORT", options.get("PORT"), DEFAULT_PORT),
            self.username,
            self.password,
            name=name,
            system_type=options.get("SYSTEM_TYPE") or "",
            window=_integer(name, "WINDOW", options.get("WINDOW"), 10),
            timeout=self.timeout[1],
            connect_timeout=self.timeout[0],
            enquire_link=_seconds(name, "ENQUIRE_LINK", options.get("ENQUIRE_LINK"), 30.0),
            throttle_retries=_integer(
                name, "THROTTLE_RETRIES", options.get("THROTTLE_RETRIES"), 10
            ),
            bases=id_bases(name, options.get("MESSAGE_ID_BASES")),
        )
        self._open_lock = threading.Lock()

    def set_receipt_handler(
        self,
        handler: ReceiptHandler | ReceiptBatchHandler | None,
        *,
        keep_bound: bool = True,
        batch: bool = False,
    ) -> None:
        """Receive delivery receipts, on the session's receipt thread: ``handler(message_id,
        stat)`` for each, or with ``batch`` ``handler(receipts)`` with every receipt waiting.

        A receipt is acknowledged once the handler returns; if it raises, the SMSC is asked to
        deliver it again. ``keep_bound`` binds the session again in the background whenever
        it is lost, so receipts keep coming while nothing is sent.
        """
        self.smpp.set_receipt_handler(handler, batch=batch)
        self.smpp.keep_bound = keep_bound and handler is not None

    def open(self) -> None:
        """Bind the session now rather than on the first send."""
        with self._open_lock:
            self.smpp.open()

    def send_batch(
        self, sender: str, messages: list[Outgoing]
    ) -> list[Sequence[str] | GatewayError]:
        if not self.smpp.bound and not self.smpp.draining:
            self.open()
        return list(self.smpp.submit(sender, messages))

    def fetch_state_batch(self, smsc_ids: list[str]) -> Mapping[str, str]:
        # Receipts are pushed; see the module's docstring.
        return {}

    def balance(self) -> Balance:
        raise OperationNotSupported(
            f"gateway {self.name}: SMPP has no balance query; read the balance of this account "
            "through an HTTP, XML or JSON gateway",
            gateway=self.name,
        )

    def close(self) -> None:
        """Unbind the SMPP session; the next send binds a new one."""
        self.smpp.close()
        super().close()


def _seconds(name: str, key: str, value: object, default: float) -> float:
    if value in (None, ""):
        return default
    try:
        if isinstance(value, bool):
            raise ValueError
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise ConfigurationError(
            f"gateway {name!r}: {key} {value!r} must be a positive number of seconds"
        )
    return seconds


def _integer(name: str, key: str, value: object, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"gateway {name!r}: {key} {value!r} must be a whole number"
        ) from None
