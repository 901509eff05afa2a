"""What the API reads and writes.

Input is checked by the same rules as :mod:`django_smsclub.services` (which checks it again
and stays the authority); every error names its field and the value that is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import models
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError

from .. import phones
from ..exceptions import ConfigurationError
from ..gateways import Gateway, get_gateway
from ..models import DeliveryReport, Message
from ..services.validation import check_metadata
from .fields import (
    MAX_RECIPIENTS_PER_REQUEST,
    PriorityField,
    RecipientsField,
    StrictBooleanField,
    StrictCharField,
    UtcDateTimeField,
    shown,
)
from .problems import known_gateway, unknown_gateway

#: Refused rows listed in a response; the rest are counted.
MAX_REFUSED_LISTED = 1000
#: Campaign fields fixed once recipients were added: their texts were rendered from them.
RENDERED_FIELDS = ("text", "sender", "gateway")


class NamesBadValues:
    """Field errors that also say which value was wrong, not only what was wrong with it."""

    def to_internal_value(self, data: Any) -> Any:
        try:
            return super().to_internal_value(data)  # type: ignore[misc]
        except ValidationError as exc:
            if isinstance(exc.detail, dict) and isinstance(data, Mapping):
                raise ValidationError(_with_values(exc.detail, data)) from None
            raise


class ApiModelSerializer(serializers.ModelSerializer):
    """The API's model serializers: times in UTC."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.DateTimeField: UtcDateTimeField,
    }


class MessageItemSerializer(NamesBadValues, serializers.Serializer):
    """One personal text to one number."""

    to = StrictCharField(
        max_length=phones.MAX_INPUT_LENGTH, allow_blank=True, trim_whitespace=False
    )
    text = StrictCharField(allow_blank=True, trim_whitespace=False)


class SendOptionsSerializer(NamesBadValues, serializers.Serializer):
    """What every send may add to its recipients and texts."""

    sender = StrictCharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=64,
        help_text="Alpha-name; empty means the gateway's SENDER.",
    )
    gateway = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=64,
        help_text="A key of SMSCLUB['GATEWAYS']; empty means the default gateway.",
    )
    send_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Not sent before this time."
    )
    metadata = serializers.DictField(
        required=False, help_text="Your own JSON values, kept with every message."
    )
    priority = PriorityField(required=False)
    respect_window = StrictBooleanField(
        required=False,
        help_text="Sent only inside the SEND_WINDOW setting (quiet hours), as campaign "
        "messages are; false by default.",
    )
    marketing = StrictBooleanField(
        required=False,
        help_text="A marketing text: not sent to numbers on the stop list with scope marketing "
        "(those with scope all get nothing anyway); false by default.",
    )

    def validate_gateway(self, value: str) -> str:
        return known_gateway(value)

    def validate_metadata(self, value: dict[str, Any]) -> dict[str, Any]:
        where = _nul_in(value, "metadata")
        if where:
            # PostgreSQL's jsonb cannot hold one: the insert would fail after validation.
            raise ValidationError(
                f"{where} holds a NUL character (\\u0000), which cannot be stored"
            )
        # The services' rule (size above all): copied into every message, so bounded.
        value, problems = check_metadata(value)
        if problems:
            raise ValidationError(problems)
        return value


class SendTextSerializer(SendOptionsSerializer):
    """One text to one number or to each of a list of numbers."""

    to = RecipientsField()
    text = StrictCharField(allow_blank=True, trim_whitespace=False)


class SendPersonalSerializer(SendOptionsSerializer):
    """A personal text to each number."""

    items = serializers.ListField(
        child=MessageItemSerializer(), allow_empty=False, max_length=MAX_RECIPIENTS_PER_REQUEST
    )


