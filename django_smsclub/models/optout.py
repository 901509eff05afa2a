"""The stop list: numbers that asked not to get campaigns (or anything) from us."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

__all__ = ["OptOut"]


class OptOut(models.Model):
    """One number on the stop list, normalised as messages store their recipients."""

    class Scope(models.TextChoices):
        MARKETING = "marketing", _("marketing (no campaigns)")
        ALL = "all", _("everything")

    class Source(models.TextChoices):
        ADMIN = "admin", _("admin")
        API = "api", _("API")
        IMPORT = "import", _("import")
        LINK = "link", _("unsubscribe link")
        CODE = "code", _("code")

    phone = models.CharField(_("phone"), max_length=20, unique=True)
    scope = models.CharField(
        _("scope"), max_length=16, choices=Scope.choices, default=Scope.MARKETING
    )
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("opt-out")
        verbose_name_plural = _("stop list")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.phone} ({self.scope})"
