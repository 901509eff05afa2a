"""How an account's money is shown: one formatter for every gateway, used by the CLI and the
admin alike.

Only the JSON API names the currency in its balance reply; the others answer a bare number, in
the account's currency (``CURRENCY`` in the gateway's settings, hryvnias by default). Amounts are
shown to the kopeck whatever precision the reply had (the JSON API answers ``"8111.1700"``).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from . import conf
from .gateways.base import Balance

KOPECK = Decimal("0.01")


def balance_currency(gateway_name: str, balance: Balance) -> str:
    """The currency of ``balance``: as the reply named it, else the account's."""
    return balance.currency or conf.gateway_currency(gateway_name)


def format_amount(amount: Decimal) -> str:
    return str(amount.quantize(KOPECK, rounding=ROUND_HALF_UP))


def format_balance(gateway_name: str, balance: Balance) -> str:
    """``"default: 1034.17 UAH (credit 0.00 UAH)"``, the same for every gateway."""
    currency = balance_currency(gateway_name, balance)
    unit = f" {currency}" if currency else ""
    line = f"{gateway_name}: {format_amount(balance.amount)}{unit}"
    if balance.credit is not None:
        line += f" (credit {format_amount(balance.credit)}{unit})"
    return line
