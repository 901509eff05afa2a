"""A campaign's results as a CSV download over the API (the rules: :mod:`django_smsclub.exports`).

``GET campaigns/{id}/export/`` (``Accept: text/csv`` or ``?format=csv`` too) streams every
message of the campaign. It lists phone numbers and metadata, so it needs the view permission
on campaigns and on messages; a user who is not staff exports only campaigns they created.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import exports
from ..models import Campaign
from . import schema
from .permissions import ModelPermissions
from .views import OwnedObjects

VIEW_MESSAGES = "django_smsclub.view_message"


class CsvRenderer(BaseRenderer):
    """What the export answers in: ``text/csv`` (the view writes the CSV itself, streamed)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context=None):
        # Never reached: the view streams the CSV itself and answers errors in JSON.
        raise RuntimeError("the export view writes its CSV itself; this renderer only names it")


class CanViewMessages(BasePermission):
    """The view permission on messages: an export lists every message's number."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(VIEW_MESSAGES))


class CampaignExportView(OwnedObjects, GenericAPIView):
    """Every message of a campaign as CSV."""

    smsclub_permission_classes = (ModelPermissions, CanViewMessages)
    renderer_classes = [CsvRenderer]

    def get_queryset(self) -> QuerySet:
        return self.owned(Campaign.objects.all())

    @extend_schema(
        summary="Every message of the campaign as CSV, streamed",
        description=(
            "Columns: id, number, operator, status, error, sent_at, finished_at, parts, "
            "metadata (JSON). Times in ISO 8601 with their offset. A cell a spreadsheet would "
            "run as a formula (starting with =, +, -, @, a tab or a carriage return) gets a "
            "' in front."
        ),
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="The CSV, as an attachment."
            ),
            # Errors are JSON, as everywhere in the API.
            **{(code, "application/json"): r for code, r in schema.responses({}, 404).items()},
        },
    )
    def get(self, request: Request, pk: str) -> StreamingHttpResponse:
        return exports.csv_response(self.get_object())

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        # Errors are JSON, as everywhere in the API, whatever the client accepts.
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return response
