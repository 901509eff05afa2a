"""How the lists are cut into pages: messages by cursor, campaigns by page number.

Both refuse what DRF would quietly read another way: a paging parameter given twice, a page
size that is no whole number, a page that is no page number.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from django.db.models import QuerySet
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.request import Request
from rest_framework.utils.encoders import JSONEncoder
from rest_framework.views import APIView


class StrictPaging:
    """Paging parameters given once, and a ``page_size`` that is a whole number of at least
    1: DRF would take the last of repeated ones and ignore a bad size."""

    page_size: int
    page_size_query_param: str | None = "page_size"
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
        raw = request.query_params.get(self.page_size_query_param or "page_size")
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
    """Messages newest first, at most ``page_size`` of them and at most
    :attr:`max_page_bytes` of JSON: a page of messages with large metadata holds fewer, and
    its ``next`` link goes on from the last one it holds."""

    # By primary key: unique and indexed; a whole batch shares its created_at.
    ordering = "-id"
    page_size = 50
    max_page_size = 500
    #: Bytes of JSON the results of one page take at most (one message always goes in).
    max_page_bytes = 1024 * 1024

    def serialize_page(self, page: Sequence[Any], serialize: Callable[[Any], Any]) -> list[Any]:
        """The results of ``page`` (as :meth:`paginate_queryset` returned it), each made by
        ``serialize``, up to :attr:`max_page_bytes`; the page is cut where they stop, so
        ``next`` goes on from there."""
        results: list[Any] = []
        size = 0
        for count, item in enumerate(page):
            data = serialize(item)
            size += len(json.dumps(data, cls=JSONEncoder, ensure_ascii=False).encode())
            if count and size > self.max_page_bytes:
                self.page = list(page[:count])
                if not self.has_next:
                    self.has_next, self.next_position = True, None
                break
            results.append(data)
        return results


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
