from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...exceptions import SmsClubError
from ...gateways import get_gateway
from ...money import format_balance
from ...ratelimit import balance_of


class Command(BaseCommand):
    help = "Print the SMSClub account balance of a configured gateway."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--gateway", help="gateway name from SMSCLUB['GATEWAYS']")

    def handle(self, *args: Any, gateway: str | None = None, **options: Any) -> None:
        try:
            chosen = get_gateway(gateway)
            balance = balance_of(chosen)
        except SmsClubError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(format_balance(chosen.name, balance))
