"""Messages, campaigns and their actions, and the account balance.

Every view applies the project's DRF authentication, permission and throttle settings, then
Django's model permissions and the ``smsclub`` throttle rate. A user who is not staff sees
only the campaigns and messages they created. Every POST honours ``Idempotency-Key``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import router, transaction
from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import BaseParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer, Serializer
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from .. import conf, ratelimit, selectors, services
from ..exceptions import (
    BadUpload,
    CampaignStateError,
    ConfigurationError,
    GatewayError,
    InvalidMessage,
)
from ..gateways import get_gateway
from ..models import Campaign, Message
from ..services import Action
from . import idempotency, schema
from .campaign_serializers import (
    CampaignCancelledSerializer,
    CampaignRetriedSerializer,
    CampaignSerializer,
    CampaignStatsSerializer,
    RecipientsResultSerializer,
    RecipientsSerializer,
    RecipientsUploadSerializer,
    RetryFailedSerializer,
)
from .fields import MAX_ID
from .filters import BalanceQuerySerializer, CampaignFilter, MessageFilter
from .pagination import CampaignPagination, MessagePagination
from .permissions import CanViewBalance, ModelPermissions, SmsClubThrottle
from .problems import Conflict, for_clients, problems_by_field, unknown_gateway
from .recipients import CsvRecipients
from .serializers import (
    MAX_REFUSED_LISTED,
    BalanceSerializer,
    MessageCreateSerializer,
    MessageDetailSerializer,
    MessagesCreatedSerializer,
    MessageSerializer,
    SendPersonalSerializer,
    SendTextSerializer,
)


class SmsClubView:
    """What every view of the API adds to the project's DRF settings."""

    #: Checked after the project's DEFAULT_PERMISSION_CLASSES.
    smsclub_permission_classes: tuple[type, ...] = (ModelPermissions,)

    def get_permissions(self) -> list[Any]:
        classes = self.permission_classes  # type: ignore[attr-defined]
        if classes is APIView.permission_classes:
            # Not set by a subclass: the project's, read now rather than when DRF was imported.
            classes = api_settings.DEFAULT_PERMISSION_CLASSES
        # AllowAny adds nothing to ours, and left in it would tell the schema that anonymous
        # requests are welcome.
        project = [cls() for cls in classes if cls is not AllowAny]
        return [*project, *(cls() for cls in self.smsclub_permission_classes)]

    def get_throttles(self) -> list[Any]:
        return [*super().get_throttles(), SmsClubThrottle()]  # type: ignore[misc]


class OwnedObjects(SmsClubView):
    """Scopes a viewset to the objects the user created, unless the user is staff."""

    kwargs: dict[str, Any]
    # Any id reaches get_object, which answers a 404 in JSON (the URL resolver's is HTML).
    lookup_value_regex = "[^/]+"
    # Bodies nest lists and nulls, which only JSON holds.
    parser_classes: Sequence[type[BaseParser]] = [JSONParser]

    def owned(self, queryset: QuerySet) -> QuerySet:
        user = getattr(getattr(self, "request", None), "user", None)
        if user is None or not user.is_authenticated:
            return queryset.none()
        if user.is_staff or user.is_superuser:
            return queryset
        return queryset.filter(created_by=user)

    def get_object(self) -> Any:
        value = self.kwargs.get("pk", "")
        if not (value.isascii() and value.isdigit() and 0 < int(value) <= MAX_ID):
            raise Http404
        return super().get_object()  # type: ignore[misc]


