"""The account balances the admin shows, fetched in the background and cached.

A slow or failing gateway costs a page at most :data:`BALANCE_WAIT` seconds and never breaks
it: an answer that comes later is cached for the next page.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone

from .. import ratelimit
from ..exceptions import ConfigurationError, GatewayError
from ..gateways import get_gateway
from ..money import balance_currency

logger = logging.getLogger("django_smsclub")

#: Seconds a page waits for balances it has not cached; a slower answer shows next time.
BALANCE_WAIT = 3.0
BALANCE_CACHE_SECONDS = 60
BALANCE_ERROR_CACHE_SECONDS = 30
#: Who may see the account's money: the same permission the REST API asks for.
BALANCE_PERMISSION = "django_smsclub.view_balance"


@dataclass(frozen=True)
class BalanceInfo:
    """A gateway's balance, or why it cannot be shown (``error``, or ``pending`` while the
    provider has not answered yet)."""

    gateway: str
    amount: Decimal | None = None
    currency: str = ""
    credit: Decimal | None = None
    error: str = ""
    pending: bool = False
    checked_at: datetime | None = None


_balance_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="smsclub-balance")
_balance_fetches: dict[str, Future[BalanceInfo]] = {}
_balance_lock = threading.Lock()


def gateway_balances(names: Iterable[str], *, wait: float | None = None) -> list[BalanceInfo]:
    """The balance of each gateway: cached, or fetched in parallel for up to ``wait`` seconds
    (:data:`BALANCE_WAIT` by default).

    A fetch still running when the wait ends keeps running and caches its answer for the next
    page. A gateway that fails (GatewayError, a bad setting, a defect) gives an ``error``.
    """
    names = list(dict.fromkeys(names))
    keys = {name: _balance_key(name) for name in names}
    cached = cache.get_many(list(keys.values()))
    fetches = {name: _fetch_balance(name) for name in names if keys[name] not in cached}
    if fetches:
        wait_for(list(fetches.values()), timeout=BALANCE_WAIT if wait is None else wait)
    balances = []
    for name in names:
        if keys[name] in cached:
            balances.append(cached[keys[name]])
        elif fetches[name].done():
            balances.append(fetches[name].result())
        else:
            balances.append(BalanceInfo(name, pending=True))
    return balances


def visible_balances(request: HttpRequest, names: Iterable[str]) -> list[BalanceInfo]:
    """The balances of ``names`` if the user may see them (:data:`BALANCE_PERMISSION`)."""
    if not request.user.has_perm(BALANCE_PERMISSION):
        return []
    return gateway_balances(names)


def _balance_key(name: str) -> str:
    return f"django_smsclub:admin:balance:{name}"


def _fetch_balance(name: str) -> Future[BalanceInfo]:
    with _balance_lock:
        running = _balance_fetches.get(name)
        if running is None or running.done():
            running = _balance_pool.submit(_read_balance, name)
            _balance_fetches[name] = running
        return running


def _read_balance(name: str) -> BalanceInfo:
    try:
        balance = ratelimit.balance_of(get_gateway(name))
    except (GatewayError, ConfigurationError) as exc:
        info = BalanceInfo(name, error=str(exc), checked_at=timezone.now())
    except Exception as exc:
        # A defect in a gateway must not break the admin: show it as unavailable, and log it.
        logger.exception(
            "gateway %s: balance failed",
            name,
            extra={"gateway": name, "outcome": type(exc).__name__},
        )
        info = BalanceInfo(name, error=type(exc).__name__, checked_at=timezone.now())
    else:
        info = BalanceInfo(
            name,
            amount=balance.amount,
            currency=balance_currency(name, balance),
            credit=balance.credit,
            checked_at=timezone.now(),
        )
    timeout = BALANCE_ERROR_CACHE_SECONDS if info.error else BALANCE_CACHE_SECONDS
    cache.set(_balance_key(name), info, timeout)
    return info
