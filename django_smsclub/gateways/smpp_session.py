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

import contextlib
import itertools
import logging
import queue
import random
import re
import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import smpplib.client
import smpplib.consts as c
import smpplib.exceptions
import smpplib.smpp

from .. import text as sms_text
from ..exceptions import (
    AmbiguousSend,
    AuthenticationError,
    ConfigurationError,
    GatewayError,
    GatewayUnavailable,
    ProviderRefused,
    RateLimited,
)
from .base import Outgoing

logger = logging.getLogger("django_smsclub.smpp")
#: smpplib logs every PDU in hex at DEBUG, the bind with its password too: see _Redact.
WIRE_LOGGER = "django_smsclub.smpp.wire"

#: The esm_class bits that mark a deliver_sm as an SMSC delivery receipt (smpplib has no name).
RECEIPT_MASK = 0x3C
RECEIPT_TYPE = 0x04
UDHI = 0x40
SUBMIT_SM_RESP = 0x80000004
GENERIC_NACK = 0x80000000
DATA_CODING_DEFAULT = 0x00
DATA_CODING_UCS2 = 0x08

ESME_ROK = c.SMPP_ESME_ROK
#: Statuses that mean "slow down": the same PDU is submitted again after a pause.
THROTTLE_STATUSES = frozenset({c.SMPP_ESME_RTHROTTLED, c.SMPP_ESME_RMSGQFUL})
#: Statuses that refuse this submit but not the message for good: it may be sent later.
TEMPORARY_STATUSES = frozenset({c.SMPP_ESME_RSYSERR, c.SMPP_ESME_RX_T_APPN})
#: Bind refusals that say nothing about the credentials.
TEMPORARY_BIND_STATUSES = THROTTLE_STATUSES | TEMPORARY_STATUSES
#: What a receipt handler's failure answers: the SMSC keeps the receipt and delivers it again.
RECEIPT_RETRY_STATUS = c.SMPP_ESME_RX_T_APPN

#: query_sm message_state values, for receipts that carry the TLV but no ``stat:`` text.
MESSAGE_STATES = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}

#: SMPP 3.4 field sizes less the terminating NUL; smpplib would cut longer values silently.
MAX_SYSTEM_ID = 15
MAX_PASSWORD = 8
MAX_SYSTEM_TYPE = 12
MAX_FRAME = 64 * 1024
#: How often the listener wakes to check keepalive and shutdown, in seconds.
TICK = 0.25

_RECEIPT_ID = re.compile(r"(?:^|\s)id:(\S+)", re.IGNORECASE)
_RECEIPT_STAT = re.compile(r"(?:^|\s)stat:(\S+)", re.IGNORECASE)
_RECEIPT_ERR = re.compile(r"(?:^|\s)err:(\S+)", re.IGNORECASE)
_RECEIPT_TEXT = re.compile(r"\stext:", re.IGNORECASE)

ReceiptHandler = Callable[[str, str], object]
ReceiptBatchHandler = Callable[[list["Receipt"]], object]
#: Receipts handed to a batch handler at once.
RECEIPT_BATCH = 500


def status_name(status: int) -> str:
    """``ESME_RTHROTTLED (0x00000058)``: the name and number of an SMPP command_status."""
    for name, value in vars(c).items():
        if name.startswith("SMPP_ESME_R") and value == status:
            return f"{name[5:]} (0x{status:08X})"
    return f"status 0x{status:08X}"


def describe_status(status: int) -> str:
    """The status name with smpplib's description, for messages people read."""
    description = c.DESCRIPTIONS.get(status)
    return f"{status_name(status)}: {description}" if description else status_name(status)


@dataclass(frozen=True)
class EncodedText:
    """A text ready for submit_sm: its data_coding, esm_class and one payload per part."""

    data_coding: int
    esm_class: int
    payloads: tuple[bytes, ...]


