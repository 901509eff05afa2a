"""Messages, campaigns and their actions, and the account balance.

Every view applies the project's DRF authentication, permission and throttle settings, then
Django's model permissions and the ``smsclub`` throttle rate. A user who is not staff sees
only the campaigns and messages they created. Every POST honours ``Idempotency-Key``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import router, transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.http import Http404
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils.encoders import JSONEncoder
from rest_framework.views import APIView

from .. import conf, services
from ..exceptions import CampaignStateError, ConfigurationError, GatewayError, InvalidMessage
from ..gateways import get_gateway
from ..models import Campaign, Message
from ..status import Status
from . import idempotency, schema
from .filters import CampaignFilter, MessageFilter
from .permissions import CanViewBalance, ModelPermissions, SmsClubThrottle
from .problems import problems_by_field
from .recipients import BadUpload, CsvRecipients
from .serializers import (
    MAX_ID,
    MAX_REFUSED_LISTED,
    BalanceQuerySerializer,
    BalanceSerializer,
    CampaignCancelledSerializer,
    CampaignRetriedSerializer,
    CampaignSerializer,
    CampaignStatsSerializer,
    MessageCreateSerializer,
    MessageDetailSerializer,
    MessagesCreatedSerializer,
    MessageSerializer,
    RecipientsResultSerializer,
    RecipientsSerializer,
    RecipientsUploadSerializer,
    RetryFailedSerializer,
    SendPersonalSerializer,
    SendTextSerializer,
)

#: The header a replayed response carries.
REPLAYED_HEADER = "Idempotent-Replayed"


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The campaign cannot do that in its present state."
    default_code = "conflict"


class IdempotencyKeyReused(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "The Idempotency-Key was used for another request."
    default_code = "idempotency_key_reused"


def idempotent(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Run a POST handler once per (user, ``Idempotency-Key``); a repeat gets the first
    response and creates nothing.

    The key is claimed and the handler run in one transaction (see
    :mod:`django_smsclub.api.idempotency`). A response below 500, an error one included, is
    stored; a 5xx or a crash rolls back the work and the key, so a retry runs afresh.
    """

    @functools.wraps(handler)
    def run_once(view: APIView, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(idempotency.HEADER)
        if key is None or not request.user.is_authenticated:
            return handler(view, request, *args, **kwargs)
        problem = idempotency.key_problem(key)
        if problem:
            raise ValidationError({idempotency.HEADER: [problem]})
        fingerprint = idempotency.request_fingerprint(
            request.method, request.path, request.query_params.lists(), request.data
        )
        db = router.db_for_write(idempotency.ApiIdempotencyKey)
        with transaction.atomic(using=db):
            record, created = idempotency.claim(request.user, key, fingerprint)
            if not created:
                return _replay(record, key, fingerprint)
            try:
                # A savepoint: an error response must not keep half of the handler's work.
                with transaction.atomic(using=db):
                    response = handler(view, request, *args, **kwargs)
            except (APIException, Http404, DjangoPermissionDenied) as exc:
                response = view.handle_exception(exc)
            if response.status_code >= 500:
                transaction.set_rollback(True, using=db)
                return response
            body = json.dumps(response.data, cls=JSONEncoder, ensure_ascii=False)
            idempotency.remember(record, response.status_code, body)
        return response

    return run_once


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

    request: Request
    kwargs: dict[str, Any]
    # Any id reaches get_object, which answers a 404 in JSON (the URL resolver's is HTML).
    lookup_value_regex = "[^/]+"
    # Bodies nest lists and nulls, which only JSON holds.
    parser_classes = [JSONParser]

    def owned(self, queryset: QuerySet) -> QuerySet:
        user = getattr(self.request, "user", None)
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


class StrictPaging:
    """Paging parameters given once, and a ``page_size`` that is a whole number of at least
    1: DRF would take the last of repeated ones and ignore a bad size."""

    page_size: int
    page_size_query_param = "page_size"
    max_page_size: int

    def paginate_queryset(self, queryset: QuerySet, request: Request, view: Any = None) -> Any:
        names = (
            self.page_size_query_param,
            getattr(self, "page_query_param", None),
            getattr(self, "cursor_query_param", None),
        )
        for name in filter(None, names):
            given = request.query_params.getlist(name)
            if len(given) > 1:
                raise ValidationError({name: [f"is given {len(given)} times; give it once"]})
        return super().paginate_queryset(queryset, request, view)  # type: ignore[misc]

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit() and int(raw) >= 1):
            raise ValidationError(
                {"page_size": [f"must be a whole number of at least 1, not {raw!r}"]}
            )
        return min(int(raw), self.max_page_size)

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)  # type: ignore[misc]
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
                parameter["description"] = f"Results per page; at most {self.max_page_size}."
        return parameters


