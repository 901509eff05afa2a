"""Run the emulator in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable, Sequence
from decimal import Decimal

from .accounts import ID_STYLES, STATUS_WORDS
from .core import Emulator
from .rules import LANGUAGES
from .state import DEFAULT_PASSWORD, DEFAULT_SENDERS, DEFAULT_TOKEN, DEFAULT_USERNAME

DEFAULT_PORT = 8765


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--deliver-after-polls",
        type=int,
        default=1,
        metavar="N",
        help="status polls an SMS stays ENROUTE before its final word (default 1)",
    )
    parser.add_argument(
        "--balance",
        type=Decimal,
        default=None,
        help="money on the default account (default 1000; each part costs 0.50)",
    )
    parser.add_argument(
        "--id-style",
        choices=ID_STYLES,
        default="plain",
        help="how SMSC IDs look: 1, 000001 or p000000001 (default plain)",
    )
    parser.add_argument(
        "--refusal-language",
        choices=LANGUAGES,
        default="ru",
        help="language of the default account's refusal texts (default ru)",
    )
    parser.add_argument(
        "--status-words",
        choices=STATUS_WORDS,
        default="en",
        help="JSON status words: DELIVRD... (en) or Доставлено... (ru); default en",
    )


def banner(emulator: Emulator) -> list[str]:
    return [
        f"SMSClub emulator listening on {emulator.url}",
        f"  username: {DEFAULT_USERNAME}",
        f"  password: {DEFAULT_PASSWORD}",
        f"  token:    {DEFAULT_TOKEN}",
        f"  senders:  {', '.join(DEFAULT_SENDERS)}",
        "Press Ctrl+C to stop.",
    ]


def serve(
    port: int,
    deliver_after_polls: int,
    write: Callable[[str], None],
    balance: Decimal | None = None,
    **account_options: str,
) -> None:
    """Start an emulator, ``write`` its URL and credentials, and block until a signal."""
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    emulator = Emulator(port=port)
    emulator.deliver_after(polls=deliver_after_polls)
    if balance is not None:
        emulator.add_account(
            DEFAULT_USERNAME, DEFAULT_PASSWORD, DEFAULT_TOKEN, DEFAULT_SENDERS, balance=balance
        )
    emulator.configure_account(DEFAULT_USERNAME, **account_options)
    try:
        emulator.start()
        for line in banner(emulator):
            write(line)
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    write("SMSClub emulator stopped.")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m django_smsclub.emulator")
    add_arguments(parser)
    options = parser.parse_args(argv)
    serve(
        options.port,
        options.deliver_after_polls,
        lambda line: print(line, flush=True),
        balance=options.balance,
        **account_options(vars(options)),
    )


def account_options(options: dict[str, object]) -> dict[str, str]:
    """The default account's reply-variant options among parsed command-line ``options``."""
    names = ("id_style", "refusal_language", "status_words")
    return {name: str(options[name]) for name in names if options.get(name) is not None}