def encode_text(text: str, reference: int) -> EncodedText:
    """Encode ``text`` for the wire and split it into parts with an 8-bit concatenation UDH.

    A text of printable ASCII travels as data_coding 0 (the SMSC's default alphabet), one octet
    per character; anything else as UCS-2 (data_coding 8). The parts follow :mod:`..text`
    exactly (160/153 characters, 70/67 UTF-16 units), so the IDs the SMSC returns match the
    part count the pipeline stores. smpplib's ``gsm.make_parts`` is not used: it counts GSM
    escape characters (``{}[]~^|\\``) twice and maps others wrongly, so its part count differs.
    A character beyond U+FFFF may be cut between two parts; phones join the parts before they
    decode them.
    """
    info = sms_text.describe(text)
    if info.alphabet is sms_text.Alphabet.ASCII:
        data, width, data_coding = text.encode("ascii"), 1, DATA_CODING_DEFAULT
    else:
        data, width, data_coding = text.encode("utf-16-be"), 2, DATA_CODING_UCS2
    if info.parts == 1:
        return EncodedText(data_coding, 0, (data,))
    size = info.per_part * width
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    if len(chunks) != info.parts:  # a defect, never a property of the text
        raise AssertionError(f"split {len(chunks)} parts where text.py counts {info.parts}")
    header = bytes((0x05, 0x00, 0x03, reference & 0xFF, len(chunks)))
    payloads = tuple(header + bytes((n,)) + chunk for n, chunk in enumerate(chunks, start=1))
    return EncodedText(data_coding, UDHI, payloads)


def source_address(sender: str) -> tuple[int, int]:
    """(TON, NPI) of a sender: alphanumeric names are TON 5, numbers international."""
    if sender.isdigit():
        return 1, 1
    return 5, 0


@dataclass(frozen=True)
class Receipt:
    """A delivery receipt: the SMSC's message ID and its status word (``DELIVRD``, ...)."""

    message_id: str
    stat: str
    error: str = ""


def parse_receipt(pdu: Any) -> Receipt | None:
    """The receipt a deliver_sm carries, or None if it names no message ID or no status.

    The ``receipted_message_id`` TLV wins over the ``id:`` of the text (some SMSCs put a
    differently formatted ID there); the ``stat:`` word wins over the ``message_state`` TLV.
    """
    body = _as_text(getattr(pdu, "short_message", None)) or _as_text(
        getattr(pdu, "message_payload", None)
    )
    # Whatever follows "text:" is the start of the message itself, which may read "id:...".
    head = _RECEIPT_TEXT.split(body, maxsplit=1)[0]
    message_id = _as_text(getattr(pdu, "receipted_message_id", None)).strip("\0 ")
    if not message_id:
        found = _RECEIPT_ID.search(head)
        message_id = found.group(1) if found else ""
    found = _RECEIPT_STAT.search(head)
    stat = found.group(1) if found else MESSAGE_STATES.get(getattr(pdu, "message_state", None), "")
    error = _RECEIPT_ERR.search(head)
    if not message_id or not stat:
        return None
    return Receipt(message_id, stat, error.group(1) if error else "")


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


class _Sequence:
    """smpplib's sequence generator, safe across threads (the listener parses PDUs too)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    @property
    def sequence(self) -> int:
        return self._last

    def next_sequence(self) -> int:
        with self._lock:
            self._last = self._last % 0x7FFFFFFF + 1
            return self._last


class _Redact(logging.Filter):
    """Blanks the password, raw or hex-encoded, in smpplib's PDU dumps."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, password: str) -> None:
        if password:
            raw = password.encode("latin-1", "replace")
            self.secrets.update({password, raw.hex(), (raw + b"\0").hex()})

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            redacted = message
            for secret in sorted(self.secrets, key=len, reverse=True):
                redacted = redacted.replace(secret, "***")
            if redacted != message:
                record.msg, record.args = redacted, ()
        return True


_redact = _Redact()
logging.getLogger(WIRE_LOGGER).addFilter(_redact)


class NotSubmitted(GatewayUnavailable):
    """The session was draining (its process is stopping): the message was never submitted."""


class _Lost:
    """Marker result of a submit whose session ended before its reply."""

    def __init__(self, reason: str):
        self.reason = reason


