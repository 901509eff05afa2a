"""Everything the emulated provider knows: accounts, messages, their status life, the request log.

One lock guards it all; every public method takes it, so server threads and the test thread
can use one :class:`State` at once.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from . import rules
from .accounts import Account, check_options
from .rules import Refused

DEFAULT_USERNAME = "380501234567"
DEFAULT_PASSWORD = "emulator-password"  # noqa: S105 (the emulator's own fake account)
DEFAULT_TOKEN = "emulator-token"  # noqa: S105
DEFAULT_SENDERS = ("Shop", "SMS CLUB")
#: How long the provider answers for an SMSC ID, in seconds of the emulator's clock.
ID_VALIDITY = 3 * 24 * 3600
BLACKLISTED = rules.BLACKLISTED
INVALID_NUMBER = rules.INVALID_NUMBER
HTTP_REPLY_SHAPES = ("seen", "doc", "lines")


@dataclass(frozen=True)
class AcceptedSms:
    """One SMS part the provider accepted. ``text`` is the whole message's text."""

    smsc_id: str
    username: str
    sender: str
    recipient: str
    text: str
    part: int
    parts: int
    gateway: str
    time: float

    @property
    def part_text(self) -> str:
        return rules.split_parts(self.text)[self.part - 1]


@dataclass(frozen=True)
class RequestRecord:
    """One request the server received; ``params`` never hold a password or token."""

    time: float
    method: str
    path: str
    gateway: str | None
    op: str | None
    status_code: int | None
    fault: str | None
    params: dict[str, Any]
    #: When the request arrived (its body read, before any injected delay); ``time`` is when
    #: it was answered.
    received: float | None = None


@dataclass(frozen=True)
class Sent:
    """The outcome of a send: per accepted recipient its number and IDs; refused ones."""

    accepted: list[tuple[str, list[str]]]
    refused: dict[str, str]
    parts: int


@dataclass
class _Report:
    username: str
    recipient: str
    sent_at: float
    forced: str | None = None
    polls: int = 0
    word: str | None = None


@dataclass
class _Life:
    polls: int = 1
    seconds: float | None = None


@dataclass
class _Data:
    accounts: dict[str, Account] = field(default_factory=dict)
    accepted: list[AcceptedSms] = field(default_factory=list)
    reports: dict[str, _Report] = field(default_factory=dict)
    requests: list[RequestRecord] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)
    blacklist: set[str] = field(default_factory=set)
    life: _Life = field(default_factory=_Life)
    hits: dict[str, list[float]] = field(default_factory=dict)
    account_hits: dict[str, list[float]] = field(default_factory=dict)


class TooManyRequests(Exception):
    """An account made more requests than :attr:`State.rate_limit` allows in one second."""

    def __init__(self, username: str):
        super().__init__(f"account {username}: too many requests")
        self.username = username


