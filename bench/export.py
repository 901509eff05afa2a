"""A campaign's results exported as CSV from PostgreSQL: time and peak memory growth.

    .venv/bin/python bench/export.py --recipients 100000

Adds ``--recipients`` numbers of every Ukrainian network to a campaign (timed: what the
operator lookup at queue time costs shows here), gives them outcomes (delivered, failed,
unknown; errors and metadata, some of them formula-like), then exports the campaign the way the
admin and the API do (:func:`django_smsclub.exports.csv_response`, streamed from a server-side
cursor) and reads the whole body. Prints the time and the growth of the process's peak RSS
during the export, and, for contrast, what building the same CSV from a list of all the rows
costs.

Needs PostgreSQL (``BENCH_PG``, default ``postgres://postgres@127.0.0.1:5432``); it creates and
drops the database ``BENCH_DATABASE`` (default ``smsclub_bench_export``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DATABASE = os.environ.get("BENCH_DATABASE", "smsclub_bench_export")
TEXT = "Знижка 20% до неділі у вашому магазині."
# Prefixes of Kyivstar, Vodafone, lifecell and the smaller networks.
PREFIXES = ["67", "68", "96", "97", "98", "50", "66", "95", "99", "63", "73", "93", "91", "94"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    n = args.recipients

    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DATABASE_URL": f"{PG}/{DATABASE}",
            "SMSCLUB_BENCH": (
                '{"DEFAULT_GATEWAY": "bench", "GATEWAYS": {"bench": '
                '{"BACKEND": "locmem", "SENDER": "Shop"}}}'
            ),
        }
    )
    _recreate_database()
    try:
        _run(n)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            _drop_database()


def _run(n: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from django_smsclub.models import Campaign, Message

    call_command("migrate", verbosity=0)
    campaign = Campaign.objects.create(name="bench", text=TEXT, sender="Shop")
    numbers = (f"380{PREFIXES[i % len(PREFIXES)]}{i:07d}" for i in range(n))
    started = time.perf_counter()
    result = campaign.add_recipients(numbers)
    add_seconds = time.perf_counter() - started
    print(f"add_recipients: {result.added} numbers in {add_seconds:.2f} s")
    per_operator = dict(
        Message.objects.order_by().values_list("operator").annotate(n=django.db.models.Count("pk"))
    )
    print(f"  operators stored: {per_operator}")

    _give_outcomes(connection)
    import django_smsclub.exports as exports

    before = _reset_peak()
    started = time.perf_counter()
    response = exports.csv_response(campaign)
    size = rows = 0
    for chunk in response.streaming_content:
        size += len(chunk)
        rows += chunk.count(b"\n")
    export_seconds = time.perf_counter() - started
    growth = _peak() - before
    print(
        f"streamed export: {rows - 1} rows, {size / 1e6:.1f} MB in {export_seconds:.2f} s "
        f"({(rows - 1) / export_seconds:,.0f} rows/s); peak RSS grew {growth / 1024:.1f} MiB"
    )

    before = _reset_peak()
    started = time.perf_counter()
    everything = list(
        Message.objects.filter(campaign=campaign).order_by("pk").values_list(*exports.FIELDS)
    )
    body = "".join(exports.csv_lines(everything))
    naive_seconds = time.perf_counter() - started
    growth = _peak() - before
    print(
        f"for contrast, all rows in a list: {len(body.encode()) / 1e6:.1f} MB in "
        f"{naive_seconds:.2f} s; peak RSS grew {growth / 1024:.1f} MiB"
    )


def _give_outcomes(connection) -> None:
    """Two thirds delivered after a few seconds, the rest failed or unknown, some with a
    formula-like error; metadata on every message."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE django_smsclub_message SET
                sent_at = created_at,
                finished_at = created_at + (id % 90 + 1) * interval '1 second',
                status = CASE id % 3 WHEN 0 THEN 'failed' WHEN 1 THEN 'delivered'
                         ELSE CASE WHEN id % 2 = 0 THEN 'delivered' ELSE 'unknown' END END,
                error = CASE id % 3 WHEN 0 THEN '=HYPERLINK("http://x")' ELSE '' END,
                metadata = jsonb_build_object('order', id, 'note', '+1 coupon')
            """
        )


def _reset_peak() -> int:
    """Reset the peak RSS where Linux allows it (``clear_refs``); the current peak, in KiB."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _peak()


def _peak() -> int:
    """The peak RSS since the last reset (``VmHWM``), in KiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")


def _drop_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


if __name__ == "__main__":
    main()
