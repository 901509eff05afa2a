"""Delivery receipts of an SMPP session, handed to their handler off the listener thread.

The listener must never wait for a handler (it writes to the database): replies to submits
keep flowing while receipts are written. So receipts go to a thread of their own, in lists as
long as have arrived, and each is answered (``deliver_sm_resp``) only once its handler has
returned; if the handler raises, or there is none, it is answered ``ESME_RX_T_APPN`` and the
SMSC delivers it again later, to this session or to one that can record it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from ...exceptions import GatewayError
from ...logs import fields
from .connection import Connection
from .pdu import (
    ESME_ROK,
    RECEIPT_MASK,
    RECEIPT_RETRY_STATUS,
    RECEIPT_TYPE,
    SAME_BASES,
    IdBases,
    Receipt,
    as_text,
    parse_receipt,
)

logger = logging.getLogger("django_smsclub.smpp")

ReceiptHandler = Callable[[str, str], object]
ReceiptBatchHandler = Callable[[list[Receipt]], object]
#: Answers one deliver_sm: ``answer(connection, sequence, command_status)``.
Answer = Callable[[Connection, int, int], None]
#: Receipts handed to a batch handler at once.
RECEIPT_BATCH = 500


class ReceiptInbox:
    """The receipts a session has read and not yet answered, and the thread that hands them
    to ``on_receipts(receipts)`` (a list, for handlers that write in bulk) or else to
    ``on_receipt(message_id, stat)``."""

    def __init__(self, name: str, answer: Answer, *, timeout: float, bases: IdBases = SAME_BASES):
        self.name = name
        self.bases = bases
        self.timeout = timeout
        self.on_receipt: ReceiptHandler | None = None
        self.on_receipts: ReceiptBatchHandler | None = None
        self.thread: threading.Thread | None = None
        self._answer = answer
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[Connection, int, Receipt] | None] = queue.Queue()

    def take(self, connection: Connection, sequence: int, pdu: Any) -> int | None:
        """The deliver_sm_resp status for a deliver_sm, or None when the receipt thread
        answers it once the handler has taken the receipt."""
        if (pdu.esm_class or 0) & RECEIPT_MASK != RECEIPT_TYPE:
            logger.info(
                "gateway %s: ignored a deliver_sm that is not a receipt",
                self.name,
                extra=fields(gateway=self.name, outcome="not_a_receipt"),
            )
            return ESME_ROK
        receipt = parse_receipt(pdu, self.bases)
        if receipt is None:
            logger.warning(
                "gateway %s: receipt without message ID or status: %r",
                self.name,
                as_text(pdu.short_message)[:200],
                extra=fields(gateway=self.name, outcome="unreadable_receipt"),
            )
            return ESME_ROK
        if self.on_receipts is None and self.on_receipt is None:
            logger.debug(
                "gateway %s: no receipt handler; receipt left to the SMSC",
                self.name,
                extra=fields(gateway=self.name, smsc_id=receipt.message_id, outcome="left"),
            )
            return RECEIPT_RETRY_STATUS
        with self._lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._loop, name=f"smpp-receipts-{self.name}", daemon=True
                )
                self.thread.start()
        self._queue.put((connection, sequence, receipt))
        return None

    def finish(self) -> None:
        """Let the receipt thread answer what it holds, then end it (before an unbind)."""
        thread = self.thread
        if thread is None or not thread.is_alive():
            return
        self._queue.put(None)
        thread.join(timeout=self.timeout)
        if thread.is_alive():
            logger.warning(
                "gateway %s: receipts still being recorded at close",
                self.name,
                extra=fields(gateway=self.name, outcome="unfinished"),
            )

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            batch = [item]
            while item is not None and len(batch) < RECEIPT_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
            receipts = [entry for entry in batch if entry is not None]
            try:
                statuses = self._hand_over([receipt for _, _, receipt in receipts])
                for (connection, sequence, _), status in zip(receipts, statuses, strict=True):
                    # If that session is gone, the SMSC delivers the receipt again.
                    with contextlib.suppress(GatewayError):
                        self._answer(connection, sequence, status)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if None in batch:
                return

    def _hand_over(self, receipts: list[Receipt]) -> list[int]:
        """Give receipts to the handler; the deliver_sm_resp status of each."""
        many, one = self.on_receipts, self.on_receipt
        if many is not None:
            try:
                many(receipts)
            except Exception:
                logger.exception(
                    "gateway %s: %d receipt(s) not recorded; the SMSC will deliver them again",
                    self.name,
                    len(receipts),
                    extra=fields(
                        gateway=self.name,
                        smsc_ids=[r.message_id for r in receipts],
                        count=len(receipts),
                        outcome="not_recorded",
                    ),
                )
                return [RECEIPT_RETRY_STATUS] * len(receipts)
            return [ESME_ROK] * len(receipts)
        statuses = []
        for receipt in receipts:
            try:
                if one is None:
                    raise RuntimeError("the receipt handler was removed")
                one(receipt.message_id, receipt.stat)
            except Exception:
                logger.exception(
                    "gateway %s: receipt %s %s not recorded; the SMSC will deliver it again",
                    self.name,
                    receipt.message_id,
                    receipt.stat,
                    extra=fields(
                        gateway=self.name, smsc_id=receipt.message_id, outcome="not_recorded"
                    ),
                )
                statuses.append(RECEIPT_RETRY_STATUS)
            else:
                statuses.append(ESME_ROK)
        return statuses
