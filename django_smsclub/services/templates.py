"""Campaign texts with ``{placeholders}``: which names a text holds, and turning one recipient
row into the values of its message."""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from django.utils import timezone

from .. import conf
from ..gateways import Gateway
from ..models import Campaign
from ..phones import normalize_or_problem
from ..text import count_parts
from .validation import text_problem_for

#: Distinct rendered texts add_recipients remembers the check of (then it starts afresh).
CHECKED_TEXTS = 1024


def placeholders(template: object) -> tuple[list[str], str | None]:
    """The ``{names}`` in a campaign text, or why the text cannot be a template.

    Only plain names: ``{user.password}`` or ``{0}`` would reach into the values' attributes
    or positions, which a text typed in the admin must not do.
    """
    if not isinstance(template, str):
        return [], f"text must be a string, not {type(template).__name__}"
    names: list[str] = []
    try:
        for _, name, spec, _ in string.Formatter().parse(template):
            if name is None:
                continue
            if not name.isidentifier() or "{" in (spec or ""):
                return [], (
                    f"placeholder {{{name}}} in the text is not a plain name; write "
                    "{name}, and {{ or }} for a brace"
                )
            names.append(name)
    except ValueError as exc:
        return [], f"the text's braces do not pair up ({exc}); write {{{{ or }}}} for a brace"
    return list(dict.fromkeys(names)), None


class CampaignTemplate:
    """Turns one recipient row of a campaign into a message's values, or a reason.

    A message is ``common`` (the same for every message of the campaign) and, per row, the
    values of ``fields``: no model instance per row, see :func:`insert_messages`.
    """

    fields = ("recipient", "text", "parts")

    def __init__(self, campaign: Campaign, gateway: Gateway):
        self.campaign = campaign
        self.gateway = gateway
        self.sender = campaign.sender or gateway.default_sender
        self.placeholders, _ = placeholders(campaign.text)
        self.now = timezone.now()
        # Read once: a setting cannot change in the middle of one call.
        self.region = conf.default_region()
        self.common: dict[str, Any] = {
            "campaign_id": campaign.pk,
            "sender": self.sender,
            "gateway": gateway.name,
            "created_by_id": campaign.created_by_id,
            "created_at": self.now,
        }
        # Without placeholders every row has the campaign's text, checked once already.
        self.parts = None if self.placeholders else count_parts(campaign.text)
        # Rendered texts seen lately: (problem, parts). Bounded, so memory stays flat.
        self.checked: dict[str, tuple[str | None, int]] = {}

    def message(self, row: Any) -> tuple[tuple[str, str, int], None] | tuple[None, str]:
        if isinstance(row, tuple | list) and len(row) == 2:
            raw, values = row
        elif isinstance(row, str | int) and not isinstance(row, bool):
            raw, values = row, None
        else:
            return None, f"{row!r:.60} is neither a number nor a (number, values) pair"
        number, problem = normalize_or_problem(raw, region=self.region)
        if problem:
            return None, problem
        if self.parts is not None:
            return (number, self.campaign.text, self.parts), None
        body, problem = self._render(number, values)
        if problem:
            return None, problem
        problem, parts = self._check(body)
        if problem:
            return None, f"{number}: {problem}"
        return (number, body, parts), None

    def _render(self, number: str, values: Any) -> tuple[str, str | None]:
        if type(values) is not dict and not isinstance(values, Mapping):
            names = ", ".join(f"{{{n}}}" for n in self.placeholders)
            return "", f"{number}: the text needs values for {names}, got {values!r:.40}"
        missing = [n for n in self.placeholders if n not in values]
        if missing:
            names = ", ".join(f"{{{n}}}" for n in missing)
            return "", f"{number}: no value for {names}"
        try:
            return self.campaign.text.format_map(values), None
        except (ValueError, TypeError) as exc:
            return "", f"{number}: the values do not fit the text's placeholders ({exc})"

    def _check(self, body: str) -> tuple[str | None, int]:
        """Why ``body`` cannot go (or None) and its parts, remembered for repeated texts."""
        checked = self.checked.get(body)
        if checked is None:
            problem = text_problem_for(body, self.gateway)
            checked = (problem, 0 if problem else count_parts(body))
            if len(self.checked) >= CHECKED_TEXTS:
                self.checked.clear()
            self.checked[body] = checked
        return checked
