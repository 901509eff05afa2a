"""Webhook endpoints and their delivery log, for staff: read, re-enable, test, retry.

A secret never leaves the server. Endpoints are made and edited in the admin or in
``SMSCLUB["WEBHOOKS"]``; here they are looked at and re-enabled, and deliveries retried.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet
from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..models import WebhookDelivery, WebhookEndpoint
from ..services import webhooks
from ..webhooks import EVENTS, TEST_EVENT
from . import idempotency, schema
from .fields import MAX_ID
from .filters import QueryParameters
from .pagination import CampaignPagination, StrictPaging
from .permissions import ModelPermissions
from .views import SmsClubView


class IsStaff(BasePermission):
    """Staff only: endpoints and their log concern the whole installation."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff)


class WebhookEndpointSerializer(serializers.ModelSerializer):
    pending = serializers.IntegerField(
        source="pending_count", read_only=True, help_text="Deliveries still owed."
    )
    disabled = serializers.SerializerMethodField(
        help_text="Disabled after failing WEBHOOK_DISABLE_AFTER times in a row."
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "name",
            "url",
            "events",
            "is_active",
            "from_settings",
            "disabled",
            "consecutive_failures",
            "disabled_at",
            "disabled_reason",
            "pending",
            "created_at",
        ]
        read_only_fields = fields

    def get_disabled(self, obj: WebhookEndpoint) -> bool:
        return obj.disabled_at is not None


class WebhookDeliverySerializer(serializers.ModelSerializer):
    endpoint_name = serializers.CharField(source="endpoint.name", read_only=True)
    # Text, not an enum: the schema's enum named after "status" is the message's.
    status = serializers.CharField(
        read_only=True, help_text="pending, delivered or failed (given up)."
    )

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "endpoint",
            "endpoint_name",
            "event",
            "event_id",
            "status",
            "attempts",
            "last_status_code",
            "last_error",
            "next_attempt_at",
            "created_at",
            "delivered_at",
            "message",
            "campaign",
            "payload",
        ]
        read_only_fields = fields


class EnabledSerializer(serializers.Serializer):
    endpoint = WebhookEndpointSerializer()
    pending = serializers.IntegerField(help_text="Pending deliveries, due now.")


class TestEventSerializer(serializers.Serializer):
    ok = serializers.BooleanField(help_text="The endpoint answered 2xx.")
    status_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    delivery = WebhookDeliverySerializer()


class RetriedSerializer(serializers.Serializer):
    retried = serializers.IntegerField(help_text="1 if the delivery is due now, 0 if not.")
    delivery = WebhookDeliverySerializer()


class DeliveryFilter(QueryParameters):
    status = serializers.MultipleChoiceField(
        choices=WebhookDelivery.Status.choices, required=False, help_text="One or more."
    )
    event = serializers.ChoiceField(choices=[*EVENTS, TEST_EVENT], required=False)
    endpoint = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    message = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    campaign = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)

    def filter(self, queryset: QuerySet[WebhookDelivery]) -> QuerySet[WebhookDelivery]:
        data = self.validated_data
        if data.get("status"):
            queryset = queryset.filter(status__in=sorted(data["status"]))
        for name in ("event", "endpoint", "message", "campaign"):
            if name in data:
                queryset = queryset.filter(**{name: data[name]})
        return queryset


class DeliveryPagination(StrictPaging, CursorPagination):
    ordering = "-id"
    page_size = 50
    max_page_size = 500


class WebhookView(SmsClubView):
    smsclub_permission_classes = (IsStaff, ModelPermissions)
    #: POST actions change the object: the model's change permission.
    action_permissions = {"enable": "change", "test": "change", "retry": "change"}
    kwargs: dict[str, Any]
    lookup_value_regex = "[^/]+"

    def get_object(self) -> Any:
        value = self.kwargs.get("pk", "")
        if not (value.isascii() and value.isdigit() and 0 < int(value) <= MAX_ID):
            raise Http404
        return super().get_object()  # type: ignore[misc]


