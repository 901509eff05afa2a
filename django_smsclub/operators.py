"""Ukraine's mobile networks, as a message's ``operator`` names them."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

__all__ = ["Operator"]


class Operator(models.TextChoices):
    KYIVSTAR = "kyivstar", "Kyivstar"
    VODAFONE = "vodafone", "Vodafone Ukraine"
    LIFECELL = "lifecell", "lifecell"
    OTHER = "other", _("other")
