"""The query parameters the lists take, checked like any other input."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from .. import phones
from ..exceptions import InvalidMessage
from ..models import Campaign
from ..status import Status
from .serializers import MAX_ID, QueryParameters, StrictCharField


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
        try:
            return phones.normalize_phone(value)
        except InvalidMessage as exc:
            raise ValidationError(exc.problems) from None

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
