"""What the fault campaign and the load run share.

The emulator with every fault kind, a campaign of distinct recipients, Celery workers (threads
of the test process, or ``celery worker`` processes of their own on PostgreSQL and Redis), a
stand-in for Celery beat, and the checks every run ends with.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote

from celery.contrib.testing.worker import start_worker
from django.db import connections
from django.db.models import Count

from django_smsclub import tasks
from django_smsclub.emulator import (
    DEFAULT_PASSWORD,
    DEFAULT_TOKEN,
    DEFAULT_USERNAME,
    Emulator,
    Fault,
)
from django_smsclub.emulator.state import DEFAULT_SENDERS
from django_smsclub.models import Campaign, DeliveryReport, Message
from django_smsclub.status import FINAL_STATUSES, Status
from testproject.celery import app

from .load_receivers import ENV as SIGNAL_LOG_ENV
from .load_receivers import SignalLog
from .settings import smsclub_settings

REPO = Path(__file__).resolve().parents[2]
FAULT_KINDS = ("latency", "http_500", "drop_before", "drop_after", "garbled")
#: Messages the provider sent on: each was accepted exactly once.
DELIVERY_STATUSES = frozenset(
    {Status.DELIVERED, Status.UNDELIVERED, Status.EXPIRED, Status.REJECTED}
)
#: Provider words dealt to some recipients (the rest are DELIVRD): every n-th number.
FATES = {13: "UNDELIV", 31: "REJECTD", 47: "EXPIRED"}
TEMPLATE = "Замовлення {order} готове.{note}"
# Every 7th text is long enough for two parts (UCS-2: 70 characters a part).
NOTE = " Зберігаємо його три дні; візьміть, будь ласка, паспорт і номер замовлення."

logger = logging.getLogger(__name__)


def shared_backends() -> bool:
    """Whether the database and the broker reach beyond this process (PostgreSQL, Redis)."""
    broker = str(app.conf.broker_url or "")
    return connections["default"].vendor == "postgresql" and broker.startswith(
        ("redis://", "rediss://")
    )


def numbers(count: int) -> list[str]:
    return [f"38067{i:07d}" for i in range(count)]


def prepare_emulator(emulator: Emulator, recipients: Sequence[str]) -> None:
    """Money for every message, final words after one poll, some recipients' fates."""
    emulator.add_account(
        DEFAULT_USERNAME,
        DEFAULT_PASSWORD,
        token=DEFAULT_TOKEN,
        senders=DEFAULT_SENDERS,
        balance=10**7,
    )
    emulator.deliver_after(polls=1)
    for position, number in enumerate(recipients):
        for every, word in FATES.items():
            if position % every == every - 1:
                emulator.set_outcome(number, word)
                break


def inject_every_fault(emulator: Emulator, *, rate: float, timeout: float) -> list[Fault]:
    """Every fault kind on sends and on status requests: one of each early, then ``rate``.

    Latency is longer than the gateway's ``timeout``: the client gives up, the provider acts.
    """
    faults: list[Fault] = []
    pairs = [(op, kind) for op in ("send", "state") for kind in FAULT_KINDS]
    for seed, (op, kind) in enumerate(pairs):
        seconds = timeout + 0.5 if kind == "latency" else None
        faults.append(emulator.faults.add(kind, times=1, op=op, seconds=seconds))
        faults.append(emulator.faults.add(kind, rate=rate, op=op, seconds=seconds, seed=seed))
    return faults


def smsclub_config(
    emulator: Emulator, gateway: dict[str, Any] | None = None, **top: Any
) -> dict[str, Any]:
    """SMSCLUB for the runs: the XML gateway at the emulator (with ``gateway`` over its
    settings), short timeouts and intervals (with ``top`` over them)."""
    options = {"TIMEOUT": 1.0, "CONNECT_TIMEOUT": 2.0, **(gateway or {})}
    intervals = {"POLL_INTERVALS": [1], "RETRY_BACKOFF": 1, "RETRY_BACKOFF_MAX": 4}
    return smsclub_settings(
        default=emulator.gateway_settings("xml", **options),
        **{**intervals, "STALE_SENDING_AFTER": 5, **top},
    )


def make_campaign(recipients: Sequence[str]) -> Campaign:
    """A draft campaign with a personal text (every 7th of two parts) to each recipient."""
    campaign = Campaign.objects.create(name="Reliability", text=TEMPLATE, sender="Shop")
    rows = [
        # Every value filled in: an empty one is refused (issue 12's hostile-input rules).
        (number, {"order": f"{100000 + i}", "note": NOTE if i % 7 == 0 else " Дякуємо."})
        for i, number in enumerate(recipients)
    ]
    result = campaign.add_recipients(rows)
    assert (result.added, result.refused) == (len(recipients), [])
    return campaign


