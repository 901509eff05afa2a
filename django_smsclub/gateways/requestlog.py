"""The log record of an answered send request: one per request, one per distinct refusal."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ..exceptions import GatewayError
from ..logs import fields, message_ids
from .outcomes import Planned

logger = logging.getLogger("django_smsclub.gateways")


def log_request(
    gateway: str,
    batch: list[Planned],
    ids_per_message: Sequence[Sequence[str] | GatewayError],
    refs: list[Any] | None,
    duration_ms: int,
) -> None:
    """One record for a send request that was answered, and one per distinct error of
    the messages it refused (or could not read the IDs of)."""
    smsc_ids = [i for ids in ids_per_message if not isinstance(ids, GatewayError) for i in ids]
    errors: dict[tuple[str, str], list[Any]] = {}
    for (_, item), ids in zip(batch, ids_per_message, strict=True):
        if isinstance(ids, GatewayError):
            errors.setdefault((type(ids).__name__, str(ids)), []).append(item.ref)
    logger.info(
        "gateway %s: request for %d message(s) answered in %d ms: %d accepted, %d not",
        gateway,
        len(batch),
        duration_ms,
        len(batch) - sum(len(r) for r in errors.values()),
        sum(len(r) for r in errors.values()),
        extra=fields(
            gateway=gateway,
            message_ids=refs,
            smsc_ids=smsc_ids,
            count=len(batch),
            outcome="ok",
            duration_ms=duration_ms,
        ),
    )
    for (name, error), owners in errors.items():
        logger.warning(
            "gateway %s: %d message(s) not accepted: %s",
            gateway,
            len(owners),
            error,
            extra=fields(
                gateway=gateway,
                message_ids=message_ids(owners),
                count=len(owners),
                outcome=name,
                duration_ms=duration_ms,
            ),
        )
