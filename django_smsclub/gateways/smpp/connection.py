"""One TCP connection to an SMSC, bound as a transceiver with smpplib, and its failures mapped.

A session (:mod:`.session`) binds a new connection whenever the last one is lost; each has a
generation number, so replies and losses are never taken for those of another connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field

import smpplib.client
import smpplib.consts as c
import smpplib.exceptions

from ...exceptions import AuthenticationError, GatewayUnavailable
from ..redaction import protect_logger
from .pdu import TEMPORARY_BIND_STATUSES, describe_status

#: smpplib logs every PDU in hex at DEBUG, the bind with its password too: redacted.
WIRE_LOGGER = "django_smsclub.smpp.wire"
protect_logger(WIRE_LOGGER)

#: SMPP 3.4 field sizes less the terminating NUL; smpplib would cut longer values silently.
MAX_SYSTEM_ID = 15
MAX_PASSWORD = 8
MAX_SYSTEM_TYPE = 12
#: How often the session's threads wake to check keepalive, replies and shutdown, in seconds.
TICK = 0.25


class Lost:
    """The result of a submit whose connection ended before its reply: it may have been sent."""

    def __init__(self, reason: str):
        self.reason = reason


@dataclass
class Connection:
    """A bound connection and what the session's listener knows of it."""

    client: smpplib.client.Client
    generation: int
    sock: socket.socket
    last_read: float = field(default_factory=time.monotonic)
    enquiry_sent: float | None = None
    unbound: threading.Event = field(default_factory=threading.Event)
    closing: bool = False


def bind_problems(
    host: object, port: object, system_id: str, password: str, system_type: str
) -> list[str]:
    """What is wrong with the settings of a bind, one line each (never the password itself)."""
    problems = []
    if not host or not isinstance(host, str):
        problems.append(f"HOST {host!r} must name the SMSC's host")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        problems.append(f"PORT {port!r} must be a TCP port number")
    if not system_id or len(system_id) > MAX_SYSTEM_ID:
        problems.append(f"USERNAME {system_id!r} must be 1..{MAX_SYSTEM_ID} characters")
    if len(password) > MAX_PASSWORD:
        problems.append(f"PASSWORD is {len(password)} characters; SMPP allows {MAX_PASSWORD}")
    if len(system_type) > MAX_SYSTEM_TYPE:
        problems.append(f"SYSTEM_TYPE {system_type!r} is over {MAX_SYSTEM_TYPE} characters")
    return problems


def open_connection(
    host: str,
    port: int,
    system_id: str,
    password: str,
    *,
    system_type: str,
    name: str,
    generation: int,
    connect_timeout: float,
    timeout: float,
) -> Connection:
    """Connect and bind as a transceiver.

    Raises :class:`GatewayUnavailable` when the SMSC cannot be reached or refuses the bind for
    now (throttled, a system error), :class:`AuthenticationError` when it refuses the account.
    """
    client = smpplib.client.Client(
        host,
        port,
        timeout=connect_timeout,
        sequence_generator=_Sequence(),
        logger_name=WIRE_LOGGER,
        allow_unknown_opt_params=True,
    )
    where = f"gateway {name}: SMPP {host}:{port}"
    try:
        client.connect()
    except smpplib.exceptions.ConnectionError:
        disconnect(client)
        raise GatewayUnavailable(f"{where}: cannot connect", gateway=name) from None
    try:
        client.bind_transceiver(
            system_id=system_id, password=password, system_type=system_type or None
        )
    except smpplib.exceptions.PDUError as exc:
        disconnect(client)
        if len(exc.args) < 2:
            raise GatewayUnavailable(f"{where}: garbled reply to bind", gateway=name) from None
        status = exc.args[1]
        if status in TEMPORARY_BIND_STATUSES:
            raise GatewayUnavailable(
                f"{where}: bind refused for now ({describe_status(status)})", gateway=name
            ) from None
        raise AuthenticationError(
            f"{where}: bind as {system_id!r} refused ({describe_status(status)})", gateway=name
        ) from None
    except Exception as exc:  # a timeout, a closed socket or a reply smpplib cannot read
        disconnect(client)
        raise GatewayUnavailable(
            f"{where}: no usable reply to bind ({type(exc).__name__})", gateway=name
        ) from None
    sock = client._socket
    sock.settimeout(timeout)
    return Connection(client, generation, sock)


def disconnect(client: smpplib.client.Client) -> None:
    """Close the client's socket at once, bound or not."""
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
