"""One SMPP 3.4 session with an SMSC: bind, windowed submits, delivery receipts, keepalive.

The session is built on ``smpplib`` (connect, bind and the PDU codec) but reads and writes the
socket itself: smpplib's ``listen()`` dies on the first odd PDU, never answers a server's
``unbind`` and loses a half-read PDU on a read timeout. One listener thread reads every PDU;
senders write under a lock and wait for their ``submit_sm_resp`` by sequence number, at most
``window`` PDUs in flight across every sender of the session.

Both :class:`~django_smsclub.gateways.smpp.SmppGateway` (one batch at a time) and the
``smsclub_smpp`` process (a long-lived session that also receives receipts) use this class.
"""

from __future__ import annotations

import itertools
import logging
import random
import select
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import smpplib.exceptions
import smpplib.smpp

from ...exceptions import AuthenticationError, ConfigurationError, GatewayError, GatewayUnavailable
from ...logs import fields
from ..base import Outgoing
from ..redaction import register_secret
from .connection import TICK, Connection, Lost, bind_problems, disconnect, open_connection
from .dispatch import PduDispatch
from .pdu import (
    SAME_BASES,
    IdBases,
    SessionEnded,
    read_frame,
)
from .receipts import ReceiptBatchHandler, ReceiptHandler, ReceiptInbox
from .submit import ReplyHandler, SubmitRun

logger = logging.getLogger("django_smsclub.smpp")


