"""The gateway interface and the fixed flow every gateway shares.

A gateway turns a batch of outgoing texts into requests and the replies into outcomes. It never
touches the database. The base class owns what does not depend on the provider: validation,
planning the requests, the ID-to-part mapping with its count check, and the rules that a crash
or a wrong count of outcomes is ambiguous and that a batch stops after a request fails for a
reason other than a refusal. Each gateway only says how one request is built and its reply
read; how it reaches the provider is its own (:mod:`.transport` for HTTP, :mod:`.smpp` for
SMPP).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from .. import phones, text
from ..exceptions import (
    AmbiguousSend,
    ConfigurationError,
    GatewayError,
    GatewayMisconfigured,
    GatewayUnavailable,
    InvalidMessage,
    NotAttempted,
    ProviderRefused,
    RateLimited,
)
from ..logs import fields, message_ids, since
from .outcomes import (
    MAX_SMSC_ID_LENGTH,
    Balance,
    Outgoing,
    Planned,
    SendOutcome,
    is_smsc_id,
)
from .redaction import protect_logger, redact, register_secret
from .requestlog import log_request

__all__ = [
    "MAX_SMSC_ID_LENGTH",
    "Balance",
    "Gateway",
    "Outgoing",
    "Planned",
    "SendOutcome",
    "is_smsc_id",
]

logger = logging.getLogger("django_smsclub.gateways")
# The package's own loggers: their messages and extra fields are searched for credentials too.
protect_logger(
    "django_smsclub", "django_smsclub.gateways", "django_smsclub.smpp", "django_smsclub.status"
)


class Gateway(ABC):
    """Base of every gateway. Subclasses set the class attributes and implement the steps."""

    #: Recipients per send request (``BATCH_SIZE`` overrides it).
    max_batch: ClassVar[int] = 100
    #: SMSC IDs per status request.
    max_state_batch: ClassVar[int] = 100
    #: Whether the text travels as Windows-1251 (the HTTP gateway).
    needs_cp1251: ClassVar[bool] = False
    #: Whether one request may carry different texts (XML individual).
    personal_texts_per_request: ClassVar[bool] = False
    #: Whether one request may carry the same recipient twice.
    repeats_recipients: ClassVar[bool] = True
    default_base_url: ClassVar[str] = ""
    #: Whether a long-lived process of its own sends for this gateway, not the Celery tasks
    #: (SMPP: one session per account, which also receives the delivery receipts).
    dedicated_process: ClassVar[bool] = False

    def __init__(self, name: str = "default", **options: Any):
        self.name = name
        self.username: str = options.get("USERNAME") or ""
        self.password: str = options.get("PASSWORD") or ""
        self.token: str = options.get("TOKEN") or ""
        self.default_sender: str = options.get("SENDER") or ""
        self.base_url: str = (options.get("BASE_URL") or self.default_base_url).rstrip("/")
        self.timeout = (
            float(options.get("CONNECT_TIMEOUT") or 5.0),
            float(options.get("TIMEOUT") or 30.0),
        )
        self.batch_size: int = int(options.get("BATCH_SIZE") or self.max_batch)
        if not 1 <= self.batch_size <= self.max_batch:
            raise InvalidMessage(
                f"BATCH_SIZE {self.batch_size} of gateway {name!r} must be 1..{self.max_batch}"
            )
        self.rate_limit = options.get("RATE_LIMIT")
        self.options: dict[str, Any] = dict(options.get("OPTIONS") or {})
        register_secret(self.password, self.token)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def send(
        self,
        sender: str | None,
        messages: Sequence[Outgoing],
        *,
        before_request: Callable[[], object] | None = None,
        skip_invalid: bool = False,
    ) -> list[SendOutcome]:
        """Send ``messages``; one outcome per message, in the given order.

        Each message goes from its own ``sender``, else from ``sender``, else from the
        gateway's ``SENDER``, and is checked against it before any request. Bad input raises
        one :class:`InvalidMessage` naming every bad value, and nothing is sent; with
        ``skip_invalid`` each malformed message gets its own :class:`InvalidMessage` as its
        outcome and the others are sent.

        The messages go in as few requests as the provider allows, one sender per request.
        Failures of a request become the outcome of each message it carried; after a request
        fails for a reason other than a refusal, the requests not yet made are not made,
        whatever their sender (their messages get :meth:`not_attempted`).
        ``before_request`` runs before each request (a rate limiter's ``acquire``).
        """
        prepared, invalid = self.validate(
            sender or self.default_sender, messages, skip_invalid=skip_invalid
        )
        results = {index: SendOutcome(messages[index], error=exc) for index, exc in invalid.items()}
        stop: GatewayError | None = None
        for batch_sender, batch in self.plan(prepared):
            if stop is not None:
                for index, _ in batch:
                    results[index] = SendOutcome(messages[index], error=self.not_attempted(stop))
                continue
            refs = message_ids(item.ref for _, item in batch)
            made, started = False, time.monotonic()
            try:
                if before_request is not None:
                    before_request()
                made, started = True, time.monotonic()
                ids_per_message = self._send_checked(batch_sender, [item for _, item in batch])
            except GatewayError as exc:
                exc.gateway = exc.gateway or self.name
                # Refused by the limiter or for a more urgent message: no request was made.
                (logger.warning if made else logger.info)(
                    "gateway %s: request for %d message(s) %s: %s",
                    self.name,
                    len(batch),
                    "failed" if made else "not made",
                    exc,
                    extra=fields(
                        gateway=self.name,
                        message_ids=refs,
                        count=len(batch),
                        outcome=type(exc).__name__,
                        duration_ms=since(started) if made else None,
                    ),
                )
                for index, _ in batch:
                    results[index] = SendOutcome(messages[index], error=exc)
                if not isinstance(exc, ProviderRefused):
                    stop = exc
                continue
            log_request(self.name, batch, ids_per_message, refs, since(started))
            for (index, _), ids in zip(batch, ids_per_message, strict=True):
                if isinstance(ids, GatewayError):
                    results[index] = SendOutcome(messages[index], error=ids)
                else:
                    results[index] = SendOutcome(messages[index], smsc_ids=tuple(ids))
        return [results[i] for i in range(len(messages))]

    def fetch_states(
        self,
        smsc_ids: Sequence[str],
        *,
        before_request: Callable[[], object] | None = None,
    ) -> dict[str, str]:
        """The provider's raw status word per SMSC ID; IDs it did not answer for are absent.

        A failed request raises its :class:`GatewayError`; :meth:`iter_states` gives the
        answers of the requests made before it.
        """
        states: dict[str, str] = {}
        for answer in self.iter_states(smsc_ids, before_request=before_request):
            states.update(answer)
        return states

    def iter_states(
        self,
        smsc_ids: Sequence[str],
        *,
        before_request: Callable[[], object] | None = None,
    ) -> Iterator[Mapping[str, str]]:
        """Each status request's answer in turn, ``before_request`` run before each.

        The one place IDs are chunked for status requests (``max_state_batch`` a request).
        """
        unique = list(dict.fromkeys(str(i) for i in smsc_ids))
        for start in range(0, len(unique), self.max_state_batch):
            if before_request is not None:
                before_request()
            chunk = unique[start : start + self.max_state_batch]
            started = time.monotonic()
            try:
                answer = self.fetch_state_batch(chunk)
            except GatewayError as exc:
                logger.warning(
                    "gateway %s: status request for %d ID(s) failed: %s",
                    self.name,
                    len(chunk),
                    exc,
                    extra=fields(
                        gateway=self.name,
                        smsc_ids=chunk,
                        count=len(chunk),
                        outcome=type(exc).__name__,
                        duration_ms=since(started),
                    ),
                )
                raise
            duration_ms = since(started)
            logger.info(
                "gateway %s: status request for %d ID(s) answered in %d ms, %d with a state",
                self.name,
                len(chunk),
                duration_ms,
                len(answer),
                extra=fields(
                    gateway=self.name,
                    smsc_ids=chunk,
                    count=len(chunk),
                    outcome="ok",
                    duration_ms=duration_ms,
                ),
            )
            yield answer

    @abstractmethod
    def balance(self) -> Balance:
        """The account's balance as the provider reports it."""

    def close(self) -> None:
        """Let go of connections the gateway holds; it opens new ones when used again."""
        return None

    def validate(
        self, sender: str, messages: Sequence[Outgoing], *, skip_invalid: bool = False
    ) -> tuple[list[Planned], dict[int, InvalidMessage]]:
        """Check every message against its own sender (``sender`` when it has none).

        Returns the good ones by position, with normalised numbers and their sender set, and
        the error of each bad one. Without ``skip_invalid`` any bad one raises a single
        :class:`InvalidMessage` naming every problem of the call instead.
        """
        prepared: list[Planned] = []
        invalid: dict[int, InvalidMessage] = {}
        every_problem: list[str] = []
        sender_problems: dict[str, str | None] = {}
        text_problems: dict[str, str | None] = {}
        for index, message in enumerate(messages):
            own_sender = message.sender or sender
            sender_key = own_sender if isinstance(own_sender, str) else repr(own_sender)
            if sender_key not in sender_problems:
                sender_problems[sender_key] = text.sender_problem(own_sender)
            problem = sender_problems[sender_key]
            problems = [problem] if problem else []
            recipient = message.recipient
            try:
                recipient = _international(recipient)
            except InvalidMessage as exc:
                problems.extend(exc.problems)
            text_key = message.text if isinstance(message.text, str) else repr(message.text)
            if text_key not in text_problems:
                text_problems[text_key] = self.text_problem(message.text)
            problem = text_problems[text_key]
            if problem:
                problems.append(problem)
            if problems:
                invalid[index] = InvalidMessage(list(dict.fromkeys(problems)))
                every_problem.extend(problems)
            else:
                prepared.append((index, Outgoing(recipient, message.text, message.ref, own_sender)))
        if every_problem and not skip_invalid:
            raise InvalidMessage(list(dict.fromkeys(every_problem)))
        return prepared, invalid

    def text_problem(self, body: object) -> str | None:
        """Why ``body`` cannot go through this gateway: the SMS rules, then its own."""
        problem = text.text_problem(body, cp1251=self.needs_cp1251)
        if problem is None and isinstance(body, str):
            problem = self.extra_text_problem(body)
        return problem

    def extra_text_problem(self, text: str) -> str | None:
        """A gateway's own reason a valid SMS text cannot go through it, or None."""
        return None

    def plan(self, messages: Sequence[Planned]) -> Iterator[tuple[str, list[Planned]]]:
        """Split checked messages into requests: ``(sender, messages)`` each.

        One sender per request, senders in the order they first appear; within a sender at
        most ``batch_size`` messages a request, same texts together. A gateway that takes
        different texts in one request gets the fewest requests; the others get one text per
        request.
        """
        by_sender: dict[str, dict[str, list[Planned]]] = {}
        for item in messages:
            texts = by_sender.setdefault(item[1].sender or "", {})
            texts.setdefault(item[1].text, []).append(item)
        for sender, groups in by_sender.items():
            if self.personal_texts_per_request:
                groups = {"": [item for group in groups.values() for item in group]}
            for group in groups.values():
                for chunk in self._chunks(group):
                    yield sender, chunk

    @abstractmethod
    def send_batch(
        self, sender: str, messages: list[Outgoing]
    ) -> list[Sequence[str] | GatewayError]:
        """Make one request; return per message its IDs or its own error."""

    @abstractmethod
    def fetch_state_batch(self, smsc_ids: list[str]) -> Mapping[str, str]:
        """One status request for at most ``max_state_batch`` IDs."""

    def assign_ids(self, messages: Sequence[Outgoing], ids: Sequence[str]) -> list[list[str]]:
        """Give each message its IDs by the part rule: all parts of the first, then the next.

        A count that does not fit is ambiguous: the messages may have gone out, but which ID
        belongs to whom cannot be known.
        """
        parts = [text.count_parts(m.text) for m in messages]
        if len(ids) != sum(parts):
            raise AmbiguousSend(
                f"gateway {self.name}: the provider returned {len(ids)} IDs for "
                f"{len(messages)} message(s) of {sum(parts)} part(s) in all",
                gateway=self.name,
            )
        assigned: list[list[str]] = []
        position = 0
        for count in parts:
            assigned.append(list(ids[position : position + count]))
            position += count
        return assigned

    def redact(self, message: str) -> str:
        """``message`` with every credential of this gateway replaced by ``***``."""
        return redact(message, (self.password, self.token))

    def not_attempted(self, cause: GatewayError) -> GatewayError:
        """The error of a message left unsent because an earlier request failed with ``cause``."""
        # A refused login or a pause asked for applies to the whole account: pass it on.
        if isinstance(cause, RateLimited) or (not cause.retryable and not cause.may_have_sent):
            return cause
        return NotAttempted(
            f"gateway {self.name}: not attempted after an earlier request failed ({cause})",
            gateway=self.name,
        )

    def garbled(self, why: str, *, idempotent: bool) -> GatewayError:
        """A reply that cannot be read: ambiguous for a send, unavailable for a query."""
        cls = GatewayUnavailable if idempotent else AmbiguousSend
        return cls(f"gateway {self.name}: garbled reply: {self.redact(why)}", gateway=self.name)

    def _send_checked(
        self, sender: str, messages: list[Outgoing]
    ) -> list[Sequence[str] | GatewayError]:
        """``send_batch``, with a defect in it (not a reply) taken as a maybe-sent request."""
        try:
            result = list(self.send_batch(sender, messages))
        except GatewayError:
            raise
        except ConfigurationError as exc:
            # Raised while the request was being built: nothing went out.
            raise GatewayMisconfigured(
                f"gateway {self.name}: nothing was sent: {self.redact(str(exc))}",
                gateway=self.name,
            ) from None
        except Exception as exc:
            logger.exception(
                "gateway %s: unexpected error while sending",
                self.name,
                extra=fields(
                    gateway=self.name,
                    message_ids=message_ids(m.ref for m in messages),
                    count=len(messages),
                    outcome="AmbiguousSend",
                ),
            )
            raise AmbiguousSend(
                f"gateway {self.name}: unexpected {type(exc).__name__} while sending "
                f"{len(messages)} message(s); they may have been sent",
                gateway=self.name,
            ) from None
        if len(result) != len(messages):
            raise AmbiguousSend(
                f"gateway {self.name}: {len(result)} outcome(s) for {len(messages)} message(s)",
                gateway=self.name,
            )
        for position, ids in enumerate(result):
            bad = [] if isinstance(ids, GatewayError) else [i for i in ids if not is_smsc_id(i)]
            if bad:
                # An empty, blank or endless "ID" is a garbled reply, not something to track.
                result[position] = self.garbled(
                    f"{bad[0]!r:.80} cannot be an SMSC ID", idempotent=False
                )
        return result

    def _chunks(self, items: list[Planned]) -> Iterator[list[Planned]]:
        chunk: list[Planned] = []
        seen: set[str] = set()
        for item in items:
            repeat = not self.repeats_recipients and item[1].recipient in seen
            if len(chunk) >= self.batch_size or repeat:
                yield chunk
                chunk, seen = [], set()
            chunk.append(item)
            seen.add(item[1].recipient)
        if chunk:
            yield chunk


def _international(recipient: object) -> str:
    """The international digits of ``recipient``, or :class:`InvalidMessage`.

    Bare digits that make a valid international number are one (``380501234567``,
    ``48501234567``: what :mod:`~django_smsclub.phones` stores); anything else, bare national
    digits included (``0501234567``), is read as a person would write it.
    """
    if (
        isinstance(recipient, str)
        and recipient.isascii()
        and recipient.isdigit()
        and phones.MIN_DIGITS <= len(recipient) <= phones.MAX_DIGITS
        and not recipient.startswith("0")
        and phones.phone_problem("+" + recipient) is None
    ):
        return recipient
    return phones.normalize_phone(recipient)
