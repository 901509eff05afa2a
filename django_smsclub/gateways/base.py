"""The gateway interface and the flow every gateway shares.

A gateway turns a batch of outgoing texts into requests and the replies into outcomes. It never
touches the database. The base class owns validation, batching, the ID-to-part mapping and the
mapping of transport failures onto the exception hierarchy; each gateway only says how one
request is built and its reply read.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import quote, quote_plus, urlsplit
from xml.sax.saxutils import escape as xml_escape

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NameResolutionError, NewConnectionError
from urllib3.util.retry import Retry

from .. import phones, text
from ..exceptions import (
    AmbiguousSend,
    GatewayError,
    GatewayUnavailable,
    InvalidMessage,
    ProviderRefused,
    RateLimited,
)

logger = logging.getLogger("django_smsclub.gateways")

#: Replies larger than this are not read: no SMSClub reply comes near it.
MAX_REPLY_BYTES = 4 * 1024 * 1024

#: Secrets shorter than this are not searched for in third-party log lines.
MIN_LOGGED_SECRET = 4

#: The longest SMSC ID taken from a reply (what a delivery report can store).
MAX_SMSC_ID_LENGTH = 64


@dataclass(frozen=True)
class Outgoing:
    """One text to one recipient. ``ref`` is the caller's handle (say a message pk)."""

    recipient: str
    text: str
    ref: Any = None


