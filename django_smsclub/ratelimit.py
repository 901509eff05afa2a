"""A request rate per provider account, shared by every worker through the Django cache.

SMSClub counts requests per account (the JSON API allows 9 a second), not per process, so the
count lives in the cache (Redis in production): one counter per account and time window,
created with the atomic ``cache.add`` and raised with the atomic ``cache.incr``. A worker over
the limit sleeps until the next window. Workers on different machines share windows as far as
their clocks agree. Without the count (the cache is down, or keeps nothing) the rate cannot be
kept, so no request is made: :meth:`RateLimiter.acquire` raises :class:`RateLimited`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable

from django.core.cache import caches

from .exceptions import ConfigurationError, RateLimited
from .gateways.base import Gateway

logger = logging.getLogger("django_smsclub")

KEY_PREFIX = "django_smsclub:rate"
#: Counters found gone right after ``cache.add`` before the cache is taken to keep nothing.
_LOST_COUNTS = 3


class RateLimiter:
    """At most ``rate`` requests a second under ``key``, across every process sharing the cache.

    A rate below 1 means one request every ``1 / rate`` seconds.
    """

    def __init__(
        self,
        key: str,
        rate: float,
        *,
        cache_alias: str = "default",
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
            raise ConfigurationError(f"RATE_LIMIT {rate!r} must be a positive number per second")
        self.key = key
        self.window = 1.0 if rate >= 1 else 1.0 / rate
        self.capacity = max(1, math.floor(rate * self.window))
        self.cache_alias = cache_alias
        self.clock = clock
        self.sleep = sleep

    def acquire(self) -> float:
        """Wait until one more request fits in the rate; return the seconds waited.

        Raises :class:`RateLimited` when the cache cannot count: sending on unlimited would
        break the provider's limit for every worker at once (a send is retried later, a
        status poll waits for its next turn).
        """
        cache = caches[self.cache_alias]
        # Long enough to outlive its window even when clocks differ a little.
        ttl = math.ceil(self.window * 2) + 1
        waited = 0.0
        lost = 0
        while True:
            now = self.clock()
            window = math.floor(now / self.window)
            key = f"{self.key}:{window}"
            try:
                cache.add(key, 0, timeout=ttl)
                count = cache.incr(key)
            except ValueError:
                # The counter expired between add and incr: start the window again. A cache
                # that never keeps it (DummyCache) would loop here for ever.
                lost += 1
                if lost < _LOST_COUNTS:
                    continue
                raise self._cannot_count("the cache keeps no count") from None
            except Exception as exc:
                why = f"the cache failed ({type(exc).__name__}: {exc})"
                raise self._cannot_count(why) from None
            if count <= self.capacity:
                return waited
            pause = max((window + 1) * self.window - now, 0.001)
            self.sleep(pause)
            waited += pause

    def _cannot_count(self, why: str) -> RateLimited:
        message = f"rate limit {self.key}: {why[:200]}; the request was not made"
        logger.warning("%s", message)
        return RateLimited(message, retry_after=self.window)


def for_gateway(gateway: Gateway) -> RateLimiter | None:
    """The limiter of ``gateway``'s account, or None when it has no rate limit.

    ``RATE_LIMIT`` in the gateway's settings wins; a gateway class may declare
    ``default_rate_limit`` (the JSON API's 9 a second); ``RATE_LIMIT: 0`` turns it off.
    """
    rate = gateway.rate_limit
    if rate is None or rate == "":
        rate = getattr(type(gateway), "default_rate_limit", None)
    if not rate:
        return None
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"RATE_LIMIT {rate!r} of gateway {gateway.name!r} is not a number per second"
        ) from None
    # The provider counts per account; hashed, because a token is a secret.
    account = gateway.username or gateway.token or f"gateway:{gateway.name}"
    digest = hashlib.sha256(f"{gateway.base_url}|{account}".encode()).hexdigest()[:24]
    return RateLimiter(f"{KEY_PREFIX}:{digest}", rate)
