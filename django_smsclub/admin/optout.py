"""The stop list in the admin: search it by number, add and remove numbers, import a CSV file.

A number is stored normalised, as messages store their recipients, whichever way it was typed
or searched for. The import page (a POST view wrapped in ``admin_site.admin_view``, for users
who may add to the list) reads a CSV file with a ``phone`` column through
:func:`django_smsclub.services.optout.import_csv` and lists the lines it refused, each with the
value it could not use.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.translation import gettext_lazy as _

from .. import phones
from ..exceptions import BadUpload, InvalidMessage
from ..models import OptOut
from ..services import optout
from .forms import ENCODINGS

#: Refused lines the import page lists; the rest are counted.
REFUSED_SHOWN = 50


class OptOutForm(forms.ModelForm):
    """A number typed any way, stored normalised."""

    class Meta:
        model = OptOut
        fields = ["phone", "scope", "reason"]

    def clean_phone(self) -> str:
        number, problem = phones.normalize_or_problem(self.cleaned_data.get("phone", ""))
        if problem:
            raise ValidationError(problem, code="phone")
        return number


class ImportForm(forms.Form):
    csv_file = forms.FileField(label=_("CSV file"))
    encoding = forms.ChoiceField(label=_("File encoding"), choices=ENCODINGS, initial="utf-8-sig")
    scope = forms.ChoiceField(
        label=_("scope"),
        choices=OptOut.Scope.choices,
        initial=OptOut.Scope.MARKETING,
        help_text=_("For rows that do not give their own."),
    )
    reason = forms.CharField(label=_("reason"), max_length=255, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["csv_file"].help_text = _(
            "The first row names the columns: “phone”, and optionally “scope” (marketing or "
            "all) and “reason” for each row. Comma, semicolon or tab separated; at most "
            "%(rows)s numbers and %(megabytes)s MB."
        ) % {"rows": optout.IMPORT_MAX_ROWS, "megabytes": optout.IMPORT_MAX_BYTES // 2**20}


@admin.register(OptOut)
class OptOutAdmin(admin.ModelAdmin):
    form = OptOutForm
    list_display = ("phone", "scope", "source", "reason", "created_at")
    list_filter = ("scope", "source", "created_at")
    search_fields = ("phone",)
    search_help_text = _("A number, written any way, or some of its digits.")
    show_full_result_count = False
    change_list_template = "admin/django_smsclub/optout/change_list.html"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("phone", "source", "created_at") if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: OptOut, form: Any, change: bool) -> None:
        if not change:
            obj.source = OptOut.Source.ADMIN
        super().save_model(request, obj, form, change)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[OptOut], search_term: str
    ) -> tuple[QuerySet[OptOut], bool]:
        number, problem = phones.normalize_or_problem(search_term)
        if not problem:
            return queryset.filter(phone=number), False
        digits = "".join(char for char in search_term if char.isdigit())
        return super().get_search_results(request, queryset, digits or search_term)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.import_view)
        name = f"{self.opts.app_label}_{self.opts.model_name}_import"
        return [path("import/", view, name=name), *super().get_urls()]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        result = None
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            encoding = "utf-8" if data["encoding"].startswith("utf-8") else data["encoding"]
            try:
                result = optout.import_csv(
                    data["csv_file"],
                    scope=data["scope"],
                    reason=data["reason"],
                    encoding=encoding,
                )
            except (BadUpload, InvalidMessage) as exc:
                form.add_error("csv_file", str(exc))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Import numbers to the stop list"),
            "form": form,
            "result": result,
            "refused": result.refused[:REFUSED_SHOWN] if result else [],
        }
        return TemplateResponse(request, "admin/django_smsclub/optout/import.html", context)
