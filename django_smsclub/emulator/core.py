"""The :class:`Emulator`: start and stop the server, steer it, and look at what it saw."""

from __future__ import annotations

import threading
from decimal import Decimal
from types import TracebackType
from typing import Any

from .faults import Faults
from .server import HOST, EmulatorServer
from .state import (
    DEFAULT_PASSWORD,
    DEFAULT_TOKEN,
    DEFAULT_USERNAME,
    HTTP_REPLY_SHAPES,
    AcceptedSms,
    Account,
    RequestRecord,
    State,
)

REPLY_SHAPES = HTTP_REPLY_SHAPES


class Emulator:
    """A faithful SMSClub server on 127.0.0.1 serving the HTTP, XML, SOAP and JSON gateways.

    ``port=0`` takes a free port; :attr:`url` tells which. Usable as a context manager.
    """

    def __init__(self, port: int = 0):
        self._port = port
        self.state = State()
        self.faults = Faults(self.state.lock)
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        where = self.url if self.running else "stopped"
        return f"<Emulator {where}>"

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Emulator:
        if self._server is None:
            server = EmulatorServer(self._port, self.state, self.faults)
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.01},
                name=f"smsclub-emulator-{server.server_address[1]}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.stop()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL of every gateway, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{HOST}:{self.port}"

    def add_account(
        self,
        username: str,
        password: str,
        token: str | None = None,
        senders: tuple[str, ...] | list[str] = ("Shop",),
        balance: Decimal | int | str = Decimal("1000"),
        credit: Decimal | int | str = Decimal("0"),
        price_per_part: Decimal | int | str = Decimal("0.50"),
        **options: Any,
    ) -> Account:
        """Add (or replace) an account; ``options`` choose its reply variants.

        ``id_style`` ("plain", "padded", "alnum"), ``refusal_language`` ("ru", "en"),
        ``status_words`` ("en", "ru"), ``json_errors_http_200`` (bool), ``empty_info``
        ("list", "object"): see the package docstring.
        """
        return self.state.add_account(
            username, password, token, senders, balance, credit, price_per_part, **options
        )

    def configure_account(self, username: str = DEFAULT_USERNAME, **options: Any) -> Account:
        """Set reply-variant ``options`` (as :meth:`add_account` takes) on an existing account."""
        return self.state.configure_account(username, **options)

    def set_outcome(self, number: str, word: str) -> None:
        """Every part sent to ``number`` ends with ``word`` (UNDELIV, REJECTD, EXPIRED...)."""
        self.state.set_outcome(number, word)

    def blacklist(self, number: str) -> None:
        """HTTP and XML accept ``number`` and report REJECTD; the JSON API refuses it."""
        self.state.blacklist(number)

    def deliver_after(self, polls: int = 1, seconds: float | None = None) -> None:
        """ENROUTE until an ID was polled ``polls`` times, then its final word.

        With ``seconds``, time decides instead: final once that much of the emulator's clock
        has passed since the send (``polls`` is then ignored).
        """
        self.state.deliver_after(polls, seconds)

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward."""
        self.state.advance(seconds)

    def now(self) -> float:
        """The emulator's clock, in seconds since the epoch."""
        return self.state.now()

    @property
    def requests(self) -> list[RequestRecord]:
        return self.state.requests

    @property
    def accepted(self) -> list[AcceptedSms]:
        return self.state.accepted

    def messages_to(self, recipient: str) -> list[AcceptedSms]:
        return self.state.messages_to(recipient)

    def duplicates(self) -> list[tuple[str, str, int]]:
        """``(recipient, text, times)`` for every message accepted more than once."""
        return self.state.duplicates()

    def state_of(self, smsc_id: str) -> str:
        """The current word for ``smsc_id``, without counting as a poll."""
        return self.state.state_of(smsc_id)

    def balance_of(self, username: str = DEFAULT_USERNAME) -> Decimal:
        return self.state.balance_of(username)

    def reset(self) -> None:
        """Forget messages, requests, faults, outcomes and accounts; restore the defaults."""
        self.faults.clear()
        self.state.reset()

    def gateway_settings(self, backend: str = "xml", **extra: Any) -> dict[str, Any]:
        """A ``SMSCLUB["GATEWAYS"][name]`` dict for the default account, aimed at :attr:`url`."""
        return {
            "BACKEND": backend,
            "USERNAME": DEFAULT_USERNAME,
            "PASSWORD": DEFAULT_PASSWORD,
            "TOKEN": DEFAULT_TOKEN,
            "SENDER": "Shop",
            "BASE_URL": self.url,
            **extra,
        }

    @property
    def http_reply_shape(self) -> str:
        return self.state.http_reply_shape

    @http_reply_shape.setter
    def http_reply_shape(self, shape: str) -> None:
        if shape not in REPLY_SHAPES:
            raise ValueError(f"http_reply_shape must be one of {REPLY_SHAPES}, not {shape!r}")
        self.state.http_reply_shape = shape

    @property
    def xml_strict_whitespace(self) -> bool:
        """Refuse whitespace between XML tags, as the document's rule says (default False)."""
        return self.state.xml_strict_whitespace

    @xml_strict_whitespace.setter
    def xml_strict_whitespace(self, value: bool) -> None:
        self.state.xml_strict_whitespace = bool(value)

    @property
    def json_ids_per_part(self) -> bool:
        return self.state.json_ids_per_part

    @json_ids_per_part.setter
    def json_ids_per_part(self, value: bool) -> None:
        self.state.json_ids_per_part = bool(value)

    @property
    def json_rate_limit(self) -> int | None:
        """Requests per token in any one-second window (None or 0: no limit)."""
        return self.state.json_rate_limit

    @json_rate_limit.setter
    def json_rate_limit(self, value: int | None) -> None:
        self.state.json_rate_limit = value

    @property
    def rate_limit(self) -> int | None:
        """Requests per account in any one-second window, on every gateway (None or 0: no
        cap, the default). Beyond it a request is refused with HTTP 429 and ``Retry-After``."""
        return self.state.rate_limit

    @rate_limit.setter
    def rate_limit(self, value: int | None) -> None:
        self.state.rate_limit = value