@extend_schema_view(
    list=extend_schema(
        summary="Webhook endpoints (staff)",
        responses=schema.responses({200: WebhookEndpointSerializer(many=True)}, 400, 404),
    ),
    retrieve=extend_schema(
        summary="A webhook endpoint (staff)",
        responses=schema.responses({200: WebhookEndpointSerializer}, 404),
    ),
)
class WebhookEndpointViewSet(
    WebhookView, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Webhook endpoints with their failures and pending deliveries; never their secrets."""

    serializer_class = WebhookEndpointSerializer
    pagination_class = CampaignPagination

    def get_queryset(self) -> QuerySet[WebhookEndpoint]:
        pending = Count("deliveries", filter=Q(deliveries__status=WebhookDelivery.Status.PENDING))
        return WebhookEndpoint.objects.annotate(pending_count=pending).order_by("name")

    @extend_schema(
        summary="Re-enable an endpoint: its failures are forgotten, its pending deliveries due",
        request=None,
        parameters=[schema.IDEMPOTENCY_KEY],
        responses=schema.post_responses({200: EnabledSerializer}, 404),
    )
    @action(detail=True, methods=["post"])
    @idempotency.idempotent
    def enable(self, request: Request, pk: str | None = None) -> Response:
        endpoint = self.get_object()
        pending = webhooks.enable_endpoint(endpoint)
        endpoint = self.get_queryset().get(pk=endpoint.pk)
        return Response(EnabledSerializer({"endpoint": endpoint, "pending": pending}).data)

    @extend_schema(
        summary="Send a test event (webhook.test) now, whether the endpoint is on or not",
        request=None,
        parameters=[schema.IDEMPOTENCY_KEY],
        responses=schema.post_responses({200: TestEventSerializer}, 404),
    )
    @action(detail=True, methods=["post"])
    @idempotency.idempotent
    def test(self, request: Request, pk: str | None = None) -> Response:
        endpoint = self.get_object()
        delivery, reply = webhooks.send_test_event(endpoint)
        delivery.refresh_from_db()
        body = {
            "ok": reply.ok,
            "status_code": reply.status_code,
            "error": reply.error,
            "delivery": delivery,
        }
        return Response(TestEventSerializer(body).data)


@extend_schema_view(
    list=extend_schema(
        summary="Webhook deliveries, newest first (staff)",
        parameters=[DeliveryFilter],
        responses=schema.responses({200: WebhookDeliverySerializer(many=True)}, 400, 404),
    ),
    retrieve=extend_schema(
        summary="A webhook delivery with its payload (staff)",
        responses=schema.responses({200: WebhookDeliverySerializer}, 404),
    ),
)
class WebhookDeliveryViewSet(
    WebhookView, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Every event owed to an endpoint: its attempts, last status code and error, next try."""

    serializer_class = WebhookDeliverySerializer
    pagination_class = DeliveryPagination

    def get_queryset(self) -> QuerySet[WebhookDelivery]:
        return WebhookDelivery.objects.select_related("endpoint")

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        filters = DeliveryFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        page = self.paginate_queryset(filters.filter(self.get_queryset()))
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)

    @extend_schema(
        summary="Retry a pending or failed delivery now",
        request=None,
        parameters=[schema.IDEMPOTENCY_KEY],
        responses=schema.post_responses({200: RetriedSerializer}, 404),
    )
    @action(detail=True, methods=["post"])
    @idempotency.idempotent
    def retry(self, request: Request, pk: str | None = None) -> Response:
        delivery = self.get_object()
        retried = webhooks.retry_deliveries(WebhookDelivery.objects.filter(pk=delivery.pk))
        delivery.refresh_from_db()
        return Response(RetriedSerializer({"retried": retried, "delivery": delivery}).data)
