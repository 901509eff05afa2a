"""Messages and the provider's delivery reports: looked at, searched, resent or cancelled,
never edited.

The message list joins its campaign and skips the full count and the filter facets: the table
may hold millions of rows.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import phones, services
from ..exceptions import InvalidMessage
from ..models import PENDING_STATUSES, DeliveryReport, Message, MessageQuerySet
from ..status import Status
from .filters import CampaignFilter, GatewayFilter
from .links import change_link

#: Messages of unknown fate one confirmation resends at most; and lists by number.
RESEND_UNKNOWN_LIMIT = 1000
RESEND_UNKNOWN_SHOWN = 20


class DeliveryReportInline(admin.TabularInline):
    model = DeliveryReport
    fields = ("part", "smsc_id", "raw_status", "status", "changed_at", "next_poll_at", "polls")
    readonly_fields = fields
    ordering = ("part",)
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = (
        "recipient",
        "status_badge",
        "short_text",
        "campaign_link",
        "gateway",
        "parts",
        "sent_at",
        "finished_at",
    )
    list_filter = ("status", "operator", GatewayFilter, CampaignFilter, "created_at")
    # Counts per filter choice would scan the whole table on every page.
    show_facets = admin.ShowFacets.NEVER
    search_fields = ("recipient", "=reports__smsc_id")
    search_help_text = _("A number (written any way) or an SMSC ID.")
    list_select_related = ("campaign",)
    raw_id_fields = ("campaign", "retry_of", "created_by")
    show_full_result_count = False
    inlines = [DeliveryReportInline]
    actions = ["resend_selected", "resend_unknown_selected", "cancel_selected"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "recipient",
                    "operator",
                    "status_badge",
                    "error",
                    "text",
                    "parts",
                    "sender",
                    "gateway",
                ]
            },
        ),
        (
            _("Sending"),
            {
                "fields": [
                    "campaign",
                    "attempts",
                    "next_attempt_at",
                    "created_at",
                    "claimed_at",
                    "sent_at",
                    "finished_at",
                ]
            },
        ),
        (
            _("Record"),
            {
                "fields": ["retry_of", "resent_as", "idempotency_key", "metadata", "created_by"],
                "classes": ["collapse"],
            },
        ),
    ]

    class Media:
        css = {"all": ["django_smsclub/admin.css"]}

    def get_readonly_fields(self, request: HttpRequest, obj: Message | None = None) -> list[str]:
        # A message is a record of what was sent: it is resent or cancelled, never edited.
        return [str(name) for _title, options in self.fieldsets for name in options["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # Nothing on the page can be edited: no save buttons to press for nothing.
        extra_context = {**(extra_context or {}), "show_save": False}
        extra_context["show_save_and_continue"] = False
        return super().change_view(request, object_id, form_url, extra_context)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Message], search_term: str
    ) -> tuple[QuerySet[Message], bool]:
        found, duplicates = super().get_search_results(request, queryset, search_term)
        try:
            number = phones.normalize_phone(search_term.strip())
        except InvalidMessage:
            return found, duplicates
        # "050 123 45 67" is one number, not four words that must all appear.
        by_number, more = super().get_search_results(request, queryset, number)
        return found | by_number, duplicates or more

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: Message) -> SafeString:
        return _badge(obj.status, obj.get_status_display())

    @admin.display(description=_("text"))
    def short_text(self, obj: Message) -> str:
        return Truncator(obj.text).chars(28)

    @admin.display(description=_("campaign"), ordering="campaign")
    def campaign_link(self, obj: Message) -> SafeString | str:
        if obj.campaign is None:
            return "—"
        return change_link(self.admin_site, "campaign", obj.campaign_id, obj.campaign.name)

    @admin.display(description=_("resent as"))
    def resent_as(self, obj: Message) -> SafeString | str:
        copy = Message.objects.filter(retry_of=obj).only("pk", "status").first()
        if copy is None:
            return "—"
        label = f"#{copy.pk} ({copy.get_status_display()})"
        return change_link(self.admin_site, "message", copy.pk, label)

    @admin.action(
        description=_("Resend the selected messages as new messages"), permissions=["change"]
    )
    def resend_selected(self, request: HttpRequest, queryset: MessageQuerySet) -> None:
        counts = queryset.status_counts()
        resent = services.resend_messages(queryset)
        retryable = sum(counts[s] for s in services.RETRY_STATUSES)
        left = {
            "in_flight": sum(counts[s] for s in PENDING_STATUSES),
            "unknown": counts[Status.UNKNOWN],
            "arrived": counts[Status.DELIVERED] + counts[Status.CANCELLED],
            # Failed, but with a copy already (or resent by someone else meanwhile).
            "already": max(retryable - resent, 0),
        }
        if resent:
            self.message_user(
                request,
                ngettext(
                    "%(count)d message is resent as a new message.",
                    "%(count)d messages are resent as new messages.",
                    resent,
                )
                % {"count": resent},
                messages.SUCCESS,
            )
        for reason, count in left.items():
            if count:
                self.message_user(request, _left_alone(reason, count), messages.WARNING)
        if left["unknown"] and self.has_resend_unknown_permission(request):
            self.message_user(
                request,
                _(
                    "If you accept that they may arrive twice, choose “Resend the selected "
                    "messages of unknown fate”."
                ),
                messages.INFO,
            )

    @admin.action(
        description=_("Resend the selected messages of unknown fate (they may arrive twice)"),
        permissions=["resend_unknown"],
    )
    def resend_unknown_selected(
        self, request: HttpRequest, queryset: MessageQuerySet
    ) -> TemplateResponse | None:
        """The explicit "I accept a possible duplicate" step: a confirmation page, then
        :func:`~django_smsclub.services.resend_messages` with ``include_unknown``, logged with
        the user."""
        unknown = queryset.filter(status=Status.UNKNOWN).order_by("pk")
        count = unknown.count()
        if not count:
            self.message_user(
                request,
                _("None of the selected messages is of unknown fate; nothing was resent."),
                messages.WARNING,
            )
            return None
        if count > RESEND_UNKNOWN_LIMIT:
            self.message_user(
                request,
                _(
                    "%(count)d messages of unknown fate are selected; resend at most %(limit)d "
                    "at a time, each looked at."
                )
                % {"count": count, "limit": RESEND_UNKNOWN_LIMIT},
                messages.ERROR,
            )
            return None
        if request.POST.get("post") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": _("Resend messages of unknown fate"),
                "opts": self.opts,
                "media": self.media,
                "messages_count": count,
                "shown": unknown.select_related(None).only("pk", "recipient", "error")[
                    :RESEND_UNKNOWN_SHOWN
                ],
                "more": max(count - RESEND_UNKNOWN_SHOWN, 0),
                "pks": list(unknown.values_list("pk", flat=True)),
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(
                request, "admin/django_smsclub/message/resend_unknown_confirmation.html", context
            )
        resent = services.resend_messages(unknown, include_unknown=True, by=request.user)
        self.message_user(
            request,
            ngettext(
                "%(count)d message of unknown fate is resent as a new message; it may arrive "
                "twice.",
                "%(count)d messages of unknown fate are resent as new messages; they may "
                "arrive twice.",
                resent,
            )
            % {"count": resent},
            messages.SUCCESS if resent else messages.WARNING,
        )
        if count > resent:
            self.message_user(request, _left_alone("already", count - resent), messages.WARNING)
        return None

    def has_resend_unknown_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(services.RESEND_UNKNOWN_PERMISSION))

    @admin.action(description=_("Cancel the selected queued messages"), permissions=["change"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        selected = queryset.count()
        cancelled = services.cancel_messages(queryset)
        self.message_user(
            request,
            ngettext(
                "%(count)d queued message is cancelled.",
                "%(count)d queued messages are cancelled.",
                cancelled,
            )
            % {"count": cancelled},
            messages.SUCCESS if cancelled else messages.WARNING,
        )
        if selected > cancelled:
            left = selected - cancelled
            self.message_user(
                request,
                ngettext(
                    "%(count)d message was not queued any more and is left as it is.",
                    "%(count)d messages were not queued any more and are left as they are.",
                    left,
                )
                % {"count": left},
                messages.WARNING,
            )


@admin.register(DeliveryReport)
class DeliveryReportAdmin(admin.ModelAdmin):
    """The provider's reports, as they came: looked at, never edited."""

    list_display = (
        "smsc_id",
        "message_link",
        "part",
        "status_badge",
        "raw_status",
        "gateway",
        "changed_at",
        "next_poll_at",
        "polls",
    )
    list_filter = ("status", GatewayFilter, "changed_at")
    show_facets = admin.ShowFacets.NEVER
    search_fields = ("=smsc_id", "message__recipient")
    list_select_related = ("message",)
    show_full_result_count = False

    class Media:
        css = {"all": ["django_smsclub/admin.css"]}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: DeliveryReport) -> SafeString:
        return _badge(obj.status, obj.get_status_display())

    @admin.display(description=_("message"), ordering="message")
    def message_link(self, obj: DeliveryReport) -> SafeString:
        return change_link(self.admin_site, "message", obj.message_id, obj.message.recipient)


def _badge(status: str, label: str) -> SafeString:
    return format_html('<span class="smsclub-status smsclub-status-{}">{}</span>', status, label)


def _left_alone(reason: str, count: int) -> str:
    """Why ``count`` of the messages chosen for a resend were not resent."""
    if reason == "in_flight":
        text = ngettext(
            "%(count)d message is still on its way and was not resent.",
            "%(count)d messages are still on their way and were not resent.",
            count,
        )
    elif reason == "unknown":
        text = ngettext(
            "%(count)d message of unknown fate was not resent: it may have arrived.",
            "%(count)d messages of unknown fate were not resent: they may have arrived.",
            count,
        )
    elif reason == "arrived":
        text = ngettext(
            "%(count)d message was delivered or cancelled and was not resent: only messages "
            "that surely did not arrive are resent.",
            "%(count)d messages were delivered or cancelled and were not resent: only "
            "messages that surely did not arrive are resent.",
            count,
        )
    else:
        text = ngettext(
            "%(count)d message was resent before; resend its copy instead.",
            "%(count)d messages were resent before; resend their copies instead.",
            count,
        )
    return text % {"count": count}
