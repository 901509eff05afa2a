"""The Django admin: campaigns a person can build, start and watch; messages; delivery reports.

No page makes a query per row: the campaign list counts the messages of the page's campaigns
in one grouped query, the message list joins its campaign, and the big tables skip the full
count. Every button is a POST to a view wrapped in ``admin_site.admin_view`` that checks the
change permission (see :mod:`django_smsclub.admin_views`).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import Q, QuerySet, Sum
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import admin_views, conf, phones, services
from .admin_forms import CampaignForm
from .charts import counts_from_annotation, progress
from .exceptions import ConfigurationError, InvalidMessage, SmsClubError
from .models import Campaign, DeliveryReport, Message
from .status import Status

#: Messages a bulk action lists one by one; the rest are counted.
_SHOWN_OUTCOMES = 5


class GatewayFilter(admin.SimpleListFilter):
    """By gateway, from the settings: never a DISTINCT over a table of millions."""

    title = _("gateway")
    parameter_name = "gateway"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        try:
            return [(name, name) for name in conf.gateway_names()]
        except ConfigurationError:
            return []

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


class CampaignChangeList(ChangeList):
    """Counts the messages of the shown campaigns only, per status, in one grouped query.

    Annotating the whole queryset would make the page count and sort every message of every
    campaign before cutting out one page.
    """

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        campaigns = list(self.result_list)
        fields = [f"count_{status}" for status in Status.values]
        rows = (
            Campaign.objects.filter(pk__in=[c.pk for c in campaigns])
            .with_status_counts()
            .annotate(count_parts=Sum("messages__parts"))
            .values("pk", "count_parts", *fields)
        )
        by_pk = {row.pop("pk"): row for row in rows}
        for campaign in campaigns:
            for name, value in by_pk.get(campaign.pk, {}).items():
                setattr(campaign, name, value or 0)
        self.result_list = campaigns


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    form = CampaignForm
    list_display = (
        "name",
        "state_badge",
        "progress_bar",
        "recipients",
        "total_parts",
        "gateway_name",
        "send_at",
        "created_at",
    )
    list_display_links = ("name",)
    list_filter = ("state", GatewayFilter, "created_at")
    search_fields = ("name",)
    raw_id_fields = ("created_by",)
    readonly_fields = ("state", "created_by", "created_at", "updated_at")
    show_full_result_count = False
    change_form_template = "admin/django_smsclub/campaign/change_form.html"
    change_list_template = "admin/django_smsclub/campaign/change_list.html"
    actions = ["start_selected", "cancel_selected", "retry_selected", "poll_selected"]

    class Media:
        css = {"all": ["django_smsclub/admin.css"]}

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return CampaignChangeList

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        buttons = [
            path(
                f"<path:object_id>/{action}/",
                self.admin_site.admin_view(
                    partial(admin_views.campaign_action_view, self, action=action)
                ),
                name=f"{info[0]}_{info[1]}_{action}",
            )
            for action in admin_views.CAMPAIGN_ACTIONS
        ]
        return buttons + super().get_urls()

    def get_fieldsets(self, request: HttpRequest, obj: Campaign | None = None) -> list[Any]:
        fieldsets: list[Any] = [
            (None, {"fields": ["name", "sender", "text", "gateway", "send_at"]}),
        ]
        if obj is None or obj.state == Campaign.State.DRAFT:
            fieldsets.append(
                (
                    _("Add recipients") if obj is None else _("Add more recipients"),
                    {"fields": ["numbers", "csv_file", "encoding"]},
                )
            )
        if obj is not None:
            fieldsets.append(
                (
                    _("Record"),
                    {
                        "fields": ["state", "created_by", "created_at", "updated_at"],
                        "classes": ["collapse"],
                    },
                )
            )
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Campaign | None = None) -> list[str]:
        fields = list(self.readonly_fields)
        if obj is None:
            return fields
        if obj.state != Campaign.State.DRAFT:
            return [*fields, "name", "sender", "text", "gateway", "send_at"]
        if _has_recipients(obj):
            # The recipients' texts were made from these: changing them would not change those.
            return [*fields, "sender", "text", "gateway"]
        return fields

    def has_delete_permission(self, request: HttpRequest, obj: Campaign | None = None) -> bool:
        if obj is not None and obj.state in (Campaign.State.SCHEDULED, Campaign.State.RUNNING):
            # Its messages are being sent and tracked: cancel it first.
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # A running campaign must be cancelled, not deleted from under its workers.
        actions.pop("delete_selected", None)
        return actions

    def save_model(
        self, request: HttpRequest, obj: Campaign, form: ModelForm, change: bool
    ) -> None:
        if not change and request.user.is_authenticated:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def save_related(
        self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)
        rows = getattr(form, "recipients", None)
        if rows is None:
            return
        campaign = form.instance
        try:
            result = campaign.add_recipients(rows, skip_invalid=True)
        except SmsClubError as exc:
            problems = exc.problems if isinstance(exc, InvalidMessage) else [str(exc)]
            for problem in problems:
                self.message_user(request, problem, messages.ERROR)
            return
        admin_views.remember_recipients(request, campaign, result, rows)
        request._smsclub_recipients_added = True  # type: ignore[attr-defined]
        self.message_user(
            request,
            ngettext(
                "%(added)d recipient added; %(refused)d refused.",
                "%(added)d recipients added; %(refused)d refused.",
                result.added,
            )
            % {"added": result.added, "refused": len(result.refused)},
            messages.WARNING if result.refused else messages.SUCCESS,
        )

    def response_add(
        self, request: HttpRequest, obj: Campaign, post_url_continue: str | None = None
    ) -> HttpResponse:
        if "_addanother" in request.POST or admin.options.IS_POPUP_VAR in request.POST:
            return super().response_add(request, obj, post_url_continue)
        # The next step of a new campaign is its preview, on its own page.
        return self._to_change_page(obj)

    def response_change(self, request: HttpRequest, obj: Campaign) -> HttpResponse:
        if (
            getattr(request, "_smsclub_recipients_added", False)
            and "_addanother" not in request.POST
        ):
            return self._to_change_page(obj)
        return super().response_change(request, obj)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Campaign | None = None,
    ) -> HttpResponse:
        if obj is not None and obj.pk:
            context["smsclub"] = admin_views.campaign_panel(
                request, obj, can_change=self.has_change_permission(request, obj)
            )
        else:
            context["smsclub_balances"] = admin_views.visible_balances(request, _gateway_names())
        return super().render_change_form(request, context, add, change, form_url, obj)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {})}
        extra_context["smsclub_balances"] = admin_views.visible_balances(request, _gateway_names())
        return super().changelist_view(request, extra_context)

    @admin.display(description=_("state"), ordering="state")
    def state_badge(self, obj: Campaign) -> SafeString:
        return format_html(
            '<span class="smsclub-state smsclub-state-{}">{}</span>',
            obj.state,
            obj.get_state_display(),
        )

    @admin.display(description=_("progress"))
    def progress_bar(self, obj: Campaign) -> SafeString:
        return render_to_string(
            "admin/django_smsclub/includes/progress.html",
            {"progress": progress(counts_from_annotation(obj)), "compact": True},
        )

    @admin.display(description=_("recipients"))
    def recipients(self, obj: Campaign) -> int:
        return sum(counts_from_annotation(obj).values())

    @admin.display(description=_("parts"))
    def total_parts(self, obj: Campaign) -> int:
        return getattr(obj, "count_parts", 0) or 0

    @admin.display(description=_("gateway"), ordering="gateway")
    def gateway_name(self, obj: Campaign) -> str:
        return obj.gateway or conf.default_gateway_name()

    @admin.action(description=_("Start the selected draft campaigns"), permissions=["change"])
    def start_selected(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._run_on_each(request, queryset, "start")

    @admin.action(description=_("Cancel the selected campaigns"), permissions=["change"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._run_on_each(request, queryset, "cancel")

    @admin.action(
        description=_("Retry the failed messages of the selected campaigns"), permissions=["change"]
    )
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._run_on_each(request, queryset, "retry")

    @admin.action(
        description=_("Poll delivery statuses of the selected campaigns now"),
        permissions=["change"],
    )
    def poll_selected(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._run_on_each(request, queryset, "poll")

    def _run_on_each(self, request: HttpRequest, queryset: QuerySet[Campaign], action: str) -> None:
        outcomes: dict[int, list[str]] = {}
        for campaign in queryset.order_by("pk"):
            outcome = admin_views.CAMPAIGN_ACTIONS[action](campaign)
            if action == "start" and outcome.level == messages.SUCCESS:
                admin_views.forget_recipients(request, campaign)
            outcomes.setdefault(outcome.level, []).append(outcome.text)
        for level, texts in sorted(outcomes.items(), reverse=True):
            for text in texts[:_SHOWN_OUTCOMES]:
                self.message_user(request, text, level)
            if len(texts) > _SHOWN_OUTCOMES:
                more = len(texts) - _SHOWN_OUTCOMES
                self.message_user(
                    request,
                    ngettext("… and %(count)d more like it.", "… and %(count)d more like it.", more)
                    % {"count": more},
                    level,
                )

    def _to_change_page(self, obj: Campaign) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse(
                f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
                args=[obj.pk],
                current_app=self.admin_site.name,
            )
        )


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
    list_filter = ("status", GatewayFilter, CampaignFilter, "created_at")
    # Counts per filter choice would scan the whole table on every page.
    show_facets = admin.ShowFacets.NEVER
    search_fields = ("recipient", "=reports__smsc_id")
    search_help_text = _("A number (written any way) or an SMSC ID.")
    list_select_related = ("campaign",)
    raw_id_fields = ("campaign", "retry_of", "created_by")
    show_full_result_count = False
    inlines = [DeliveryReportInline]
    actions = ["resend_selected", "cancel_selected"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "recipient",
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
        return [name for _title, options in self.fieldsets for name in options["fields"]]

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
        return _status_badge(obj.status, obj.get_status_display())

    @admin.display(description=_("text"))
    def short_text(self, obj: Message) -> str:
        return Truncator(obj.text).chars(28)

    @admin.display(description=_("campaign"), ordering="campaign")
    def campaign_link(self, obj: Message) -> SafeString | str:
        if obj.campaign is None:
            return "—"
        url = reverse(
            "admin:django_smsclub_campaign_change",
            args=[obj.campaign_id],
            current_app=self.admin_site.name,
        )
        return format_html('<a href="{}">{}</a>', url, obj.campaign.name)

    @admin.display(description=_("resent as"))
    def resent_as(self, obj: Message) -> SafeString | str:
        copy = Message.objects.filter(retry_of=obj).only("pk", "status").first()
        if copy is None:
            return "—"
        url = reverse(
            "admin:django_smsclub_message_change", args=[copy.pk], current_app=self.admin_site.name
        )
        return format_html('<a href="{}">#{} ({})</a>', url, copy.pk, copy.get_status_display())

    @admin.action(
        description=_("Resend the selected messages as new messages"), permissions=["change"]
    )
    def resend_selected(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        user = request.user if request.user.is_authenticated else None
        result = admin_views.resend_messages(queryset, created_by=user)
        if result.resent:
            self.message_user(
                request,
                ngettext(
                    "%(count)d message is resent as a new message.",
                    "%(count)d messages are resent as new messages.",
                    len(result.resent),
                )
                % {"count": len(result.resent)},
                messages.SUCCESS,
            )
        if result.in_flight:
            self.message_user(
                request,
                ngettext(
                    "%(count)d message is still on its way and was not resent.",
                    "%(count)d messages are still on their way and were not resent.",
                    result.in_flight,
                )
                % {"count": result.in_flight},
                messages.WARNING,
            )
        if result.already:
            self.message_user(
                request,
                ngettext(
                    "%(count)d message was resent before; resend its copy instead.",
                    "%(count)d messages were resent before; resend their copies instead.",
                    result.already,
                )
                % {"count": result.already},
                messages.WARNING,
            )
        for error in result.errors[:_SHOWN_OUTCOMES]:
            self.message_user(request, error, messages.ERROR)

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
        return _status_badge(obj.status, obj.get_status_display())

    @admin.display(description=_("message"), ordering="message")
    def message_link(self, obj: DeliveryReport) -> SafeString:
        url = reverse(
            "admin:django_smsclub_message_change",
            args=[obj.message_id],
            current_app=self.admin_site.name,
        )
        return format_html('<a href="{}">{}</a>', url, obj.message.recipient)


def _status_badge(status: str, label: str) -> SafeString:
    return format_html('<span class="smsclub-status smsclub-status-{}">{}</span>', status, label)


def _has_recipients(campaign: Campaign) -> bool:
    # Asked several times while one page is drawn: ask the database once.
    if not hasattr(campaign, "_smsclub_has_recipients"):
        campaign._smsclub_has_recipients = campaign.messages.exists()  # type: ignore[attr-defined]
    return campaign._smsclub_has_recipients  # type: ignore[attr-defined]


def _gateway_names() -> list[str]:
    try:
        return conf.gateway_names()
    except ConfigurationError:
        return []
