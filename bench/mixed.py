"""Login codes while a campaign saturates the account, with real workers, PostgreSQL and Redis.

    .venv/bin/python bench/mixed.py --recipients 20000 --workers 2 --runs 3

The scenario of issue 11. The emulator runs in this process and models the provider: every
request takes ``--latency`` seconds and an account may make at most ``--rate-limit`` requests in
any sliding second (beyond that it answers HTTP 429). ``--workers`` plain ``celery -A
testproject worker`` processes (default pool and concurrency, no ``-Q``, no beat) do the work.

1. A campaign of ``--recipients`` on the HTTP gateway with ``RATE_LIMIT`` = ``--rate-limit``.
   Once its requests flow, ``--codes`` single ``send_sms()`` calls (a login code each),
   ``--code-interval`` seconds apart. Printed: each code's latency from the call to the
   moment its request reached the provider (p50/p95/max); the campaign's request rate while
   it saturates the account (from its first send request to its last, every request of the
   account counted) against the cap; the most requests in any sliding second, as the workers
   made them and as the provider received them; the provider's 429 refusals.
2. A personalized campaign of ``--personal`` texts on the JSON gateway at its defaults
   (``RATE_LIMIT`` 9/s, the emulator refusing a 10th request in a second, as the provider
   does): how many messages ended ``failed``, the 429 refusals, requests and duration.

Figures come out as an RST table, one column per run (``--runs``). The database of
``--database-url`` is created if missing and migrated; **its django_smsclub tables are
emptied**, and so are the Redis databases of ``--cache-url`` and ``--broker-url``. The worker
processes are stopped when the benchmark ends, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEXT = "Ваше замовлення готове. Чекаємо на вас у магазині до неділі."
PERSONAL_TEXT = "Hi {name}, order {order} is ready"
NAMES = ["Ann", "Bob", "Олена", "Dan", "Eve", "Тарас", "Gus", "Hal"]
OPERATORS = ["50", "63", "66", "67", "68", "73", "93", "95", "96", "97", "98", "99"]
JSON_USERNAME, JSON_PASSWORD, JSON_TOKEN = "380670000002", "json-password", "bench-json-token"
#: The JSON API's documented limit, which the emulator enforces per token by default.
JSON_RATE = 9


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Targets (issue 11): codes p95 <= 2 s; campaign >= 95 % of the cap; no sliding\n"
        "second over the limit; the personalized JSON campaign ends with 0 failed and 0\n"
        "refusals.",
    )
    parser.add_argument("--recipients", type=int, default=20_000, help="campaign size (20000)")
    parser.add_argument(
        "--rate-limit", type=int, default=10, help="HTTP gateway RATE_LIMIT and provider cap (10)"
    )
    parser.add_argument(
        "--latency", type=float, default=0.1, help="seconds the provider takes per request (0.1)"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="celery worker processes to start (2)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="each worker's --concurrency (default: Celery's, the number of cores)",
    )
    parser.add_argument("--codes", type=int, default=20, help="login codes to send (20)")
    parser.add_argument(
        "--code-interval", type=float, default=0.5, help="seconds between two codes (0.5)"
    )
    parser.add_argument(
        "--code-delay",
        type=float,
        default=2.0,
        help="seconds after the campaign's first request before the first code (2)",
    )
    parser.add_argument(
        "--personal",
        type=int,
        default=2000,
        help="personalized JSON campaign size; 0 skips that part (2000)",
    )
    parser.add_argument("--runs", type=int, default=1, help="times to run it all (1)")
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/smsclub_mixed",
        help="PostgreSQL database, created if missing; its smsclub tables are emptied",
    )
    parser.add_argument(
        "--cache-url",
        default="redis://127.0.0.1:6379/15",
        help="Redis database of the Django cache (the rate limit); flushed",
    )
    parser.add_argument(
        "--broker-url",
        default="redis://127.0.0.1:6379/7",
        help="Redis database of the Celery broker; flushed",
    )
    parser.add_argument(
        "--dump",
        metavar="PREFIX",
        help="write each run's HTTP request log to PREFIX-runN.json: when the provider "
        "received and answered each request, when the workers made them, the codes' calls",
    )
    parser.add_argument(
        "--timeout", type=float, default=900, help="seconds a part may take at most (900)"
    )
    args = parser.parse_args(argv)
    if args.recipients < 1 or args.workers < 1 or args.runs < 1 or args.rate_limit < 1:
        parser.error("--recipients, --workers, --runs and --rate-limit must be at least 1")
    return args


@dataclass
class Run:
    """The figures of one run."""

    load_before: float = 0.0
    load_after: float = 0.0
    code_latencies: list[float] = field(default_factory=list)
    codes_missing: int = 0
    campaign_seconds: float = 0.0
    campaign_requests: int = 0
    rate: float = 0.0
    peak_workers: int = 0
    peak_provider: int = 0
    refusals: int = 0
    campaign_counts: dict[str, int] = field(default_factory=dict)
    personal_counts: dict[str, int] = field(default_factory=dict)
    personal_seconds: float = 0.0
    personal_requests: int = 0
    personal_refusals: int = 0
    personal_peak: int = 0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    env = {
        "DJANGO_SETTINGS_MODULE": "testproject.settings",
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.cache_url,
        "CELERY_BROKER_URL": args.broker_url,
        "BENCH_REDIS_URL": args.cache_url,
        "BENCH_REQUEST_TIMES": "1",
        "CELERY_IMPORTS": "bench.worker_probe",
        "PYTHONPATH": str(ROOT),
    }
    # One port for the emulator of every run, so the settings are known before Django starts.
    port = _free_port()
    env["SMSCLUB_JSON"] = json.dumps(_smsclub(f"http://127.0.0.1:{port}", args))
    os.environ.update(env)
    _create_database(args.database_url)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    runs: list[Run] = []
    for number in range(1, args.runs + 1):
        print(f"run {number} of {args.runs}...", file=sys.stderr, flush=True)
        runs.append(run_once(args, port, number))
    print()
    print(table(args, runs))


def run_once(args: argparse.Namespace, port: int, number: int) -> Run:
    import redis

    from django_smsclub.emulator import DEFAULT_PASSWORD, DEFAULT_TOKEN, DEFAULT_USERNAME, Emulator

    _empty_tables()
    for url in (args.cache_url, args.broker_url):
        redis.Redis.from_url(url).flushdb()
    result = Run(load_before=os.getloadavg()[0])
    emulator = Emulator(port=port)
    emulator.add_account(
        DEFAULT_USERNAME, DEFAULT_PASSWORD, DEFAULT_TOKEN, ("Shop",), balance=10**9
    )
    emulator.add_account(JSON_USERNAME, JSON_PASSWORD, JSON_TOKEN, ("Shop",), balance=10**9)
    emulator.deliver_after(polls=1)
    emulator.json_rate_limit = JSON_RATE
    emulator.rate_limit = args.rate_limit
    if args.latency > 0:
        emulator.faults.add("latency", seconds=args.latency)
    emulator.start()
    workers: list[subprocess.Popen[bytes]] = []
    log = tempfile.NamedTemporaryFile(prefix="smsclub-mixed-workers-", suffix=".log")  # noqa: SIM115
    try:
        workers = _start_workers(args, dict(os.environ), log)
        _wait_for_workers(len(workers), timeout=90)
        dump = Path(f"{args.dump}-run{number}.json") if args.dump else None
        _campaign_with_codes(args, emulator, result, dump)
        if args.personal:
            _personalized(args, emulator, result)
    except BaseException:
        log.flush()
        tail = Path(log.name).read_text(errors="replace")[-3000:]
        if tail:
            print(f"worker log (last lines):\n{tail}", file=sys.stderr)
        raise
    finally:
        _stop_workers(workers)
        emulator.stop()
        log.close()
    result.load_after = os.getloadavg()[0]
    return result


def _campaign_with_codes(
    args: argparse.Namespace, emulator: Any, result: Run, dump: Path | None
) -> None:
    import redis

    from django_smsclub import send_sms
    from django_smsclub.models import Campaign, Message

    campaign = Campaign.objects.create(name="bench", text=TEXT, sender="Shop", gateway="http")
    campaign.add_recipients((_number(i) for i in range(args.recipients)), chunk_size=5000)
    store = redis.Redis.from_url(args.cache_url)
    store.delete("bench:request_times")
    started = time.time()
    campaign.start()
    deadline = time.monotonic() + args.timeout
    while not any(r.op == "send" for r in emulator.requests):
        _check(deadline, "the campaign's first request")
        time.sleep(0.05)
    time.sleep(args.code_delay)

    codes: dict[str, float] = {}
    for index in range(args.codes):
        number = f"38099{9900000 + index:07d}"
        codes[number] = time.time()
        send_sms(number, f"Your login code is {123456 + index}", sender="Shop", gateway="http")
        time.sleep(args.code_interval)

    campaign_messages = Message.objects.filter(campaign=campaign)
    while (
        campaign_messages.filter(status__in=["queued", "sending"]).exists()
        or Message.objects.filter(campaign=None, status__in=["queued", "sending"]).exists()
    ):
        _check(deadline, "the campaign")
        time.sleep(0.25)
    result.campaign_seconds = time.time() - started
    result.campaign_counts = _counts(campaign_messages)

    records = [r for r in emulator.requests if r.gateway == "http"]
    reached: dict[str, float] = {}
    for record in records:
        if record.op != "send" or record.status_code != 200:
            continue
        for number in str(record.params.get("to", "")).split(";"):
            if number in codes and number not in reached:
                reached[number] = record.received - codes[number]
    result.code_latencies = sorted(reached.values())
    result.codes_missing = len(codes) - len(reached)

    code_numbers = set(codes)
    campaign_sends = sorted(
        r.received
        for r in records
        if r.op == "send"
        and r.status_code == 200
        and not code_numbers & set(str(r.params.get("to", "")).split(";"))
    )
    result.campaign_requests = len(campaign_sends)
    first, last = campaign_sends[0], campaign_sends[-1]
    # Every request the account made from the campaign's first send request up to (not
    # including) its last: a whole number of the limiter's periods when it saturates.
    admitted = [r for r in records if r.status_code != 429 and first <= r.received < last]
    if last > first:
        result.rate = len(admitted) / (last - first)
    result.peak_provider = _peak([r.received for r in records])
    result.refusals = sum(1 for r in records if r.status_code == 429)
    entries = [
        e.decode() if isinstance(e, bytes) else str(e)
        for e in store.lrange("bench:request_times", 0, -1)
    ]
    made = [float(entry.split()[0]) for entry in entries if "/sms/" not in entry]
    result.peak_workers = _peak(made)
    if dump is not None:
        log = {
            "provider": [[r.received, r.time, r.op, r.status_code] for r in records],
            "workers": sorted(made),
            "codes": codes,
        }
        dump.write_text(json.dumps(log))


def _personalized(args: argparse.Namespace, emulator: Any, result: Run) -> None:
    from django_smsclub.models import Campaign, Message

    campaign = Campaign.objects.create(
        name="personal", text=PERSONAL_TEXT, sender="Shop", gateway="json"
    )
    rows = (
        (f"38067{5000000 + i:07d}", {"name": NAMES[i % len(NAMES)], "order": str(1000 + i)})
        for i in range(args.personal)
    )
    campaign.add_recipients(rows, chunk_size=5000)
    seen = len(emulator.requests)
    started = time.time()
    campaign.start()
    messages = Message.objects.filter(campaign=campaign)
    deadline = time.monotonic() + args.timeout
    while messages.filter(status__in=["queued", "sending"]).exists():
        _check(deadline, "the personalized campaign")
        time.sleep(0.1)
    result.personal_seconds = time.time() - started
    result.personal_counts = _counts(messages)
    records = [r for r in emulator.requests[seen:] if r.gateway == "json"]
    result.personal_requests = sum(1 for r in records if r.op == "send" and r.status_code == 200)
    result.personal_refusals = sum(1 for r in records if r.status_code == 429)
    result.personal_peak = _peak([r.received for r in records])


def table(args: argparse.Namespace, runs: list[Run]) -> str:
    cap = args.rate_limit
    rows: list[tuple[str, list[str], str]] = []

    def row(label: str, values: list[str], target: str = "") -> None:
        rows.append((label, values, target))

    def latency(run: Run) -> str:
        values = run.code_latencies
        if not values:
            return "none reached"
        text = f"{_pct(values, 50):.2f} / {_pct(values, 95):.2f} / {values[-1]:.2f} s"
        return text + (f" ({run.codes_missing} missing)" if run.codes_missing else "")

    row(
        "load average (1 min) before / after",
        [f"{r.load_before:.2f} / {r.load_after:.2f}" for r in runs],
    )
    row(
        f"{args.codes} codes: to the provider p50 / p95 / max",
        [latency(r) for r in runs],
        "p95 <= 2 s (1 s aimed)",
    )
    row(
        f"campaign of {args.recipients:,}: requests, seconds",
        [f"{r.campaign_requests}, {r.campaign_seconds:.1f} s" for r in runs],
    )
    row(
        "requests/s while it saturates (% of cap)",
        [f"{r.rate:.2f} ({100 * r.rate / cap:.1f} %)" for r in runs],
        ">= 95 % of the cap",
    )
    row(
        "most requests in a second: made / arrived",
        [f"{r.peak_workers} / {r.peak_provider}" for r in runs],
        f"<= {cap}",
    )
    row("429 refusals (HTTP account)", [str(r.refusals) for r in runs], "0")
    row(
        "campaign after sending: sent / failed / other",
        [_statuses(r.campaign_counts) for r in runs],
    )
    if args.personal:
        row(
            f"personalized JSON {args.personal:,}: failed",
            [str(r.personal_counts.get("failed", 0)) for r in runs],
            "0",
        )
        row("  429 refusals", [str(r.personal_refusals) for r in runs], "0")
        row(
            "  requests, seconds, peak in a second",
            [f"{r.personal_requests}, {r.personal_seconds:.1f} s, {r.personal_peak}" for r in runs],
            f"peak <= {JSON_RATE}",
        )
    headers = ["figure", *(f"run {i}" for i in range(1, len(runs) + 1)), "target"]
    body = [[label, *values, target] for label, values, target in rows]
    widths = [max(len(line[i]) for line in [headers, *body]) for i in range(len(headers))]
    rule = "  ".join("=" * w for w in widths)
    lines = [
        rule,
        "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
        rule,
    ]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in body
    ]
    lines.append(rule)
    concurrency = args.concurrency or f"{os.cpu_count()} (default)"
    title = (
        f"{args.workers} worker processes x concurrency {concurrency}, HTTP RATE_LIMIT {cap}, "
        f"{args.latency * 1000:.0f} ms provider latency, PostgreSQL + Redis, "
        f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}"
    )
    return title + "\n\n" + "\n".join(lines)


def _smsclub(url: str, args: argparse.Namespace) -> dict[str, Any]:
    from django_smsclub.emulator import DEFAULT_PASSWORD, DEFAULT_USERNAME

    return {
        "DEFAULT_GATEWAY": "http",
        "GATEWAYS": {
            "http": {
                "BACKEND": "http",
                "USERNAME": DEFAULT_USERNAME,
                "PASSWORD": DEFAULT_PASSWORD,
                "SENDER": "Shop",
                "BASE_URL": url,
                "RATE_LIMIT": args.rate_limit,
            },
            # The JSON gateway at its defaults: RATE_LIMIT 9/s from the gateway class.
            "json": {"BACKEND": "json", "TOKEN": JSON_TOKEN, "SENDER": "Shop", "BASE_URL": url},
        },
    }


def _start_workers(
    args: argparse.Namespace, env: dict[str, str], log: Any
) -> list[subprocess.Popen[bytes]]:
    workers = []
    for index in range(args.workers):
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "testproject",
            "worker",
            "-n",
            f"mixed{index}@%h",
            "--loglevel=WARNING",
        ]
        if args.concurrency:
            command.append(f"--concurrency={args.concurrency}")
        # A session of its own: Ctrl-C reaches this process only, which then stops each
        # worker with its pool children (the whole process group).
        workers.append(
            subprocess.Popen(  # noqa: S603
                command,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    return workers


def _stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for process in workers:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for process in workers:
        with suppress(subprocess.TimeoutExpired):
            process.wait(max(deadline - time.monotonic(), 0.1))
    for process in workers:
        # The pool's children too, even when the main process already went.
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            process.wait(5)


def _wait_for_workers(count: int, timeout: float) -> None:
    from testproject.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        if len(replies) >= count:
            return
    raise SystemExit(f"{count} workers did not start within {timeout:.0f} s")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _create_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    server = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def _empty_tables() -> None:
    from django.apps import apps
    from django.db import connection

    tables = [m._meta.db_table for m in apps.get_app_config("django_smsclub").get_models()]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


def _counts(messages: Any) -> dict[str, int]:
    from django.db.models import Count

    return dict(messages.values_list("status").annotate(n=Count("pk")).order_by())


def _statuses(counts: dict[str, int]) -> str:
    other = sum(n for status, n in counts.items() if status not in ("sent", "failed"))
    return f"{counts.get('sent', 0)} / {counts.get('failed', 0)} / {other}"


def _peak(times: list[float]) -> int:
    """The most of ``times`` in any window of one second."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + 1.0) - i for i, t in enumerate(ordered)), default=0)


def _pct(values: list[float], percent: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def _number(i: int) -> str:
    return f"380{OPERATORS[i % len(OPERATORS)]}{i:07d}"


def _check(deadline: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise SystemExit(f"{what} did not finish within the timeout")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
