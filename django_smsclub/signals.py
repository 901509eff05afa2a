"""What the package tells the host project about its messages.

Every signal is sent with ``sender=Message`` once per status change, after the transaction that
made the change commits. A receiver that raises is logged (logger ``django_smsclub``) and
changes nothing else: the other receivers still run and the status stays as recorded.

``message_finished`` is sent once per message. One correction can follow it: a message swept
to ``unknown`` because its worker's claim ran out, whose send then comes back accepted, moves
``unknown`` -> ``sent`` (a ``message_status_changed`` with ``old_status="unknown"``) and is
tracked on; its real final status sends ``message_status_changed`` and ``message_delivered``
or ``message_failed`` again, but not ``message_finished``, and its ``finished_at`` stays the
time it was first final.

``campaign_finished`` is sent with ``sender=Campaign`` once each time a campaign becomes done,
after that commits (by the ``sweep`` task, which finds the running campaigns with every
message final).
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

from .status import FAILURE_STATUSES, FINAL_STATUSES, Status

logger = logging.getLogger("django_smsclub")

#: Any status change of a message; provides: message, old_status, new_status
message_status_changed = Signal()
#: Every part of a message reached the phone; provides: message, old_status, new_status
message_delivered = Signal()
#: A message ended undelivered, expired, rejected, failed or unknown; provides: message,
#: old_status, new_status
message_failed = Signal()
#: A message reached a final status of any kind; provides: message, old_status, new_status
message_finished = Signal()

#: A campaign became done: every message of it is final. Sent once each time it does (a done
#: campaign given retries runs, and is done, again), after the commit, with ``sender=Campaign``;
#: provides: campaign
campaign_finished = Signal()

#: Queued messages of a gateway are due now or at ``when``: ask workers to send them. Sent by
#: the services after commit and received by :mod:`django_smsclub.tasks` (connected in
#: ``AppConfig.ready()``), so the services never import the tasks; provides: gateway, when,
#: tasks_count
send_requested = Signal()
#: Delivery reports of a gateway are due at ``when``: ask a worker to poll them then. Sent by
#: the services after a send is recorded and after each poll round (received like
#: ``send_requested``); provides: gateway, when
poll_requested = Signal()
#: Webhook deliveries are due now (``when`` None) or at ``when``: ask a worker to deliver them
#: (received like ``send_requested``); provides: when
webhooks_requested = Signal()


def notify(
    message: Any, old_status: str, new_status: str, *, finished_before: bool = False
) -> None:
    """Send every signal one status change calls for; log the receivers that fail.

    ``finished_before``: the message was final once already (a corrected ``unknown``), so
    ``message_finished`` is not sent again.
    """
    signals = [("message_status_changed", message_status_changed)]
    if new_status == Status.DELIVERED:
        signals.append(("message_delivered", message_delivered))
    if new_status in FAILURE_STATUSES:
        signals.append(("message_failed", message_failed))
    if new_status in FINAL_STATUSES and not finished_before:
        signals.append(("message_finished", message_finished))
    for name, signal in signals:
        results = signal.send_robust(
            sender=type(message), message=message, old_status=old_status, new_status=new_status
        )
        for receiver, result in results:
            if isinstance(result, Exception):
                logger.error(
                    "receiver %s of %s failed for message %s (%s -> %s)",
                    getattr(receiver, "__qualname__", None) or repr(receiver),
                    name,
                    message.pk,
                    old_status,
                    new_status,
                    exc_info=(type(result), result, result.__traceback__),
                )


def notify_campaign_finished(campaigns: Any) -> None:
    """Send :data:`campaign_finished` for each of ``campaigns``; log the receivers that fail."""
    for campaign in campaigns:
        for receiver, result in campaign_finished.send_robust(
            sender=type(campaign), campaign=campaign
        ):
            if isinstance(result, Exception):
                logger.error(
                    "receiver %s of campaign_finished failed for campaign %s",
                    getattr(receiver, "__qualname__", None) or repr(receiver),
                    campaign.pk,
                    exc_info=(type(result), result, result.__traceback__),
                )