def status_counts() -> dict[str, int]:
    rows = Message.objects.order_by().values_list("status").annotate(n=Count("pk"))
    return dict(rows)


def all_final() -> bool:
    return not Message.objects.exclude(status__in=FINAL_STATUSES).exists()


def finished(campaign: Campaign) -> Callable[[], bool]:
    """Whether every message is final and a sweep has marked ``campaign`` done."""

    def done() -> bool:
        campaign.refresh_from_db(fields=["state"])
        return all_final() and campaign.state == Campaign.State.DONE

    return done


class Beat:
    """What Celery beat does, faster: every ``period`` seconds the periodic tasks go to the
    broker, expiring as beat's do. A broker that is down costs that round, as it costs beat."""

    TASKS = (tasks.send_due, tasks.poll_reports, tasks.sweep)

    def __init__(self, period: float = 1.0):
        self.period = period
        self.last = 0.0
        self.rounds = 0
        self.failed = 0

    def tick(self) -> None:
        if time.monotonic() - self.last < self.period:
            return
        self.last = time.monotonic()
        self.rounds += 1
        for task in self.TASKS:
            try:
                task.apply_async(expires=self.period * 3, retry=False)
            except Exception as exc:
                self.failed += 1
                logger.info("beat: could not send %s (%s)", task.name, exc)


