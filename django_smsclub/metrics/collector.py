"""What Prometheus reads from the database at scrape time, and the receiver that counts status
changes. :func:`install` (called by ``AppConfig.ready()``) sets both up once.

- ``smsclub_queue_depth{gateway, status}``: messages ``queued`` and ``sending``;
- ``smsclub_queue_lag_seconds{gateway}``: how long the longest-waiting due message has been
  due (0 when none is: the workers keep up);
- ``smsclub_report_lag_seconds{gateway}``: how far behind its poll time the most overdue report
  is (0 when the poller keeps up).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.utils import timezone

from .. import metrics, selectors, signals

logger = logging.getLogger("django_smsclub")

_installed = threading.Lock()
_done = False


def install() -> None:
    """Count status changes, and register the backlog collector (once per process)."""
    global _done
    with _installed:
        if _done or not metrics.ENABLED:
            return
        signals.message_status_changed.connect(
            on_status_changed, dispatch_uid="django_smsclub.metrics.on_status_changed"
        )
        import prometheus_client

        prometheus_client.REGISTRY.register(BacklogCollector())
        _done = True


def on_status_changed(sender: Any, message: Any, new_status: str, **kwargs: Any) -> None:
    metrics.status_changed(message.gateway, new_status)


class BacklogCollector:
    """Queue depth, queue lag and report lag, read from the database when scraped."""

    def describe(self) -> list[Any]:
        return []  # read the database only when scraped, not when registered

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        depth = GaugeMetricFamily(
            "smsclub_queue_depth", "Messages waiting to be sent.", labels=["gateway", "status"]
        )
        queue_lag = GaugeMetricFamily(
            "smsclub_queue_lag_seconds",
            "How long the longest-waiting due message has been due.",
            labels=["gateway"],
        )
        report_lag = GaugeMetricFamily(
            "smsclub_report_lag_seconds",
            "How far behind its poll time the most overdue delivery report is.",
            labels=["gateway"],
        )
        try:
            backlogs = selectors.backlogs()
        except Exception:  # a scrape must not fail with the database: show nothing instead
            logger.exception(
                "metrics: the backlog could not be read", extra={"outcome": "scrape_failed"}
            )
            return
        now = timezone.now()
        for backlog in backlogs:
            depth.add_metric([backlog.gateway, "queued"], backlog.queued)
            depth.add_metric([backlog.gateway, "sending"], backlog.sending)
            queue_lag.add_metric([backlog.gateway], _behind(now, backlog.oldest_due_message))
            report_lag.add_metric([backlog.gateway], _behind(now, backlog.oldest_due_report))
        yield depth
        yield queue_lag
        yield report_lag


def _behind(now: datetime, since: datetime | None) -> float:
    return max((now - since).total_seconds(), 0.0) if since else 0.0
