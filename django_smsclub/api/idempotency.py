"""``Idempotency-Key``: a POST retried with the same key gets the first response again.

The key is claimed in the same transaction as the work it guards. A second request with the
same key waits on the unique (user, key) index until the first commits, then reads the stored
response; if the first rolled back, the second claims the key and does the work itself. So two
concurrent identical requests create one result, and a crash between the work and the record
is impossible. A key reused for a different request is refused rather than answered with a
response that belongs to another request.

:func:`idempotent` wraps a view's POST handler; the record is
:class:`django_smsclub.models.ApiIdempotencyKey`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, router, transaction
from django.http import Http404
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder
from rest_framework.views import APIView

from ..models import IDEMPOTENCY_IN_PROGRESS, ApiIdempotencyKey
from .problems import Conflict

HEADER = "Idempotency-Key"
KEY_MAX_LENGTH = 255
#: The header a replayed response carries.
REPLAYED_HEADER = "Idempotent-Replayed"


class IdempotencyKeyReused(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "The Idempotency-Key was used for another request."
    default_code = "idempotency_key_reused"


def idempotent(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Run a POST handler once per (user, ``Idempotency-Key``); a repeat gets the first
    response and creates nothing.

    The key is claimed and the handler run in one transaction. A response below 500, an error
    one included, is stored; a 5xx or a crash rolls back the work and the key, so a retry runs
    afresh.
    """

    @functools.wraps(handler)
    def run_once(view: APIView, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None or not request.user.is_authenticated:
            return handler(view, request, *args, **kwargs)
        problem = key_problem(key)
        if problem:
            raise ValidationError({HEADER: [problem]})
        fingerprint = request_fingerprint(
            request.method or "", request.path, request.query_params.lists(), request.data
        )
        db = router.db_for_write(ApiIdempotencyKey)
        with transaction.atomic(using=db):
            record, created = claim(request.user, key, fingerprint)
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
            remember(record, response.status_code, body)
        return response

    return run_once


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be an idempotency key, or None."""
    if not key.strip():
        return f"{HEADER} {key!r} is empty"
    if len(key) > KEY_MAX_LENGTH:
        return f"{HEADER} {key[:40]!r}... is {len(key)} characters long; the limit is 255"
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        return f"{HEADER} {key!r} holds control characters"
    return None


def request_fingerprint(
    method: str, path: str, query: Iterable[tuple[str, list[str]]], body: Any
) -> str:
    """SHA-256 of what makes two requests the same: method, path, query and parsed body.

    The body is compared as parsed data, so the same JSON with other spacing or key order is
    the same request; an uploaded file counts by its content, read in chunks.
    """
    digest = hashlib.sha256()
    digest.update(method.upper().encode())
    digest.update(b"\0" + path.encode() + b"\0")
    digest.update(json.dumps(sorted(query), separators=(",", ":")).encode())
    digest.update(b"\0")
    digest.update(json.dumps(_canonical(body), sort_keys=True, default=str).encode())
    return digest.hexdigest()


def claim(user: Any, key: str, fingerprint: str) -> tuple[ApiIdempotencyKey, bool]:
    """The key's record and whether this call created it.

    Call it inside the transaction that does the guarded work. The INSERT comes first, before
    any read, so a concurrent claim of the same key waits for this transaction and then sees
    its row (even under REPEATABLE READ, whose snapshot starts at the first read).
    """
    db = router.db_for_write(ApiIdempotencyKey)
    try:
        with transaction.atomic(using=db):
            record = ApiIdempotencyKey.objects.using(db).create(
                user=user, key=key, fingerprint=fingerprint
            )
    except IntegrityError:
        return ApiIdempotencyKey.objects.using(db).get(user=user, key=key), False
    return record, True


def remember(record: ApiIdempotencyKey, status: int, body_json: str) -> None:
    """Store the response the key's request got, to be replayed to its repeats."""
    record.response_status = status
    record.response_body = body_json
    record.save(update_fields=["response_status", "response_body"])


def _replay(record: ApiIdempotencyKey, key: str, fingerprint: str) -> Response:
    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            f"{HEADER} {key!r} was used at {record.created_at.isoformat()} for a different "
            "request (another method, path, query or body); send a new key for a new request"
        )
    if record.response_status == IDEMPOTENCY_IN_PROGRESS:
        raise Conflict(f"the request with {HEADER} {key!r} is still in progress")
    return Response(record.body, status=record.response_status, headers={REPLAYED_HEADER: "true"})


def _canonical(value: Any) -> Any:
    if isinstance(value, UploadedFile):
        content = hashlib.sha256()
        for chunk in value.chunks():
            content.update(chunk)
        value.seek(0)
        return {"file": value.name, "sha256": content.hexdigest()}
    if hasattr(value, "lists"):
        # A QueryDict (form or multipart body): every value of every key.
        return {k: [_canonical(v) for v in vs] for k, vs in value.lists()}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value
