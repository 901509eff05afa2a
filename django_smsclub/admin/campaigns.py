"""The campaign admin: the list (with progress), the form that builds a campaign and adds its
recipients, the panel above it, its buttons and the list's actions.

No page makes a query per row: the campaign list counts the messages of the page's campaigns
in one grouped query. Every button is a POST to a view wrapped in ``admin_site.admin_view``
that checks the change permission (see :mod:`django_smsclub.admin.actions`). Which fields,
recipients, buttons and deletion a campaign's state allows is the services' table
(:func:`django_smsclub.services.allows`).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet, Sum
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import conf, services
from ..charts import counts_from_annotation, progress
from ..exceptions import InvalidMessage, SmsClubError
from ..models import Campaign
from ..services import Action
from ..services.windows import WINDOW_FIELDS
from ..status import Status
from . import panel
from .actions import CAMPAIGN_ACTIONS, campaign_action_view, run_action
from .balances import visible_balances
from .filters import GatewayFilter, gateway_names
from .forms import CampaignForm
from .reports import export_view
from .windows import pause_note

#: Campaigns a bulk action reports one by one, per outcome; the rest are counted.
_SHOWN_OUTCOMES = 5
#: The fields of the form; they change only while the state allows ``Action.EDIT``.
_EDITABLE = ["name", "sender", "text", "gateway", "send_at", "priority"]
#: Help for people, in place of the models' help for developers ("A key of
#: SMSCLUB['GATEWAYS']"): shown under the fields, editable or read-only.
HELP_TEXTS = {
    "gateway": _("The SMSClub account and interface it is sent through."),
    "sender": _(
        "The name recipients see as the sender, one SMSClub registered for the account; "
        "empty means the account's usual one."
    ),
    "priority": _(
        "Lower is sent first. Single messages such as login codes have 0 and go before "
        "campaigns (100 by default); give a campaign a higher number to let others go first."
    ),
}


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
                self.admin_site.admin_view(partial(campaign_action_view, self, action=action)),
                name=f"{info[0]}_{info[1]}_{action}",
            )
            for action in CAMPAIGN_ACTIONS
        ]
        export = path(
            "<path:object_id>/export/",
            self.admin_site.admin_view(partial(export_view, self)),
            name=f"{info[0]}_{info[1]}_export",
        )
        return [*buttons, export, *super().get_urls()]

    def get_fieldsets(self, request: HttpRequest, obj: Campaign | None = None) -> list[Any]:
        fieldsets: list[Any] = [
            (None, {"fields": _EDITABLE}),
            (
                _("Quiet hours"),
                {
                    "fields": list(WINDOW_FIELDS),
                    "description": _(
                        "Its messages are sent only from the opening to the closing time, "
                        "local time; outside they wait. Empty: the SEND_WINDOW setting."
                    ),
                },
            ),
        ]
        if obj is None or services.allows(obj, Action.ADD_RECIPIENTS):
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

    def get_form(
        self, request: HttpRequest, obj: Campaign | None = None, change: bool = False, **kwargs: Any
    ) -> type[ModelForm[Campaign]]:
        kwargs.setdefault("help_texts", HELP_TEXTS)
        return super().get_form(request, obj, change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Campaign | None = None) -> list[str]:
        fields = list(self.readonly_fields)
        if obj is None:
            return fields
        if not services.allows(obj, Action.EDIT):
            return [*fields, *_EDITABLE, *WINDOW_FIELDS]
        if _has_recipients(obj):
            # The recipients' texts were made from these: changing them would not change those.
            return [*fields, "sender", "text", "gateway"]
        return fields

    def has_delete_permission(self, request: HttpRequest, obj: Campaign | None = None) -> bool:
        if obj is not None and not services.allows(obj, Action.DELETE):
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
        panel.remember_recipients(request, campaign, result, rows)
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
            context["smsclub"] = panel.campaign_panel(
                request, obj, can_change=self.has_change_permission(request, obj)
            )
            waiting = obj.messages.filter(status=Status.QUEUED).exists()
            context["smsclub"]["window_pause"] = pause_note(obj, waiting=waiting)
        else:
            context["smsclub_balances"] = visible_balances(request, gateway_names())
        # Django's "Change %s" leaves the name in the nominative ("Змінити кампанія"): whole
        # phrases, so each language inflects the name.
        if add:
            context["title"] = _("Add campaign")
        elif self.has_change_permission(request, obj):
            context["title"] = _("Change campaign")
        else:
            context["title"] = _("View campaign")
        return super().render_change_form(request, context, add, change, form_url, obj)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {})}
        extra_context["smsclub_balances"] = visible_balances(request, gateway_names())
        extra_context.setdefault(
            "title",
            _("Select campaign to change")
            if self.has_change_permission(request)
            else _("Select campaign to view"),
        )
        return super().changelist_view(request, extra_context)

    @admin.display(description=_("state"), ordering="state")
    def state_badge(self, obj: Campaign) -> SafeString:
        badge = format_html(
            '<span class="smsclub-state smsclub-state-{}">{}</span>',
            obj.state,
            obj.get_state_display(),
        )
        note = pause_note(obj, waiting=getattr(obj, f"count_{Status.QUEUED}", 0))
        if note:
            badge += format_html('<span class="smsclub-window-pause">{}</span>', note)
        return badge

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
            outcome = run_action(request, campaign, action)
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


def _has_recipients(campaign: Campaign) -> bool:
    # Asked several times while one page is drawn: ask the database once.
    if not hasattr(campaign, "_smsclub_has_recipients"):
        campaign._smsclub_has_recipients = campaign.messages.exists()  # type: ignore[attr-defined]
    return campaign._smsclub_has_recipients  # type: ignore[attr-defined]
