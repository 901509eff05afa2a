"""How a session acts on each PDU its listener reads: replies to submits, receipts, keepalive.

A mixin of :class:`~.session.SmppSession`, kept apart so the session module holds the
connection's life (bind, reconnect, submit slots) and this one the protocol's answers.
"""

from __future__ import annotations

import logging
import struct
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import smpplib.consts as c
import smpplib.smpp

from ...logs import fields
from .connection import Connection, Lost
from .pdu import (
    ESME_ROK,
    GENERIC_NACK,
    SUBMIT_SM_RESP,
    IdBases,
    SessionEnded,
    as_text,
    canonical_id,
    describe_status,
    status_name,
)
from .receipts import ReceiptInbox

logger = logging.getLogger("django_smsclub.smpp")


class PduDispatch(ABC):
    """The answers of a session to the PDUs it reads; the session provides what is declared."""

    name: str
    timeout: float
    enquire_link: float
    bases: IdBases
    on_accepted: Callable[[str], object] | None
    _receipts: ReceiptInbox

    @abstractmethod
    def write(self, connection: Connection, pdu: Any) -> None:
        """Write one PDU to ``connection`` (under the session's write lock)."""

    @abstractmethod
    def _waiting(self, sequence: int) -> bool:
        """Whether a submit with this sequence number waits for its reply."""

    @abstractmethod
    def _resolve(self, sequence: int, result: int | Lost, message_id: str = "") -> bool:
        """Hand a submit its reply; False when none waited for it."""

    def _keepalive(self, connection: Connection) -> None:
        now = time.monotonic()
        if connection.enquiry_sent is not None:
            if now - connection.enquiry_sent > self.timeout:
                raise SessionEnded(f"no reply to enquire_link within {self.timeout:g} s")
        elif now - connection.last_read >= self.enquire_link:
            connection.enquiry_sent = now
            self.write(connection, smpplib.smpp.make_pdu("enquire_link", client=connection.client))

    def _dispatch(self, connection: Connection, frame: bytes) -> bool:
        """Act on one PDU; True when the session is over (an unbind either way)."""
        command_id, status, sequence = struct.unpack(">LLL", frame[4:16])
        try:
            pdu = smpplib.smpp.parse_pdu(
                frame, client=connection.client, allow_unknown_opt_params=True
            )
        except Exception as exc:  # a PDU smpplib cannot read must not end the session
            logger.warning(
                "gateway %s: unreadable PDU 0x%08X (%s: %s)",
                self.name,
                command_id,
                type(exc).__name__,
                exc,
                extra=fields(gateway=self.name, outcome="unreadable_pdu"),
            )
            pdu = None
        command = pdu.command if pdu is not None else ""
        if command_id == SUBMIT_SM_RESP or (command_id == GENERIC_NACK and self._waiting(sequence)):
            if command_id == GENERIC_NACK:
                status = status or c.SMPP_ESME_RSYSERR
            message_id = canonical_id(as_text(getattr(pdu, "message_id", None)), self.bases.submit)
            accepted = self.on_accepted
            if accepted is not None and status == ESME_ROK and message_id:
                # Before the next PDU is read: the receipt for this ID may be that PDU.
                accepted(message_id)
            if not self._resolve(sequence, status, message_id):
                logger.warning(
                    "gateway %s: reply to unknown submit %d",
                    self.name,
                    sequence,
                    extra=fields(
                        gateway=self.name, smsc_id=message_id or None, outcome="unknown_reply"
                    ),
                )
        elif command == "deliver_sm":
            answer = self._receipts.take(connection, sequence, pdu)
            if answer is not None:
                self._respond(connection, "deliver_sm_resp", sequence, answer)
        elif command == "enquire_link":
            self._respond(connection, "enquire_link_resp", sequence)
        elif command == "unbind":
            self._respond(connection, "unbind_resp", sequence)
            raise SessionEnded("the SMSC unbound the session")
        elif command == "unbind_resp":
            connection.unbound.set()
            return True
        elif command in ("enquire_link_resp", "deliver_sm_resp", "generic_nack"):
            if status:
                logger.warning(
                    "gateway %s: %s %s",
                    self.name,
                    command,
                    describe_status(status),
                    extra=fields(gateway=self.name, outcome=status_name(status).split(" ")[0]),
                )
        elif not command_id & 0x80000000:
            # A request this client does not serve (data_sm, alert_notification, ...).
            self._respond(connection, "generic_nack", sequence, c.SMPP_ESME_RINVCMDID)
        return False

    def _respond(
        self, connection: Connection, command: str, sequence: int, status: int = ESME_ROK
    ) -> None:
        pdu = smpplib.smpp.make_pdu(command, client=connection.client)
        # smpplib ignores sequence= and status= given to make_pdu.
        pdu.sequence, pdu.status = sequence, status
        self.write(connection, pdu)

    def _answer_receipt(self, connection: Connection, sequence: int, status: int) -> None:
        self._respond(connection, "deliver_sm_resp", sequence, status)
