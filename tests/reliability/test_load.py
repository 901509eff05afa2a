"""The load run: 20,000 messages through 4 ``celery worker`` processes on PostgreSQL and Redis,
while the provider misbehaves in every way the emulator knows, one worker is killed with
SIGKILL in the middle of a send, and Redis restarts and forgets everything it held.

The periodic tasks (sent to the broker every second, as a fast Celery beat would) recover
what the restart lost. Afterwards every message is final, nobody got a text twice, every
final message fired ``message_finished`` once, and the provider never saw more than the
gateway's ``RATE_LIMIT`` requests in any sliding second (wherever the second starts).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
from django.conf import settings as django_settings
from kombu import pools

from django_smsclub.emulator import server
from django_smsclub.models import Message
from django_smsclub.status import Status
from testproject.celery import app
from tests.support.reliability import (
    Beat,
    WorkerProcesses,
    assert_every_message_settled,
    assert_one_finished_signal_per_final_message,
    assert_sent_ones_were_polled_to_their_end,
    assert_the_provider_agrees,
    claims_by_writer,
    drive,
    finished,
    inject_every_fault,
    make_campaign,
    numbers,
    prepare_emulator,
    shared_backends,
    smsclub_config,
)

MESSAGES = 20_000
WORKERS = 4
RATE_LIMIT = 20
FAULT_RATE = 0.02
TIMEOUT = 1.0
#: Seconds the run may take once the campaign starts.
DEADLINE = 420.0
#: A sweep settles a claim its worker left behind after this many seconds.
STALE_SENDING_AFTER = 5
#: RATE_LIMIT_MARGIN of the run: the limiter's window is 1 s plus this, so a request that
#: reaches the provider up to this much later than the one it follows by RATE_LIMIT still
#: falls in another second. On this 2-core machine, loaded by 4 workers, PostgreSQL and the
#: emulator (whose handler threads note each arrival under this process's GIL), arrivals were
#: seen up to about 0.2 s after their token.
MARGIN = 0.25
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _why_not() -> str | None:
    if not shared_backends():
        return "needs PostgreSQL (DATABASE_URL) and a Redis broker (CELERY_BROKER_URL)"
    if "redis" not in django_settings.CACHES["default"]["BACKEND"].lower():
        return "the rate limit is shared through the cache, which must be Redis (REDIS_URL)"
    if urlsplit(app.conf.broker_url).hostname not in LOCAL_HOSTS:
        return "restarts the broker's Redis, which must run on this machine"
    if shutil.which("redis-server") is None:
        return "restarts Redis with redis-server, which is not on PATH"
    if not Path("/proc/net/tcp").exists():
        return "finds the worker behind a connection in /proc (Linux only)"
    return None


pytestmark = [
    pytest.mark.load,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.django_db(transaction=True),
]


class Provider:
    """Watches every request reach the emulator: when it arrived, before any injected delay.

    Once :meth:`arm` is called, the next send request is held while ``on_catch`` runs with
    the port it came from (say, to kill its sender), and is handled after that.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.arrivals: list[tuple[float, str]] = []
        self.armed = threading.Event()
        self.caught = threading.Event()
        self.on_catch: Callable[[int], None] = lambda port: None
        self.held_recipients: list[str] = []
        self._lock = threading.Lock()
        serve = server.Handler._serve
        provider = self

        def watched_serve(handler: server.Handler) -> None:
            route = server.ROUTES.get(urlsplit(handler.path).path)
            op = route.op if route else "other"
            provider.arrivals.append((time.time(), op))
            if op == "send" and provider._take(handler):
                provider.on_catch(handler.client_address[1])
            serve(handler)

        monkeypatch.setattr(server.Handler, "_serve", watched_serve)

    def arm(self, on_catch: Callable[[int], None]) -> None:
        self.on_catch = on_catch
        self.armed.set()

    def _take(self, handler: server.Handler) -> bool:
        with self._lock:
            if not self.armed.is_set() or self.caught.is_set():
                return False
            self.caught.set()
        # Read the body now (its sender will be gone when it is handled) and hand it back.
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        handler.rfile = BytesIO(body)
        document = "".join(parse_qs(body.decode(errors="replace")).get("xmlrequest", []))
        listed = re.findall(r"<to><!\[CDATA\[([\d;]+)\]\]></to>", document)
        self.held_recipients = [number for field in listed for number in field.split(";")]
        return True

    def request_times(self) -> list[float]:
        """When each send and status request arrived, in order."""
        return sorted(moment for moment, op in self.arrivals if op != "other")

    def sliding_peak(self, window: float = 1.0) -> tuple[int, float]:
        """The most requests that arrived within any ``window`` seconds, wherever the window
        starts, and the time of the first of them."""
        times = self.request_times()
        peak, at, first = 0, 0.0, 0
        for last, moment in enumerate(times):
            while moment - times[first] >= window:
                first += 1
            if last - first + 1 > peak:
                peak, at = last - first + 1, times[first]
        return peak, at

    def tightest(self, count: int) -> float:
        """The shortest time in which ``count`` requests arrived."""
        times = self.request_times()
        spans = [times[i + count - 1] - times[i] for i in range(len(times) - count + 1)]
        return min(spans, default=float("inf"))

    def full_windows(self, limit: int, window: float) -> int:
        """How many times ``limit`` requests arrived within ``window`` seconds, counting
        windows that do not overlap: how often the limiter held the workers back."""
        times = self.request_times()
        full, start = 0, 0
        while start + limit <= len(times):
            if times[start + limit - 1] - times[start] < window:
                full += 1
                start += limit
            else:
                start += 1
        return full