class State:
    """The provider's memory. Settings below may be changed at any time."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.http_reply_shape = "seen"
        self.json_ids_per_part = True
        self.json_rate_limit: int | None = 9
        #: Requests per account in any sliding second, on every gateway and operation (None or
        #: 0: no cap). Beyond it the request is refused with HTTP 429 and ``Retry-After: 1``.
        self.rate_limit: int | None = None
        #: Refuse whitespace between XML tags, as the document says (the service accepts it).
        self.xml_strict_whitespace = False
        self._offset = 0.0
        self._next_id = 1
        self._arrival = threading.local()
        self._data = _Data()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self._data = _Data()
            self.http_reply_shape = "seen"
            self.json_ids_per_part = True
            self.json_rate_limit = 9
            self.rate_limit = None
            self.xml_strict_whitespace = False
            self.add_account(
                DEFAULT_USERNAME, DEFAULT_PASSWORD, token=DEFAULT_TOKEN, senders=DEFAULT_SENDERS
            )

    def now(self) -> float:
        """The emulator's clock: wall time plus every :meth:`advance`."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the emulator's clock only moves forward")
        with self.lock:
            self._offset += seconds

    def add_account(
        self,
        username: str,
        password: str,
        token: str | None = None,
        senders: Sequence[str] = ("Shop",),
        balance: Decimal | int | str = Decimal("1000"),
        credit: Decimal | int | str = Decimal("0"),
        price_per_part: Decimal | int | str = Decimal("0.50"),
        **options: Any,
    ) -> Account:
        check_options(**options)
        account = Account(
            username,
            password,
            token,
            tuple(senders),
            Decimal(balance),
            Decimal(credit),
            Decimal(price_per_part),
            **options,
        )
        with self.lock:
            self._data.accounts[username] = account
        return account

    def configure_account(self, username: str, **options: Any) -> Account:
        """Set reply-variant options (see :mod:`.accounts`) on an existing account."""
        check_options(**options)
        with self.lock:
            account = self.account(username)
            for name, value in options.items():
                setattr(account, name, value)
            return account

    def login(self, username: object, password: object, *, credential: str = "password") -> Account:
        """The account ``username`` if its ``credential`` (password or token) is ``password``."""
        with self.lock:
            account = self._data.accounts.get(username) if isinstance(username, str) else None
            expected = None if account is None else getattr(account, credential)
            if account is None or not password or expected != password:
                refusal = Refused("auth")
                if account is not None:
                    refusal.language = account.refusal_language
                raise refusal
            if not self.allow_account(account):
                raise TooManyRequests(account.username)
            return account

    def by_token(self, token: str) -> Account | None:
        with self.lock:
            for account in self._data.accounts.values():
                if token and account.token == token:
                    return account
            return None

    def account(self, username: str) -> Account:
        with self.lock:
            try:
                return self._data.accounts[username]
            except KeyError:
                raise KeyError(f"the emulator has no account {username!r}") from None

    def secrets(self) -> set[str]:
        with self.lock:
            found = {a.password for a in self._data.accounts.values()}
            found |= {a.token for a in self._data.accounts.values() if a.token}
            return {s for s in found if len(s) >= 6}

    def set_outcome(self, number: str, word: str) -> None:
        with self.lock:
            self._data.outcomes[rules.normalized(number)] = word

    def blacklist(self, number: str) -> None:
        with self.lock:
            self._data.blacklist.add(rules.normalized(number))

    def deliver_after(self, polls: int = 1, seconds: float | None = None) -> None:
        if polls < 0 or (seconds is not None and seconds < 0):
            raise ValueError("polls and seconds must not be negative")
        with self.lock:
            self._data.life = _Life(polls, seconds)

    def send(
        self,
        account: Account,
        sender: object,
        messages: Sequence[tuple[object, object]],
        gateway: str,
        *,
        partial: bool = False,
        ids_per_part: bool = True,
    ) -> Sent:
        """Accept ``(recipient, text)`` pairs or raise :class:`Refused` for the whole request.

        ``partial`` (the JSON API): bad and black-listed numbers are refused one by one
        instead of refusing the request.
        """
        try:
            wanted, refused = self._check(account, sender, messages, partial)
            with self.lock:
                return self._accept(
                    account, str(sender), wanted, refused, gateway, partial, ids_per_part
                )
        except Refused as refusal:
            refusal.language = account.refusal_language
            raise

    def _check(
        self,
        account: Account,
        sender: object,
        messages: Sequence[tuple[object, object]],
        partial: bool,
    ) -> tuple[list[tuple[str, str]], dict[str, str]]:
        refusal = rules.sender_refusal(sender, account.senders) or next(
            filter(None, (rules.text_refusal(body) for _, body in messages)), None
        )
        if refusal:
            raise refusal
        wanted: list[tuple[str, str]] = []
        refused: dict[str, str] = {}
        for raw, body in messages:
            number = rules.recipient(raw)
            if number is None:
                shown = raw if isinstance(raw, str) else str(raw)
                if not partial:
                    raise Refused("recipient", shown)
                refused[shown] = INVALID_NUMBER
            else:
                wanted.append((number, str(body)))
        return wanted, refused

    def _accept(
        self,
        account: Account,
        sender: str,
        wanted: list[tuple[str, str]],
        refused: dict[str, str],
        gateway: str,
        partial: bool,
        ids_per_part: bool,
    ) -> Sent:
        data = self._data
        if partial:
            refused.update({n: BLACKLISTED for n, _ in wanted if n in data.blacklist})
            wanted = [(n, b) for n, b in wanted if n not in data.blacklist]
        parts = sum(rules.count_parts(body) for _, body in wanted)
        cost = parts * account.price_per_part
        if cost > account.balance + account.credit:
            raise Refused("funds")
        account.balance -= cost
        now = self.now()
        accepted: list[tuple[str, list[str]]] = []
        for number, body in wanted:
            count = rules.count_parts(body)
            forced = "REJECTD" if number in data.blacklist else None
            ids: list[str] = []
            for part in range(1, count + 1):
                if part == 1 or ids_per_part:
                    ids.append(account.smsc_id(self._next_id))
                    self._next_id += 1
                    data.reports[ids[-1]] = _Report(account.username, number, now, forced)
                data.accepted.append(
                    AcceptedSms(
                        ids[-1], account.username, sender, number, body, part, count, gateway, now
                    )
                )
            accepted.append((number, ids))
        return Sent(accepted, refused, parts)

    def poll(self, account: Account, smsc_ids: Sequence[str]) -> list[tuple[str, str]]:
        """The state of each ID as ``account`` sees it; each distinct ID counts as one poll."""
        with self.lock:
            answers = [(i, self._word(i, account.username)) for i in smsc_ids]
            for smsc_id in dict.fromkeys(smsc_ids):
                report = self._data.reports.get(smsc_id)
                if report is not None and report.username == account.username:
                    report.polls += 1
            return answers

    def state_of(self, smsc_id: str) -> str:
        with self.lock:
            return self._word(str(smsc_id), None)

    def _word(self, smsc_id: str, username: str | None) -> str:
        report = self._data.reports.get(smsc_id)
        now = self.now()
        if report is None or (username is not None and report.username != username):
            return rules.WRONG_ID
        if now - report.sent_at > ID_VALIDITY:
            return rules.WRONG_ID
        if report.word is not None:
            return report.word
        life = self._data.life
        if life.seconds is not None:
            done = now - report.sent_at >= life.seconds
        else:
            done = report.polls >= life.polls
        if not done:
            return "ENROUTE"
        report.word = report.forced or self._data.outcomes.get(report.recipient, "DELIVRD")
        return report.word

    def allow_json(self, token: str) -> bool:
        """Whether ``token`` may make one more JSON request now (a sliding one-second window)."""
        with self.lock:
            return _admit(self._data.hits, token, self.json_rate_limit, self._arrived())

    def allow_account(self, account: Account) -> bool:
        """Whether ``account`` may make one more request now under :attr:`rate_limit` (a
        sliding one-second window over all its requests, whichever gateway they take)."""
        with self.lock:
            return _admit(
                self._data.account_hits, account.username, self.rate_limit, self._arrived()
            )

    @contextmanager
    def arriving(self, at: float) -> Iterator[None]:
        """Rate limits count the requests handled in this thread in the block as arrived at
        ``at`` (``time.monotonic()``), not when a handler gets to them after a delay."""
        self._arrival.at = at
        try:
            yield
        finally:
            self._arrival.at = None

    def _arrived(self) -> float:
        at = getattr(self._arrival, "at", None)
        return time.monotonic() if at is None else float(at)

    def record(self, entry: RequestRecord) -> None:
        with self.lock:
            self._data.requests.append(entry)

    @property
    def requests(self) -> list[RequestRecord]:
        with self.lock:
            return list(self._data.requests)

    @property
    def accepted(self) -> list[AcceptedSms]:
        with self.lock:
            return list(self._data.accepted)

    def messages_to(self, recipient: str) -> list[AcceptedSms]:
        number = rules.normalized(recipient)
        return [sms for sms in self.accepted if sms.recipient == number]

    def duplicates(self) -> list[tuple[str, str, int]]:
        counts = Counter((s.recipient, s.text) for s in self.accepted if s.part == 1)
        return [(r, t, n) for (r, t), n in counts.items() if n > 1]

    def balance_of(self, username: str) -> Decimal:
        return self.account(username).balance


def _admit(hits_by_key: dict[str, list[float]], key: str, limit: int | None, at: float) -> bool:
    """Log one request under ``key`` that arrived at ``at`` unless ``limit`` requests arrived
    in the second before it. Requests are handled about in the order they arrived, so the
    log keeps them sorted and forgets those two seconds older than the latest."""
    if not limit:
        return True
    hits = hits_by_key.setdefault(key, [])
    del hits[: bisect.bisect_left(hits, at - 2.0)]
    if bisect.bisect_right(hits, at) - bisect.bisect_right(hits, at - 1.0) >= limit:
        return False
    bisect.insort(hits, at)
    return True
