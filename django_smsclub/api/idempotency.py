"""``Idempotency-Key``: a POST retried with the same key gets the first response again.

The key is claimed in the same transaction as the work it guards. A second request with the
same key waits on the unique (user, key) index until the first commits, then reads the stored
response; if the first rolled back, the second claims the key and does the work itself. So two
concurrent identical requests create one result, and a crash between the work and the record
is impossible. A key reused for a different request is refused rather than answered with a
response that belongs to another request.

The model lives here, beside the only code that uses it; ``django_smsclub.models`` imports it.
This module imports no DRF, so loading the models does not load the REST framework.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, models, router, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

HEADER = "Idempotency-Key"
KEY_MAX_LENGTH = 255
#: ``response_status`` of a key whose request is still running in an open transaction.
IN_PROGRESS = 0


class ApiIdempotencyKey(models.Model):
    """One ``Idempotency-Key`` a user sent with a POST, and the response it got."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="+",
        # The unique (user, key) index serves every lookup by user.
        db_index=False,
    )
    key = models.CharField(_("key"), max_length=KEY_MAX_LENGTH)
    fingerprint = models.CharField(
        _("request fingerprint"),
        max_length=64,
        help_text=_("SHA-256 of the first request: method, path, query, body."),
    )
    response_status = models.PositiveSmallIntegerField(_("response status"), default=IN_PROGRESS)
    # JSON kept as text: jsonb would reorder the keys, and a replay must be the same body.
    response_body = models.TextField(_("response body (JSON)"), blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("API idempotency key")
        verbose_name_plural = _("API idempotency keys")
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="smsclub_api_idempotency_key"),
        ]
        # Rows are written by the API alone; the one permission is the API's own, which no
        # model of the domain carries.
        default_permissions = ()
        permissions = [("view_balance", _("Can view the SMSClub account balance"))]

    def __str__(self) -> str:
        return f"{self.key} ({self.response_status or 'in progress'})"

    @property
    def body(self) -> Any:
        """The stored response body, parsed."""
        return json.loads(self.response_body) if self.response_body else None


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
