"""The stop list over the API: list it, put a number on it, take one off.

- ``GET optout/`` (newest first, by cursor; ``?phone=`` in any spelling, ``?scope=``) needs
  ``django_smsclub.view_optout``;
- ``POST optout/`` ``{"phone", "scope", "reason"}`` needs ``add_optout``: 201 with the new
  entry, 200 with the entry that was there (its scope widened to ``all`` if asked; never
  narrowed); a bad number or scope is a 400 naming it;
- ``DELETE optout/{phone}/`` (any spelling) needs ``delete_optout``: 204, or 404 when the
  number is not on the list.

The stop list is the project's, not a user's: whoever has the permission sees all of it.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from .. import phones
from ..models import OptOut
from ..services import optout
from . import idempotency, schema
from .fields import StrictCharField
from .filters import QueryParameters, normalised_phone
from .pagination import StrictPaging
from .serializers import ApiModelSerializer, NamesBadValues
from .views import SmsClubView

_PHONE_HELP = "A number in any spelling; it is normalised (international digits, no +)."


class OptOutSerializer(ApiModelSerializer):
    class Meta:
        model = OptOut
        fields = ["phone", "scope", "reason", "source", "created_at"]
        read_only_fields = fields


class OptOutCreateSerializer(NamesBadValues, serializers.Serializer):
    phone = StrictCharField(max_length=phones.MAX_INPUT_LENGTH, help_text=_PHONE_HELP)
    scope = serializers.ChoiceField(
        choices=OptOut.Scope.choices,
        default=OptOut.Scope.MARKETING,
        help_text="marketing: no campaigns (nor marketing=True sends); all: no message at all.",
    )
    reason = StrictCharField(max_length=255, required=False, allow_blank=True, default="")

    def validate_phone(self, value: str) -> str:
        return normalised_phone(value)


class OptOutFilter(QueryParameters):
    phone = StrictCharField(
        required=False, max_length=phones.MAX_INPUT_LENGTH, help_text=_PHONE_HELP
    )
    scope = serializers.ChoiceField(choices=OptOut.Scope.choices, required=False)

    def validate_phone(self, value: str) -> str:
        return normalised_phone(value)

    def filter(self, entries: QuerySet) -> QuerySet:
        data = self.validated_data
        lookups = {"phone": data.get("phone"), "scope": data.get("scope")}
        return entries.filter(**{k: v for k, v in lookups.items() if v is not None})


class OptOutPagination(StrictPaging, CursorPagination):
    ordering = "-id"
    page_size = 50
    max_page_size = 500


@extend_schema_view(
    list=extend_schema(
        summary="The stop list, newest first",
        parameters=[OptOutFilter],
        responses=schema.responses({200: OptOutSerializer(many=True)}, 400, 404),
    ),
    destroy=extend_schema(
        summary="Take a number off the stop list",
        parameters=[OpenApiParameter("phone", OpenApiTypes.STR, OpenApiParameter.PATH)],
        responses=schema.responses({204: None}, 404),
    ),
)
class OptOutViewSet(
    SmsClubView, mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """The stop list: numbers that get no campaign (scope marketing) or nothing (scope all)."""

    queryset = OptOut.objects.all()
    serializer_class = OptOutSerializer
    pagination_class = OptOutPagination
    parser_classes = [JSONParser]
    lookup_field = "phone"
    lookup_value_regex = "[^/]+"

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        filters = OptOutFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        page = self.paginate_queryset(filters.filter(self.get_queryset()))
        return self.get_paginated_response(OptOutSerializer(page, many=True).data)

    @extend_schema(
        summary="Put a number on the stop list",
        request=OptOutCreateSerializer,
        parameters=[schema.IDEMPOTENCY_KEY],
        responses=schema.post_responses({201: OptOutSerializer, 200: OptOutSerializer}),
    )
    @idempotency.idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = OptOutCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        entry, created = optout.opt_out(
            data["phone"], data["scope"], reason=data["reason"], source=OptOut.Source.API
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(OptOutSerializer(entry).data, status=code)

    def get_object(self) -> OptOut:
        number, problem = phones.normalize_or_problem(self.kwargs.get("phone", ""))
        entry = None if problem else self.get_queryset().filter(phone=number).first()
        if entry is None:
            raise Http404
        self.check_object_permissions(self.request, entry)
        return entry
