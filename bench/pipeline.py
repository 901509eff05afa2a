"""Pipeline benchmark: one campaign through add -> send -> poll against the emulator.

Runs the services in this process (no Celery, so the figures are the pipeline's own) on the
database of ``DATABASE_URL`` (PostgreSQL by default), in a throw-away test database. Prints
seconds and messages/s per phase, SQL queries per 100 messages per phase, and peak RSS.

    .venv/bin/python bench/pipeline.py --recipients 10000 [--gateway xml|http|json]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
# Nothing consumes the tasks the services enqueue: keep them off a shared broker.
os.environ["CELERY_BROKER_URL"] = "memory://"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--gateway", choices=["xml", "http", "json"], default="xml")
    parser.add_argument(
        "--add-only", action="store_true", help="stop after the add recipients phase"
    )
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext, override_settings

    from django_smsclub import services
    from django_smsclub.emulator import (
        DEFAULT_PASSWORD,
        DEFAULT_TOKEN,
        DEFAULT_USERNAME,
        Emulator,
    )
    from django_smsclub.models import Campaign, Message
    from django_smsclub.status import FINAL_STATUSES

    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        with Emulator() as emu:
            emu.deliver_after(polls=0)
            emu.add_account(
                DEFAULT_USERNAME, DEFAULT_PASSWORD, DEFAULT_TOKEN, ("Shop",), balance=10**9
            )
            emu.json_rate_limit = 10_000
            config = {
                "DEFAULT_GATEWAY": "bench",
                "GATEWAYS": {
                    "bench": emu.gateway_settings(args.gateway, RATE_LIMIT=10_000),
                },
                "POLL_INTERVALS": [0],
            }
            with override_settings(SMSCLUB=config):
                n = args.recipients
                campaign = Campaign.objects.create(
                    name="bench", text="Order {order} is ready, {name}.", sender="Shop"
                )
                rows = (
                    (f"38050{i:07d}", {"order": str(i), "name": "Олена" if i % 2 else "Anna"})
                    for i in range(n)
                )
                figures = []

                def phase(name, work):
                    with CaptureQueriesContext(connection) as queries:
                        started = time.perf_counter()
                        work()
                        seconds = time.perf_counter() - started
                    figures.append((name, seconds, len(queries.captured_queries)))

                phase("add recipients", lambda: campaign.add_recipients(rows, chunk_size=2000))
                add_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                if not args.add_only:
                    campaign.start()
                    phase("send", lambda: services.send_due("bench"))

                    def poll_all():
                        while Message.objects.exclude(status__in=FINAL_STATUSES).exists():
                            services.poll_due("bench")

                    phase("poll to final", poll_all)
                counts = campaign.status_counts()
    finally:
        connection.creation.destroy_test_db(test_db, verbosity=0)

    print(f"{n} recipients, {args.gateway.upper()} gateway, {connection.vendor}, in-process")
    print(f"{'phase':<16} {'seconds':>8} {'msg/s':>9} {'queries':>8} {'q/100 msg':>10}")
    for name, seconds, queries in figures:
        print(
            f"{name:<16} {seconds:8.2f} {n / seconds:9.0f} {queries:8d} {queries * 100 / n:10.2f}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS after adding {add_peak:.0f} MiB")
    print(f"peak RSS {peak:.0f} MiB (this process, the emulator included)")
    print("final statuses:", {k: v for k, v in counts.items() if v})


if __name__ == "__main__":
    main()
