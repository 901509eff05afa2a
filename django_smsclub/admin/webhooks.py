"""Webhook endpoints (made here or from ``SMSCLUB["WEBHOOKS"]``) and the log of every delivery.

A secret is written, never shown. An endpoint disabled after failing says so at the top of its
page and in the list; "Re-enable" resumes its pending deliveries, "Send a test event" tries it
at once. The delivery log is read-only; "Retry now" makes the chosen deliveries due.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator, capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import conf
from ..models import WebhookDelivery, WebhookEndpoint
from ..services import webhooks
from ..webhooks import CAMPAIGN_DONE, MESSAGE_FINAL, TEST_EVENT
from .links import change_link

#: The events an endpoint may choose, with what they mean.
EVENT_CHOICES = [
    (MESSAGE_FINAL, _("A message reached a final status (message.final)")),
    (CAMPAIGN_DONE, _("A campaign is done (campaign.done)")),
]
#: Endpoints one "Send a test event" tries at most: each may take the whole timeout.
TEST_EVENT_LIMIT = 5


class WebhookEndpointForm(forms.ModelForm):
    """Events as checkboxes; the secret written only (blank keeps the one stored)."""

    url = forms.URLField(label=_("URL"), max_length=500, assume_scheme="https")
    events = forms.MultipleChoiceField(
        label=capfirst(_("events")),
        choices=EVENT_CHOICES,
        initial=[MESSAGE_FINAL, CAMPAIGN_DONE],
        widget=forms.CheckboxSelectMultiple,
    )
    secret = forms.CharField(
        label=capfirst(_("secret")),
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_(
            "The HMAC-SHA256 key the receiver checks signatures with, at least %(min)d "
            'characters, e.g. from: python -c "import secrets; print(secrets.token_urlsafe(32))". '
            "Never shown again; leave it blank to keep the one stored."
        )
        % {"min": conf.WEBHOOK_SECRET_MIN_LENGTH},
    )

    class Meta:
        model = WebhookEndpoint
        # The URL is declared above: the admin's own forms list it from the fieldsets.
        fields = ["name", "events", "secret", "is_active"]

    def clean_secret(self) -> str:
        secret: str = self.cleaned_data.get("secret") or ""
        if not secret:
            if self.instance.pk and self.instance.secret:
                return self.instance.secret
            raise forms.ValidationError(_("Give the endpoint a secret."))
        if len(secret) < conf.WEBHOOK_SECRET_MIN_LENGTH:
            raise forms.ValidationError(
                _("The secret must be at least %(min)d characters long.")
                % {"min": conf.WEBHOOK_SECRET_MIN_LENGTH}
            )
        return secret

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        problems = conf.webhook_problems("admin", {"URL": url, "SECRET": "x" * 64, "EVENTS": []})
        if any("['URL']" in problem for problem in problems):
            raise forms.ValidationError(
                _("Give an http:// or https:// URL without a user name or password.")
            )
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    # A URL typed without a scheme is https (Django 6's default, and the safe one).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = (
        "name",
        "url",
        "state_short",
        "event_list",
        "pending_link",
        "consecutive_failures",
        "from_settings",
    )
    list_filter = ("is_active", "from_settings")
    search_fields = ("name", "url")
    actions = ["enable_selected", "send_test_event"]
    readonly_fields = (
        "state",
        "consecutive_failures",
        "disabled_at",
        "disabled_reason",
        "from_settings",
        "created_at",
        "secret_state",
    )

    class Media:
        css = {"all": ["django_smsclub/admin.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookEndpoint]:
        pending = Count("deliveries", filter=Q(deliveries__status=WebhookDelivery.Status.PENDING))
        return super().get_queryset(request).annotate(pending_count=pending)

    def get_fieldsets(self, request: HttpRequest, obj: WebhookEndpoint | None = None) -> Any:
        if obj is not None and obj.from_settings:
            main = ["state", "name", "url", "event_list", "secret_state", "is_active"]
        else:
            main = ["state", "name", "url", "events", "secret", "is_active"]
        if obj is None:
            main.remove("state")
            return [(None, {"fields": main})]
        return [
            (None, {"fields": main}),
            (
                _("Failures"),
                {"fields": ["consecutive_failures", "disabled_at", "disabled_reason"]},
            ),
            (_("Record"), {"fields": ["from_settings", "created_at"]}),
        ]

    def get_readonly_fields(
        self, request: HttpRequest, obj: WebhookEndpoint | None = None
    ) -> tuple[str, ...]:
        if obj is not None and obj.from_settings:
            # SMSCLUB["WEBHOOKS"] is the truth for these: edited there, synced at migrate.
            return (*self.readonly_fields, "name", "url", "events", "secret", "event_list")
        return self.readonly_fields

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        endpoint = self.get_object(request, object_id)
        if request.method == "GET" and endpoint is not None:
            if endpoint.disabled_at is not None:
                self.message_user(request, disabled_text(endpoint), messages.ERROR)
            if endpoint.from_settings:
                self.message_user(
                    request,
                    _(
                        "This endpoint comes from SMSCLUB['WEBHOOKS'] in the settings: change "
                        "its URL, secret and events there."
                    ),
                    messages.INFO,
                )
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description=_("state"))
    def state(self, obj: WebhookEndpoint) -> SafeString:
        return self._state(obj, disabled_text(obj))

    @admin.display(description=_("state"))
    def state_short(self, obj: WebhookEndpoint) -> SafeString:
        text = _("after %(count)d failures in a row, %(when)s") % {
            "count": obj.consecutive_failures,
            "when": _when(obj),
        }
        return self._state(obj, text)

    def _state(self, obj: WebhookEndpoint, disabled: str) -> SafeString:
        if obj.disabled_at is not None:
            return format_html(
                '<span class="smsclub-status smsclub-status-failed">{}</span> {}',
                _("disabled"),
                disabled,
            )
        if not obj.is_active:
            return format_html('<span class="smsclub-status">{}</span>', _("off"))
        return format_html(
            '<span class="smsclub-status smsclub-status-delivered">{}</span>', _("active")
        )

    @admin.display(description=_("events"))
    def event_list(self, obj: WebhookEndpoint) -> str:
        return ", ".join(obj.events or []) or "—"

    @admin.display(description=_("secret"))
    def secret_state(self, obj: WebhookEndpoint) -> str:
        return str(_("set (hidden)")) if obj.secret else str(_("missing"))

    @admin.display(description=_("pending"), ordering="pending_count")
    def pending_link(self, obj: WebhookEndpoint) -> SafeString:
        url = reverse(
            "admin:django_smsclub_webhookdelivery_changelist", current_app=self.admin_site.name
        )
        return format_html(
            '<a href="{}?endpoint__id__exact={}&status__exact=pending">{}</a>',
            url,
            obj.pk,
            getattr(obj, "pending_count", 0),
        )

    @admin.action(description=_("Re-enable the selected endpoints"), permissions=["change"])
    def enable_selected(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            pending = webhooks.enable_endpoint(endpoint)
            self.message_user(
                request,
                ngettext(
                    "“%(name)s” is enabled; %(count)d pending delivery is due now.",
                    "“%(name)s” is enabled; %(count)d pending deliveries are due now.",
                    pending,
                )
                % {"name": endpoint.name, "count": pending},
                messages.SUCCESS,
            )

    @admin.action(
        description=_("Send a test event to the selected endpoints"), permissions=["change"]
    )
    def send_test_event(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        if queryset.count() > TEST_EVENT_LIMIT:
            self.message_user(
                request,
                _("Choose at most %(limit)d endpoints for a test event.")
                % {"limit": TEST_EVENT_LIMIT},
                messages.ERROR,
            )
            return
        for endpoint in queryset:
            delivery, reply = webhooks.send_test_event(endpoint)
            values = {
                "name": endpoint.name,
                "code": reply.status_code,
                "ms": round(reply.seconds * 1000),
                "error": reply.error,
                "event_id": delivery.event_id,
            }
            if reply.ok:
                text = _("“%(name)s” answered HTTP %(code)s in %(ms)d ms (event %(event_id)s).")
                self.message_user(request, text % values, messages.SUCCESS)
            else:
                text = _("“%(name)s” failed the test: %(error)s (event %(event_id)s).")
                self.message_user(request, text % values, messages.ERROR)


def disabled_text(endpoint: WebhookEndpoint) -> str:
    """ "Disabled at <time>: N failed attempts in a row; the last: ...", for its page."""
    return _(
        "Disabled at %(when)s: %(reason)s. Its pending deliveries wait; fix the receiver, "
        "then choose “Re-enable the selected endpoints”."
    ) % {"when": _when(endpoint), "reason": endpoint.disabled_reason or "—"}


def _when(endpoint: WebhookEndpoint) -> str:
    if endpoint.disabled_at is None:
        return "—"
    return formats.date_format(timezone.localtime(endpoint.disabled_at), "DATETIME_FORMAT")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Every event owed to an endpoint and what became of it: read-only."""

    list_display = (
        "created_at",
        "event",
        "endpoint",
        "status_badge",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
        "message_link",
        "short_error",
    )
    list_filter = ("status", "event", "endpoint", "created_at")
    show_facets = admin.ShowFacets.NEVER
    search_fields = ("event_id",)
    search_help_text = _("An event ID, or a message ID.")
    list_select_related = ("endpoint",)
    show_full_result_count = False
    actions = ["retry_selected"]
    fields = (
        "event",
        "event_id",
        "endpoint",
        "status_badge",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "claimed_at",
        "created_at",
        "delivered_at",
        "message_link",
        "campaign_link",
        "payload_json",
    )
    readonly_fields = fields

    class Media:
        css = {"all": ["django_smsclub/admin.css"]}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("django_smsclub.change_webhookdelivery"))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[WebhookDelivery], search_term: str
    ) -> tuple[QuerySet[WebhookDelivery], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdecimal():
            return queryset.filter(message_id=int(term)), False
        try:
            return queryset.filter(event_id=uuid.UUID(term)), False
        except ValueError:
            return queryset.none(), False

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: WebhookDelivery) -> SafeString:
        css = {"pending": "sent", "delivered": "delivered", "failed": "failed"}[obj.status]
        return format_html(
            '<span class="smsclub-status smsclub-status-{}">{}</span>',
            css,
            obj.get_status_display(),
        )

    @admin.display(description=_("last error"))
    def short_error(self, obj: WebhookDelivery) -> str:
        return Truncator(obj.last_error).chars(60)

    @admin.display(description=_("message"), ordering="message")
    def message_link(self, obj: WebhookDelivery) -> SafeString | str:
        if obj.message_id is None:
            return "—"
        return change_link(self.admin_site, "message", obj.message_id, f"#{obj.message_id}")

    @admin.display(description=_("campaign"))
    def campaign_link(self, obj: WebhookDelivery) -> SafeString | str:
        if obj.campaign_id is None:
            return "—"
        return change_link(self.admin_site, "campaign", obj.campaign_id, f"#{obj.campaign_id}")

    @admin.display(description=_("payload"))
    def payload_json(self, obj: WebhookDelivery) -> SafeString:
        text = json.dumps(obj.payload, ensure_ascii=False, indent=2, sort_keys=True)
        return format_html('<pre class="smsclub-payload">{}</pre>', text)

    @admin.action(description=_("Retry the selected deliveries now"), permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        retried = webhooks.retry_deliveries(queryset)
        self.message_user(
            request,
            ngettext("%(count)d delivery is due now.", "%(count)d deliveries are due now.", retried)
            % {"count": retried},
            messages.SUCCESS if retried else messages.WARNING,
        )
        off = queryset.filter(
            Q(endpoint__is_active=False) | Q(endpoint__disabled_at__isnull=False),
            status=WebhookDelivery.Status.PENDING,
        ).exclude(event=TEST_EVENT)
        if retried and off.exists():
            self.message_user(
                request,
                _("Some of them belong to endpoints that are off or disabled: they wait for them."),
                messages.WARNING,
            )