@dataclass
class _Part:
    message: int
    number: int
    payload: bytes
    attempts: int = 0
    not_before: float = 0.0
    sent_at: float = 0.0
    sequence: int = 0


@dataclass
class _Connection:
    client: smpplib.client.Client
    generation: int
    sock: socket.socket
    last_read: float = field(default_factory=time.monotonic)
    enquiry_sent: float | None = None
    unbound: threading.Event = field(default_factory=threading.Event)
    closing: bool = False


class SmppSession:
    """A transceiver session that reconnects, keeps itself alive and bounds what is in flight.

    Delivery receipts go to ``on_receipts(receipts)`` (a list, as many as have arrived, for
    handlers that write them in bulk) or else to ``on_receipt(message_id, stat)``, on a receipt
    thread of their own: the listener never waits for a handler, so replies to submits keep
    flowing while receipts are written. Each receipt is answered once its handler returns
    (deliver_sm_resp may follow later PDUs); if the handler raises, it is answered
    ``ESME_RX_T_APPN`` so the SMSC delivers it again later. Without a handler receipts are
    answered that way too: a session that cannot record them leaves them to one that can.

    With ``keep_bound`` a lost session is bound again in the background (a receipt listener
    must stay bound while nothing is sent); otherwise the next submit binds it.
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
        on_receipt: ReceiptHandler | None = None,
        keep_bound: bool = False,
    ):
        problems = []
        if not host or not isinstance(host, str):
            problems.append(f"HOST {host!r} must name the SMSC's host")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            problems.append(f"PORT {port!r} must be a TCP port number")
        if not system_id or len(system_id) > MAX_SYSTEM_ID:
            problems.append(f"USERNAME {system_id!r} must be 1..{MAX_SYSTEM_ID} characters")
        if len(password) > MAX_PASSWORD:
            # The length only: a password never goes into a message.
            problems.append(f"PASSWORD is {len(password)} characters; SMPP allows {MAX_PASSWORD}")
        if len(system_type) > MAX_SYSTEM_TYPE:
            problems.append(f"SYSTEM_TYPE {system_type!r} is over {MAX_SYSTEM_TYPE} characters")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            problems.append(f"WINDOW {window!r} must be a whole number of at least 1")
        if problems:
            raise ConfigurationError(f"gateway {name!r}: " + "; ".join(problems))
        self.name = name
        self.host, self.port = host, port
        self.system_id, self.system_type = system_id, system_type
        self._password = password
        _redact.add(password)
        self.window = window
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.enquire_link = enquire_link
        self.throttle_retries = throttle_retries
        self.throttle_backoff = throttle_backoff
        self.throttle_backoff_max = throttle_backoff_max
        self.reconnects = reconnects
        self.on_receipt = on_receipt
        self.on_receipts: ReceiptBatchHandler | None = None
        #: Called on the listener thread with each message ID the SMSC accepts, before any
        #: receipt for it can be read.
        self.on_accepted: Callable[[str], object] | None = None
        self.keep_bound = keep_bound

        self._state_lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._connection: _Connection | None = None
        self._generations = itertools.count(1)
        self._pending: dict[int, tuple[_Run, _Part, int]] = {}
        self._slots = threading.BoundedSemaphore(window)
        self._paused_until = 0.0
        self._references = itertools.count(random.randrange(256))  # noqa: S311 - not a secret
        self._closed = threading.Event()
        self._draining = threading.Event()
        self._reconnector: threading.Thread | None = None
        self._listeners: list[threading.Thread] = []
        self._inbox: queue.Queue[tuple[_Connection, int, Receipt] | None] = queue.Queue()
        self._receipt_thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<SmppSession {self.name!r} {self.system_id}@{self.host}:{self.port}>"

    @property
    def bound(self) -> bool:
        return self._connection is not None

    def open(self) -> None:
        """Bind now if not bound (raises GatewayUnavailable or AuthenticationError)."""
        self._closed.clear()
        self._ensure_bound()

    def drain(self) -> None:
        """Submit nothing new: messages not yet started come back as :class:`NotSubmitted`.

        Parts of a message already started are still submitted, so no phone gets half a text.
        """
        self._draining.set()

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    def close(self) -> None:
        """Unbind and disconnect; submits still waiting for a reply become ambiguous."""
        self._closed.set()
        with self._state_lock:
            connection = self._connection
        self._finish_receipts()
        if connection is not None:
            connection.closing = True
            try:
                self._send(connection, smpplib.smpp.make_pdu("unbind", client=connection.client))
                # Many SMSCs just close the socket after an unbind: the listener sets the
                # event on either.
                if not connection.unbound.wait(min(self.timeout, 5.0)):
                    logger.info("gateway %s: no unbind_resp; closing anyway", self.name)
            except GatewayError:
                pass
            self._lost(connection.generation, "closed by this side")
            logger.info("gateway %s: SMPP session unbound", self.name)
        for thread in [*self._listeners, self._reconnector, self._receipt_thread]:
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
        return _Run(self, sender, messages).execute()

    def reference(self) -> int:
        """The next 8-bit concatenation reference: sequential, so two long texts to one
        number at once do not share one (a random pick would, one time in 256)."""
        return next(self._references) % 256

    def pause(self, seconds: float) -> None:
        with self._state_lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    @property
    def paused_until(self) -> float:
        return self._paused_until

    def _ensure_bound(self, *, background: bool = False) -> _Connection | None:
        with self._state_lock:
            if self._connection is None:
                if background and self._closed.is_set():
                    return None
                self._connection = self._bind()
            return self._connection

    def _bind(self) -> _Connection:
        client = smpplib.client.Client(
            self.host,
            self.port,
            timeout=self.connect_timeout,
            sequence_generator=_Sequence(),
            logger_name=WIRE_LOGGER,
            allow_unknown_opt_params=True,
        )
        where = f"gateway {self.name}: SMPP {self.host}:{self.port}"
        try:
            client.connect()
        except smpplib.exceptions.ConnectionError:
            _disconnect(client)
            raise GatewayUnavailable(f"{where}: cannot connect", gateway=self.name) from None
        try:
            client.bind_transceiver(
                system_id=self.system_id,
                password=self._password,
                system_type=self.system_type or None,
            )
        except smpplib.exceptions.PDUError as exc:
            _disconnect(client)
            if len(exc.args) < 2:
                raise GatewayUnavailable(
                    f"{where}: garbled reply to bind", gateway=self.name
                ) from None
            status = exc.args[1]
            if status in TEMPORARY_BIND_STATUSES:
                raise GatewayUnavailable(
                    f"{where}: bind refused for now ({describe_status(status)})", gateway=self.name
                ) from None
            raise AuthenticationError(
                f"{where}: bind as {self.system_id!r} refused ({describe_status(status)})",
                gateway=self.name,
            ) from None
        except Exception as exc:  # a timeout, a closed socket or a reply smpplib cannot read
            _disconnect(client)
            raise GatewayUnavailable(
                f"{where}: no usable reply to bind ({type(exc).__name__})", gateway=self.name
            ) from None
        sock = client._socket
        sock.settimeout(self.timeout)
        connection = _Connection(client, next(self._generations), sock)
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
        )
        return connection

    def _send(self, connection: _Connection, pdu: Any) -> None:
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

    def _register(self, run: _Run, part: _Part, connection: _Connection, pdu: Any) -> bool:
        """Expect a reply to ``pdu``; False if ``connection`` has ended meanwhile."""
        with self._pending_lock:
            if self._connection is not connection:
                return False
            self._pending[pdu.sequence] = (run, part, connection.generation)
            return True

    def _waiting(self, sequence: int) -> bool:
        with self._pending_lock:
            return sequence in self._pending

    def _unregister(self, sequence: int) -> bool:
        """Forget a submit; True if it was still waiting (its window slot is released)."""
        with self._pending_lock:
            entry = self._pending.pop(sequence, None)
        if entry is not None:
            self._slots.release()
        return entry is not None

    def _resolve(self, sequence: int, result: int | _Lost, message_id: str = "") -> bool:
        with self._pending_lock:
            entry = self._pending.pop(sequence, None)
        if entry is None:
            return False
        self._slots.release()
        run, part, _ = entry
        run.deliver(sequence, part, result, message_id)
        return True

    def _lost(self, generation: int, reason: str) -> None:
        """End connection ``generation``: close it and fail the submits waiting on it."""
        with self._state_lock:
            connection = self._connection
            if connection is None or connection.generation != generation:
                return
            self._connection = None
            connection.unbound.set()
            _disconnect(connection.client)
            # Still under the state lock: whoever binds the next session has these results
            # in hand before it can submit anything on it.
            with self._pending_lock:
                waiting = [seq for seq, (_, _, gen) in self._pending.items() if gen == generation]
            for sequence in waiting:
                self._resolve(sequence, _Lost(reason))
        level = logging.INFO if connection.closing else logging.WARNING
        logger.log(
            level,
            "gateway %s: SMPP session ended: %s; %d submit(s) had no reply",
            self.name,
            reason,
            len(waiting),
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
                self._ensure_bound(background=True)
                return
            except AuthenticationError as exc:
                logger.error("%s; trying again in %.0f s", exc, max(delay, 30.0))
                delay = max(delay, 30.0)
            except GatewayError as exc:
                logger.warning("%s; trying again in %.1f s", exc, delay)
            self._closed.wait(delay)
            delay = min(delay * 2, 30.0)

    def _listen(self, connection: _Connection) -> None:
        reason = "listener stopped"
        try:
            while not connection.unbound.is_set():
                readable, _, _ = select.select([connection.sock], [], [], TICK)
                if not readable:
                    self._keepalive(connection)
                    continue
                frame = _read_frame(connection.sock)
                connection.last_read = time.monotonic()
                connection.enquiry_sent = None
                if self._dispatch(connection, frame):
                    reason = "unbound"
                    break
        except _Ended as exc:
            reason = str(exc)
        except (OSError, ValueError, GatewayError) as exc:
            # ValueError: select on a socket another thread closed.
            reason = f"connection lost ({type(exc).__name__}: {exc})"
        finally:
            self._lost(connection.generation, reason)

    def _keepalive(self, connection: _Connection) -> None:
        now = time.monotonic()
        if connection.enquiry_sent is not None:
            if now - connection.enquiry_sent > self.timeout:
                raise _Ended(f"no reply to enquire_link within {self.timeout:g} s")
        elif now - connection.last_read >= self.enquire_link:
            connection.enquiry_sent = now
            self._send(connection, smpplib.smpp.make_pdu("enquire_link", client=connection.client))

    def _dispatch(self, connection: _Connection, frame: bytes) -> bool:
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
            )
            pdu = None
        command = pdu.command if pdu is not None else ""
        if command_id == SUBMIT_SM_RESP or (command_id == GENERIC_NACK and self._waiting(sequence)):
            if command_id == GENERIC_NACK:
                status = status or c.SMPP_ESME_RSYSERR
            message_id = _as_text(getattr(pdu, "message_id", None)).strip("\0 ")
            accepted = self.on_accepted
            if accepted is not None and status == ESME_ROK and message_id:
                # Before the next PDU is read: the receipt for this ID may be that PDU.
                accepted(message_id)
            if not self._resolve(sequence, status, message_id):
                logger.warning("gateway %s: reply to unknown submit %d", self.name, sequence)
        elif command == "deliver_sm":
            status = self._delivered(connection, sequence, pdu)
            if status is not None:
                self._respond(connection, "deliver_sm_resp", sequence, status)
        elif command == "enquire_link":
            self._respond(connection, "enquire_link_resp", sequence)
        elif command == "unbind":
            self._respond(connection, "unbind_resp", sequence)
            raise _Ended("the SMSC unbound the session")
        elif command == "unbind_resp":
            connection.unbound.set()
            return True
        elif command in ("enquire_link_resp", "deliver_sm_resp", "generic_nack"):
            if status:
                logger.warning("gateway %s: %s %s", self.name, command, describe_status(status))
        elif not command_id & 0x80000000:
            # A request this client does not serve (data_sm, alert_notification, ...).
            self._respond(connection, "generic_nack", sequence, c.SMPP_ESME_RINVCMDID)
        return False

    def _respond(
        self, connection: _Connection, command: str, sequence: int, status: int = ESME_ROK
    ) -> None:
        pdu = smpplib.smpp.make_pdu(command, client=connection.client)
        # smpplib ignores sequence= and status= given to make_pdu.
        pdu.sequence, pdu.status = sequence, status
        self._send(connection, pdu)

    def _delivered(self, connection: _Connection, sequence: int, pdu: Any) -> int | None:
        """The deliver_sm_resp status for a deliver_sm, or None when the receipt thread
        answers it once the handler has taken the receipt."""
        if (pdu.esm_class or 0) & RECEIPT_MASK != RECEIPT_TYPE:
            logger.info("gateway %s: ignored a deliver_sm that is not a receipt", self.name)
            return ESME_ROK
        receipt = parse_receipt(pdu)
        if receipt is None:
            logger.warning(
                "gateway %s: receipt without message ID or status: %r",
                self.name,
                _as_text(pdu.short_message)[:200],
            )
            return ESME_ROK
        if self.on_receipts is None and self.on_receipt is None:
            logger.debug("gateway %s: no receipt handler; receipt left to the SMSC", self.name)
            return RECEIPT_RETRY_STATUS
        with self._state_lock:
            if self._receipt_thread is None or not self._receipt_thread.is_alive():
                self._receipt_thread = threading.Thread(
                    target=self._receipt_loop, name=f"smpp-receipts-{self.name}", daemon=True
                )
                self._receipt_thread.start()
        self._inbox.put((connection, sequence, receipt))
        return None

    def _receipt_loop(self) -> None:
        while True:
            item = self._inbox.get()
            batch = [item]
            while item is not None and len(batch) < RECEIPT_BATCH:
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
            receipts = [entry for entry in batch if entry is not None]
            try:
                statuses = self._hand_over([receipt for _, _, receipt in receipts])
                for (connection, sequence, _), status in zip(receipts, statuses, strict=True):
                    # If that session is gone, the SMSC delivers the receipt again.
                    with contextlib.suppress(GatewayError):
                        self._respond(connection, "deliver_sm_resp", sequence, status)
            finally:
                for _ in batch:
                    self._inbox.task_done()
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
                )
                statuses.append(RECEIPT_RETRY_STATUS)
            else:
                statuses.append(ESME_ROK)
        return statuses

    def _finish_receipts(self) -> None:
        """Let the receipt thread answer what it holds, then end it (before an unbind)."""
        thread = self._receipt_thread
        if thread is None or not thread.is_alive():
            return
        self._inbox.put(None)
        thread.join(timeout=self.timeout)
        if thread.is_alive():
            logger.warning("gateway %s: receipts still being recorded at close", self.name)


class _Ended(Exception):
    """The session is over for the reason given."""


def _read_frame(sock: socket.socket) -> bytes:
    header = _recv_exact(sock, 4)
    (length,) = struct.unpack(">L", header)
    if not 16 <= length <= MAX_FRAME:
        raise _Ended(f"garbled PDU length {length}")
    return header + _recv_exact(sock, length - 4)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise _Ended("the SMSC closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _disconnect(client: smpplib.client.Client) -> None:
    sock = client._socket
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    # smpplib warns when it disconnects a bound client; this side knows what it is doing.
    client.state = c.SMPP_CLIENT_STATE_OPEN
    try:
        client.disconnect()
    except OSError:
        client._socket = None


class _Run:
    """One call of :meth:`SmppSession.submit`: its parts, what is in flight, the results."""

    def __init__(self, session: SmppSession, sender: str, messages: Sequence[Outgoing]):
        self.session = session
        self.sender = sender
        self.messages = list(messages)
        self.source_ton, self.source_npi = source_address(sender)
        self.cond = threading.Condition()
        self.events: list[tuple[int, _Part, int | _Lost, str]] = []
        self.todo: deque[_Part] = deque()
        self.encoded: list[EncodedText] = []
        for index, message in enumerate(self.messages):
            long = sms_text.count_parts(message.text) > 1
            encoded = encode_text(message.text, session.reference() if long else 0)
            self.encoded.append(encoded)
            for number, payload in enumerate(encoded.payloads, start=1):
                self.todo.append(_Part(index, number, payload))
        self.ids: list[list[str]] = [[""] * len(e.payloads) for e in self.encoded]
        self.errors: list[GatewayError | None] = [None] * len(self.messages)
        self.started = [False] * len(self.messages)
        self.in_flight: dict[int, _Part] = {}
        self.unwritten: set[int] = set()
        self.losses = 0

    def deliver(self, sequence: int, part: _Part, result: int | _Lost, message_id: str) -> None:
        """Called by the listener (or the session) with the reply to one submitted part."""
        with self.cond:
            self.events.append((sequence, part, result, message_id))
            self.cond.notify()

    def execute(self) -> list[list[str] | GatewayError]:
        session = self.session
        while True:
            self._take_events()
            self._expire()
            if not self.todo and not self.in_flight:
                break
            part = self._next_part()
            if part is None:
                self._wait()
                continue
            if not self.started[part.message] and session.draining:
                self._fail(
                    part.message,
                    NotSubmitted(
                        f"gateway {session.name}: not submitted, the SMPP session is stopping",
                        gateway=session.name,
                    ),
                )
                continue
            if not session._slots.acquire(timeout=TICK):
                continue
            self.todo.popleft()
            try:
                connection = session._ensure_bound()
            except GatewayError as exc:
                session._slots.release()
                self.todo.appendleft(part)
                self._give_up(exc)
                continue
            # A session lost meanwhile may have failed this part's message (see _lost).
            self._take_events()
            if self.errors[part.message] is not None:
                session._slots.release()
                continue
            self._submit(connection, part)
        return [self._outcome(i) for i in range(len(self.messages))]

    def _submit(self, connection: _Connection, part: _Part) -> None:
        session = self.session
        message = self.messages[part.message]
        encoded = self.encoded[part.message]
        pdu = smpplib.smpp.make_pdu(
            "submit_sm",
            client=connection.client,
            source_addr_ton=self.source_ton,
            source_addr_npi=self.source_npi,
            source_addr=self.sender,
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr=message.recipient,
            esm_class=encoded.esm_class,
            registered_delivery=1,
            data_coding=encoded.data_coding,
            short_message=part.payload,
        )
        part.sequence, part.sent_at = pdu.sequence, time.monotonic()
        try:
            if not session._register(self, part, connection, pdu):
                session._slots.release()
                raise GatewayUnavailable("the session ended before the write")
            session._send(connection, pdu)
        except GatewayError:
            # Not written, or sendall failed so the SMSC got at most a cut PDU it cannot act
            # on: the part goes again on the next session (the loss may have reported it as
            # unanswered already; that report is ignored).
            session._unregister(pdu.sequence)
            self.unwritten.add(pdu.sequence)
            self.todo.appendleft(part)
            self.losses += 1
            if self.losses > session.reconnects:
                self._give_up(
                    GatewayUnavailable(
                        f"gateway {session.name}: SMPP session lost {self.losses} times",
                        gateway=session.name,
                    )
                )
            return
        self.started[part.message] = True
        self.in_flight[pdu.sequence] = part

    def _next_part(self) -> _Part | None:
        """The first part that may go now; parts of a failed message are dropped."""
        now = time.monotonic()
        while self.todo and self.errors[self.todo[0].message] is not None:
            self.todo.popleft()
        if not self.todo:
            return None
        part = self.todo[0]
        if part.not_before > now or self.session.paused_until > now:
            return None
        return part

    def _wait(self) -> None:
        now = time.monotonic()
        deadlines = [p.sent_at + self.session.timeout for p in self.in_flight.values()]
        if self.todo:
            deadlines.append(max(self.todo[0].not_before, self.session.paused_until))
        timeout = min([*deadlines, now + TICK]) - now
        with self.cond:
            if not self.events:
                self.cond.wait(max(timeout, 0.001))

    def _take_events(self) -> None:
        with self.cond:
            events, self.events = self.events, []
        for sequence, part, result, message_id in events:
            self.in_flight.pop(sequence, None)
            if sequence in self.unwritten:
                self.unwritten.discard(sequence)
                continue
            self._settle(part, result, message_id)

    def _settle(self, part: _Part, result: int | _Lost, message_id: str) -> None:
        session = self.session
        where = f"gateway {session.name}: to {self.messages[part.message].recipient}"
        if len(self.encoded[part.message].payloads) > 1:
            where += f", part {part.number} of {len(self.encoded[part.message].payloads)}"
        if isinstance(result, _Lost):
            self._fail(
                part.message,
                AmbiguousSend(
                    f"{where}: submitted, then the SMPP session ended before its reply "
                    f"({result.reason}); it may have been sent",
                    gateway=session.name,
                ),
            )
        elif result == ESME_ROK:
            if message_id:
                self.ids[part.message][part.number - 1] = message_id
            else:
                self._fail(
                    part.message,
                    AmbiguousSend(
                        f"{where}: accepted without a message_id to track", gateway=session.name
                    ),
                )
        elif result in THROTTLE_STATUSES:
            part.attempts += 1
            delay = min(
                session.throttle_backoff * 2 ** (part.attempts - 1), session.throttle_backoff_max
            )
            if part.attempts > session.throttle_retries:
                self._fail(
                    part.message,
                    RateLimited(
                        f"{where}: still {status_name(result)} after {part.attempts} tries",
                        gateway=session.name,
                        retry_after=session.throttle_backoff_max,
                    ),
                )
                return
            logger.info("%s: %s; again in %.2f s", where, status_name(result), delay)
            part.not_before = time.monotonic() + delay
            session.pause(delay)
            self.todo.appendleft(part)
        elif result in TEMPORARY_STATUSES:
            self._fail(
                part.message,
                GatewayUnavailable(
                    f"{where}: the SMSC refused it for now ({describe_status(result)})",
                    gateway=session.name,
                ),
            )
        else:
            provider_text = describe_status(result)
            self._fail(
                part.message,
                ProviderRefused(
                    f"{where}: refused ({provider_text})",
                    gateway=session.name,
                    provider_text=provider_text,
                ),
            )

    def _expire(self) -> None:
        """A submit with no reply within the timeout: ambiguous, its slot freed."""
        now = time.monotonic()
        for sequence, part in list(self.in_flight.items()):
            if now - part.sent_at > self.session.timeout and self.session._unregister(sequence):
                del self.in_flight[sequence]
                self._fail(
                    part.message,
                    AmbiguousSend(
                        f"gateway {self.session.name}: no reply to submit_sm to "
                        f"{self.messages[part.message].recipient} within "
                        f"{self.session.timeout:g} s; it may have been sent",
                        gateway=self.session.name,
                    ),
                )

    def _fail(self, message: int, error: GatewayError) -> None:
        current = self.errors[message]
        # The first error stands, except that "it may have gone out" outweighs "try again":
        # a message one of whose parts may have been sent is never sent again.
        if current is None or (error.may_have_sent and current.retryable):
            self.errors[message] = error

    def _give_up(self, error: GatewayError) -> None:
        """The session cannot be bound: nothing more of this run goes out."""
        for part in self.todo:
            self._fail(part.message, error)
        self.todo.clear()

    def _outcome(self, index: int) -> list[str] | GatewayError:
        error = self.errors[index]
        if error is None:
            return list(self.ids[index])
        accepted = [i for i in self.ids[index] if i]
        if accepted and error.retryable:
            # Part of the text went out: sending it again would repeat those parts.
            return AmbiguousSend(
                f"{error}; but part(s) were accepted as {', '.join(accepted)}, so it is not "
                "sent again",
                gateway=error.gateway,
            )
        return error
