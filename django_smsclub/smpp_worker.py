"""The process behind ``manage.py smsclub_smpp``: one SMPP session per account, held for good.

It sends the messages queued for an SMPP gateway and records the delivery receipts the SMSC
pushes back, through the same services as the Celery tasks and the poller: ``claim_batch``
(at most once), ``send_claimed``, ``record_outcomes`` and ``apply_states`` (so the same
signals fire, once, after commit).

A receipt can come before the ``submit_sm_resp`` it answers has been recorded (the SMSC is
fast, the database write comes after the whole batch). Such a receipt is held in memory and
applied as soon as its SMSC ID is stored: after every recorded batch and at least once a
second, for ``receipt_hold`` seconds. Holding it in memory is enough: an ID this process
submitted is recorded by this process before it exits; an ID nobody stored within the hold is
not ours, and is logged and dropped.

On :meth:`SmppWorker.stop` (SIGTERM, SIGINT) it claims nothing more, submits no message it has
not started, waits for the replies to what is in flight, records them, puts the claimed
messages it never submitted back to ``queued`` (no attempt counted), unbinds and returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from django.db import close_old_connections, connections

from . import conf, services
from .exceptions import AuthenticationError, ConfigurationError, GatewayError, GatewayUnavailable
from .gateways import SendOutcome, get_gateway
from .gateways.smpp import Receipt, SmppGateway
from .logs import fields
from .models import DeliveryReport, Message

logger = logging.getLogger("django_smsclub.smpp")

#: Seconds an unmatched receipt is kept for its SMSC ID to be stored.
RECEIPT_HOLD = 600.0
#: Receipts written per apply_states call.
APPLY_CHUNK = 500


class ReceiptBook:
    """Applies delivery receipts of one gateway, holding those whose SMSC ID is not stored yet."""

    def __init__(self, gateway_name: str, *, hold: float = RECEIPT_HOLD):
        self.gateway_name = gateway_name
        self.hold = hold
        self._held: dict[str, tuple[str, float]] = {}
        self._unrecorded: set[str] = set()
        self._lock = threading.Lock()
        self.applied = 0

    @property
    def held(self) -> int:
        with self._lock:
            return len(self._held)

    def expect(self, smsc_id: str) -> None:
        """The SMSC accepted ``smsc_id``; it is not stored until its batch is recorded."""
        with self._lock:
            self._unrecorded.add(smsc_id)

    def recorded_all(self) -> None:
        """The batch is recorded (or given up on): its IDs are in the database, or never."""
        with self._lock:
            self._unrecorded.clear()

    def receive(self, receipts: Sequence[Receipt]) -> None:
        """The session's batch receipt handler; runs on its receipt thread.

        Receipts for IDs of the batch being sent are held without asking the database (the
        SMSC often answers before the batch is recorded); the others are applied in one go.
        Raising (the database is down, say) makes the session answer the receipts with a
        temporary error, so the SMSC delivers them again later.
        """
        now = time.monotonic()
        words: dict[str, str] = {}
        with self._lock:
            for receipt in receipts:
                if receipt.message_id in self._unrecorded:
                    self._held[receipt.message_id] = (receipt.stat, now)
                else:
                    words[receipt.message_id] = receipt.stat
        if not words:
            return
        # A thread of its own that lives as long as the process: connections that broke or
        # outlived CONN_MAX_AGE are replaced here, as a request would do.
        close_old_connections()
        try:
            unknown = set(words) - self._apply(words)
        finally:
            close_old_connections()
        if unknown:
            with self._lock:
                for smsc_id in unknown:
                    self._held[smsc_id] = (words[smsc_id], now)
            logger.debug(
                "gateway %s: %d receipt(s) held for IDs not stored yet",
                self.gateway_name,
                len(unknown),
                extra=fields(
                    gateway=self.gateway_name,
                    smsc_ids=sorted(unknown),
                    count=len(unknown),
                    outcome="held",
                ),
            )

    def retry(self) -> int:
        """Apply the held receipts whose SMSC IDs are stored now; drop those held too long."""
        with self._lock:
            held = dict(self._held)
        if not held:
            return 0
        matched = self._apply({smsc_id: word for smsc_id, (word, _) in held.items()})
        now = time.monotonic()
        expired = []
        with self._lock:
            for smsc_id in matched:
                if self._held.get(smsc_id, (None,))[0] == held[smsc_id][0]:
                    del self._held[smsc_id]
            for smsc_id, (_, since) in list(self._held.items()):
                if now - since > self.hold:
                    expired.append(smsc_id)
                    del self._held[smsc_id]
        if expired:
            logger.warning(
                "gateway %s: dropped %d receipt(s) for SMSC IDs never stored within %.0f s: %s",
                self.gateway_name,
                len(expired),
                self.hold,
                ", ".join(expired[:20]),
                extra=fields(
                    gateway=self.gateway_name,
                    smsc_ids=expired,
                    count=len(expired),
                    outcome="dropped",
                ),
            )
        return len(matched)

    def _apply(self, words: dict[str, str]) -> set[str]:
        """Apply the receipts whose IDs are stored; return those IDs."""
        ids = list(words)
        known: set[str] = set()
        # Chunks keep each IN (...) well under SQLite's limit on query parameters.
        for start in range(0, len(ids), APPLY_CHUNK):
            chunk = set(
                DeliveryReport.objects.filter(
                    gateway=self.gateway_name, smsc_id__in=ids[start : start + APPLY_CHUNK]
                ).values_list("smsc_id", flat=True)
            )
            if chunk:
                services.apply_states(self.gateway_name, {i: words[i] for i in chunk})
                self.applied += len(chunk)
            known |= chunk
        return known


class SmppWorker:
    """Sends the queued messages of one SMPP gateway and records its receipts until stopped."""

    def __init__(
        self,
        gateway_name: str | None = None,
        *,
        batch_size: int | None = None,
        idle: float = 1.0,
        receipt_hold: float = RECEIPT_HOLD,
    ):
        gateway = get_gateway(gateway_name)
        if not isinstance(gateway, SmppGateway):
            raise ConfigurationError(
                f"gateway {gateway.name!r} is a {type(gateway).__name__}, not an SmppGateway"
            )
        self.gateway = gateway
        self.name = gateway.name
        self.batch_size = batch_size or conf.send_batch_size()
        self.idle = idle
        self.receipts = ReceiptBook(self.name, hold=receipt_hold)
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the worker to stop; safe from a signal handler and from any thread."""
        self._stop.set()
        self.gateway.smpp.drain()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Bind, then send and receive until :meth:`stop`; unbind before returning.

        Raises :class:`AuthenticationError` when the SMSC refuses the login at the start;
        an SMSC that cannot be reached is tried again until it can, or until stopped.
        """
        session = self.gateway.smpp
        logger.info(
            "gateway %s: SMPP worker starting (%s:%s as %r, window %d, batches of %d)",
            self.name,
            session.host,
            session.port,
            session.system_id,
            session.window,
            self.batch_size,
            extra=fields(gateway=self.name, outcome="starting"),
        )
        self.gateway.set_receipt_handler(self.receipts.receive, keep_bound=True, batch=True)
        session.on_accepted = self.receipts.expect
        try:
            if self._bind():
                self._loop()
        finally:
            self.gateway.close()
            # The gateway instance is shared in this process: leave it as it was found.
            self.gateway.set_receipt_handler(None)
            session.on_accepted = None
            try:
                self.receipts.retry()
            finally:
                if self.receipts.held:
                    logger.warning(
                        "gateway %s: %d receipt(s) for unknown SMSC IDs dropped at exit",
                        self.name,
                        self.receipts.held,
                        extra=fields(
                            gateway=self.name, count=self.receipts.held, outcome="dropped"
                        ),
                    )
                connections.close_all()
            logger.info(
                "gateway %s: SMPP worker stopped",
                self.name,
                extra=fields(gateway=self.name, outcome="stopped"),
            )

    def run_once(self) -> int:
        """Claim, send and record one batch; return how many messages it held."""
        batch = services.claim_batch(self.name, self.batch_size)
        if not batch:
            return 0
        # The claims are leases: renewed while the SMSC answers, so no sweep takes them.
        with services.hold_claims(batch):
            outcomes = services.send_claimed(self.gateway, batch)
        try:
            self.settle(batch, outcomes)
        finally:
            # Every ID accepted so far came with this batch (this thread sends alone).
            self.receipts.recorded_all()
        self.receipts.retry()
        return len(batch)

    def settle(self, batch: Sequence[Message], outcomes: Sequence[SendOutcome]) -> None:
        """Record the outcomes; put back what a stopping worker never submitted."""
        unsent = [
            index
            for index, outcome in enumerate(outcomes)
            if self.stopping and isinstance(outcome.error, GatewayUnavailable)
        ]
        skip = set(unsent)
        keep = [i for i in range(len(batch)) if i not in skip]
        if keep:
            services.record_outcomes([batch[i] for i in keep], [outcomes[i] for i in keep])
        released = services.release_claims([batch[i] for i in unsent]) if unsent else 0
        accepted = sum(1 for o in outcomes if o.accepted)
        logger.info(
            "gateway %s: batch of %d: %d accepted, %d not accepted, %d put back unsent",
            self.name,
            len(batch),
            accepted,
            len(keep) - accepted,
            released,
            extra=fields(
                gateway=self.name,
                message_ids=[m.pk for m in batch],
                count=len(batch),
                outcome="settled",
            ),
        )

    def _bind(self) -> bool:
        delay = 1.0
        while not self.stopping:
            try:
                self.gateway.open()
                return True
            except AuthenticationError:
                raise
            except GatewayError as exc:
                logger.warning(
                    "%s; trying again in %.0f s",
                    exc,
                    delay,
                    extra=fields(gateway=self.name, outcome=type(exc).__name__),
                )
            self._stop.wait(delay)
            delay = min(delay * 2, 30.0)
        return False

    def _loop(self) -> None:
        while not self.stopping:
            close_old_connections()
            handled = 0
            if self.gateway.smpp.bound:
                handled = self.run_once()
            self.receipts.retry()
            if handled < self.batch_size:
                self._stop.wait(self.idle)
        logger.info(
            "gateway %s: stop requested; claiming nothing more",
            self.name,
            extra=fields(gateway=self.name, outcome="stopping"),
        )
