"""What a gateway takes and gives back: outgoing texts, their outcomes, the balance."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..exceptions import GatewayError, InvalidMessage

#: The longest SMSC ID taken from a reply (what a delivery report can store).
MAX_SMSC_ID_LENGTH = 64


@dataclass(frozen=True)
class Outgoing:
    """One text to one recipient. ``ref`` is the caller's handle (say a message pk).

    ``sender`` is the message's own alpha-name; None means the ``sender`` given to
    :meth:`Gateway.send` (and failing that the gateway's ``SENDER``).
    """

    recipient: str
    text: str
    ref: Any = None
    sender: str | None = None


#: One message of a planned request: its position in the call, and the message made ready.
Planned = tuple[int, Outgoing]


@dataclass(frozen=True)
class SendOutcome:
    """What became of one :class:`Outgoing`: its SMSC IDs (one per part) or its error.

    The error is :class:`InvalidMessage` for a message refused before any request (see
    ``skip_invalid`` of :meth:`Gateway.send`), else the :class:`GatewayError` of its request.
    """

    outgoing: Outgoing
    smsc_ids: tuple[str, ...] = ()
    error: GatewayError | InvalidMessage | None = None

    @property
    def accepted(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Balance:
    """Money on the account; ``credit`` and ``currency`` where the gateway reports them."""

    amount: Decimal
    credit: Decimal | None = None
    currency: str | None = None


def is_smsc_id(value: object) -> bool:
    """Whether ``value`` can be an SMSC ID: 1-64 printable characters, none of them a space."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_SMSC_ID_LENGTH
        and value.isprintable()
        and not any(c.isspace() for c in value)
    )
