"""``manage.py smsclub_emulator``: run the SMSClub emulator until interrupted."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ...emulator import cli


class Command(BaseCommand):
    help = "Run a local SMSClub emulator (HTTP, XML, JSON and SOAP gateways) on 127.0.0.1."

    def add_arguments(self, parser: CommandParser) -> None:
        cli.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        def write(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        cli.serve(
            options["port"],
            options["deliver_after_polls"],
            write,
            balance=options["balance"],
            **cli.account_options(options),
        )
