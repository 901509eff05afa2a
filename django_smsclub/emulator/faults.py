"""Injected misbehaviour: slow replies, server errors, dropped connections, garbled bytes,
and whole-request refusals in each gateway's own shape (``refuse``)."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

KINDS = ("latency", "http_500", "drop_before", "drop_after", "garbled", "refuse")
#: The statuses a ``refuse`` fault may give a JSON error object.
JSON_STATUSES = (400, 401, 404, 405, 429, 500, 503)
GATEWAYS = ("http", "xml", "json", "soap")
OPS = ("send", "state", "balance", "originator", "wsdl")


@dataclass
class Fault:
    """One rule. ``times`` counts down as it fires; ``fired`` counts how often it did."""

    kind: str
    times: int | None = None
    rate: float | None = None
    gateway: str | None = None
    op: str | None = None
    seconds: float = 1.0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    fired: int = 0
    path: str | None = None
    #: ``refuse`` only: the text (None: the login text in ``language``, or Yii2's default).
    text: str | None = None
    language: str = "ru"
    #: ``refuse`` on JSON only: the error object's ``status``, and whether HTTP says 200.
    status: int = 400
    http_200: bool = False

    def matches(self, gateway: str | None, op: str | None, path: str | None = None) -> bool:
        return (
            (self.gateway is None or self.gateway == gateway)
            and (self.op is None or self.op == op)
            and (self.path is None or self.path == path)
        )

    def fire(self) -> bool:
        """Whether it fires for one matching request (and count it if so)."""
        if self.times is not None and self.times <= 0:
            return False
        if self.rate is not None and self.rng.random() >= self.rate:
            return False
        if self.times is not None:
            self.times -= 1
        self.fired += 1
        return True


@dataclass(frozen=True)
class Decision:
    """What to do to one request: wait ``delay`` seconds, then misbehave as ``kind`` (or not)."""

    delay: float = 0.0
    fault: Fault | None = None

    @property
    def kind(self) -> str | None:
        return self.fault.kind if self.fault else None

    @property
    def label(self) -> str | None:
        """The kind to log: the deciding one, else ``latency`` when there was a delay."""
        return self.kind or ("latency" if self.delay else None)


class Faults:
    """The active fault rules, checked for every request in the order they were added."""

    def __init__(self, lock: threading.RLock | None = None):
        self._lock = lock or threading.RLock()
        self._faults: list[Fault] = []

    def add(
        self,
        kind: str,
        *,
        times: int | None = None,
        rate: float | None = None,
        gateway: str | None = None,
        op: str | None = None,
        seconds: float | None = None,
        seed: int | None = None,
        path: str | None = None,
        text: str | None = None,
        language: str = "ru",
        status: int = 400,
        http_200: bool = False,
    ) -> Fault:
        """Add a rule; with neither ``times`` nor ``rate`` it fires on every matching request.

        ``path`` narrows it to one URL path (``/v2/sms/send``). ``refuse`` answers the request
        with the gateway's refusal and handles nothing: HTTP 200 and ``text`` on HTTP,
        ``<status>ERROR</status>`` on XML, a SOAP ``Client`` fault, a Yii2 error object with
        ``status`` on JSON (HTTP status line 200 with ``http_200``). Without ``text`` the
        provider's login refusal in ``language`` ("ru" or "en") is used, Yii2's default
        message of ``status`` on JSON.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(KINDS)}")
        if gateway not in (None, *GATEWAYS):
            raise ValueError(f"unknown gateway {gateway!r}; one of {', '.join(GATEWAYS)}")
        if op not in (None, *OPS):
            raise ValueError(f"unknown op {op!r}; one of {', '.join(OPS)}")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
        if rate is not None and not 0 <= rate <= 1:
            raise ValueError("rate must be between 0 and 1")
        if seconds is not None and seconds < 0:
            raise ValueError("seconds must not be negative")
        if language not in ("ru", "en"):
            raise ValueError(f"unknown language {language!r}; one of ru, en")
        if status not in JSON_STATUSES:
            raise ValueError(f"status {status!r} is not one of {JSON_STATUSES}")
        fault = Fault(
            kind,
            times,
            rate,
            gateway,
            op,
            1.0 if seconds is None else seconds,
            random.Random(seed),
            path=path,
            text=text,
            language=language,
            status=status,
            http_200=bool(http_200),
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def remove(self, fault: Fault) -> None:
        with self._lock:
            self._faults.remove(fault)

    def __iter__(self) -> Iterator[Fault]:
        with self._lock:
            return iter(list(self._faults))

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)

    def decide(self, gateway: str | None, op: str | None, path: str | None = None) -> Decision:
        """Every matching latency adds up; the first other kind that fires decides."""
        delay = 0.0
        chosen: Fault | None = None
        with self._lock:
            for fault in self._faults:
                if not fault.matches(gateway, op, path):
                    continue
                if fault.kind == "latency":
                    if fault.fire():
                        delay += fault.seconds
                elif chosen is None and fault.fire():
                    chosen = fault
        return Decision(delay, chosen)


def garble(body: bytes, rng: random.Random) -> bytes:
    """Corrupt a reply: cut it short, or replace it with random bytes."""
    if body and rng.random() < 0.5:
        return body[: len(body) // 2]
    return b"\xff\xfe" + bytes(rng.randrange(256) for _ in range(max(16, len(body) // 2)))
