"""What the API reads and writes about campaigns: the campaign, its recipients, its figures.

Input is checked by the same rules as :mod:`django_smsclub.services` (which checks it again
and stays the authority); every error names its field and the value that is wrong.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from .. import services
from ..models import Campaign
from ..services import Action
from ..services.windows import WINDOW_FIELDS, resumes_at
from ..status import Status
from .fields import (
    PriorityField,
    RecipientRowField,
    StrictBooleanField,
    StrictCharField,
    UtcDateTimeField,
)
from .problems import known_gateway, problems_by_field
from .recipients import ENCODINGS
from .serializers import MAX_REFUSED_LISTED, RENDERED_FIELDS, ApiModelSerializer, NamesBadValues


class ResumesAtField(UtcDateTimeField):
    """When a campaign paused by its send window resumes sending (UTC); null when it is not
    paused: its window is open, it has none, or it is not scheduled or running."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault(
            "help_text",
            "When a campaign paused by its send window resumes (UTC); null when not paused.",
        )
        super().__init__(read_only=True, allow_null=True, source="*", **kwargs)

    def to_representation(self, value: Any) -> str | None:  # type: ignore[override]
        return super().to_representation(resumes_at(value))


class CampaignSerializer(NamesBadValues, ApiModelSerializer):
    """A campaign. Its text, sender and gateway are checked as the send would check them."""

    name = StrictCharField(max_length=200)
    sender = StrictCharField(
        max_length=64,
        required=False,
        allow_blank=True,
        help_text="Alpha-name; empty means the gateway's SENDER.",
    )
    text = StrictCharField(
        trim_whitespace=False,
        help_text="May hold {placeholders} filled from each recipient's values.",
    )
    gateway = StrictCharField(
        max_length=64,
        required=False,
        allow_blank=True,
        help_text="A key of SMSCLUB['GATEWAYS']; empty means the default gateway.",
    )
    priority = PriorityField(required=False)
    time_zone = StrictCharField(
        max_length=64,
        required=False,
        allow_blank=True,
        help_text="The send window's IANA time zone (e.g. Europe/Kyiv); empty means the "
        "TIME_ZONE setting.",
    )
    resumes_at = ResumesAtField()

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "sender",
            "text",
            "gateway",
            "priority",
            "state",
            "send_at",
            "send_window_start",
            "send_window_end",
            "time_zone",
            "resumes_at",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["state", "created_by", "created_at", "updated_at"]

    def validate_gateway(self, value: str) -> str:
        return known_gateway(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        campaign = self.instance
        if campaign is not None:
            self._check_change(campaign, attrs)
        candidate = Campaign(
            **{
                name: attrs.get(name, getattr(campaign, name, ""))
                for name in ("name", "sender", "text", "gateway")
            }
        )
        for name in WINDOW_FIELDS:
            if name in attrs or campaign is not None:
                setattr(candidate, name, attrs.get(name, getattr(campaign, name, None)))
        problems = services.campaign_problems(candidate)
        if problems:
            raise ValidationError(problems_by_field(problems))
        return attrs

    def update(self, instance: Campaign, validated_data: dict[str, Any]) -> Campaign:
        for name, value in validated_data.items():
            setattr(instance, name, value)
        # Only the fields sent: a full save would write back a state another request changed.
        instance.save(update_fields=[*validated_data, "updated_at"])
        return instance

    def _check_change(self, campaign: Campaign, attrs: dict[str, Any]) -> None:
        changed = [name for name, value in attrs.items() if value != getattr(campaign, name)]
        errors: dict[str, list[str]] = {}
        if not services.allows(campaign, Action.EDIT):
            for name in changed:
                if name != "name":
                    errors[name] = [
                        f"campaign {campaign.name!r} is {campaign.state}; its {name} can change "
                        "only while it is a draft"
                    ]
        elif any(name in RENDERED_FIELDS for name in changed) and campaign.messages.exists():
            for name in changed:
                if name in RENDERED_FIELDS:
                    errors[name] = [
                        f"campaign {campaign.name!r} has recipients whose texts were made with "
                        f"its {name}; make a new campaign to change it"
                    ]
        if errors:
            raise ValidationError(errors)


class RecipientsSerializer(NamesBadValues, serializers.Serializer):
    recipients = serializers.ListField(child=RecipientRowField(), allow_empty=False)
    skip_invalid = StrictBooleanField(
        default=False,
        help_text="Add the good rows and list the bad ones; otherwise one bad row adds none.",
    )


class RecipientsUploadSerializer(NamesBadValues, serializers.Serializer):
    file = serializers.FileField(
        help_text="CSV with a header line: a 'phone' column and one column per placeholder; "
        "comma, semicolon or tab separated."
    )
    skip_invalid = StrictBooleanField(
        default=False,
        help_text="Add the good rows and list the bad ones; otherwise one bad row adds none.",
    )
    encoding = serializers.ChoiceField(choices=ENCODINGS, default="utf-8")


class RefusedRowSerializer(serializers.Serializer):
    row = serializers.IntegerField(help_text="1-based: the n-th recipient given.")
    line = serializers.IntegerField(
        allow_null=True, required=False, help_text="The line of an uploaded file it came from."
    )
    value = serializers.CharField()
    reason = serializers.CharField()


class RecipientsResultSerializer(serializers.Serializer):
    added = serializers.IntegerField()
    duplicates = serializers.IntegerField(help_text="Numbers already in the campaign, skipped.")
    refused_count = serializers.IntegerField()
    refused = RefusedRowSerializer(
        many=True, help_text=f"The refused rows, the first {MAX_REFUSED_LISTED} of them."
    )


class RetryFailedSerializer(NamesBadValues, serializers.Serializer):
    statuses = serializers.MultipleChoiceField(
        choices=sorted(services.RETRY_STATUSES),
        required=False,
        allow_empty=False,
        help_text="Retry only these; by default all that surely did not arrive.",
    )


class CampaignCancelledSerializer(serializers.Serializer):
    cancelled = serializers.IntegerField(help_text="Messages cancelled before they were sent.")
    campaign = CampaignSerializer(read_only=True)


class CampaignRetriedSerializer(serializers.Serializer):
    queued = serializers.IntegerField(help_text="New messages queued in place of failed ones.")
    campaign = CampaignSerializer(read_only=True)


StatusCountsSerializer = type(
    "StatusCountsSerializer",
    (serializers.Serializer,),
    {status: serializers.IntegerField() for status in Status.values},
)


class CampaignStatsSerializer(serializers.Serializer):
    campaign = serializers.IntegerField()
    state = serializers.ChoiceField(choices=Campaign.State.choices)
    total = serializers.IntegerField(help_text="Messages.")
    counts = StatusCountsSerializer(help_text="Messages per status.")
    parts = StatusCountsSerializer(help_text="SMS parts per status.")
    parts_total = serializers.IntegerField()
    spent_parts = serializers.IntegerField(help_text="Parts the provider accepted: paid for.")
    cost_parts = serializers.IntegerField(
        help_text="What the campaign costs in parts: those accepted and those still to send."
    )
