"""OpenAPI pieces the views share: the ``Idempotency-Key`` header and the error responses."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from . import idempotency
from .fields import RECIPIENT_ROW_SCHEMA
from .recipients import ENCODINGS
from .serializers import DetailSerializer, GatewayErrorSerializer

IDEMPOTENCY_KEY = OpenApiParameter(
    name=idempotency.HEADER,
    location=OpenApiParameter.HEADER,
    type={"type": "string", "minLength": 1, "maxLength": idempotency.KEY_MAX_LENGTH},
    required=False,
    description="Any unique string. A retry with the same key gets the first response (with "
    "`Idempotent-Replayed: true`) and creates nothing; the same key with another request gets "
    "422.",
)

_ERRORS: dict[int, OpenApiResponse] = {
    400: OpenApiResponse(
        OpenApiTypes.OBJECT,
        description="Bad input: each bad field, with a message naming the value.",
    ),
    401: OpenApiResponse(DetailSerializer, description="Not authenticated."),
    403: OpenApiResponse(DetailSerializer, description="Not authenticated, or not permitted."),
    404: OpenApiResponse(DetailSerializer, description="No such object among yours."),
    409: OpenApiResponse(
        DetailSerializer, description="The campaign cannot do that in its present state."
    ),
    415: OpenApiResponse(DetailSerializer, description="A body of a type this does not read."),
    422: OpenApiResponse(
        DetailSerializer, description="The Idempotency-Key was used for another request."
    ),
    429: OpenApiResponse(DetailSerializer, description="Too many requests (the smsclub rate)."),
    503: OpenApiResponse(
        GatewayErrorSerializer, description="The gateway could not answer; no credentials shown."
    ),
}
_ALWAYS = (401, 403, 429)


def responses(ok: dict[int, Any], *errors: int) -> dict[int, Any]:
    """``ok`` and the listed error responses, with those any request may get."""
    return {**ok, **{code: _ERRORS[code] for code in sorted({*errors, *_ALWAYS})}}


def post_responses(ok: dict[int, Any], *errors: int) -> dict[int, Any]:
    """Responses of a POST: a bad key is a 400, a reused one a 422."""
    return responses(ok, 400, 415, 422, *errors)


def recipients_request() -> dict[str, Any]:
    """The recipients body: an object with ``recipients``, a bare list, or a CSV upload."""
    row = RECIPIENT_ROW_SCHEMA
    skip_invalid = {"type": "boolean", "default": False}
    return {
        "application/json": {
            "oneOf": [
                {
                    "type": "object",
                    "properties": {
                        "recipients": {"type": "array", "items": row, "minItems": 1},
                        "skip_invalid": skip_invalid,
                    },
                    "required": ["recipients"],
                },
                {"type": "array", "items": row, "minItems": 1},
            ]
        },
        "multipart/form-data": {
            "type": "object",
            "properties": {
                "file": {"type": "string", "format": "binary"},
                "skip_invalid": skip_invalid,
                "encoding": {"type": "string", "enum": list(ENCODINGS), "default": "utf-8"},
            },
            "required": ["file"],
        },
    }