@dataclass(frozen=True)
class SendOutcome:
    """What became of one :class:`Outgoing`: its SMSC IDs (one per part) or its error."""

    outgoing: Outgoing
    smsc_ids: tuple[str, ...] = ()
    error: GatewayError | None = None

    @property
    def accepted(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Balance:
    """Money on the account; ``credit`` and ``currency`` where the gateway reports them."""

    amount: Decimal
    credit: Decimal | None = None
    currency: str | None = None


@dataclass
class Batch:
    """The messages one request carries, in the order the provider will answer for them."""

    messages: list[Outgoing]
    recipients: list[str] = field(default_factory=list)


class _RedactSecrets(logging.Filter):
    """Removes gateway credentials from the log lines of :data:`REDACTED_LOGGERS`."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            redacted = _redact(message, self.secrets)
            if redacted != message:
                record.msg, record.args = redacted, ()
        return True


#: Loggers whose debug lines can quote a request whole: urllib3 quotes GET URLs (the request
#: line, and each retry: "Incremented Retry for (url=...)"), zeep quotes SOAP envelopes. A
#: filter on a logger sees only its own records, so each is named exactly.
REDACTED_LOGGERS = (
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.poolmanager",
    "urllib3.util.retry",
    "zeep.transports",
)

_log_redaction = _RedactSecrets()
for _name in REDACTED_LOGGERS:
    logging.getLogger(_name).addFilter(_log_redaction)


def _redact(message: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            # As written, URL-quoted (a GET URL: requests writes a space as "+") and
            # XML-escaped (an XML or SOAP body).
            forms = (secret, quote(secret, safe=""), quote_plus(secret), xml_escape(secret))
            for form in dict.fromkeys(forms):
                message = message.replace(form, "***")
    return message


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
        self._session: requests.Session | None = None
        # Very short secrets would blank out ordinary words in every log line of the process.
        _log_redaction.secrets.update(
            s for s in (self.password, self.token) if len(s) >= MIN_LOGGED_SECRET
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def send(
        self,
        sender: str | None,
        messages: Sequence[Outgoing],
        *,
        before_request: Callable[[], None] | None = None,
    ) -> list[SendOutcome]:
        """Send ``messages`` from ``sender``; one outcome per message, in the given order.

        Bad input raises :class:`InvalidMessage` before any request. Failures of a request
        become the outcome of each message it carried; after a request fails for a reason
        other than a refusal, the requests not yet made are not made (their messages get a
        retryable :class:`GatewayUnavailable`, or the same refusal of the account).
        ``before_request`` runs before each request (a rate limiter's ``acquire``).
        """
        sender = sender or self.default_sender
        prepared = self.validate(sender, messages)
        results: dict[int, SendOutcome] = {}
        stop: GatewayError | None = None
        for batch in self.plan(prepared):
            if stop is not None:
                for index, _ in batch:
                    results[index] = SendOutcome(messages[index], error=self.not_attempted(stop))
                continue
            outgoing = [item for _, item in batch]
            try:
                if before_request is not None:
                    before_request()
                ids_per_message = self._send_checked(sender, outgoing)
            except GatewayError as exc:
                exc.gateway = exc.gateway or self.name
                logger.warning(
                    "gateway %s: request for %d message(s) failed: %s",
                    self.name,
                    len(batch),
                    exc,
                )
                for index, _ in batch:
                    results[index] = SendOutcome(messages[index], error=exc)
                if not isinstance(exc, ProviderRefused):
                    stop = exc
                continue
            for (index, _), ids in zip(batch, ids_per_message, strict=True):
                if isinstance(ids, GatewayError):
                    results[index] = SendOutcome(messages[index], error=ids)
                else:
                    results[index] = SendOutcome(messages[index], smsc_ids=tuple(ids))
        return [results[i] for i in range(len(messages))]

    def _send_checked(
        self, sender: str, messages: list[Outgoing]
    ) -> list[Sequence[str] | GatewayError]:
        """``send_batch``, with a defect in it (not a reply) taken as a maybe-sent request."""
        try:
            result = list(self.send_batch(sender, messages))
        except GatewayError:
            raise
        except Exception as exc:
            logger.exception("gateway %s: unexpected error while sending", self.name)
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

    def fetch_states(self, smsc_ids: Sequence[str]) -> dict[str, str]:
        """The provider's raw status word per SMSC ID; IDs it did not answer for are absent."""
        states: dict[str, str] = {}
        unique = list(dict.fromkeys(str(i) for i in smsc_ids))
        for start in range(0, len(unique), self.max_state_batch):
            states.update(self.fetch_state_batch(unique[start : start + self.max_state_batch]))
        return states

    @abstractmethod
    def balance(self) -> Balance:
        """The account's balance as the provider reports it."""

    def validate(self, sender: str, messages: Sequence[Outgoing]) -> list[Outgoing]:
        """Check everything before any request; return the messages with normalised numbers."""
        problems: list[str] = []
        sender_problem = text.sender_problem(sender)
        if sender_problem:
            problems.append(sender_problem)
        prepared: list[Outgoing] = []
        checked_texts: dict[str, str | None] = {}
        for message in messages:
            recipient = message.recipient
            try:
                recipient = _international(recipient)
            except InvalidMessage as exc:
                problems.extend(exc.problems)
            key = message.text if isinstance(message.text, str) else repr(message.text)
            if key not in checked_texts:
                checked_texts[key] = self.text_problem(message.text)
                if checked_texts[key]:
                    problems.append(checked_texts[key])
            prepared.append(Outgoing(recipient, message.text, message.ref))
        if problems:
            raise InvalidMessage(list(dict.fromkeys(problems)))
        return prepared

    def text_problem(self, body: object) -> str | None:
        """Why ``body`` cannot go through this gateway: the SMS rules, then its own."""
        problem = text.text_problem(body, cp1251=self.needs_cp1251)
        if problem is None and isinstance(body, str):
            problem = self.extra_text_problem(body)
        return problem

    def extra_text_problem(self, text: str) -> str | None:
        """A gateway's own reason a valid SMS text cannot go through it, or None."""
        return None

    def plan(self, messages: Sequence[Outgoing]) -> Iterable[list[tuple[int, Outgoing]]]:
        """Split messages into requests of at most ``batch_size``, same texts together.

        A gateway that takes different texts in one request gets the fewest requests; the
        others get one text per request.
        """
        groups: dict[str, list[tuple[int, Outgoing]]] = {}
        for index, message in enumerate(messages):
            groups.setdefault(message.text, []).append((index, message))
        if self.personal_texts_per_request:
            yield from self._chunks([item for group in groups.values() for item in group])
            return
        for group in groups.values():
            yield from self._chunks(group)

    def _chunks(self, items: list[tuple[int, Outgoing]]) -> Iterable[list[tuple[int, Outgoing]]]:
        chunk: list[tuple[int, Outgoing]] = []
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

    @property
    def session(self) -> requests.Session:
        """One pooled session per gateway; connection errors retried only before sending."""
        if self._session is None:
            session = requests.Session()
            retry = Retry(total=None, connect=2, read=0, redirect=0, status=0, other=0)
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=retry)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = "django-smsclub"
            self._session = session
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        server_errors: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """Make one HTTP request and read at most MAX_REPLY_BYTES of its reply.

        ``idempotent`` requests (status, balance) may be repeated safely, so every failure is
        :class:`GatewayUnavailable`. For a send, only a failure to connect is; anything after
        the request went out is :class:`AmbiguousSend`. ``path`` may be a whole URL.
        ``server_errors`` hands an HTTP 5xx reply back to be read (a SOAP fault comes so).
        """
        url = path if "://" in path else self.base_url + path
        path = urlsplit(url).path
        where = f"{self.name} {path}"
        try:
            response = self.session.request(
                method, url, timeout=self.timeout, stream=True, allow_redirects=False, **kwargs
            )
        except requests.ConnectTimeout as exc:
            raise GatewayUnavailable(
                f"gateway {where}: connection timed out ({self._describe(exc)})", gateway=self.name
            ) from None
        except requests.ConnectionError as exc:
            reached = not _never_connected(exc)
            cls = AmbiguousSend if reached and not idempotent else GatewayUnavailable
            what = "connection lost after the request was sent" if reached else "cannot connect"
            raise cls(
                f"gateway {where}: {what} ({self._describe(exc)})", gateway=self.name
            ) from None
        except requests.RequestException as exc:
            cls = GatewayUnavailable if idempotent else AmbiguousSend
            raise cls(
                f"gateway {where}: no reply ({self._describe(exc)})", gateway=self.name
            ) from None
        try:
            body = self._read_bounded(response)
        except requests.RequestException as exc:
            cls = GatewayUnavailable if idempotent else AmbiguousSend
            raise cls(
                f"gateway {where}: reply cut off ({self._describe(exc)})", gateway=self.name
            ) from None
        response._content = body
        if response.status_code >= 500 and not server_errors:
            cls = GatewayUnavailable if idempotent else AmbiguousSend
            raise cls(
                f"gateway {where}: HTTP {response.status_code} from the provider",
                gateway=self.name,
            )
        return response

    def _read_bounded(self, response: requests.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > MAX_REPLY_BYTES:
                    raise requests.RequestException(f"reply larger than {MAX_REPLY_BYTES} bytes")
                chunks.append(chunk)
        finally:
            response.close()
        return b"".join(chunks)

    def redact(self, message: str) -> str:
        """``message`` with every credential of this gateway replaced by ``***``."""
        return _redact(message, (self.password, self.token))

    def _describe(self, exc: BaseException) -> str:
        # Exceptions from requests can quote the URL, and a GET URL holds the password.
        return self.redact(f"{type(exc).__name__}: {exc}")[:300]

    def not_attempted(self, cause: GatewayError) -> GatewayError:
        """The error of a message left unsent because an earlier request failed with ``cause``."""
        # A refused login or a pause asked for applies to the whole account: pass it on.
        if isinstance(cause, RateLimited) or (not cause.retryable and not cause.may_have_sent):
            return cause
        return GatewayUnavailable(
            f"gateway {self.name}: not attempted after an earlier request failed ({cause})",
            gateway=self.name,
        )

    def garbled(self, why: str, *, idempotent: bool) -> GatewayError:
        """A reply that cannot be read: ambiguous for a send, unavailable for a query."""
        cls = GatewayUnavailable if idempotent else AmbiguousSend
        return cls(f"gateway {self.name}: garbled reply: {self.redact(why)}", gateway=self.name)


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


def is_smsc_id(value: object) -> bool:
    """Whether ``value`` can be an SMSC ID: 1-64 printable characters, none of them a space."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_SMSC_ID_LENGTH
        and value.isprintable()
        and not any(c.isspace() for c in value)
    )


def _never_connected(exc: requests.ConnectionError) -> bool:
    """Whether the error happened while connecting (nothing of the request was sent)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, NewConnectionError | NameResolutionError | ConnectionRefusedError):
            return True
        reason = getattr(cause, "reason", None)
        if isinstance(reason, BaseException) and id(reason) not in seen:
            cause = reason
            continue
        args = getattr(cause, "args", ())
        nested = next((a for a in args if isinstance(a, BaseException)), None)
        cause = nested or cause.__cause__ or cause.__context__
    return False
