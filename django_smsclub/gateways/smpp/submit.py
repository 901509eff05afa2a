"""One windowed submit run: every part of a batch as a ``submit_sm``, at most ``window`` of
them waiting for a reply across the whole session, throttling obeyed.

The run drives the session only through the small interface of :class:`SubmitSession`: take a
place in the window, get a bound connection, expect the reply to a PDU, write it, forget it.
What each reply means for the message (accepted, throttled, refused, lost) is decided here.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import smpplib.smpp

from ... import metrics
from ... import text as sms_text
from ...exceptions import (
    AmbiguousSend,
    GatewayError,
    GatewayUnavailable,
    NotSubmitted,
    ProviderRefused,
    RateLimited,
)
from ...logs import fields
from ..base import Outgoing
from .connection import TICK, Connection, Lost
from .pdu import (
    ESME_ROK,
    TEMPORARY_STATUSES,
    THROTTLE_STATUSES,
    EncodedText,
    describe_status,
    encode_text,
    source_address,
    status_name,
)

logger = logging.getLogger("django_smsclub.smpp")

#: Called once with the reply to a submitted PDU: ``(sequence, command_status or Lost,
#: message_id)``.
ReplyHandler = Callable[[int, int | Lost, str], object]


class SubmitSession(Protocol):
    """What a submit run needs of its session (:class:`~.session.SmppSession` provides it).

    The run holds a place in the window from :meth:`acquire_slot` until the reply to its PDU
    comes (the session gives the place back then), until it :meth:`forget` s the PDU, or until
    it gives the place back itself with :meth:`release_slot` when it writes nothing.
    """

    name: str
    timeout: float
    reconnects: int
    throttle_retries: int
    throttle_backoff: float
    throttle_backoff_max: float

    @property
    def draining(self) -> bool:
        """Whether messages not yet started must not be submitted (the process is stopping)."""

    @property
    def paused_until(self) -> float:
        """The monotonic time before which nothing is submitted (the SMSC asked to slow down)."""

    def pause(self, seconds: float) -> None:
        """Submit nothing on the whole session for ``seconds``."""

    def reference(self) -> int:
        """The concatenation reference of the next long text."""

    def acquire_slot(self, timeout: float) -> bool:
        """Take a place in the window; False when none came free within ``timeout``."""

    def release_slot(self) -> None:
        """Give back a place taken for a PDU that was never expected."""

    def bound_connection(self) -> Connection:
        """The bound connection, binding one if there is none."""

    def expect_reply(self, connection: Connection, sequence: int, on_reply: ReplyHandler) -> bool:
        """Have ``on_reply`` called with the reply to PDU ``sequence``; False (and nothing
        expected) when ``connection`` ended meanwhile."""

    def write(self, connection: Connection, pdu: Any) -> None:
        """Write one PDU; :class:`GatewayUnavailable` (and the connection ended) if it fails."""

    def forget(self, sequence: int) -> bool:
        """Expect no reply to ``sequence`` any more; True if one was still expected."""


class SubmitRun:
    """One call of :meth:`~.session.SmppSession.submit`: its parts, what is in flight, the
    results."""

    def __init__(self, session: SubmitSession, sender: str, messages: Sequence[Outgoing]):
        self.session = session
        self.sender = sender
        self.messages = list(messages)
        self.source_ton, self.source_npi = source_address(sender)
        self.cond = threading.Condition()
        self.events: list[tuple[int, _Part, int | Lost, str]] = []
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

    def deliver(self, part: _Part, sequence: int, result: int | Lost, message_id: str) -> None:
        """Called by the listener (or the session) with the reply to one submitted part."""
        with self.cond:
            self.events.append((sequence, part, result, message_id))
            self.cond.notify()

    def execute(self) -> list[list[str] | GatewayError]:
        """Submit the parts as the window and the SMSC's pace allow; per message, its IDs or
        its error."""
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
            if not session.acquire_slot(TICK):
                continue
            self.todo.popleft()
            try:
                connection = session.bound_connection()
            except GatewayError as exc:
                session.release_slot()
                self.todo.appendleft(part)
                self._give_up(exc)
                continue
            # A session lost meanwhile may have failed this part's message (see _lost).
            self._take_events()
            if self.errors[part.message] is not None:
                session.release_slot()
                continue
            self._submit(connection, part)
        return [self._outcome(i) for i in range(len(self.messages))]

    def _submit(self, connection: Connection, part: _Part) -> None:
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
            if not session.expect_reply(
                connection, pdu.sequence, functools.partial(self.deliver, part)
            ):
                session.release_slot()
                raise GatewayUnavailable("the session ended before the write")
            session.write(connection, pdu)
        except GatewayError:
            # Not written, or sendall failed so the SMSC got at most a cut PDU it cannot act
            # on: the part goes again on the next session (the loss may have reported it as
            # unanswered already; that report is ignored).
            session.forget(pdu.sequence)
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

    def _settle(self, part: _Part, result: int | Lost, message_id: str) -> None:
        session = self.session
        seconds = time.monotonic() - part.sent_at
        metrics.request_done(session.name, _outcome(result), seconds)
        logger.debug(
            "gateway %s: submit_sm %s in %d ms",
            session.name,
            _outcome(result),
            round(seconds * 1000),
            extra=fields(
                gateway=session.name,
                message_id=self.messages[part.message].ref,
                smsc_id=message_id or None,
                outcome=_outcome(result),
                attempts=part.attempts + 1,
                duration_ms=round(seconds * 1000),
            ),
        )
        where = f"gateway {session.name}: to {self.messages[part.message].recipient}"
        if len(self.encoded[part.message].payloads) > 1:
            where += f", part {part.number} of {len(self.encoded[part.message].payloads)}"
        if isinstance(result, Lost):
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
            logger.info(
                "%s: %s; again in %.2f s",
                where,
                status_name(result),
                delay,
                extra=fields(
                    gateway=session.name,
                    message_id=self.messages[part.message].ref,
                    outcome=_outcome(result),
                    attempts=part.attempts,
                ),
            )
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
            if now - part.sent_at > self.session.timeout and self.session.forget(sequence):
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


@dataclass
class _Part:
    """One part of one message of the run, and where its submit stands."""

    message: int
    number: int
    payload: bytes
    attempts: int = 0
    not_before: float = 0.0
    sent_at: float = 0.0
    sequence: int = 0


def _outcome(result: int | Lost) -> str:
    """A submit's outcome for the metrics: ``ok``, ``lost`` or the SMPP status's name."""
    if isinstance(result, Lost):
        return "lost"
    return "ok" if result == ESME_ROK else status_name(result).split(" ")[0]
