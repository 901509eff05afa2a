"""Poll the provider for the delivery reports that are due, from the shell."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Min
from django.utils import timezone

from ... import selectors, services
from ...models import DeliveryReport
from ...status import Status

#: The longest nap between rounds of --until-done, so a new due report waits at most this.
MAX_NAP = 60.0


class Command(BaseCommand):
    help = (
        "Poll SMSClub for the due delivery reports (what the periodic poll_reports task does). "
        "--until-done keeps going, sleeping until the next report is due, until none is pending."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--gateway", help="only this gateway; default: every one with reports")
        parser.add_argument(
            "--until-done", action="store_true", help="poll until no report is pending"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        while True:
            names = (
                [options["gateway"]]
                if options["gateway"]
                else selectors.gateways_with_due_reports()
            )
            for name in names:
                polled = services.poll_due(name)
                if polled:
                    self.stdout.write(f"gateway {name}: polled {polled} report(s)")
            pending = DeliveryReport.objects.filter(status=Status.SENT)
            if options["gateway"]:
                pending = pending.filter(gateway=options["gateway"])
            if not options["until_done"]:
                self.stdout.write(f"{pending.count()} report(s) still pending")
                return
            next_poll = pending.aggregate(at=Min("next_poll_at"))["at"]
            if next_poll is None:
                self.stdout.write("no report is pending")
                return
            nap = (next_poll - timezone.now()).total_seconds()
            time.sleep(min(max(nap, 0.1), MAX_NAP))