class MessagePagination(StrictPaging, CursorPagination):
    # By primary key: unique and indexed; a whole batch shares its created_at.
    ordering = "-id"
    page_size = 50
    max_page_size = 500


class CampaignPagination(StrictPaging, PageNumberPagination):
    page_size = 50
    max_page_size = 200

    def get_page_number(self, request: Request, paginator: Any) -> Any:
        raw = request.query_params.get(self.page_query_param)
        number = raw is None or (raw.isascii() and raw.isdigit()) or raw in self.last_page_strings
        # DRF would take ?page= for page 1.
        if not number:
            raise NotFound(f"page {raw!r} is not a page number")
        return super().get_page_number(request, paginator)


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
        return self.get_paginated_response(MessageSerializer(page, many=True).data)

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
    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = MessageCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        optional = ("sender", "gateway", "send_at", "metadata")
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
        summary="Delete a draft",
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

    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer: CampaignSerializer) -> None:
        serializer.save(created_by=self.request.user)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        with transaction.atomic(using=router.db_for_write(Campaign)):
            return super().update(request, *args, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        with transaction.atomic(using=router.db_for_write(Campaign)):
            campaign = self.get_object()
            if campaign.state != Campaign.State.DRAFT:
                raise Conflict(
                    f"campaign {campaign.name!r} is {campaign.state}; only a draft can be "
                    "deleted (cancel it instead)"
                )
            campaign.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Add recipients: JSON numbers or {phone, placeholders} rows, or a CSV upload",
        request=schema.recipients_request(),
        parameters=[schema.IDEMPOTENCY_KEY],
        responses=schema.post_responses({200: RecipientsResultSerializer}, 404, 409),
    )
    @action(detail=True, methods=["post"], parser_classes=[JSONParser, MultiPartParser])
    @idempotent
    def recipients(self, request: Request, pk: str | None = None) -> Response:
        campaign = self.get_object()
        upload: CsvRecipients | None = None
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
            problems = [upload.with_lines(p) for p in exc.problems] if upload else exc.problems
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
    @idempotent
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
    @idempotent
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
    @idempotent
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
        return Response(CampaignStatsSerializer(campaign_stats(campaign)).data)


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
            return _gateway_unavailable(name, exc, f"SMSCLUB is misconfigured: {exc}")
        if name not in known:
            raise ValidationError(
                {"gateway": [f"{name!r} is not a gateway of SMSCLUB['GATEWAYS'] ({known})"]}
            )
        try:
            gateway = get_gateway(name)
        except ConfigurationError as exc:
            return _gateway_unavailable(name, exc, f"gateway {name!r} is misconfigured: {exc}")
        try:
            balance = gateway.balance()
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


def campaign_stats(campaign: Campaign) -> dict[str, Any]:
    """Messages and parts per status, parts paid for and to pay for, in one grouped query."""
    counts = dict.fromkeys(Status.values, 0)
    parts = dict.fromkeys(Status.values, 0)
    spent = 0
    rows = (
        Message.objects.filter(campaign=campaign)
        .order_by()
        .values("status")
        .annotate(
            messages=Count("pk"),
            part_count=Sum("parts"),
            # Accepted by the provider (sent_at is set then): those parts are paid for.
            spent=Sum("parts", filter=Q(sent_at__isnull=False)),
        )
    )
    for row in rows:
        counts[row["status"]] = row["messages"]
        parts[row["status"]] = row["part_count"] or 0
        spent += row["spent"] or 0
    pending = parts[Status.QUEUED] + parts[Status.SENDING]
    return {
        "campaign": campaign.pk,
        "state": campaign.state,
        "total": sum(counts.values()),
        "counts": counts,
        "parts": parts,
        "parts_total": sum(parts.values()),
        "spent_parts": spent,
        "cost_parts": spent + pending,
    }


def _check_sendable(campaign: Campaign) -> None:
    problems = services.campaign_problems(campaign)
    if problems:
        raise Conflict(
            f"campaign {campaign.name!r} cannot be sent as it stands: {'; '.join(problems)}"
        )


def _replay(record: idempotency.ApiIdempotencyKey, key: str, fingerprint: str) -> Response:
    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            f"{idempotency.HEADER} {key!r} was used at {record.created_at.isoformat()} for a "
            "different request (another method, path, query or body); send a new key for a "
            "new request"
        )
    if record.response_status == idempotency.IN_PROGRESS:
        raise Conflict(f"the request with {idempotency.HEADER} {key!r} is still in progress")
    return Response(record.body, status=record.response_status, headers={REPLAYED_HEADER: "true"})


def _gateway_unavailable(name: str, exc: Exception, detail: str) -> Response:
    body = {"detail": detail, "gateway": name, "error": type(exc).__name__}
    return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)
