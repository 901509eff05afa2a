"""The checks a send's options must pass before anything is stored: gateway, sender, send
time, idempotency key, metadata, text."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from .. import conf
from ..exceptions import ConfigurationError
from ..gateways import Gateway, get_gateway
from ..text import sender_problem, text_problem

IDEMPOTENCY_KEY_MAX_LENGTH = 200
#: The longest line a recipients CSV may have, in bytes (its ending aside): API and admin.
CSV_LINE_MAX_BYTES = 64 * 1024


#: ``\u0000`` in JSON text, not preceded by an escaped backslash.
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


@dataclass(frozen=True)
class Options:
    gateway: Gateway | None
    sender: str
    send_at: datetime | None
    idempotency_key: str | None
    metadata: dict[str, Any]


def check_options(
    gateway_name: str | None,
    sender: str | None,
    send_at: datetime | None,
    idempotency_key: str | None,
    metadata: Mapping[str, Any] | None,
) -> tuple[Options, list[str]]:
    problems: list[str] = []
    gateway: Gateway | None = None
    try:
        gateway = get_gateway(gateway_name)
    except ConfigurationError as exc:
        problems.append(str(exc))
    if gateway is not None:
        sender = sender or gateway.default_sender
        problems.extend(sender_problems(sender, gateway))
    if send_at is not None and not isinstance(send_at, datetime):
        problems.append(f"send_at must be a datetime, not {type(send_at).__name__} {send_at!r:.40}")
        send_at = None
    elif send_at is not None and timezone.is_naive(send_at):
        send_at = timezone.make_aware(send_at)
    if idempotency_key is not None and not (
        isinstance(idempotency_key, str)
        and idempotency_key.strip()
        and len(idempotency_key) <= IDEMPOTENCY_KEY_MAX_LENGTH
    ):
        problems.append(
            f"idempotency_key {idempotency_key!r:.60} must be a non-empty string of at most "
            f"{IDEMPOTENCY_KEY_MAX_LENGTH} characters"
        )
    metadata, metadata_problems = check_metadata(metadata)
    problems.extend(metadata_problems)
    options = Options(
        gateway=gateway,
        sender=sender or "",
        send_at=send_at,
        idempotency_key=idempotency_key,
        metadata=metadata,
    )
    return options, problems


def check_metadata(metadata: object) -> tuple[dict[str, Any], list[str]]:
    """``metadata`` as a message stores it, and what is wrong with it: not a dict, not JSON,
    a NUL character, or more than ``SMSCLUB['METADATA_MAX_BYTES']`` (4 KiB by default) as
    JSON in UTF-8. Every message of a send carries a copy, so the size is bounded here, and
    the JSON is written only up to one byte past the limit, whatever ``metadata`` holds."""
    if metadata is None:
        return {}, []
    if not isinstance(metadata, Mapping):
        return {}, [f"metadata must be a dict, not {type(metadata).__name__}"]
    limit = conf.metadata_max_bytes()
    encoder = DjangoJSONEncoder(ensure_ascii=False)
    pieces: list[str] = []
    size = 0
    try:
        for piece in encoder.iterencode(metadata):
            pieces.append(piece)
            size += len(piece.encode("utf-8", "surrogatepass"))
            if size > limit:
                return {}, [
                    f"metadata is over {limit} bytes as JSON; a message carries at most "
                    f"{limit} (SMSCLUB['METADATA_MAX_BYTES'])"
                ]
    except (TypeError, ValueError, RecursionError) as exc:
        return {}, [f"metadata cannot be stored as JSON: {exc!s:.200}"]
    # PostgreSQL's jsonb cannot hold a NUL character, escaped or not.
    if _JSON_NUL.search("".join(pieces)):
        return {}, ["metadata cannot hold a NUL character (\\u0000)"]
    return dict(metadata), []


def as_list(given: Any, problems: list[str]) -> list[Any]:
    """``given`` as a list: one number alone, or the items of an iterable."""
    if isinstance(given, str | int):
        return [given]
    try:
        return list(given)
    except TypeError:
        problems.append(f"recipients must be a number or an iterable, not {given!r:.40}")
        return []


def sender_problems(sender: str | None, gateway: Gateway) -> list[str]:
    if not sender:
        return [f"no sender: pass sender= or set SENDER of gateway {gateway.name!r}"]
    problem = sender_problem(sender)
    return [problem] if problem else []


def text_problem_for(body: object, gateway: Gateway | None) -> str | None:
    """Why ``body`` cannot go, by the SMS rules and ``gateway``'s own (Windows-1251, ...)."""
    return text_problem(body) if gateway is None else gateway.text_problem(body)