@extend_schema_view(
    list=extend_schema(
        summary="Messages, newest first",
        parameters=[MessageFilter],
        responses=schema.responses({200: MessageSerializer(many=True)}, 400, 404),
    ),
    retrieve=extend_schema(
        summary="A message with the delivery report of each part",
        responses=schema.responses({200: MessageDetailSerializer}, 404),
    ),
)
class MessageViewSet(
    OwnedObjects, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Messages: send, list with filters, and one with its delivery reports."""

    serializer_class = MessageSerializer
    pagination_class = MessagePagination

    def get_queryset(self) -> QuerySet:
        messages = Message.objects.select_related("campaign").defer("campaign__text")
        if self.action == "retrieve":
            messages = messages.prefetch_related("reports")
        return self.owned(messages)

    def get_serializer_class(self) -> type[MessageSerializer]:
        return MessageDetailSerializer if self.action == "retrieve" else MessageSerializer

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        filters = MessageFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        page = self.paginate_queryset(filters.filter(self.get_queryset()))
        if page is None or not isinstance(self.paginator, MessagePagination):
            return Response(MessageSerializer(page, many=True).data)
        results = self.paginator.serialize_page(page, lambda m: MessageSerializer(m).data)
        return self.get_paginated_response(results)

    @extend_schema(
        summary="Send a text to one or more numbers, or personal texts",
        request=PolymorphicProxySerializer(
            component_name="Send",
            serializers=[SendTextSerializer, SendPersonalSerializer],
            resource_type_field_name=None,
        ),
        parameters=[schema.IDEMPOTENCY_KEY],
        responses=schema.post_responses({201: MessagesCreatedSerializer}),
    )
    @idempotency.idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = MessageCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        optional = (
            "sender",
            "gateway",
            "send_at",
            "metadata",
            "priority",
            "respect_window",
            "marketing",
        )
        options = {name: data[name] for name in optional if name in data}
        try:
            if "items" in data:
                pairs = [(item["to"], item["text"]) for item in data["items"]]
                messages = services.send_personalized(pairs, created_by=request.user, **options)
            else:
                messages = services.send_sms(
                    data["to"], data["text"], created_by=request.user, **options
                )
        except InvalidMessage as exc:
            rename = {"to": "items", "text": "items"} if "items" in data else {}
            raise ValidationError(problems_by_field(exc.problems, rename=rename)) from None
        body = MessagesCreatedSerializer({"messages": messages}).data
        return Response(body, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(
        parameters=[CampaignFilter],
        responses=schema.responses({200: CampaignSerializer(many=True)}, 400, 404),
    ),
    retrieve=extend_schema(responses=schema.responses({200: CampaignSerializer}, 404)),
    create=extend_schema(
        parameters=[schema.IDEMPOTENCY_KEY],
        responses=schema.post_responses({201: CampaignSerializer}),
    ),
    update=extend_schema(responses=schema.responses({200: CampaignSerializer}, 400, 404, 415)),
    partial_update=extend_schema(
        responses=schema.responses({200: CampaignSerializer}, 400, 404, 415)
    ),
    destroy=extend_schema(
        summary="Delete a campaign that is not on its way (a draft, done or cancelled)",
        responses=schema.responses({204: None}, 404, 409),
    ),
)
class CampaignViewSet(OwnedObjects, viewsets.ModelViewSet):
    """Campaigns: one text to many recipients, started, cancelled and retried as a whole."""

    serializer_class = CampaignSerializer
    pagination_class = CampaignPagination
    #: The model permission each action beyond CRUD needs (see ModelPermissions).
    action_permissions = {
        "recipients": "change",
        "start": "change",
        "cancel": "change",
        "retry_failed": "change",
        "stats": "view",
    }

    def get_queryset(self) -> QuerySet:
        campaigns = self.owned(Campaign.objects.all())
        if self.request.method in ("PUT", "PATCH", "DELETE"):
            # Changed under a row lock: a start in between must not be undone by the change.
            campaigns = campaigns.select_for_update()
        return campaigns

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        filters = CampaignFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        page = self.paginate_queryset(filters.filter(self.get_queryset()))
        return self.get_paginated_response(CampaignSerializer(page, many=True).data)

    @idempotency.idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer: BaseSerializer) -> None:
        serializer.save(created_by=self.request.user)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        with transaction.atomic(using=router.db_for_write(Campaign)):
            return super().update(request, *args, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        with transaction.atomic(using=router.db_for_write(Campaign)):
            campaign = self.get_object()
            try:
                services.require(campaign, Action.DELETE)
            except CampaignStateError as exc:
                raise Conflict(f"{exc}: its messages are on their way (cancel it first)") from None
            campaign.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Add recipients: JSON numbers or {phone, placeholders} rows, or a CSV upload",
        request=schema.recipients_request(),
        parameters=[schema.IDEMPOTENCY_KEY],
        responses=schema.post_responses({200: RecipientsResultSerializer}, 404, 409),
    )
    @action(detail=True, methods=["post"], parser_classes=[JSONParser, MultiPartParser])
    @idempotency.idempotent
    def recipients(self, request: Request, pk: str | None = None) -> Response:
        campaign = self.get_object()
        upload: CsvRecipients | None = None
        form: Serializer
        if request.content_type.startswith("multipart/"):
            form = RecipientsUploadSerializer(data=request.data)
            form.is_valid(raise_exception=True)
            upload = CsvRecipients(form.validated_data["file"], form.validated_data["encoding"])
            rows: Any = upload
            field = "file"
        else:
            # A bare list is the short form of {"recipients": [...]}.
            data = {"recipients": request.data} if isinstance(request.data, list) else request.data
            form = RecipientsSerializer(data=data)
            form.is_valid(raise_exception=True)
            rows = form.validated_data["recipients"]
            field = "recipients"
        skip_invalid = form.validated_data["skip_invalid"]
        _check_sendable(campaign)
        try:
            result = services.add_recipients(campaign, rows, skip_invalid=skip_invalid)
        except CampaignStateError as exc:
            raise Conflict(str(exc)) from None
        except BadUpload as exc:
            raise ValidationError({"file": [str(exc)]}) from None
        except InvalidMessage as exc:
            rows = [p for p in exc.problems if p.startswith("row ")]
            if len(rows) < len(exc.problems):
                # The campaign itself, read under its lock: an edit made it unsendable.
                _check_sendable(campaign, exc.problems)
            problems = [upload.with_lines(p) for p in rows] if upload else rows
            raise ValidationError({field: problems}) from None
        refused = [
            {
                "row": r.row,
                "line": upload.line_of(r.row) if upload else None,
                "value": r.value,
                "reason": r.reason,
            }
            for r in result.refused[:MAX_REFUSED_LISTED]
        ]
        body = {
            "added": result.added,
            "duplicates": result.duplicates,
            "refused_count": len(result.refused),
            "refused": refused,
        }
        return Response(RecipientsResultSerializer(body).data)

    @extend_schema(
        summary="Release a draft's messages, now or at its send_at",
        request=None,
        parameters=[schema.IDEMPOTENCY_KEY],
        responses=schema.post_responses({200: CampaignSerializer}, 404, 409),
    )
    @action(detail=True, methods=["post"])
    @idempotency.idempotent
    def start(self, request: Request, pk: str | None = None) -> Response:
        campaign = self.get_object()
        try:
            services.start_campaign(campaign)
        except CampaignStateError as exc:
            raise Conflict(str(exc)) from None
        return Response(CampaignSerializer(campaign).data)

    @extend_schema(
        summary="Cancel the campaign and its messages not yet sent",
        request=None,
        parameters=[schema.IDEMPOTENCY_KEY],
        responses=schema.post_responses({200: CampaignCancelledSerializer}, 404, 409),
    )
    @action(detail=True, methods=["post"])
    @idempotency.idempotent
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        campaign = self.get_object()
        try:
            cancelled = services.cancel_campaign(campaign)
        except CampaignStateError as exc:
            raise Conflict(str(exc)) from None
        body = {"cancelled": cancelled, "campaign": campaign}
        return Response(CampaignCancelledSerializer(body).data)

    @extend_schema(
        summary="Send anew each message that surely did not arrive",
        request=RetryFailedSerializer,
        parameters=[schema.IDEMPOTENCY_KEY],
        responses=schema.post_responses({200: CampaignRetriedSerializer}, 404, 409),
    )
    @action(detail=True, methods=["post"], url_path="retry-failed")
    @idempotency.idempotent
    def retry_failed(self, request: Request, pk: str | None = None) -> Response:
        campaign = self.get_object()
        form = RetryFailedSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        statuses = form.validated_data.get("statuses")
        try:
            queued = services.retry_failed(campaign, sorted(statuses) if statuses else None)
        except CampaignStateError as exc:
            raise Conflict(str(exc)) from None
        except InvalidMessage as exc:
            raise ValidationError({"statuses": exc.problems}) from None
        body = {"queued": queued, "campaign": campaign}
        return Response(CampaignRetriedSerializer(body).data)

    @extend_schema(
        summary="Messages and parts per status, and the cost in parts",
        responses=schema.responses({200: CampaignStatsSerializer}, 404),
    )
    @action(detail=True, methods=["get"])
    def stats(self, request: Request, pk: str | None = None) -> Response:
        campaign = self.get_object()
        return Response(CampaignStatsSerializer(selectors.campaign_stats(campaign)).data)


class BalanceView(SmsClubView, APIView):
    """The money on an SMSClub account, as its gateway reports it."""

    smsclub_permission_classes = (CanViewBalance,)

    @extend_schema(
        summary="The account balance of a gateway",
        parameters=[BalanceQuerySerializer],
        responses=schema.responses({200: BalanceSerializer}, 400, 503),
    )
    def get(self, request: Request) -> Response:
        query = BalanceQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        name = query.validated_data.get("gateway") or ""
        try:
            name = name or conf.default_gateway_name()
            known = conf.gateway_names()
        except ConfigurationError as exc:
            return _gateway_unavailable(
                name, exc, f"SMSCLUB is misconfigured: {for_clients(str(exc))}"
            )
        if name not in known:
            raise ValidationError({"gateway": [unknown_gateway(name)]})
        try:
            gateway = get_gateway(name)
        except ConfigurationError as exc:
            return _gateway_unavailable(name, exc, f"gateway {name!r} is misconfigured: {exc}")
        try:
            balance = ratelimit.balance_of(gateway)
        except GatewayError as exc:
            why = gateway.redact(str(exc))
            return _gateway_unavailable(
                name, exc, f"gateway {name!r} could not report the balance: {why}"
            )
        body = {
            "gateway": name,
            "amount": balance.amount,
            "credit": balance.credit,
            "currency": balance.currency,
        }
        return Response(BalanceSerializer(body).data)


def _check_sendable(campaign: Campaign, problems: list[str] | None = None) -> None:
    """409 when ``campaign`` cannot be sent as it stands (its ``problems``, if known)."""
    problems = services.campaign_problems(campaign) if problems is None else problems
    if problems:
        shown = "; ".join(for_clients(problem) for problem in problems)
        raise Conflict(f"campaign {campaign.name!r} cannot be sent as it stands: {shown}")


def _gateway_unavailable(name: str, exc: Exception, detail: str) -> Response:
    body = {"detail": detail, "gateway": name, "error": type(exc).__name__}
    return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)
