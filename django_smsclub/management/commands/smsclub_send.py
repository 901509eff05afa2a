"""Send one text to one or more numbers from the shell, and optionally follow it to the end."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from celery import current_app
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ... import send_sms, services
from ...exceptions import InvalidMessage
from ...models import Message
from ...status import Status

BAR_WIDTH = 30


class Command(BaseCommand):
    help = (
        "Queue an SMS to each --to number. A Celery worker sends it; --inline sends it from "
        "this process instead (for a machine without a worker). --wait shows a progress bar "
        "until every message is final, polling the provider meanwhile, then a summary."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--to", action="append", required=True, metavar="NUMBER", help="repeat for more"
        )
        parser.add_argument("--text", required=True, help="the message (the same for every --to)")
        parser.add_argument("--sender", help="alpha-name; default: the gateway's SENDER")
        parser.add_argument("--gateway", help="a key of SMSCLUB['GATEWAYS']; default: default")
        parser.add_argument(
            "--inline",
            action="store_true",
            help="run the send task in this process (Celery's eager mode), not on a worker; "
            "exits non-zero with the reason when a message is not sent",
        )
        parser.add_argument(
            "--wait", action="store_true", help="follow until every message is final"
        )
        parser.add_argument(
            "--interval", type=float, default=2.0, help="seconds between polls (default 2)"
        )
        parser.add_argument(
            "--timeout", type=float, default=600.0, help="give up waiting after (default 600 s)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        eager = current_app.conf.task_always_eager
        if options["inline"]:
            # The task enqueued on commit then runs right here, before send_sms returns.
            current_app.conf.task_always_eager = True
        try:
            messages = send_sms(
                options["to"],
                options["text"],
                sender=options["sender"],
                gateway=options["gateway"],
            )
        except InvalidMessage as exc:
            raise CommandError("\n".join(exc.problems)) from None
        finally:
            current_app.conf.task_always_eager = eager
        self.stdout.write(
            f"Queued {len(messages)} message(s) on gateway {messages[0].gateway!r}: "
            f"ids {', '.join(str(m.pk) for m in messages)}"
        )
        if options["inline"] and not options["wait"]:
            self._check_inline(messages)
        if options["wait"]:
            self._wait(messages, options)

    def _check_inline(self, messages: list[Message]) -> None:
        """After an inline send: every message the provider did not accept is an error."""
        current = list(Message.objects.filter(pk__in=[m.pk for m in messages]).order_by("pk"))
        unsent = [m for m in current if m.status not in (Status.SENT, Status.DELIVERED)]
        if unsent:
            self._summary(current)
            first = unsent[0]
            raise CommandError(
                f"{len(unsent)} of {len(current)} message(s) not sent "
                f"({first.status}: {first.error or 'no reason recorded'})"
            )

    def _wait(self, messages: list[Message], options: dict[str, Any]) -> None:
        pks = [m.pk for m in messages]
        gateway = messages[0].gateway
        deadline = time.monotonic() + options["timeout"]
        shown = ""
        while True:
            current = list(Message.objects.filter(pk__in=pks).order_by("pk"))
            line = _progress(current)
            if line != shown:
                self.stdout.write("\r" + line, ending="")
                self.stdout.flush()
                shown = line
            if all(m.is_final for m in current):
                break
            if time.monotonic() >= deadline:
                self.stdout.write("")
                self._summary(current)
                raise CommandError(
                    f"gave up after {options['timeout']:g} s; "
                    f"{sum(not m.is_final for m in current)} message(s) are not final yet"
                )
            if options["inline"]:
                # Retries after a backoff come due while we wait; no worker will take them.
                services.send_due(gateway)
            services.poll_now([m for m in current if m.status == Status.SENT])
            time.sleep(options["interval"])
        self.stdout.write("")
        self._summary(current)
        undelivered = [m for m in current if m.status != Status.DELIVERED]
        if undelivered:
            raise CommandError(f"{len(undelivered)} of {len(current)} message(s) not delivered")

    def _summary(self, messages: list[Message]) -> None:
        self.stdout.write(f"{'recipient':<16}{'status':<13}{'parts':>5}  error")
        for message in messages:
            self.stdout.write(
                f"{message.recipient:<16}{message.status:<13}{message.parts:>5}  "
                f"{message.error[:80]}"
            )


def _progress(messages: list[Message]) -> str:
    final = sum(m.is_final for m in messages)
    filled = BAR_WIDTH * final // len(messages)
    counts = Counter(m.status for m in messages)
    detail = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {final}/{len(messages)} final ({detail})"
