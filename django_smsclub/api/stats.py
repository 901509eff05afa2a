"""Delivery by operator over the API: a campaign's figures per mobile network, and those of a
period (:mod:`django_smsclub.reports` computes them).

``GET campaigns/{id}/operators/`` needs the view permission on campaigns, ``GET
stats/operators/?since=...&until=...&campaign=...`` the view permission on messages; a user who
is not staff gets the figures of what they created, like everywhere in the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import reports
from ..models import Campaign, Message
from ..operators import Operator
from . import schema
from .fields import MAX_ID, UtcDateTimeField
from .filters import QueryParameters
from .views import OwnedObjects

SECONDS = "Seconds from the provider's acceptance to the delivery report"


class TimeToDeliverSerializer(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True, help_text=f"{SECONDS}: the median.")
    p90 = serializers.FloatField(allow_null=True, help_text=f"{SECONDS}: 90% within it.")
    p95 = serializers.FloatField(allow_null=True, help_text=f"{SECONDS}: 95% within it.")


class OperatorStatsSerializer(serializers.Serializer):
    operator = serializers.ChoiceField(choices=Operator.choices)
    name = serializers.CharField(help_text="The network's name, e.g. Vodafone Ukraine.")
    messages = serializers.IntegerField()
    sent = serializers.IntegerField(help_text="Accepted by the provider.")
    delivered = serializers.IntegerField()
    failed = serializers.IntegerField(
        help_text="Undelivered, expired, rejected, refused by the provider, or of unknown fate."
    )
    delivery_rate = serializers.FloatField(
        allow_null=True, help_text="Delivered of sent, from 0 to 1; null when none was sent."
    )
    time_to_deliver = TimeToDeliverSerializer(
        help_text="Percentiles over the delivered messages; null without one."
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        times = instance.time_to_deliver
        return {
            "operator": instance.operator,
            "name": instance.label,
            "messages": instance.messages,
            "sent": instance.sent,
            "delivered": instance.delivered,
            "failed": instance.failed,
            "delivery_rate": (
                None if instance.delivery_rate is None else round(instance.delivery_rate, 4)
            ),
            "time_to_deliver": {
                f"p{p}": None if times.get(p) is None else round(times[p].total_seconds(), 3)
                for p in reports.PERCENTILES
            },
        }


class OperatorReportSerializer(serializers.Serializer):
    campaign = serializers.IntegerField(allow_null=True)
    since = UtcDateTimeField(allow_null=True, help_text="The period's start (included).")
    until = UtcDateTimeField(allow_null=True, help_text="The period's end (not included).")
    operators = OperatorStatsSerializer(
        many=True, help_text="Kyivstar, Vodafone Ukraine, lifecell and other, in this order."
    )


class PeriodParameters(QueryParameters):
    since = serializers.DateTimeField(
        help_text="Messages sent at or after this time (never sent: finished at or after it)."
    )
    until = serializers.DateTimeField(
        required=False, help_text="Messages sent before this time. Default: now."
    )
    campaign = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_ID, help_text="Only this campaign's."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        since: datetime = attrs["since"]
        given = self.initial_data.get("until")
        until: datetime = attrs.setdefault("until", timezone.now())
        if until <= since:
            shown = f"{given!r:.60}" if given is not None else f"now ({until.isoformat()})"
            raise ValidationError(
                {"until": [f"{shown} is not after since ({self.initial_data.get('since')!r:.60})"]}
            )
        return attrs


class CampaignOperatorsView(OwnedObjects, GenericAPIView):
    """A campaign's figures per operator."""

    serializer_class = OperatorReportSerializer

    def get_queryset(self) -> QuerySet:
        return self.owned(Campaign.objects.all())

    @extend_schema(
        summary="Sent, delivered, failed, delivery rate and time to deliver per operator",
        responses=schema.responses({200: OperatorReportSerializer}, 404),
    )
    def get(self, request: Request, pk: str) -> Response:
        campaign = self.get_object()
        body = {
            "campaign": campaign.pk,
            "since": None,
            "until": None,
            "operators": reports.campaign_operator_stats(campaign),
        }
        return Response(OperatorReportSerializer(body).data)


class OperatorStatsView(OwnedObjects, APIView):
    """The figures per operator of the messages of a period."""

    def get_queryset(self) -> QuerySet:
        # What ModelPermissions reads the model from: the view permission on messages.
        return self.owned(Message.objects.all())

    @extend_schema(
        summary="Per operator: the messages sent in a period (of one campaign, if given)",
        parameters=[PeriodParameters],
        responses=schema.responses({200: OperatorReportSerializer}, 400),
    )
    def get(self, request: Request) -> Response:
        query = PeriodParameters(data=request.query_params)
        query.is_valid(raise_exception=True)
        since, until = query.validated_data["since"], query.validated_data["until"]
        messages = self.owned(reports.period_messages(since, until))
        campaign_id = query.validated_data.get("campaign")
        if campaign_id is not None:
            if not self.owned(Campaign.objects.filter(pk=campaign_id)).exists():
                raise ValidationError({"campaign": [f"{campaign_id} is not a campaign of yours"]})
            messages = messages.filter(campaign_id=campaign_id)
        body = {
            "campaign": campaign_id,
            "since": since,
            "until": until,
            "operators": reports.operator_stats(messages),
        }
        return Response(OperatorReportSerializer(body).data)
