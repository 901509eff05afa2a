"""Claims as leases: a worker renews the claims it holds while it sends them, so the stale
sweep (:func:`~django_smsclub.services.pipeline.sweep_stale_claims`) takes only the claims of
a worker that died."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from django.db import connections
from django.utils import timezone

from .. import conf
from ..logs import fields
from ..models import Message
from ..status import Status

logger = logging.getLogger("django_smsclub")


@contextmanager
def hold_claims(messages: Sequence[Message]) -> Iterator[None]:
    """Renew the lease of the claims on ``messages`` while the block runs.

    A thread of its own sets ``claimed_at`` to now every third of ``STALE_SENDING_AFTER``
    for those still ``sending``: a slow provider never makes the sweep take the claims of a
    worker that is alive. The thread uses (and closes) its own database connection.
    """
    stop = threading.Event()
    interval = max(conf.stale_sending_after().total_seconds() / 3, 0.05)
    pks = [m.pk for m in messages]
    heart = threading.Thread(
        target=_renew_leases, args=(pks, interval, stop), name="smsclub-lease", daemon=True
    )
    heart.start()
    try:
        yield
    finally:
        stop.set()
        heart.join()


def renew_claims(pks: Sequence[int], *, now: datetime | None = None) -> int:
    """Renew the leases of the claims on ``pks`` still ``sending``; return how many."""
    return Message.objects.filter(pk__in=list(pks), status=Status.SENDING).update(
        claimed_at=now or timezone.now()
    )


def _renew_leases(pks: Sequence[int], interval: float, stop: threading.Event) -> None:
    try:
        while not stop.wait(interval):
            try:
                renew_claims(pks)
            except Exception:
                logger.exception(
                    "could not renew the claims of %d message(s)",
                    len(pks),
                    extra=fields(message_ids=list(pks), count=len(pks), outcome="renew_failed"),
                )
    finally:
        connections.close_all()
