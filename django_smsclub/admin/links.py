"""Links from one admin page to another object's change page."""

from __future__ import annotations

from django.contrib.admin import AdminSite
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString


def change_link(admin_site: AdminSite, model_name: str, pk: object, text: object) -> SafeString:
    """A link to the change page of one of the package's objects (``model_name`` as in its
    admin URL name: ``message``, ``campaign``), its ``text`` escaped."""
    url = reverse(
        f"admin:django_smsclub_{model_name}_change", args=[pk], current_app=admin_site.name
    )
    return format_html('<a href="{}">{}</a>', url, text)
