"""API idempotency keys: one per ``Idempotency-Key`` a user sent with a POST."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

__all__ = ["IDEMPOTENCY_IN_PROGRESS", "ApiIdempotencyKey"]

#: ``response_status`` of an API idempotency key whose request is still running.
IDEMPOTENCY_IN_PROGRESS = 0


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
    key = models.CharField(_("key"), max_length=255)
    fingerprint = models.CharField(
        _("request fingerprint"),
        max_length=64,
        help_text=_("SHA-256 of the first request: method, path, query, body."),
    )
    response_status = models.PositiveSmallIntegerField(
        _("response status"), default=IDEMPOTENCY_IN_PROGRESS
    )
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
