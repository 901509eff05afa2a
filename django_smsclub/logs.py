"""The facts a log record of the package carries as attributes (``extra``), so that a JSON
formatter can index them: one name per fact, the same in every module.

``docs/operations.rst`` has the table of these names (a test keeps the two equal). Every call
that concerns messages, reports or a request to the provider builds its ``extra`` with
:func:`fields`, which refuses a name not listed here and leaves out facts not known.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

#: Each field a record may carry, and what it holds.
FIELDS: dict[str, str] = {
    "gateway": "the gateway's name in ``SMSCLUB['GATEWAYS']``",
    "message_id": "the primary key of the one message the record is about",
    "message_ids": "the primary keys of the messages the record is about (a list)",
    "campaign_id": "the campaign's primary key",
    "smsc_id": "the provider's ID of one part (what a delivery report tracks)",
    "smsc_ids": "the provider's IDs the record is about (a list)",
    "outcome": "what happened (see the table below)",
    "old_status": "a status change's status before (``outcome`` is the status reached)",
    "attempts": "the send attempts the message(s) have had, this one included",
    "count": "how many messages, reports or IDs the record is about",
    "duration_ms": "how long the request to the provider took, in milliseconds (an int)",
}


def fields(**values: Any) -> dict[str, Any]:
    """``extra`` for a log record: the facts given, those that are None left out.

    A name that is not in :data:`FIELDS` is a mistake in this package: :class:`TypeError`.
    """
    unknown = set(values) - FIELDS.keys()
    if unknown:
        raise TypeError(f"not a log field: {', '.join(sorted(unknown))}")
    return {name: value for name, value in values.items() if value is not None}


def message_ids(refs: Iterable[object]) -> list[Any] | None:
    """The message IDs among ``refs`` (an :class:`~.gateways.Outgoing`'s ``ref`` is the
    message's pk in the pipeline; a caller of a gateway may give none): None if there is none."""
    ids = [ref for ref in refs if ref is not None]
    return ids or None


def since(started: float) -> int:
    """Milliseconds from the :func:`time.monotonic` reading ``started`` until now."""
    return round((time.monotonic() - started) * 1000)