def pid_of_connection(local_port: int, remote_port: int) -> int | None:
    """The process holding the IPv4 TCP connection from ``local_port`` to ``remote_port``."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if (int(local.split(":")[1], 16), int(remote.split(":")[1], 16)) == (
            local_port,
            remote_port,
        ):
            inode = fields[9]
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        try:
            fds = list((process / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if fd.readlink().as_posix() == target:
                    return int(process.name)
            except OSError:
                continue
    return None


class RedisServer:
    """The broker's Redis: shut down without saving, and started again as it was configured."""

    def __init__(self, url: str):
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        config = self.client.config_get("*")
        self.command = [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            *config["bind"].split(),
            "--port",
            config["port"],
            "--save",
            config["save"],
            "--appendonly",
            config["appendonly"],
            "--dir",
            config["dir"],
        ]
        for name in ("logfile", "requirepass"):
            if config.get(name):
                self.command += [f"--{name}", config[name]]
        self.restarts = 0

    def alive(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def restart(self, down_for: float = 1.5) -> None:
        """SHUTDOWN NOSAVE, stay down ``down_for`` s (across a second of the clock: a
        real restart takes that long), start again and wait until it answers."""
        self.client.shutdown(nosave=True)
        stopped = time.time()
        self._wait(lambda: not self.alive(), "Redis did not go down")
        while time.time() - stopped < down_for or int(time.time()) == int(stopped):
            time.sleep(0.1)
        self.start()
        self.restarts += 1

    def start(self) -> None:
        subprocess.run(self.command, check=True, capture_output=True, timeout=30)  # noqa: S603
        self._wait(self.alive, "Redis did not come back")

    @staticmethod
    def _wait(condition: Any, failure: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(failure)
            time.sleep(0.05)


@pytest.fixture
def broker_redis() -> Iterator[RedisServer]:
    """The broker's Redis; running again at the end whatever happened."""
    why = _why_not()
    if why:
        pytest.skip(why)
    try:
        redis_server = RedisServer(app.conf.broker_url)
    except redis.RedisError as exc:
        pytest.skip(f"cannot read the configuration of Redis to restart it: {exc}")
    yield redis_server
    if not redis_server.alive():
        redis_server.start()
    # The restart left this process's pooled broker connections dead: the tests after this
    # one get new ones (what Celery does in a forked child).
    pools.reset()
    app._after_fork()


class Chaos:
    """Called every round of the run. Once 1,000 messages are out of the queue, the worker
    that makes the next send request is killed while the provider holds that request (then
    handled: the worker died after sending it), and started again. Once 6,000 are out,
    Redis restarts."""

    def __init__(
        self,
        workers: WorkerProcesses,
        provider: Provider,
        redis_server: RedisServer,
        emulator_port: int,
    ):
        self.workers = workers
        self.provider = provider
        self.redis = redis_server
        self.emulator_port = emulator_port
        self.killed: int | None = None
        self.restarted = False
        self.log: list[tuple[float, str]] = []

    def __call__(self) -> None:
        if not self.provider.armed.is_set():
            if _out_of_queue() >= 1_000:
                self.provider.arm(self._kill_the_sender)
                self._note("waiting for the next send request")
        elif self.killed is not None and not self.restarted:
            self.workers.start(self.killed)
            self.workers.wait_ready([self.killed])
            self.restarted = True
            self._note(f"worker {self.killed} is back")
        elif self.restarted and not self.redis.restarts and _out_of_queue() >= 6_000:
            self._note("restarting Redis")
            self.redis.restart()
            self._note("Redis is back, empty")

    def _kill_the_sender(self, port: int) -> None:
        """In the emulator's thread, before the sender's read timeout runs out."""
        pid = pid_of_connection(port, self.emulator_port)
        index = self.workers.group_of(pid) if pid else None
        if index is None:
            self._note(f"no worker holds the connection from port {port}")
            return
        self.workers.kill(index)
        self.killed = index
        self._note(f"killed worker {index} (pid {pid}) while the provider held its request")

    def _note(self, what: str) -> None:
        self.log.append((round(time.time(), 3), what))


def _out_of_queue() -> int:
    return Message.objects.exclude(status=Status.QUEUED).count()


def test_20000_messages_survive_faults_a_killed_worker_and_a_redis_restart(
    smsclub_emulator, settings, tmp_path, monkeypatch, broker_redis
):
    emulator = smsclub_emulator
    provider = Provider(monkeypatch)
    recipients = numbers(MESSAGES)
    prepare_emulator(emulator, recipients)
    config = smsclub_config(
        emulator,
        {"TIMEOUT": TIMEOUT, "BATCH_SIZE": 100, "RATE_LIMIT": RATE_LIMIT},
        SEND_BATCH_SIZE=200,
        POLL_BATCH_SIZE=200,
        STALE_SENDING_AFTER=STALE_SENDING_AFTER,
        RATE_LIMIT_MARGIN=MARGIN,
    )
    settings.SMSCLUB = config
    campaign = make_campaign(recipients)
    inject_every_fault(emulator, rate=FAULT_RATE, timeout=TIMEOUT)
    workers = WorkerProcesses(WORKERS, config, tmp_path)
    chaos = Chaos(workers, provider, broker_redis, emulator.port)
    beat = Beat(period=1.0)
    try:
        workers.start_all()
        started = time.monotonic()
        campaign.start()
        drive(beat, DEADLINE, until=finished(campaign), meanwhile=chaos, pause=0.5)
        elapsed = time.monotonic() - started
    finally:
        workers.stop()
        if not broker_redis.alive():
            broker_redis.start()

    assert chaos.restarted and broker_redis.restarts == 1, chaos.log
    messages = assert_every_message_settled()
    assert_the_provider_agrees(emulator, messages)
    assert_one_finished_signal_per_final_message(workers.signal_log, messages)
    assert_sent_ones_were_polled_to_their_end(messages)
    assert len(claims_by_writer(workers.signal_log)) >= WORKERS

    # The killed worker's claim was swept: what it was sending is unknown, and went out
    # at most once (the provider handled the request after the worker died).
    held = list(Message.objects.filter(recipient__in=provider.held_recipients))
    assert held and len(held) == len(provider.held_recipients)
    assert {m.status for m in held} == {Status.UNKNOWN}
    assert all("never recorded an outcome" in m.error for m in held)
    assert all(len(emulator.messages_to(m.recipient)) in (0, m.parts) for m in held)

    # The provider never saw more than RATE_LIMIT requests in any sliding second, and did
    # see that many within a limiter's window (plus delivery) often: the limiter was what
    # held the workers back.
    peak, peak_at = provider.sliding_peak(1.0)
    assert peak <= RATE_LIMIT, (peak, peak_at, provider.tightest(RATE_LIMIT + 1))
    full = provider.full_windows(RATE_LIMIT, 1.0 + MARGIN + 0.1)
    assert full >= 5, full

    outcome = Counter(m.status for m in messages)
    print(
        f"\n{MESSAGES} messages final {elapsed:.1f} s after the start, {WORKERS} workers: "
        f"{dict(outcome)}; {len(provider.arrivals)} requests, at most {peak} in a sliding "
        f"second ({RATE_LIMIT + 1} took at least {provider.tightest(RATE_LIMIT + 1):.3f} s), "
        f"{full} full limiter windows; {chaos.log}"
    )
