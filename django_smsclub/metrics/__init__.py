"""Prometheus metrics (``pip install django-smsclub[metrics]``): hooks the low layers call.

Without ``prometheus_client`` every hook here is a no-op and nothing else changes. This module
reads no database and imports nothing of the package, so the gateways and the rate limiter may
call it; what is counted at scrape time from the database is in :mod:`.collector`, the view in
:mod:`.views` (``path("metrics", include("django_smsclub.metrics.urls"))``).

- ``smsclub_messages_total{gateway, status}``: status changes of messages, by the status
  reached (from ``message_status_changed``, connected by :func:`.collector.install`);
- ``smsclub_gateway_requests_total{gateway, outcome}`` and
  ``smsclub_gateway_request_seconds{gateway, outcome}``: requests to the provider (HTTP, XML,
  JSON, SOAP) and SMPP submits, ``outcome`` ``ok`` or what went wrong;
- ``smsclub_rate_limit_waits_total{account}`` and ``smsclub_rate_limit_wait_seconds{account}``:
  requests that waited for the rate limit of an account (``account`` a short hash, never the
  login), and how long.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

try:
    import prometheus_client
except ImportError:  # the [metrics] extra is not installed: every hook does nothing
    prometheus_client = None  # type: ignore[assignment]

F = TypeVar("F", bound=Callable[..., Any])

#: Request latency buckets, in seconds: a healthy request takes tenths, TIMEOUT is 30.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

ENABLED = prometheus_client is not None

if prometheus_client is not None:
    MESSAGES = prometheus_client.Counter(
        "smsclub_messages",
        "Status changes of messages, by the status reached.",
        ["gateway", "status"],
    )
    REQUESTS = prometheus_client.Counter(
        "smsclub_gateway_requests",
        "Requests made to the provider, by outcome.",
        ["gateway", "outcome"],
    )
    REQUEST_SECONDS = prometheus_client.Histogram(
        "smsclub_gateway_request_seconds",
        "Time a request to the provider took, by outcome.",
        ["gateway", "outcome"],
        buckets=LATENCY_BUCKETS,
    )
    RATE_LIMIT_WAITS = prometheus_client.Counter(
        "smsclub_rate_limit_waits",
        "Requests that waited for their account's rate limit.",
        ["account"],
    )
    RATE_LIMIT_WAIT_SECONDS = prometheus_client.Histogram(
        "smsclub_rate_limit_wait_seconds",
        "Seconds a request waited for its account's rate limit (only those that waited).",
        ["account"],
        buckets=WAIT_BUCKETS,
    )


def status_changed(gateway: str, status: str) -> None:
    """Count one message reaching ``status``."""
    if prometheus_client is not None:
        MESSAGES.labels(gateway=gateway or "", status=status).inc()


def request_done(gateway: str, outcome: str, seconds: float) -> None:
    """Count one request to the provider and its latency."""
    if prometheus_client is not None:
        REQUESTS.labels(gateway=gateway, outcome=outcome).inc()
        REQUEST_SECONDS.labels(gateway=gateway, outcome=outcome).observe(max(seconds, 0.0))


def rate_limit_waited(key: str, seconds: float) -> None:
    """Count a request that waited ``seconds`` for the limiter under ``key`` (none if 0)."""
    if prometheus_client is not None and seconds > 0:
        account = key.rpartition(":")[2][:8]
        RATE_LIMIT_WAITS.labels(account=account).inc()
        RATE_LIMIT_WAIT_SECONDS.labels(account=account).observe(seconds)


def timed_request(method: F) -> F:
    """Decorate a gateway's request method: each call counted with its latency, ``outcome``
    ``ok`` when it returns, else the name of the exception it raised."""

    @functools.wraps(method)
    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        outcome = "ok"
        try:
            return method(self, *args, **kwargs)
        except BaseException as exc:
            outcome = type(exc).__name__
            raise
        finally:
            request_done(str(getattr(self, "name", "")), outcome, time.monotonic() - started)

    return timed  # type: ignore[return-value]


def timed_wait(method: F) -> F:
    """Decorate a rate limiter's ``acquire`` (which returns the seconds it waited)."""

    @functools.wraps(method)
    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        waited = method(self, *args, **kwargs)
        rate_limit_waited(str(getattr(self, "key", "")), float(waited or 0.0))
        return waited

    return counted  # type: ignore[return-value]
