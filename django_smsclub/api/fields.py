"""The API's own serializer fields: strict strings and booleans, times in UTC, recipients.

Each refuses what DRF's own would quietly turn into something else (``5`` into ``"5"``), and
each error names the value that is wrong.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError

from .. import phones
from ..models import PRIORITY_CAMPAIGN, PRIORITY_MAX

#: The largest id a database column holds: a larger one is no object's, not a crash.
MAX_ID = 2**63 - 1
#: Numbers (or items) one request may send to; a larger audience is a campaign.
MAX_RECIPIENTS_PER_REQUEST = 10_000

#: A recipient row of a campaign in JSON: a number, or {phone, <placeholder>: value, ...}.
RECIPIENT_ROW_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "string", "minLength": 1, "maxLength": phones.MAX_INPUT_LENGTH},
        {
            "type": "object",
            "properties": {
                "phone": {"type": "string", "minLength": 1, "maxLength": phones.MAX_INPUT_LENGTH}
            },
            "required": ["phone"],
            "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "number"}]},
        },
    ],
    "description": "A number, or {phone, <placeholder>: value, ...}.",
}


class UtcDateTimeField(serializers.DateTimeField):
    """Written in UTC: the project's zone would give year-300 dates an offset of seconds
    (+02:02:04, local mean time), which no ISO 8601 reader takes."""

    def to_representation(self, value: datetime | None) -> str | None:  # type: ignore[override]
        if value is None:
            return None
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF's CharField would take 5 or 1.5 as "5" and "1.5"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false in JSON; in a form (multipart) body, where every value is text, the
    words DRF knows."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool | str):
            self.fail("invalid", input=data)
        return super().to_internal_value(data)


class PriorityField(serializers.IntegerField):
    """A claim priority: a whole number from 0 to PRIORITY_MAX, lower sent first. Only a JSON
    number: DRF's IntegerField would take ``true``, ``"5"`` or ``1.0`` too."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", PRIORITY_MAX)
        kwargs.setdefault(
            "help_text",
            f"Lower is sent first: 0 (single messages' default) before campaigns' "
            f"{PRIORITY_CAMPAIGN}; from 0 to {PRIORITY_MAX}.",
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "minLength": 1, "maxLength": phones.MAX_INPUT_LENGTH},
            {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": phones.MAX_INPUT_LENGTH},
                "minItems": 1,
                "maxItems": MAX_RECIPIENTS_PER_REQUEST,
            },
        ],
        "description": "One number, or a list of them; any common spelling "
        "(+380 50 123-45-67, 0501234567, 380501234567).",
    }
)
class RecipientsField(serializers.Field):
    """``to``: one number or a list of numbers (strings), given as a list."""

    default_error_messages = {
        "invalid": "must be a phone number (a string) or a list of them, not {kind} {value}",
        "empty": "is an empty list; give at least one number",
        "too_many": "has {count} numbers; at most {limit} go in one request (use a campaign)",
        "item": "item {index} must be a phone number (a string), not {kind} {value}",
    }

    def to_internal_value(self, data: Any) -> list[str]:
        if isinstance(data, str):
            return [data]
        if not isinstance(data, list):
            self.fail("invalid", kind=type(data).__name__, value=shown(data))
        if not data:
            self.fail("empty")
        if len(data) > MAX_RECIPIENTS_PER_REQUEST:
            self.fail("too_many", count=len(data), limit=MAX_RECIPIENTS_PER_REQUEST)
        bad = [
            ErrorDetail(
                self.error_messages["item"].format(
                    index=index, kind=type(item).__name__, value=shown(item)
                ),
                code="item",
            )
            for index, item in enumerate(data)
            if not isinstance(item, str)
        ]
        if bad:
            raise ValidationError(bad)
        return data

    def to_representation(self, value: Any) -> Any:
        return value


@extend_schema_field(RECIPIENT_ROW_SCHEMA)
class RecipientRowField(serializers.Field):
    """A number, or an object with ``phone`` and the values of the text's placeholders."""

    default_error_messages = {
        "invalid": "must be a phone number (a string) or an object with 'phone', "
        "not {kind} {value}",
        "no_phone": "has no 'phone' (a string): {value}",
        "value": "value {name!r} must be a string or a number, not {kind} {value}",
    }

    def to_internal_value(self, data: Any) -> str | tuple[str, dict[str, Any]]:
        if isinstance(data, str):
            return data
        if not isinstance(data, dict):
            self.fail("invalid", kind=type(data).__name__, value=shown(data))
        phone = data.get("phone")
        if not isinstance(phone, str):
            self.fail("no_phone", value=shown(data))
        values = {name: value for name, value in data.items() if name != "phone"}
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                self.fail("value", name=name, kind=type(value).__name__, value=shown(value))
        return phone, values

    def to_representation(self, value: Any) -> Any:
        return value


def shown(value: Any) -> str:
    """``value`` as an error message quotes it: a file by its name, anything else by its
    ``repr``, cut to 80 characters."""
    if hasattr(value, "name") and hasattr(value, "chunks"):
        return f"file {value.name!r:.80}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