class MessageCreateSerializer(SendOptionsSerializer):
    """``to`` and ``text`` for one text to many; or ``items``, a personal text to each.

    The schema shows the two shapes (:class:`SendTextSerializer`,
    :class:`SendPersonalSerializer`); this one reads either and says which fields clash.
    """

    to = RecipientsField(required=False)
    text = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    items = serializers.ListField(
        child=MessageItemSerializer(),
        required=False,
        allow_empty=False,
        max_length=MAX_RECIPIENTS_PER_REQUEST,
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "items" in attrs:
            clash = [name for name in ("to", "text") if name in attrs]
            if clash:
                raise ValidationError(
                    {name: ["give either 'to' and 'text', or 'items', not both"] for name in clash}
                )
            self._check_items(attrs)
        elif "to" not in attrs:
            raise ValidationError({"to": ["give 'to' and 'text', or 'items'"]})
        elif "text" not in attrs:
            raise ValidationError({"text": ["is required with 'to'"]})
        return attrs

    def _check_items(self, attrs: dict[str, Any]) -> None:
        """Each item's number and text, so an error points at the item that holds it."""
        gateway: Gateway | None = None
        try:
            gateway = get_gateway(attrs.get("gateway") or None)
        except ConfigurationError:
            raise ValidationError({"gateway": [unknown_gateway(attrs.get("gateway"))]}) from None
        errors: dict[int, dict[str, list[str]]] = {}
        for index, item in enumerate(attrs["items"]):
            problems = {
                "to": phones.phone_problem(item["to"]),
                "text": gateway.text_problem(item["text"]),
            }
            found = {name: [problem] for name, problem in problems.items() if problem}
            if found:
                errors[index] = found
        if errors:
            # Keyed by index: JSON writes 0 as "0".
            raise ValidationError({"items": errors})  # type: ignore[dict-item]


class DeliveryReportSerializer(ApiModelSerializer):
    class Meta:
        model = DeliveryReport
        fields = ["part", "smsc_id", "raw_status", "status", "created_at", "changed_at"]


class MessageSerializer(ApiModelSerializer):
    campaign_name = serializers.CharField(
        source="campaign.name", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = Message
        fields = [
            "id",
            "campaign",
            "campaign_name",
            "recipient",
            "sender",
            "text",
            "gateway",
            "parts",
            "status",
            "error",
            "attempts",
            "priority",
            "respect_window",
            "metadata",
            "retry_of",
            "created_by",
            "created_at",
            "next_attempt_at",
            "sent_at",
            "finished_at",
        ]
        read_only_fields = fields


class MessageDetailSerializer(MessageSerializer):
    """A message with the delivery report of each of its parts."""

    reports = DeliveryReportSerializer(many=True, read_only=True)

    class Meta(MessageSerializer.Meta):
        fields = [*MessageSerializer.Meta.fields, "reports"]
        read_only_fields = fields


class MessagesCreatedSerializer(serializers.Serializer):
    messages = MessageSerializer(many=True, read_only=True)


class BalanceSerializer(serializers.Serializer):
    gateway = serializers.CharField()
    amount = serializers.DecimalField(max_digits=None, decimal_places=None)
    credit = serializers.DecimalField(max_digits=None, decimal_places=None, allow_null=True)
    currency = serializers.CharField(allow_null=True)


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


class GatewayErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    gateway = serializers.CharField()
    error = serializers.CharField(help_text="The kind of failure, e.g. GatewayUnavailable.")


def _with_values(detail: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    named: dict[str, Any] = {}
    for name, errors in detail.items():
        if name not in data or not isinstance(errors, list):
            named[name] = errors
            continue
        value = data.getlist(name) if hasattr(data, "getlist") else data[name]
        if isinstance(value, list) and len(value) == 1 and hasattr(data, "getlist"):
            value = value[0]
        quoted = shown(value)
        named[name] = [
            error
            if _names(str(error), value)
            else ErrorDetail(f"{error} Got {quoted}.", code=error.code)
            for error in errors
        ]
    return named


def _names(message: str, value: Any) -> bool:
    """Whether ``message`` already quotes ``value`` (every item of a list value)."""
    values = value if isinstance(value, list) else [value]
    return bool(values) and all(
        isinstance(v, str | int | float) and str(v) and str(v) in message for v in values
    )


def _nul_in(value: Any, path: str) -> str | None:
    """The path of the first key or string in ``value`` that holds a NUL character."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if "\x00" in str(key):
                return f"{path} key {str(key)!r:.40}"
            found = _nul_in(item, f"{path}[{str(key)!r:.40}]")
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_in(item, f"{path}[{index}]")
            if found:
                return found
    return None
