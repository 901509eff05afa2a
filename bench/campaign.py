"""A whole campaign with real Celery workers, beside the floor and the naive way.

    .venv/bin/python bench/campaign.py --recipients 100000 --gateway http --workers 4

Against the emulator (its own process), PostgreSQL and Redis, it measures: adding the
recipients (this process), sending and polling to final (``--workers`` Celery worker
processes), SQL statements per 100 messages per phase and peak RSS per process. In the same
run it makes exactly the same HTTP requests with a bare ``requests`` loop (one pooled
session; no Django, database or Celery): the floor. And it times the naive way, one request
per recipient, synchronously, on a sample, extrapolated to all recipients.

Needs PostgreSQL (``BENCH_PG``, default ``postgres://postgres@127.0.0.1:5432``; it creates
and drops the database ``smsclub_bench``) and Redis (``BENCH_REDIS``, default
``redis://127.0.0.1:6379``; databases 12-14 are flushed).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
DATABASE = "smsclub_bench"
TEXT = "Ваше замовлення готове. Чекаємо на вас у магазині до неділі."
USERNAME, PASSWORD, TOKEN = "380501234567", "emulator-password", "emulator-token"
NAIVE_SAMPLE = 500
OPERATORS = ["50", "63", "66", "67", "68", "73", "93", "95", "96", "97", "98", "99"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--gateway", choices=["http", "xml", "json"], default="http")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    n = args.recipients

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    gateway = {
        "BACKEND": args.gateway,
        "USERNAME": USERNAME,
        "PASSWORD": PASSWORD,
        "TOKEN": TOKEN,
        "SENDER": "Shop",
        "BASE_URL": url,
        "RATE_LIMIT": 0,
    }
    smsclub = {
        "DEFAULT_GATEWAY": "bench",
        "GATEWAYS": {"bench": gateway},
        "POLL_INTERVALS": [0],
        "SEND_CONCURRENCY": args.workers,
    }
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": f"{PG}/{DATABASE}",
        "CELERY_BROKER_URL": f"{REDIS}/12",
        "REDIS_URL": f"{REDIS}/13",
        "BENCH_REDIS_URL": f"{REDIS}/14",
        "SMSCLUB_BENCH": json.dumps(smsclub),
        "PYTHONPATH": str(ROOT),
    }
    os.environ.update(env)
    _recreate_database()

    import django

    django.setup()
    import redis
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_smsclub import tasks
    from django_smsclub.models import DeliveryReport, Message
    from django_smsclub.status import FINAL_STATUSES

    store = redis.Redis.from_url(env["BENCH_REDIS_URL"])
    for db in (12, 13, 14):
        redis.Redis.from_url(f"{REDIS}/{db}").flushdb()
    call_command("migrate", verbosity=0)

    emulator = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "django_smsclub.emulator",
            "--port",
            str(port),
            "--deliver-after-polls",
            "1",
            "--balance",
            "1000000000",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    emulator.stdout.readline()
    workers: list[subprocess.Popen] = []
    worker_log = tempfile.NamedTemporaryFile(prefix="smsclub-bench-workers-", suffix=".log")  # noqa: SIM115
    try:
        from django_smsclub.models import Campaign

        campaign = Campaign.objects.create(name="bench", text=TEXT, sender="Shop")
        numbers = (_number(i) for i in range(n))
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            campaign.add_recipients(numbers, chunk_size=5000)
            add_seconds = time.perf_counter() - started
        add_queries = len(queries.captured_queries)
        adder_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        for index in range(args.workers):
            workers.append(
                subprocess.Popen(  # noqa: S603
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "testproject",
                        "worker",
                        "--pool=solo",
                        "-n",
                        f"bench{index}@%h",
                        "-I",
                        "bench.worker_probe",
                        "--without-gossip",
                        "--without-mingle",
                        "--without-heartbeat",
                        "--loglevel=WARNING",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=worker_log,
                    stderr=subprocess.STDOUT,
                )
            )
        _wait_for_workers(args.workers, timeout=60)

        pending = Message.objects.exclude(status__in=FINAL_STATUSES)
        started = time.perf_counter()
        campaign.start()
        _until(
            lambda: not Message.objects.filter(status__in=["queued", "sending"]).exists(),
            started + args.timeout,
        )
        send_seconds = time.perf_counter() - started
        send_queries = _take(store, "bench:queries")
        send_requests = _take(store, "bench:requests")

        started = time.perf_counter()

        def poll() -> bool:
            if not pending.exists():
                return True
            for _ in range(args.workers):
                tasks.poll_reports.delay("bench")
            return False

        _until(poll, started + args.timeout, pause=0.5, drain=lambda: _queue_empty(env))
        poll_seconds = time.perf_counter() - started
        poll_queries = _take(store, "bench:queries")
        poll_requests = _take(store, "bench:requests")
        worker_rss = [int(v) for v in store.hvals("bench:rss")]
        counts = campaign.status_counts()
        ids = list(DeliveryReport.objects.order_by("pk").values_list("smsc_id", flat=True))
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()

    try:
        floor_send, floor_send_requests = _floor_send(url, args.gateway, n)
        floor_poll, floor_poll_requests = _floor_poll(url, args.gateway, ids)
        naive_seconds = _naive(url, args.gateway, min(n, NAIVE_SAMPLE)) * n / min(n, NAIVE_SAMPLE)
    finally:
        emulator.terminate()
        emulator.wait(10)
        connection.close()
        _drop_database()

    print(
        f"\n{n} recipients, {args.gateway.upper()} gateway, {args.workers} worker(s), "
        f"PostgreSQL + Redis, emulator in its own process; {os.cpu_count()} cores"
    )
    print(f"{'phase':<15} {'seconds':>8} {'msg/s':>9} {'q/100 msg':>10} {'requests':>9}")
    rows = [
        ("add recipients", add_seconds, add_queries, 0),
        ("send", send_seconds, sum(send_queries.values()), sum(send_requests.values())),
        ("poll to final", poll_seconds, sum(poll_queries.values()), sum(poll_requests.values())),
    ]
    for name, seconds, queries, requests_made in rows:
        print(
            f"{name:<15} {seconds:8.2f} {n / seconds:9.0f} {queries * 100 / n:10.2f} "
            f"{requests_made:9d}"
        )
    print(
        f"floor: send {floor_send:.2f} s ({floor_send_requests} requests), "
        f"poll {floor_poll:.2f} s ({floor_poll_requests} requests)"
    )
    print(
        f"pipeline / floor: send {send_seconds / floor_send:.2f}x, "
        f"poll {poll_seconds / floor_poll:.2f}x"
    )
    print(
        f"naive (one request per recipient, sample of {min(n, NAIVE_SAMPLE)}): "
        f"{naive_seconds:.1f} s for all; ours is {naive_seconds / send_seconds:.1f}x faster"
    )
    print(
        f"peak RSS: adding process {adder_rss / 1024:.0f} MiB; workers "
        + ", ".join(f"{kib / 1024:.0f}" for kib in sorted(worker_rss))
        + " MiB"
    )
    print("final statuses:", {k: v for k, v in counts.items() if v})


def _floor_send(url: str, gateway: str, n: int) -> tuple[float, int]:
    """The send requests the pipeline makes, from one pooled session, one after another."""
    import requests

    session = requests.Session()
    numbers = [_number(i) for i in range(n)]
    made = 0
    started = time.perf_counter()
    for start in range(0, n, 100):
        chunk = numbers[start : start + 100]
        _send_request(session, url, gateway, chunk)
        made += 1
    return time.perf_counter() - started, made


def _send_request(session, url: str, gateway: str, numbers: list[str]) -> None:
    from django_smsclub.gateways.xml import build_request

    if gateway == "http":
        text = base64.b64encode(TEXT.encode("cp1251")).decode()
        fields = {
            "username": USERNAME,
            "password": PASSWORD,
            "from": "Shop",
            "to": ";".join(numbers),
            "text": text,
        }
        reply = session.post(f"{url}/hfw_smpp_addon/httpsendsmspost.php", data=fields, timeout=60)
    elif gateway == "xml":
        document = build_request(
            "request_sendsms",
            [
                ("username", USERNAME),
                ("password", PASSWORD),
                ("from", "Shop"),
                ("to", ";".join(numbers)),
                ("text", TEXT),
            ],
        )
        reply = session.post(
            f"{url}/hfw_smpp_addon/xmlsendsmspost.php", data={"xmlrequest": document}, timeout=60
        )
    else:
        body = json.dumps({"phone": numbers, "message": TEXT, "src_addr": "Shop"})
        reply = session.post(
            f"{url}/sms/send",
            data=body.encode(),
            timeout=60,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
    reply.raise_for_status()


def _floor_poll(url: str, gateway: str, ids: list[str]) -> tuple[float, int]:
    """Two rounds of status requests of 100 IDs (ENROUTE, then final), as the pipeline made."""
    import requests

    from django_smsclub.gateways.xml import build_request

    session = requests.Session()
    made = 0
    started = time.perf_counter()
    for _ in range(2):
        for start in range(0, len(ids), 100):
            chunk = ";".join(ids[start : start + 100])
            if gateway == "http":
                fields = {"username": USERNAME, "password": PASSWORD, "smscid": chunk}
                session.post(
                    f"{url}/hfw_smpp_addon/httpgetsmsstatepost.php", data=fields, timeout=60
                ).raise_for_status()
            elif gateway == "xml":
                document = build_request(
                    "request_getstate",
                    [("username", USERNAME), ("password", PASSWORD), ("smscid", chunk)],
                )
                session.post(
                    f"{url}/hfw_smpp_addon/xmlgetsmsstatepost.php",
                    data={"xmlrequest": document},
                    timeout=60,
                ).raise_for_status()
            else:
                body = json.dumps({"id_sms": chunk.split(";")}).encode()
                session.post(
                    f"{url}/sms/status",
                    data=body,
                    timeout=60,
                    headers={"Authorization": f"Bearer {TOKEN}"},
                ).raise_for_status()
            made += 1
    return time.perf_counter() - started, made


def _naive(url: str, gateway: str, sample: int) -> float:
    """One request per recipient, a new connection each time, as a loop in a view would."""
    import requests

    started = time.perf_counter()
    for i in range(sample):
        number = f"38099{i:07d}"
        _send_request(requests.Session(), url, gateway, [number])
    return time.perf_counter() - started


def _number(i: int) -> str:
    return f"380{OPERATORS[i % len(OPERATORS)]}{i:07d}"


def _take(store, key: str) -> dict[str, int]:
    values = {k.decode(): int(v) for k, v in store.hgetall(key).items()}
    store.delete(key)
    return values


def _queue_empty(env: dict[str, str]) -> bool:
    import redis

    return redis.Redis.from_url(env["CELERY_BROKER_URL"]).llen("celery") == 0


def _until(done, deadline: float, pause: float = 0.2, drain=None) -> None:
    while not done():
        if time.perf_counter() > deadline:
            raise SystemExit("the benchmark did not finish in time")
        time.sleep(pause)
        while drain is not None and not drain():
            time.sleep(pause)


def _wait_for_workers(count: int, timeout: float) -> None:
    from celery import current_app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = current_app.control.ping(timeout=1.0) or []
        if len(replies) >= count:
            return
    raise SystemExit(f"{count} workers did not start within {timeout} s")


def _recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")


def _drop_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    main()
