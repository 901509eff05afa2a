"""SMPP benchmark against smpp34 on loopback: submit rate and receipt latency.

1. Submit rate: the SMPP gateway alone (no database) submits ``--submits`` single-part texts
   (at most 5,000) with a window of ``--window``; prints submits/s.
2. Receipt latency: the ``smsclub_smpp`` worker (claim, submit, record) sends ``--messages``
   queued messages; the SMSC answers every submit with a DELIVRD receipt (at once, or after
   ``--receipt-delay`` seconds, when the message is surely recorded). Prints the
   worker's messages/s and, per message, the time from its submit_sm_resp reaching the worker
   to its receipt being applied to the database (median, 95th percentile, max).

The SMSC runs in a process of its own (``python -m tests.support.smpp_server``), so its Python work
does not compete for the GIL of the client being measured.

Runs on the database of ``DATABASE_URL`` if set, else SQLite, in a throw-away test database.

    .venv/bin/python bench/smpp.py [--submits 5000] [--messages 1000] [--window 10]
        [--batch-size 500] [--receipt-delay 0]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
# Nothing consumes the tasks the services enqueue: keep them off a shared broker.
os.environ["CELERY_BROKER_URL"] = "memory://"

MAX_SUBMITS = 5_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--submits", type=int, default=MAX_SUBMITS)
    parser.add_argument("--messages", type=int, default=1_000)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=500, help="messages per claim")
    parser.add_argument(
        "--receipt-delay", type=float, default=0.0, help="seconds the SMSC waits to send each"
    )
    args = parser.parse_args()
    submits = min(args.submits, MAX_SUBMITS)

    import django

    django.setup()

    print(f"smpp34 on 127.0.0.1 in its own process, window {args.window}")
    with smsc_process() as port:
        rate = submit_rate(port, submits, args.window)
        print(f"submit rate: {submits} submits in {submits / rate:.2f} s = {rate:,.0f} submits/s")
    with smsc_process("DELIVRD", args.receipt_delay) as port:
        worker_rate, latencies = receipt_latency(port, args.messages, args.window, args.batch_size)
    print(
        f"worker: {args.messages} messages claimed ({args.batch_size} at a time), submitted "
        "and recorded at "
        f"{worker_rate:,.0f} messages/s"
    )
    quantiles = statistics.quantiles(latencies, n=20)
    print(
        f"receipt latency (submit_sm_resp -> receipt applied, the SMSC's "
        f"{args.receipt_delay:g} s wait included), {len(latencies)} receipts: "
        f"median {statistics.median(latencies) * 1000:.1f} ms, "
        f"p95 {quantiles[18] * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )


@contextlib.contextmanager
def smsc_process(auto_receipt: str | None = None, receipt_delay: float = 0.0) -> Iterator[int]:
    """The test SMSC in a subprocess; yields its port."""
    command = [
        sys.executable,
        "-m",
        "tests.support.smpp_server",
        "--receipt-delay",
        str(receipt_delay),
    ]
    if auto_receipt:
        command += ["--auto-receipt", auto_receipt]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line.startswith("port "):
            raise RuntimeError(f"the test SMSC did not start: {line!r}")
        yield int(line.split()[1])
    finally:
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def submit_rate(port: int, submits: int, window: int) -> float:
    """Submits per second through SmppGateway.send, straight to smpp34 (no proxy)."""
    from django_smsclub.gateways.base import Outgoing
    from django_smsclub.gateways.smpp import SmppGateway

    gateway = SmppGateway(
        "bench",
        HOST="127.0.0.1",
        PORT=port,
        USERNAME="380501234567",
        PASSWORD="bench",  # noqa: S106 - smpp34 takes any password
        SENDER="Shop",
        WINDOW=window,
    )
    messages = [Outgoing(f"38050{n:07d}", f"Code {n}") for n in range(submits)]
    gateway.open()
    try:
        started = time.perf_counter()
        outcomes = []
        for start in range(0, submits, gateway.max_batch):
            outcomes += gateway.send("Shop", messages[start : start + gateway.max_batch])
        elapsed = time.perf_counter() - started
    finally:
        gateway.close()
    assert all(o.accepted for o in outcomes), [o.error for o in outcomes if o.error][:3]
    assert len({i for o in outcomes for i in o.smsc_ids}) == submits
    return submits / elapsed


def receipt_latency(
    port: int, messages: int, window: int, batch_size: int
) -> tuple[float, list[float]]:
    from django.db import connection
    from django.test.utils import override_settings

    from django_smsclub import services
    from django_smsclub.models import Message
    from django_smsclub.smpp_worker import SmppWorker
    from django_smsclub.status import Status

    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        config = {
            "DEFAULT_GATEWAY": "bench",
            "GATEWAYS": {
                "bench": {
                    "BACKEND": "smpp",
                    "HOST": "127.0.0.1",
                    "PORT": port,
                    "USERNAME": "380501234567",
                    "PASSWORD": "bench",
                    "SENDER": "Shop",
                    "WINDOW": window,
                }
            },
        }
        with override_settings(SMSCLUB=config):
            services.send_sms([f"38067{n:07d}" for n in range(messages)], "Your code is 4521")
            worker = SmppWorker("bench", idle=0.01, batch_size=batch_size)
            accepted: dict[str, float] = {}
            applied: dict[str, float] = {}
            apply, expect = worker.receipts._apply, worker.receipts.expect

            def stamped(smsc_id):
                accepted.setdefault(smsc_id, time.monotonic())
                expect(smsc_id)

            def timed(words):
                known = apply(words)
                now = time.monotonic()
                for smsc_id in known:
                    applied.setdefault(smsc_id, now)
                return known

            worker.receipts._apply = timed
            worker.receipts.expect = stamped
            thread = threading.Thread(target=worker.run)
            started = time.perf_counter()
            thread.start()
            while Message.objects.filter(status__in=[Status.QUEUED, Status.SENDING]).exists():
                time.sleep(0.01)
            sent_in = time.perf_counter() - started
            deadline = time.monotonic() + 60
            while len(applied) < messages and time.monotonic() < deadline:
                time.sleep(0.01)
            worker.stop()
            thread.join(30)
            delivered = Message.objects.filter(status=Status.DELIVERED).count()
    finally:
        connection.creation.destroy_test_db(test_db, verbosity=0)
    assert delivered == messages, f"{delivered} of {messages} delivered"
    latencies = [applied[i] - accepted[i] for i in applied]
    return messages / sent_in, latencies


if __name__ == "__main__":
    main()
