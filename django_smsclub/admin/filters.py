"""List filters by gateway and by campaign, cheap on tables of millions of rows."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from .. import conf
from ..exceptions import ConfigurationError
from ..models import Campaign


class GatewayFilter(admin.SimpleListFilter):
    """By gateway, from the settings: never a DISTINCT over a table of millions."""

    title = _("gateway")
    parameter_name = "gateway"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(name, name) for name in gateway_names()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        name = self.value()
        if not name:
            return queryset
        if queryset.model is Campaign and name == conf.default_gateway_name():
            return queryset.filter(Q(gateway=name) | Q(gateway=""))
        return queryset.filter(gateway=name)


class CampaignFilter(admin.SimpleListFilter):
    """By campaign: the latest few are offered, any one can be chosen by its ID."""

    title = _("campaign")
    parameter_name = "campaign"
    shown = 10

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        latest = Campaign.objects.order_by("-created_at", "-pk").values_list("pk", "name")
        choices = [(str(pk), name) for pk, name in latest[: self.shown]]
        chosen = self.value()
        if chosen and chosen.isdecimal() and chosen not in {pk for pk, _name in choices}:
            name = Campaign.objects.filter(pk=chosen).values_list("name", flat=True).first()
            if name is not None:
                choices.append((chosen, name))
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        chosen = self.value()
        if not chosen:
            return queryset
        if not chosen.isdecimal():
            return queryset.none()
        return queryset.filter(campaign_id=chosen)


def gateway_names() -> list[str]:
    """The gateways of the settings; none while the settings are broken (the checks say why)."""
    try:
        return conf.gateway_names()
    except ConfigurationError:
        return []