class SmppSession(PduDispatch):
    """A transceiver session that reconnects, keeps itself alive and bounds what is in flight.

    Delivery receipts go to the handler of :meth:`set_receipt_handler`, on a receipt thread of
    their own (see :mod:`.receipts`): the listener never waits for a handler, so replies to
    submits keep flowing while receipts are written. Without a handler receipts are answered
    ``ESME_RX_T_APPN``: a session that cannot record them leaves them to one that can.

    With ``keep_bound`` a lost session is bound again in the background (a receipt listener
    must stay bound while nothing is sent); otherwise the next submit binds it.

    A submit run (:mod:`.submit`) uses the session through :meth:`acquire_slot`,
    :meth:`release_slot`, :meth:`bound_connection`, :meth:`expect_reply`, :meth:`write` and
    :meth:`forget`, besides its settings.
    """

    def __init__(
        self,
        host: str,
        port: int,
        system_id: str,
        password: str,
        *,
        name: str = "smpp",
        system_type: str = "",
        window: int = 10,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        enquire_link: float = 30.0,
        throttle_retries: int = 10,
        throttle_backoff: float = 0.1,
        throttle_backoff_max: float = 5.0,
        reconnects: int = 3,
        keep_bound: bool = False,
        bases: IdBases = SAME_BASES,
    ):
        problems = bind_problems(host, port, system_id, password, system_type)
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            problems.append(f"WINDOW {window!r} must be a whole number of at least 1")
        if problems:
            raise ConfigurationError(f"gateway {name!r}: " + "; ".join(problems))
        self.name = name
        self.host, self.port = host, port
        self.system_id, self.system_type = system_id, system_type
        self._password = password
        register_secret(password)
        self.window = window
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.enquire_link = enquire_link
        self.throttle_retries = throttle_retries
        self.throttle_backoff = throttle_backoff
        self.throttle_backoff_max = throttle_backoff_max
        self.reconnects = reconnects
        #: Called on the listener thread with each message ID the SMSC accepts, before any
        #: receipt for it can be read.
        self.on_accepted: Callable[[str], object] | None = None
        self.keep_bound = keep_bound

        self._state_lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._connection: Connection | None = None
        self._generations = itertools.count(1)
        self._pending: dict[int, tuple[ReplyHandler, int]] = {}
        self._slots = threading.BoundedSemaphore(window)
        self._paused_until = 0.0
        self._references = itertools.count(random.randrange(256))  # noqa: S311 - not a secret
        self._closed = threading.Event()
        self._draining = threading.Event()
        self._reconnector: threading.Thread | None = None
        self._listeners: list[threading.Thread] = []
        #: Message IDs are kept canonical (:func:`.pdu.canonical_id`) so receipts match them.
        self.bases = bases
        self._receipts = ReceiptInbox(name, self._answer_receipt, timeout=timeout, bases=bases)

    def __repr__(self) -> str:
        return f"<SmppSession {self.name!r} {self.system_id}@{self.host}:{self.port}>"

    @property
    def bound(self) -> bool:
        """Whether a connection is bound now."""
        return self._connection is not None

    def set_receipt_handler(
        self, handler: ReceiptHandler | ReceiptBatchHandler | None, *, batch: bool = False
    ) -> None:
        """Hand receipts to ``handler(message_id, stat)``, or with ``batch`` to
        ``handler(receipts)`` with every receipt waiting; None answers them for redelivery."""
        self._receipts.on_receipt = None if batch else cast(ReceiptHandler, handler)
        self._receipts.on_receipts = cast(ReceiptBatchHandler, handler) if batch else None

    def open(self) -> None:
        """Bind now if not bound (raises GatewayUnavailable or AuthenticationError)."""
        self._closed.clear()
        self.bound_connection()

    def drain(self) -> None:
        """Submit nothing new: messages not yet started come back as :class:`NotSubmitted`.

        Parts of a message already started are still submitted, so no phone gets half a text.
        """
        self._draining.set()

    @property
    def draining(self) -> bool:
        """Whether :meth:`drain` was called since the session was last closed."""
        return self._draining.is_set()

    def close(self) -> None:
        """Unbind and disconnect; submits still waiting for a reply become ambiguous."""
        self._closed.set()
        with self._state_lock:
            connection = self._connection
        self._receipts.finish()
        if connection is not None:
            connection.closing = True
            try:
                self.write(connection, smpplib.smpp.make_pdu("unbind", client=connection.client))
                # Many SMSCs just close the socket after an unbind: the listener sets the
                # event on either.
                if not connection.unbound.wait(min(self.timeout, 5.0)):
                    logger.info(
                        "gateway %s: no unbind_resp; closing anyway",
                        self.name,
                        extra=fields(gateway=self.name, outcome="no_unbind_resp"),
                    )
            except GatewayError:
                pass
            self._lost(connection.generation, "closed by this side")
            logger.info(
                "gateway %s: SMPP session unbound",
                self.name,
                extra=fields(gateway=self.name, outcome="unbound"),
            )
        for thread in [*self._listeners, self._reconnector, self._receipts.thread]:
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=2 * TICK + 1)
        self._listeners = [t for t in self._listeners if t.is_alive()]
        # Closed is a fresh start: a later submit binds a new session and sends again.
        self._draining.clear()

    def submit(self, sender: str, messages: Sequence[Outgoing]) -> list[list[str] | GatewayError]:
        """Submit every message; per message, its SMSC IDs (one per part) or its error.

        Throttling replies are retried after a growing pause of the whole session; a session
        lost while submits wait for replies makes those messages ambiguous (never submitted
        again); messages not yet started go out on a new session.
        """
        if not messages:
            return []
        return SubmitRun(self, sender, messages).execute()

    def reference(self) -> int:
        """The next 8-bit concatenation reference: sequential, so two long texts to one
        number at once do not share one (a random pick would, one time in 256)."""
        return next(self._references) % 256

    def pause(self, seconds: float) -> None:
        """Submit nothing on the whole session for ``seconds`` (the SMSC asked to slow down)."""
        with self._state_lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    @property
    def paused_until(self) -> float:
        """The monotonic time before which nothing is submitted."""
        return self._paused_until

    def acquire_slot(self, timeout: float) -> bool:
        """Take a place in the window; False when none came free within ``timeout``."""
        return self._slots.acquire(timeout=timeout)

    def release_slot(self) -> None:
        """Give back a place taken for a PDU whose reply was never expected."""
        self._slots.release()

    def bound_connection(self) -> Connection:
        """The bound connection, binding one if there is none (raises GatewayUnavailable or
        AuthenticationError)."""
        with self._state_lock:
            if self._connection is None:
                self._connection = self._bind()
            return self._connection

    def expect_reply(self, connection: Connection, sequence: int, on_reply: ReplyHandler) -> bool:
        """Have ``on_reply(sequence, status or Lost, message_id)`` called once with the reply
        to PDU ``sequence``; False if ``connection`` has ended meanwhile (then write nothing).

        The window place taken for it is given back when the reply comes, when the session
        ends (the reply is then a :class:`~.connection.Lost`) or when it is forgotten.
        """
        with self._pending_lock:
            if self._connection is not connection:
                return False
            self._pending[sequence] = (on_reply, connection.generation)
            return True

    def write(self, connection: Connection, pdu: Any) -> None:
        """Write one PDU; a failed write ends the session (nothing whole went out)."""
        try:
            with self._write_lock:
                connection.client.send_pdu(pdu)
        except (smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError) as exc:
            self._lost(connection.generation, f"write failed ({type(exc).__name__})")
            raise GatewayUnavailable(
                f"gateway {self.name}: SMPP session lost while writing {pdu.command}",
                gateway=self.name,
            ) from None

    def forget(self, sequence: int) -> bool:
        """Expect no reply to ``sequence`` any more; True if one was still expected (its
        window place is given back)."""
        with self._pending_lock:
            entry = self._pending.pop(sequence, None)
        if entry is not None:
            self._slots.release()
        return entry is not None

    def _bind(self) -> Connection:
        connection = open_connection(
            self.host,
            self.port,
            self.system_id,
            self._password,
            system_type=self.system_type,
            name=self.name,
            generation=next(self._generations),
            connect_timeout=self.connect_timeout,
            timeout=self.timeout,
        )
        listener = threading.Thread(
            target=self._listen,
            args=(connection,),
            name=f"smpp-listener-{self.name}-{connection.generation}",
            daemon=True,
        )
        self._listeners = [t for t in self._listeners if t.is_alive()] + [listener]
        listener.start()
        logger.info(
            "gateway %s: bound to SMPP %s:%s as %r (transceiver, window %d)",
            self.name,
            self.host,
            self.port,
            self.system_id,
            self.window,
            extra=fields(gateway=self.name, outcome="bound"),
        )
        return connection

    def _waiting(self, sequence: int) -> bool:
        with self._pending_lock:
            return sequence in self._pending

    def _resolve(self, sequence: int, result: int | Lost, message_id: str = "") -> bool:
        with self._pending_lock:
            entry = self._pending.pop(sequence, None)
        if entry is None:
            return False
        self._slots.release()
        on_reply, _ = entry
        on_reply(sequence, result, message_id)
        return True

    def _lost(self, generation: int, reason: str) -> None:
        """End connection ``generation``: close it and fail the submits waiting on it."""
        with self._state_lock:
            connection = self._connection
            if connection is None or connection.generation != generation:
                return
            self._connection = None
            connection.unbound.set()
            disconnect(connection.client)
            # Still under the state lock: whoever binds the next session has these results
            # in hand before it can submit anything on it.
            with self._pending_lock:
                waiting = [seq for seq, (_, gen) in self._pending.items() if gen == generation]
            for sequence in waiting:
                self._resolve(sequence, Lost(reason))
        level = logging.INFO if connection.closing else logging.WARNING
        logger.log(
            level,
            "gateway %s: SMPP session ended: %s; %d submit(s) had no reply",
            self.name,
            reason,
            len(waiting),
            extra=fields(gateway=self.name, count=len(waiting), outcome="session_ended"),
        )
        if self.keep_bound and not self._closed.is_set() and not connection.closing:
            self._start_reconnector()

    def _start_reconnector(self) -> None:
        with self._state_lock:
            if self._reconnector is not None and self._reconnector.is_alive():
                return
            self._reconnector = threading.Thread(
                target=self._reconnect_loop, name=f"smpp-reconnect-{self.name}", daemon=True
            )
            self._reconnector.start()

    def _reconnect_loop(self) -> None:
        delay = 0.5
        while not self._closed.is_set():
            try:
                with self._state_lock:
                    if self._connection is None and not self._closed.is_set():
                        self._connection = self._bind()
                return
            except AuthenticationError as exc:
                logger.error(
                    "%s; trying again in %.0f s",
                    exc,
                    max(delay, 30.0),
                    extra=fields(gateway=self.name, outcome=type(exc).__name__),
                )
                delay = max(delay, 30.0)
            except GatewayError as exc:
                logger.warning(
                    "%s; trying again in %.1f s",
                    exc,
                    delay,
                    extra=fields(gateway=self.name, outcome=type(exc).__name__),
                )
            self._closed.wait(delay)
            delay = min(delay * 2, 30.0)

    def _listen(self, connection: Connection) -> None:
        reason = "listener stopped"
        try:
            while not connection.unbound.is_set():
                readable, _, _ = select.select([connection.sock], [], [], TICK)
                if not readable:
                    self._keepalive(connection)
                    continue
                frame = read_frame(connection.sock)
                connection.last_read = time.monotonic()
                connection.enquiry_sent = None
                if self._dispatch(connection, frame):
                    reason = "unbound"
                    break
        except SessionEnded as exc:
            reason = str(exc)
        except (OSError, ValueError, GatewayError) as exc:
            # ValueError: select on a socket another thread closed.
            reason = f"connection lost ({type(exc).__name__}: {exc})"
        finally:
            self._lost(connection.generation, reason)
