"""The demo: a 1,000-recipient campaign through a real Celery worker to the built-in emulator.

It runs on a database and a broker of its own (a temporary SQLite file, Celery's in-memory
broker), and with the receivers the project connected to the package's signals muted, so the
project's data, queues and receivers never see a demo message. ``--use-project-database`` runs
it on the project's database and broker instead (receivers still muted).
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
import weakref
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from asgiref.local import Local
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections
from django.db.models import Count, Sum
from django.test.utils import override_settings

from ... import signals
from ...emulator import Emulator
from ...models import Campaign
from ...status import FINAL_STATUSES, Status

TEMPLATE = "{greeting}, {name}! Order {order} is ready for pickup.{note}"
GREETINGS = [("Привіт", "Олено"), ("Hello", "John"), ("Вітаємо", "Тарасе"), ("Hi", "Anna")]
# Every fifth text is long enough for two parts. A placeholder's value is never empty: an
# empty one is refused (it would leave a gap in the text).
NOTE = " We keep it for 3 days; bring your ID and the order number, please."
SHORT_NOTE = " See you!"
# Fates the emulator deals out per number, beside the default DELIVRD.
FATES = [("UNDELIV", 0.04), ("EXPIRED", 0.02), ("REJECTD", 0.02)]
BAR_STATUSES = [Status.QUEUED, Status.SENDING, Status.SENT, Status.DELIVERED]


class Command(BaseCommand):
    # The demo replaces SMSCLUB, the database and the broker with its own: the project's
    # settings are not what it runs on, so their checks would only be noise here.
    requires_system_checks: list[str] = []
    help = (
        "Run a campaign of N recipients (default 1,000) through a real Celery worker to the "
        "built-in SMSClub emulator, poll until every message is final, and print what happened."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--recipients", type=int, default=1000, help="campaign size (default 1000)"
        )
        parser.add_argument(
            "--gateway",
            choices=["xml", "http", "json"],
            default="xml",
            help="which of the emulator's gateways to send through (default xml)",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=2026,
            help="seed of the made-up recipients and their fates, for a repeatable run",
        )
        parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")
        parser.add_argument(
            "--use-project-database",
            action="store_true",
            help="run on the project's database and broker, not a temporary SQLite file and "
            "the in-memory broker",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["recipients"] < 1:
            raise CommandError(f"--recipients {options['recipients']} must be at least 1")
        with _muted_project_receivers():
            if options["use_project_database"]:
                self._demo(options)
            else:
                with _private_database(), _memory_broker():
                    self._demo(options)

    def _demo(self, options: dict[str, Any]) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        rng = random.Random(options["seed"])  # noqa: S311 (demo data, not secrets)
        with Emulator() as emu:
            emu.deliver_after(polls=1)
            emu.json_rate_limit = 9
            config = {
                "DEFAULT_GATEWAY": "demo",
                "GATEWAYS": {"demo": emu.gateway_settings(options["gateway"], SENDER="Shop")},
                "POLL_INTERVALS": [1, 1, 2],
                "RETRY_BACKOFF": 1,
            }
            with override_settings(SMSCLUB=config):
                self._run(emu, rng, options)

    def _run(self, emu: Emulator, rng: random.Random, options: dict[str, Any]) -> None:
        from celery import current_app
        from celery.contrib.testing.worker import start_worker

        from ... import tasks

        out = self.stdout
        fired: Counter[str] = Counter()
        receivers = _count_signals(fired)
        rows, fates, invalid = _recipients(options["recipients"], rng)
        for number, word in fates.items():
            emu.set_outcome(number, word)

        out.write(
            f"Emulator at {emu.url}; {options['gateway'].upper()} gateway; "
            f"broker {current_app.conf.broker_url.split('://')[0]}://"
        )
        campaign = Campaign.objects.create(name="Demo: orders ready", text=TEMPLATE, sender="Shop")
        started = time.monotonic()
        result = campaign.add_recipients(rows, skip_invalid=True)
        out.write(
            f"Campaign #{campaign.pk}: {result.added} recipients added in "
            f"{time.monotonic() - started:.2f} s, {len(result.refused)} refused:"
        )
        for row in result.refused:
            out.write(f"  - {row.reason}")

        with start_worker(
            current_app, pool="threads", concurrency=2, perform_ping_check=False, loglevel="ERROR"
        ):
            started = time.monotonic()
            campaign.start()
            deadline = started + options["timeout"]
            while True:
                counts = campaign.status_counts()
                self._progress(counts, time.monotonic() - started)
                if all(counts[s] == 0 for s in BAR_STATUSES[:3]):
                    break
                if time.monotonic() > deadline:
                    raise CommandError(f"not every message was final after {options['timeout']} s")
                tasks.poll_reports.delay()
                tasks.send_due.delay()
                time.sleep(0.5)
            tasks.sweep.delay()
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        if sys.stdout.isatty():
            out.write("")
        for receiver in receivers:
            receiver()
        self._summary(campaign, fired, emu, elapsed, len(invalid))

    def _progress(self, counts: dict[str, int], elapsed: float) -> None:
        total = sum(counts.values()) or 1
        final = sum(counts[s] for s in FINAL_STATUSES)
        width = 40
        filled = round(width * final / total)
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] {final:>5}/{total} final  "
            f"queued {counts[Status.QUEUED]:>4}  sending {counts[Status.SENDING]:>4}  "
            f"sent {counts[Status.SENT]:>4}  delivered {counts[Status.DELIVERED]:>4}  "
            f"failed {sum(counts[s] for s in FINAL_STATUSES) - counts[Status.DELIVERED]:>3}  "
            f"{elapsed:5.1f} s"
        )
        if sys.stdout.isatty():
            self.stdout.write("\r" + line, ending="")
            self.stdout.flush()
        else:
            self.stdout.write(line)

    def _summary(
        self, campaign: Campaign, fired: Counter[str], emu: Emulator, elapsed: float, refused: int
    ) -> None:
        rows = (
            campaign.messages.order_by()
            .values("status")
            .annotate(messages=Count("pk"), parts=Sum("parts"))
            .order_by("-messages")
        )
        out = self.stdout
        out.write(f"\nEvery message is final after {elapsed:.1f} s.\n")
        out.write(f"{'status':<12} {'messages':>9} {'parts':>7}")
        out.write(f"{'-' * 12} {'-' * 9} {'-' * 7}")
        for row in rows:
            out.write(f"{row['status']:<12} {row['messages']:>9} {row['parts']:>7}")
        total = campaign.messages.count()
        out.write(f"{'total':<12} {total:>9}")
        out.write("\nSignals fired:")
        for name in ("message_status_changed", "message_delivered", "message_failed"):
            out.write(f"  {name:<24} {fired[name]:>6}")
        out.write(f"  {'message_finished':<24} {fired['message_finished']:>6}  (one per message)")
        duplicates = emu.duplicates()
        sends = sum(1 for r in emu.requests if r.op == "send")
        polls = sum(1 for r in emu.requests if r.op == "state")
        out.write(
            f"\nEmulator: {sends} send requests, {polls} status requests, "
            f"{len(emu.accepted)} SMS parts accepted, "
            f"{len(duplicates)} recipients got the same text twice."
        )
        out.write(f"{refused} invalid numbers were refused before anything was stored.")
        if fired["message_finished"] != total or duplicates:
            raise CommandError("the demo found a defect: see the figures above")


def _recipients(
    count: int, rng: random.Random
) -> tuple[list[tuple[str, dict[str, str]]], dict[str, str], list[str]]:
    """Rows of (number, values); the fate of some numbers; a few numbers a person mistyped."""
    rows: list[tuple[str, dict[str, str]]] = []
    fates: dict[str, str] = {}
    numbers = rng.sample(range(10_000_000), count)
    operators = ["50", "66", "67", "68", "73", "93", "95", "97", "98", "99"]
    for position, suffix in enumerate(numbers):
        number = f"380{operators[position % len(operators)]}{suffix:07d}"
        greeting, name = GREETINGS[position % len(GREETINGS)]
        note = NOTE if position % 5 == 0 else SHORT_NOTE
        rows.append(
            (
                number,
                {"greeting": greeting, "name": name, "order": f"{100000 + position}", "note": note},
            )
        )
        roll = rng.random()
        for word, share in FATES:
            if roll < share:
                fates[number] = word
                break
            roll -= share
    invalid = ["050-12", "+380 (44) 00", "call me"]
    for number in invalid:
        rows.append((number, {"greeting": "Hi", "name": "X", "order": "0", "note": SHORT_NOTE}))
    return rows, fates, invalid


def _count_signals(fired: Counter[str]) -> list[Any]:
    """Connect a counter to each signal; return the functions that disconnect them."""
    disconnects = []
    for name in (
        "message_status_changed",
        "message_delivered",
        "message_failed",
        "message_finished",
    ):
        signal = getattr(signals, name)

        def receiver(sender: Any, name: str = name, **kwargs: Any) -> None:
            fired[name] += 1

        signal.connect(receiver, weak=False, dispatch_uid=f"smsclub-demo-{name}")
        disconnects.append(
            lambda signal=signal, name=name: signal.disconnect(dispatch_uid=f"smsclub-demo-{name}")
        )
    return disconnects


#: The package's signals whose receivers outside the package the demo mutes.
MUTED_SIGNALS = (
    "message_status_changed",
    "message_delivered",
    "message_failed",
    "message_finished",
)


@contextmanager
def _private_database() -> Iterator[None]:
    """Every connection, in this thread and in the worker's, to a fresh temporary SQLite file
    (one alias, ``default``, no routers) until the block ends."""
    handle, path = tempfile.mkstemp(prefix="smsclub-demo-", suffix=".sqlite3")
    os.close(handle)
    connections.close_all()
    # Django keeps each thread's connections in ``_connections``, made from ``settings``.
    handler: Any = connections
    saved_settings = handler.__dict__.get("settings")
    saved_connections = handler._connections
    database = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
    }
    handler.__dict__["settings"] = handler.configure_settings({"default": database})
    handler._connections = Local(handler.thread_critical)
    try:
        with override_settings(DATABASE_ROUTERS=[]):
            yield
    finally:
        connections.close_all()
        handler._connections = saved_connections
        if saved_settings is None:
            handler.__dict__.pop("settings", None)
        else:
            handler.__dict__["settings"] = saved_settings
        for leftover in (path, path + "-wal", path + "-shm", path + "-journal"):
            if os.path.exists(leftover):
                os.remove(leftover)


@contextmanager
def _memory_broker() -> Iterator[None]:
    """Celery's in-memory broker, so no task of the demo reaches the project's real workers."""
    from celery import current_app

    # Connection pools are made on first use from ``broker_url``: dropped, so new ones are.
    app: Any = current_app
    saved = app.conf.broker_url
    # Celery's ``broker_url`` prefers the CELERY_BROKER_URL environment variable to its conf.
    saved_env = os.environ.pop("CELERY_BROKER_URL", None)
    app.conf.broker_url = "memory://"
    app._pool = None
    app.amqp._producer_pool = None
    try:
        yield
    finally:
        if saved_env is not None:
            os.environ["CELERY_BROKER_URL"] = saved_env
        app.conf.broker_url = saved
        app._pool = None
        app.amqp._producer_pool = None


@contextmanager
def _muted_project_receivers() -> Iterator[None]:
    """The receivers connected to the package's message signals from outside the package are
    left out until the block ends: a project's receiver must not act on demo messages."""
    saved = {}
    for name in MUTED_SIGNALS:
        signal = getattr(signals, name)
        with signal.lock:
            saved[name] = signal.receivers
            signal.receivers = [r for r in signal.receivers if _is_the_packages(r[1])]
            signal.sender_receivers_cache.clear()
    try:
        yield
    finally:
        for name, receivers in saved.items():
            signal = getattr(signals, name)
            with signal.lock:
                signal.receivers = receivers
                signal.sender_receivers_cache.clear()


def _is_the_packages(reference: Any) -> bool:
    target = reference() if isinstance(reference, weakref.ReferenceType) else reference
    return str(getattr(target, "__module__", "")).startswith("django_smsclub")
