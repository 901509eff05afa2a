"""Campaign texts with ``{placeholders}``: the one place their rules live, which names a text
holds, and turning one recipient row into the values of its message.

A placeholder is a plain name, ``{name}`` (letters, digits and ``_``, not starting with a
digit), and nothing else: no format spec (``{name:>50000000}`` would build a 50-million
character string before any length check), no conversion (``{name!r}``), no attribute or index
(``{user.password}``, ``{0}``, ``{items[0]}``). ``{{`` and ``}}`` write a brace.

A text is rendered by joining its literal pieces and the row's values with a running length
count: a text that would be longer than any SMS is refused before it is built.
"""

from __future__ import annotations

import string
import sys
from collections.abc import Mapping
from typing import Any

from django.utils import timezone

from .. import conf
from ..gateways import Gateway
from ..models import Campaign
from ..phones import normalize_or_problem
from ..text import MAX_LENGTH, count_parts
from .validation import text_problem_for

#: Bytes of rendered texts add_recipients remembers the check of (then it starts afresh).
CHECKED_TEXTS_MAX_BYTES = 1024 * 1024
#: The longest campaign text that holds placeholders, in characters.
MAX_TEMPLATE_LENGTH = 4096
#: The longest text an SMS may carry (seven ASCII parts): a rendered text past it is refused
#: before it is built in full.
MAX_RENDERED_LENGTH = max(MAX_LENGTH.values())
#: Characters of a bad placeholder an error quotes.
_SHOWN = 40

#: A parsed template: (literal text, placeholder name or None) pieces, in order.
Pieces = list[tuple[str, str | None]]


def placeholders(template: object) -> tuple[list[str], str | None]:
    """The ``{names}`` in a campaign text, or why the text cannot be a template."""
    pieces, problem = parse(template)
    if problem:
        return [], problem
    return list(dict.fromkeys(name for _, name in pieces if name is not None)), None


def parse(template: object) -> tuple[Pieces, str | None]:
    """``template`` as (literal, name) pieces, or why it cannot be a template: a placeholder
    that is not a plain ``{name}`` (named in the reason), unpaired braces, or a text too long
    for any SMS even before its values are filled in."""
    if not isinstance(template, str):
        return [], f"text must be a string, not {type(template).__name__}"
    if len(template) > MAX_TEMPLATE_LENGTH:
        return [], (
            f"text is {len(template)} characters long; a campaign text may have at "
            f"most {MAX_TEMPLATE_LENGTH}"
        )
    pieces: Pieces = []
    try:
        for literal, name, spec, conversion in string.Formatter().parse(template):
            if name is not None and (not name.isidentifier() or spec or conversion):
                written = "{" + name + (f"!{conversion}" if conversion else "")
                written += (f":{spec}" if spec else "") + "}"
                shown = written if len(written) <= _SHOWN else written[: _SHOWN - 3] + "..."
                return [], (
                    f"placeholder {shown} in the text is not a plain name; write {{name}} "
                    "(letters, digits and _) with no format, conversion, attribute or index, "
                    "and {{ or }} for a brace"
                )
            pieces.append((literal, name))
    except ValueError as exc:
        return [], f"the text's braces do not pair up ({exc}); write {{{{ or }}}} for a brace"
    fixed = sum(len(literal) for literal, _ in pieces)
    if fixed > MAX_RENDERED_LENGTH:
        return [], (
            f"text is {fixed} characters long without its placeholders; no SMS holds more "
            f"than {MAX_RENDERED_LENGTH}"
        )
    return pieces, None


def render(pieces: Pieces, values: Mapping[str, Any]) -> tuple[str, str | None]:
    """The text of ``pieces`` with ``values`` filled in, or why it cannot be made: a missing
    or empty value (named), or a text longer than :data:`MAX_RENDERED_LENGTH`, found before
    the text is built."""
    missing = [name for _, name in pieces if name is not None and name not in values]
    if missing:
        return "", f"no value for {', '.join(f'{{{n}}}' for n in dict.fromkeys(missing))}"
    built: list[str] = []
    length = 0
    for literal, name in pieces:
        built.append(literal)
        length += len(literal)
        if name is None:
            continue
        value = values[name]
        try:
            text = value if isinstance(value, str) else str(value)
        except (ValueError, TypeError) as exc:
            # An int of more than 4300 digits, say.
            return "", f"the value of {{{name}}} cannot be written as text ({exc})"
        if not text.strip():
            return "", f"the value of {{{name}}} is empty"
        length += len(text)
        if length > MAX_RENDERED_LENGTH:
            return "", (
                f"the text with {{{name}}} filled in is over {MAX_RENDERED_LENGTH} characters, "
                "more than any SMS holds"
            )
        built.append(text)
    return "".join(built), None


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
        self.pieces, _ = parse(campaign.text)
        self.placeholders = list(dict.fromkeys(name for _, name in self.pieces if name is not None))
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
        # Rendered texts seen lately: (problem, parts), at most CHECKED_TEXTS_MAX_BYTES of
        # texts, so memory stays flat.
        self.checked: dict[str, tuple[str | None, int]] = {}
        self.checked_bytes = 0

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
        if type(values) is not dict and not isinstance(values, Mapping):
            names = ", ".join(f"{{{n}}}" for n in self.placeholders)
            return None, f"{number}: the text needs values for {names}, got {values!r:.40}"
        body, problem = render(self.pieces, values)
        if problem:
            return None, f"{number}: {problem}"
        problem, parts = self._check(body)
        if problem:
            return None, f"{number}: {problem}"
        return (number, body, parts), None

    def _check(self, body: str) -> tuple[str | None, int]:
        """Why ``body`` cannot go (or None) and its parts, remembered for repeated texts."""
        checked = self.checked.get(body)
        if checked is None:
            problem = text_problem_for(body, self.gateway)
            checked = (problem, 0 if problem else count_parts(body))
            size = sys.getsizeof(body)
            if self.checked_bytes + size > CHECKED_TEXTS_MAX_BYTES:
                self.checked.clear()
                self.checked_bytes = 0
            self.checked[body] = checked
            self.checked_bytes += size
        return checked
