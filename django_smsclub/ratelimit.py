"""A request rate per provider account, shared by every worker and machine.

SMSClub counts requests per account (the JSON API allows 9 in any sliding second), not per
process. With a Redis cache the limit is exact: a sliding log of the account's requests in one
Lua script, on Redis's own clock, lets at most RATE_LIMIT requests into any window of one
second (plus ``RATE_LIMIT_MARGIN``, so requests that reach the provider a little late still
fit its second). Every request to the account takes a token: sends, status polls, balance.

Another cache (memcached, database) gets fixed windows (``cache.add`` + ``cache.incr``) at half
the rate, the most that keeps any sliding window within the limit. Without a count (the cache
is down, or keeps nothing) the rate cannot be kept, so no request is made:
:meth:`RateLimiter.acquire` raises :class:`RateLimited`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from django.core.cache import caches

from . import conf, metrics
from .exceptions import ConfigurationError, RateLimited
from .gateways.base import Balance, Gateway

logger = logging.getLogger("django_smsclub")

KEY_PREFIX = "django_smsclub:rate"
#: Counters found gone right after ``cache.add`` before the cache is taken to keep nothing.
_LOST_COUNTS = 3

#: KEYS[1] the log (a sorted set of request times in microseconds), KEYS[2] its sequence;
#: ARGV[1] requests allowed in a window, ARGV[2] the window in microseconds. Returns 0 when
#: the request may go now (and logs it), else the microseconds until it may.
SLIDING_LOG = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cap = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < cap then
  local seq = redis.call('INCR', KEYS[2])
  redis.call('ZADD', KEYS[1], now, tostring(now) .. ':' .. tostring(seq))
  local ttl = math.ceil(window / 1000) + 1000
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(math.ceil(tonumber(oldest[2]) + window - now), 1)
"""


class RateLimiter:
    """At most ``rate`` requests in any second under ``key``, across every process sharing
    the cache. A rate below 1 means one request in any ``1 / rate`` seconds."""

    def __init__(
        self,
        key: str,
        rate: float,
        *,
        cache_alias: str = "default",
        margin: float = 0.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
            raise ConfigurationError(f"RATE_LIMIT {rate!r} must be a positive number per second")
        self.key = key
        self.period = 1.0 if rate >= 1 else 1.0 / rate
        self.capacity = max(1, math.floor(rate * self.period))
        self.window = self.period + margin
        self.cache_alias = cache_alias
        self.clock = clock
        self.sleep = sleep

    @metrics.timed_wait
    def acquire(self) -> float:
        """Wait until one more request fits in the rate; return the seconds waited.

        Raises :class:`RateLimited` when the cache cannot count: sending on unlimited would
        break the provider's limit for every worker at once (a send is retried later, a
        status poll waits for its next turn).
        """
        client = _redis_client(caches[self.cache_alias])
        if client is not None:
            return self._acquire_sliding(client)
        return self._acquire_windows()

    def _acquire_sliding(self, client: Any) -> float:
        keys = [f"{{{self.key}}}:log", f"{{{self.key}}}:seq"]
        window_us = math.ceil(self.window * 1_000_000)
        waited = 0.0
        while True:
            try:
                wait_us = int(client.eval(SLIDING_LOG, 2, *keys, self.capacity, window_us))
            except Exception as exc:
                why = f"Redis failed ({type(exc).__name__}: {exc})"
                raise self._cannot_count(why) from None
            if wait_us <= 0:
                return waited
            pause = wait_us / 1_000_000
            self.sleep(pause)
            waited += pause

    def _acquire_windows(self) -> float:
        cache = caches[self.cache_alias]
        # Half the capacity in each fixed window: two neighbouring windows, the most a
        # sliding one overlaps, then hold no more than the limit.
        capacity = max(1, self.capacity // 2)
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
            if count <= capacity:
                return waited
            pause = max((window + 1) * self.window - now, 0.001)
            self.sleep(pause)
            waited += pause

    def _cannot_count(self, why: str) -> RateLimited:
        message = f"rate limit {self.key}: {why[:200]}; the request was not made"
        logger.warning("%s", message)
        return RateLimited(message, retry_after=self.window)


def balance_of(gateway: Gateway) -> Balance:
    """``gateway.balance()`` after one token of its account's rate limit."""
    limiter = for_gateway(gateway)
    if limiter is not None:
        limiter.acquire()
    return gateway.balance()


def _redis_client(cache: Any) -> Any:
    """The redis-py client behind ``cache`` (Django's RedisCache or django-redis), or None."""
    inner = getattr(cache, "_cache", None)
    get_client = getattr(inner, "get_client", None)
    if get_client is not None and type(cache).__name__ == "RedisCache":
        return get_client(write=True)
    client = getattr(cache, "client", None)
    if client is not None and hasattr(client, "get_client"):
        return client.get_client(write=True)
    return None


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
    # The provider counts per account, whichever gateway (HTTP, XML, JSON...) the requests
    # take: gateways with the same USERNAME (or TOKEN) share one budget. Hashed, because a
    # token is a secret.
    account = gateway.username or gateway.token or f"gateway:{gateway.name}"
    digest = hashlib.sha256(account.encode()).hexdigest()[:24]
    return RateLimiter(f"{KEY_PREFIX}:{digest}", rate, margin=conf.rate_limit_margin())
