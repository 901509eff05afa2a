"""Celery tasks: thin wrappers over :mod:`django_smsclub.services`.

``send_queued`` is enqueued when messages are committed; ``send_due``, ``poll_reports`` and
``sweep`` are periodic (see :data:`django_smsclub.celery.beat_schedule`). Every task is safe to
run twice at once: the services claim their rows. ``deliver_webhooks`` is enqueued when
webhook events are recorded and for each retry time; ``webhooks_due`` is its periodic safety net.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from celery import shared_task
from django.utils import timezone

from . import conf, selectors, services
from .exceptions import ConfigurationError
from .services import webhooks

logger = logging.getLogger("django_smsclub")

#: Seconds a task works before handing the rest to a fresh task, so one long backlog neither
#: holds a worker for hours nor outlives a broker's visibility timeout.
TIME_BUDGET = 60.0


@shared_task(name="django_smsclub.tasks.send_queued", ignore_result=True)
def send_queued(gateway: str | None = None) -> int:
    """Send the due messages of ``gateway`` (the default one if None)."""
    name = gateway or conf.default_gateway_name()
    if not selectors.sent_by_workers(name):
        return 0
    handled = services.send_due(name, time_budget=TIME_BUDGET)
    if handled and selectors.has_due_messages(name):
        send_queued.delay(name)
    return handled


@shared_task(name="django_smsclub.tasks.send_due", ignore_result=True)
def send_due() -> list[str]:
    """Start a send for every gateway with due messages: scheduled ones, backoffs, lost tasks."""
    names = selectors.gateways_with_due_messages()
    for name in names:
        send_queued.delay(name)
    return names


@shared_task(name="django_smsclub.tasks.poll_reports", ignore_result=True)
def poll_reports(gateway: str | None = None) -> int:
    """Poll the due delivery reports of ``gateway``, or of every gateway that has some."""
    names = [gateway] if gateway else selectors.gateways_with_due_reports()
    return sum(services.poll_due(name, time_budget=TIME_BUDGET) for name in names)


@shared_task(name="django_smsclub.tasks.sweep", ignore_result=True)
def sweep() -> dict[str, int]:
    """Settle claims dead workers left behind; move campaigns to running and done."""
    return {
        "stale_claims": services.sweep_stale_claims(),
        "campaigns": services.refresh_campaigns(),
    }


@shared_task(name="django_smsclub.tasks.deliver_webhooks", ignore_result=True)
def deliver_webhooks() -> int:
    """Deliver the due webhook events; hand what is left to a fresh task after the budget."""
    made = webhooks.deliver_due(time_budget=TIME_BUDGET)
    if made and webhooks.due_deliveries().exists():
        deliver_webhooks.delay()
    return made


@shared_task(name="django_smsclub.tasks.webhooks_due", ignore_result=True)
def webhooks_due() -> bool:
    """Periodic safety net: sync the endpoints of ``SMSCLUB["WEBHOOKS"]`` and start a delivery
    if any is due (a lost task, a broker that was down when one was asked for)."""
    try:
        webhooks.sync_endpoints()
    except ConfigurationError as exc:  # manage.py check names it; deliveries go on meanwhile
        logger.error("webhook endpoints are not synced: %s", exc)
    due = webhooks.due_deliveries().exists()
    if due:
        deliver_webhooks.delay()
    return due


def on_webhooks_requested(sender: Any, *, when: datetime | None = None, **kwargs: Any) -> None:
    """Receiver of :data:`django_smsclub.signals.webhooks_requested`: deliver at ``when``."""
    if when is not None and when > timezone.now():
        deliver_webhooks.apply_async(eta=when)
    else:
        deliver_webhooks.delay()


def on_poll_requested(sender: Any, *, gateway: str, when: datetime, **kwargs: Any) -> None:
    """Receiver of :data:`django_smsclub.signals.poll_requested`: poll ``gateway``'s reports
    at ``when``."""
    if when > timezone.now():
        poll_reports.apply_async((gateway,), eta=when)
    else:
        poll_reports.delay(gateway)


def on_send_requested(
    sender: Any, *, gateway: str, when: datetime | None = None, tasks_count: int = 1, **kwargs: Any
) -> None:
    """Receiver of :data:`django_smsclub.signals.send_requested`: start ``tasks_count`` send
    tasks for ``gateway``, at ``when`` if that is later than now."""
    for _ in range(tasks_count):
        if when is not None and when > timezone.now():
            send_queued.apply_async((gateway,), eta=when)
        else:
            send_queued.delay(gateway)
