"""The API's errors beyond DRF's own: a conflict with a campaign's state, and the services'
problem lines (``InvalidMessage.problems``) as DRF field errors.

Each problem line names its bad value; its opening words say which input it is about.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.settings import api_settings


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The campaign cannot do that in its present state."
    default_code = "conflict"


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
    ("metadata", "metadata"),
    ("statuses", "statuses"),
    ("row ", "recipients"),
]


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
        grouped.setdefault(rename.get(field, field), []).append(problem)
    return grouped