def drive(
    beat: Beat | None,
    timeout: float,
    *,
    until: Callable[[], bool] = all_final,
    meanwhile: Callable[[], None] | None = None,
    pause: float = 0.2,
) -> None:
    """Run ``beat`` (and ``meanwhile``) until ``until()`` holds; fail after ``timeout`` s.
    Without a beat (None) only the tasks the pipeline schedules itself run."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"not done after {timeout:.0f} s: {status_counts()}")
        if beat is not None:
            beat.tick()
        if meanwhile is not None:
            meanwhile()
        time.sleep(pause)


@contextmanager
def worker_threads(concurrency: int) -> Iterator[None]:
    """One worker in this process whose ``concurrency`` threads run tasks side by side."""
    saved = app.conf.worker_hijack_root_logger, app.conf.broker_transport_options
    root = logging.getLogger()
    root_handlers, root_level = list(root.handlers), root.level
    app.conf.worker_hijack_root_logger = False
    app.conf.broker_transport_options = {**saved[1], "polling_interval": 0.05}
    app.control.purge()
    try:
        with start_worker(
            app,
            pool="threads",
            concurrency=concurrency,
            perform_ping_check=False,
            shutdown_timeout=120,
            loglevel="WARNING",
        ):
            yield
    finally:
        app.conf.worker_hijack_root_logger, app.conf.broker_transport_options = saved
        root.handlers[:] = root_handlers
        root.setLevel(root_level)


def database_url() -> str:
    """A DATABASE_URL for the database this test uses (the test database)."""
    db = connections["default"].settings_dict
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{quote(db['NAME'], safe='')}"


class WorkerProcesses:
    """``celery worker`` processes on the project's broker and this test's database.

    Each runs in a process group of its own (its pool processes with it), so a kill takes
    the whole worker; logs go to ``directory``. :meth:`stop` ends whatever is left.
    """

    def __init__(
        self, count: int, config: dict[str, Any], directory: Path, *, pool: str = "prefork"
    ):
        self.count = count
        self.directory = directory
        self.pool = pool
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.signal_log = SignalLog(directory / "signals")
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "testproject.settings",
            "DATABASE_URL": database_url(),
            "SMSCLUB_JSON": json.dumps(config),
            "CELERY_IMPORTS": "tests.support.load_receivers",
            SIGNAL_LOG_ENV: str(self.signal_log.directory),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }

    def hostname(self, index: int) -> str:
        return f"reliability{index}@localhost"

    def start(self, index: int) -> None:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "testproject",
            "worker",
            f"--pool={self.pool}",
            "--concurrency=1",
            f"--hostname={self.hostname(index)}",
            "--loglevel=WARNING",
            "--without-mingle",
            "--without-gossip",
        ]
        log = (self.directory / f"worker{index}.log").open("ab")
        with log:
            self.processes[index] = subprocess.Popen(  # noqa: S603 (our own interpreter)
                command,
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_all(self) -> None:
        app.control.purge()
        for index in range(self.count):
            self.start(index)
        self.wait_ready(range(self.count))

    def wait_ready(self, indexes: Sequence[int] | range, timeout: float = 60.0) -> None:
        """Wait until each worker answers a ping (it consumes tasks from then on)."""
        waiting = {self.hostname(i) for i in indexes}
        deadline = time.monotonic() + timeout
        while waiting:
            for index, process in self.processes.items():
                if process.poll() is not None:
                    raise AssertionError(f"worker {index} exited: {self.log_tail(index)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"workers {sorted(waiting)} never answered a ping")
            for reply in app.control.ping(destination=sorted(waiting), timeout=0.5):
                waiting -= set(reply)

    def kill(self, index: int) -> None:
        """SIGKILL the worker and its pool processes, as a machine that loses power would."""
        process = self.processes[index]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def group_of(self, pid: int) -> int | None:
        """The index of the worker whose process group holds ``pid``."""
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            return None
        return next((i for i, p in self.processes.items() if p.pid == group), None)

    def stop(self, timeout: float = 60.0) -> None:
        """A warm shutdown for each worker; SIGKILL for any still alive after ``timeout``."""
        alive = [p for p in self.processes.values() if p.poll() is None]
        for process in alive:
            os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in alive:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        # Pool processes whose parent was killed first would hold the database open.
        for process in self.processes.values():
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    def log_tail(self, index: int, lines: int = 30) -> str:
        path = self.directory / f"worker{index}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def signal_log_in_this_process(directory: Path) -> Iterator[SignalLog]:
    """The receivers of :mod:`tests.support.load_receivers`, for workers that are threads of
    ours."""
    log = SignalLog(directory)
    log.connect()
    try:
        yield log
    finally:
        log.disconnect()


def assert_every_message_settled() -> list[Message]:
    """Every message is final; a failed or unknown one says why. Returns them all."""
    messages = list(Message.objects.order_by("pk"))
    pending = Counter(m.status for m in messages if m.status not in FINAL_STATUSES)
    assert not pending, f"messages not final: {dict(pending)}"
    unexplained = [
        m.pk for m in messages if m.status in (Status.UNKNOWN, Status.FAILED) and not m.error
    ]
    assert unexplained == [], f"{len(unexplained)} unknown/failed messages without a reason"
    return messages


def assert_the_provider_agrees(emulator: Emulator, messages: Sequence[Message]) -> None:
    """Nobody got a text twice; what we call delivered (or refused by the network) the
    provider accepted once; what we call failed it never accepted."""
    assert emulator.duplicates() == []
    accepted = Counter((sms.recipient, sms.text) for sms in emulator.accepted if sms.part == 1)
    wrong = [
        (m.recipient, m.status, accepted[(m.recipient, m.text)])
        for m in messages
        if (m.status in DELIVERY_STATUSES) != (accepted[(m.recipient, m.text)] == 1)
        and m.status != Status.UNKNOWN
    ]
    assert wrong == [], f"the provider disagrees about {len(wrong)} messages: {wrong[:5]}"


def assert_one_finished_signal_per_final_message(
    log: SignalLog, messages: Sequence[Message]
) -> None:
    finished = [e for e in log.entries() if e.event == "finished"]
    times = Counter(e.message_id for e in finished)
    twice = sorted(pk for pk, n in times.items() if n > 1)
    assert twice == [], f"{len(twice)} messages signalled finished more than once: {twice[:5]}"
    statuses = {e.message_id: e.status for e in finished}
    expected = {m.pk: m.status for m in messages if m.status in FINAL_STATUSES}
    missing = sorted(set(expected) - set(statuses))
    assert missing == [], f"{len(missing)} final messages never signalled: {missing[:5]}"
    assert statuses == expected


def assert_sent_ones_were_polled_to_their_end(messages: Sequence[Message]) -> None:
    """Every message the provider gave IDs for ended with the network's word; the unknown
    ones are those whose send was ambiguous (no IDs came back)."""
    polled = set(DeliveryReport.objects.values_list("message_id", flat=True))
    wrong = [
        (m.pk, m.status) for m in messages if (m.pk in polled) != (m.status in DELIVERY_STATUSES)
    ]
    assert wrong == [], f"{len(wrong)} messages: {wrong[:5]}"


def claims_by_writer(log: SignalLog) -> dict[str, tuple[int, float, float]]:
    """Per process and thread that claimed messages: how many, first and last claim time."""
    claims: dict[str, list[float]] = {}
    for entry in log.entries():
        if entry.event == "claimed":
            claims.setdefault(entry.writer, []).append(entry.time)
    return {writer: (len(t), min(t), max(t)) for writer, t in claims.items()}


def claimed_side_by_side(claims: dict[str, tuple[int, float, float]]) -> bool:
    """Whether every claimer was claiming while the others were (their spans overlap)."""
    return max(first for _, first, _ in claims.values()) < min(
        last for _, _, last in claims.values()
    )
