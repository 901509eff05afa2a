"""An in-memory gateway for tests and development, like ``django.core.mail.outbox``.

Nothing leaves the process. Every accepted SMS lands in :data:`outbox`; status queries answer
from :data:`states`, falling back to the ``OPTIONS["STATE"]`` word (``DELIVRD`` by default).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from .. import text
from ..exceptions import GatewayError
from .base import Balance, Gateway, Outgoing


@dataclass(frozen=True)
class SentSms:
    """One accepted message as the locmem gateway recorded it."""

    gateway: str
    sender: str
    recipient: str
    text: str
    smsc_ids: tuple[str, ...]
    ref: object = None


#: Every message the locmem gateways accepted, in order.
outbox: list[SentSms] = []
#: Status word per SMSC ID, for tests to set; IDs not here answer the gateway's default word.
states: dict[str, str] = {}

_ids = itertools.count(1)
_lock = threading.Lock()


def reset() -> None:
    """Empty the outbox and forget every status word set."""
    with _lock:
        outbox.clear()
        states.clear()


class LocmemGateway(Gateway):
    max_batch = 1000
    max_state_batch = 1000

    def send_batch(
        self, sender: str, messages: list[Outgoing]
    ) -> list[Sequence[str] | GatewayError]:
        results: list[Sequence[str] | GatewayError] = []
        with _lock:
            for message in messages:
                ids = tuple(str(next(_ids)) for _ in range(text.count_parts(message.text)))
                outbox.append(
                    SentSms(self.name, sender, message.recipient, message.text, ids, message.ref)
                )
                results.append(ids)
        return results

    def fetch_state_batch(self, smsc_ids: list[str]) -> Mapping[str, str]:
        default = str(self.options.get("STATE", "DELIVRD"))
        with _lock:
            return {smsc_id: states.get(smsc_id, default) for smsc_id in smsc_ids}

    def balance(self) -> Balance:
        return Balance(Decimal(str(self.options.get("BALANCE", "0"))), currency="UAH")
