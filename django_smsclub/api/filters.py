"""The query parameters the views take, checked like any other input."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from .. import phones
from ..exceptions import InvalidMessage
from ..models import Campaign
from ..status import Status
from .fields import MAX_ID, StrictCharField
from .serializers import NamesBadValues


class QueryParameters(NamesBadValues, serializers.Serializer):
    """Query parameters, given once (unless a list) and not empty: DRF would read the last of
    ``?campaign=1&campaign=2`` and take ``?number=`` for no parameter, and quietly list more
    than was asked for."""

    def to_internal_value(self, data: Any) -> Any:
        values = data.getlist if hasattr(data, "getlist") else lambda name: [data[name]]
        errors: dict[str, list[str]] = {}
        for name, field in self.fields.items():
            given = values(name) if name in data else []
            if len(given) > 1 and not isinstance(field, serializers.MultipleChoiceField):
                errors[name] = [f"is given {len(given)} times; give it once"]
            elif "" in given and not getattr(field, "allow_blank", False):
                errors[name] = ["is empty; leave the parameter out to not filter by it"]
        if errors:
            raise ValidationError(errors)
        return super().to_internal_value(data)


class MessageFilter(QueryParameters):
    status = serializers.MultipleChoiceField(
        choices=Status.choices, required=False, help_text="One or more (repeat the parameter)."
    )
    campaign = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    number = StrictCharField(
        required=False,
        max_length=phones.MAX_INPUT_LENGTH,
        help_text="A recipient in any spelling; it is normalised before the search.",
    )
    created_after = serializers.DateTimeField(
        required=False, help_text="Created at or after this time."
    )
    created_before = serializers.DateTimeField(
        required=False, help_text="Created before this time."
    )

    def validate_number(self, value: str) -> str:
        return normalised_phone(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        after, before = attrs.get("created_after"), attrs.get("created_before")
        if after and before and after >= before:
            raise ValidationError(
                {"created_before": [f"{before.isoformat()} is not after created_after"]}
            )
        return attrs

    def filter(self, messages: QuerySet) -> QuerySet:
        """``messages`` narrowed to what the (validated) parameters ask for."""
        data = self.validated_data
        lookups = {
            "status__in": sorted(data["status"]) if data.get("status") else None,
            "campaign_id": data.get("campaign"),
            "recipient": data.get("number"),
            "created_at__gte": data.get("created_after"),
            "created_at__lt": data.get("created_before"),
        }
        return messages.filter(**{k: v for k, v in lookups.items() if v is not None})


class CampaignFilter(QueryParameters):
    state = serializers.MultipleChoiceField(
        choices=Campaign.State.choices,
        required=False,
        help_text="One or more (repeat the parameter).",
    )

    def filter(self, campaigns: QuerySet) -> QuerySet:
        states = self.validated_data.get("state")
        return campaigns.filter(state__in=sorted(states)) if states else campaigns


def normalised_phone(value: str) -> str:
    """A number given in any spelling, normalised; a field error naming it if it is none."""
    try:
        return phones.normalize_phone(value)
    except InvalidMessage as exc:
        raise ValidationError(exc.problems) from None


class BalanceQuerySerializer(QueryParameters):
    gateway = StrictCharField(
        required=False, allow_blank=True, max_length=64, help_text="Default: the default gateway."
    )
