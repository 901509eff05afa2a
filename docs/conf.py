"""Sphinx configuration: the documentation site of django-smsclub (``make docs``).

Django is set up with the test project's settings so that autodoc can import the models.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")

import django  # noqa: E402

django.setup()

from django.db import models  # noqa: E402
from sphinx.util import logging  # noqa: E402

logger = logging.getLogger(__name__)

project = "django-smsclub"
author = "django-smsclub contributors"
copyright = "2026, django-smsclub contributors"
release = "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]
html_theme = "furo"
html_title = "django-smsclub"
exclude_patterns = ["_build"]
root_doc = "index"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"exclude-members": "DoesNotExist, MultipleObjectsReturned"}
# Django's own objects are linked to its documentation when it can be reached, never required:
# the build must pass without a network.
intersphinx_mapping: dict[str, tuple[str, Any]] = {}
nitpicky = False
suppress_warnings = ["ref.python"]


# Written at every build from the code itself, so they cannot drift: the management commands'
# ``--help`` and the REST API's OpenAPI schema (served as ``openapi.yaml`` beside the pages).
GENERATED = Path(__file__).resolve().parent / "_generated"
exclude_patterns.append("_generated")
html_extra_path = ["_generated/extra"]
COMMANDS = [
    "smsclub_send",
    "smsclub_poll",
    "smsclub_balance",
    "smsclub_emulator",
    "smsclub_smpp",
    "smsclub_demo",
    "smsclub_webhooks",
]


# What a field holds, for fields whose model gives no help_text. A note for a field that does
# not exist fails the build (warnings are errors), so the table cannot drift from the models.
FIELD_NOTES = {
    "Message.campaign": "The campaign it belongs to; empty for ``send_sms`` messages.",
    "Message.recipient": "The number, normalised to digits with the country code "
    "(``380501234567``), whatever way it was written.",
    "Message.sender": "The alpha-name it is sent from.",
    "Message.text": "The text as sent (a campaign's placeholders filled in).",
    "Message.gateway": "The key of ``SMSCLUB['GATEWAYS']`` it goes through.",
    "Message.parts": "SMS parts the text takes (what it costs).",
    "Message.error": "Why it failed or is unknown: the provider's words or the transport's.",
    "Message.metadata": "Your own JSON, kept with it (``SMSCLUB['METADATA_MAX_BYTES']``).",
    "Message.retry_of": "The message this one resends (*Retry failed*, *Resend*).",
    "Message.created_by": "The user who sent it (admin, API), if any.",
    "Message.claimed_at": "When a worker claimed it (``sending``).",
    "Message.sent_at": "When the provider accepted it.",
    "Message.finished_at": "When it reached a final status.",
    "Campaign.text": "The text, with ``{placeholders}`` for personal texts.",
    "Campaign.created_by": "The user who made it, if any.",
    "DeliveryReport.message": "The message this SMS part belongs to.",
    "DeliveryReport.part": "Part number, from 1, in the order the provider returned the IDs.",
    "DeliveryReport.smsc_id": "The provider's ID of this part.",
    "DeliveryReport.raw_status": "The provider's status word, kept as received.",
    "DeliveryReport.next_poll_at": "When to ask about it next; empty once it is final.",
    "DeliveryReport.polls": "Status queries made for it.",
}


def setup(app: Any) -> None:
    app.connect("autodoc-process-docstring", _model_fields)
    app.connect("autodoc-skip-member", _skip_field_descriptors)
    _write_generated()


def _write_generated() -> None:
    from django.core.management import call_command, load_command_class

    os.environ["COLUMNS"] = "90"  # argparse wraps the help to the terminal: make it fixed
    (GENERATED / "extra").mkdir(parents=True, exist_ok=True)
    call_command("spectacular", file=str(GENERATED / "extra" / "openapi.yaml"))
    for name in COMMANDS:
        command = load_command_class("django_smsclub", name)
        usage = command.create_parser("manage.py", name).format_help()
        block = "".join(f"    {line}".rstrip() + "\n" for line in usage.splitlines())
        (GENERATED / f"{name}.txt").write_text(f"::\n\n{block}", encoding="utf-8")


def _model_fields(app: Any, what: str, name: str, obj: Any, options: Any, lines: list) -> None:
    """A Django model's docstring gains a table of its fields: name, type, meaning."""
    if what != "class" or not (isinstance(obj, type) and issubclass(obj, models.Model)):
        return
    fields = [f for f in obj._meta.get_fields() if not f.auto_created or f.concrete]
    if not fields:
        return
    for note in FIELD_NOTES:
        model, _, field_name = note.partition(".")
        if model == obj.__name__ and field_name not in {f.name for f in fields}:
            logger.warning("FIELD_NOTES: %s has no field %r", model, field_name)
    lines.extend(["", ".. list-table:: Fields", "   :header-rows: 1", "   :widths: 20 25 55", ""])
    lines.extend(["   * - field", "     - type", "     - meaning", ""])
    for field in fields:
        lines.extend(
            [
                f"   * - ``{field.name}``",
                f"     - {_field_type(field)}",
                f"     - {_field_meaning(field, FIELD_NOTES.get(f'{obj.__name__}.{field.name}'))}",
            ]
        )
    lines.append("")


def _field_type(field: Any) -> str:
    kind = type(field).__name__
    if field.is_relation and field.related_model is not None:
        kind += f" to ``{field.related_model.__name__}``"
    if getattr(field, "max_length", None):
        kind += f" (max {field.max_length})"
    if getattr(field, "null", False):
        kind += ", null"
    return kind


def _field_meaning(field: Any, note: str | None) -> str:
    # The verbose name only where it says more than the field's own name.
    name = str(field.verbose_name)
    parts = [name.capitalize()] if name.lower() != field.name.replace("_", " ") else []
    if getattr(field, "help_text", ""):
        parts.append(str(field.help_text))
    elif note:
        parts.append(note)
    if getattr(field, "choices", None):
        parts.append("One of " + ", ".join(f"``{value}``" for value, _ in field.choices))
    return ". ".join(part.rstrip(".") for part in parts if part) + "." if parts else "\\-"


def _skip_field_descriptors(app: Any, what: str, name: str, obj: Any, skip: bool, options: Any):
    """Field descriptors and managers are in the table above, not as members of their own."""
    kind = type(obj).__name__
    if kind.endswith(("Descriptor", "DeferredAttribute", "Manager")) or kind == "ManagerDescriptor":
        return True
    return None
