"""The API's errors beyond DRF's own: a conflict with a campaign's state, and the services'
problem lines (``InvalidMessage.problems``) as DRF field errors.

Each problem line names its bad value; its opening words say which input it is about.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.settings import api_settings

from .. import conf
from ..exceptions import ConfigurationError


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The campaign cannot do that in its present state."
    default_code = "conflict"


#: What a settings error adds for the developer and a client must not read: the names of every
#: configured gateway.
_CONFIGURED = re.compile(r" \(configured: .*\)$", re.DOTALL)

# (opening words, field); the first match wins, so the longer openings come first.
_OPENINGS: list[tuple[str, str]] = [
    ("no recipient: 'items'", "items"),
    ("no recipient", "to"),
    ("phone number", "to"),
    ("item ", "items"),
    ("no sender", "sender"),
    ("sender", "sender"),
    ("placeholder", "text"),
    ("the text's braces", "text"),
    ("text", "text"),
    ("SMSCLUB has no gateway", "gateway"),
    ("SMSCLUB['GATEWAYS']", "gateway"),
    ("gateway", "gateway"),
    ("send_at", "send_at"),
    ("send_window_start", "send_window_start"),
    ("send_window_end", "send_window_end"),
    ("time_zone", "time_zone"),
    ("respect_window", "respect_window"),
    ("marketing", "marketing"),
    ("metadata", "metadata"),
    ("statuses", "statuses"),
    ("idempotency_key", "idempotency_key"),
    ("row ", "recipients"),
    ("recipients", "recipients"),
]


def unknown_gateway(name: object) -> str:
    """What a client is told about a gateway name the settings do not have: that it is
    unknown, not which ones are known."""
    return f"gateway {str(name)!r:.80} is unknown"


def known_gateway(value: str) -> str:
    """``value`` if it names a configured gateway (or is empty: the default one); else a
    field error saying it is unknown."""
    try:
        known = value == "" or value in conf.gateway_names()
    except ConfigurationError:
        known = False
    if not known:
        raise ValidationError(unknown_gateway(value))
    return value


def for_clients(problem: str) -> str:
    """A services problem line as an API client may read it: without the list of configured
    gateways a settings error gives the developer."""
    return _CONFIGURED.sub("", problem)


def problems_by_field(
    problems: Iterable[str], *, rename: Mapping[str, str] | None = None
) -> dict[str, list[str]]:
    """Group problem lines by the input field they are about.

    ``rename`` moves a field's lines elsewhere (say ``{"to": "items"}`` for personal texts,
    whose numbers arrive in ``items``); lines about no known field go to the non-field errors.
    """
    rename = rename or {}
    grouped: dict[str, list[str]] = {}
    for problem in problems:
        field = next(
            (name for opening, name in _OPENINGS if problem.startswith(opening)),
            api_settings.NON_FIELD_ERRORS_KEY,
        )
        grouped.setdefault(rename.get(field, field), []).append(for_clients(problem))
    return grouped
