"""Campaign texts with ``{placeholders}``: the one place their rules live, which names a text
holds, and turning one recipient row into the values of its message.

A placeholder is a plain name, ``{name}`` (letters, digits and ``_``, not starting with a
digit), and nothing else: no format spec (``{name:>50000000}`` would build a 50-million
character string before any length check), no conversion (``{name!r}``), no attribute or index
(``{user.password}``, ``{0}``, ``{items[0]}``). ``{{`` and ``}}`` write a brace.

A text is rendered by joining its literal pieces and the row's values with a running length
count: a text that would be longer than any SMS is refused before it is built.

``{unsubscribe_url}`` is reserved: it is no recipient's column, but each recipient's own
unsubscribe link (:mod:`django_smsclub.unsubscribe`), counted in the text's length and parts.
"""

from __future__ import annotations

import string
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.utils import timezone

from .. import conf, unsubscribe
from ..exceptions import ConfigurationError
from ..gateways import Gateway
from ..models import Campaign
from ..phones import normalize_or_problem
from ..text import MAX_LENGTH, count_parts
from . import optout
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
    """The ``{names}`` in a campaign text each recipient gives a value for (``{unsubscribe_url}``
    is filled in for them), or why the text cannot be a template."""
    pieces, problem = parse(template)
    if problem:
        return [], problem
    names = [name for _, name in pieces if name is not None]
    return list(dict.fromkeys(n for n in names if n != unsubscribe.PLACEHOLDER)), None


def with_longest_link(template: str) -> tuple[str, str | None]:
    """``template`` with ``{unsubscribe_url}`` filled in with the longest link there can be (a
    text without it as it is), or why the links cannot be made (the setting is missing or
    bad); what a text with no recipient placeholders is checked as."""
    pieces, problem = parse(template)
    if problem or all(name != unsubscribe.PLACEHOLDER for _, name in pieces):
        return template, None
    try:
        link = unsubscribe.base_url() + "z" * unsubscribe.MAX_TOKEN_LENGTH
    except ConfigurationError as exc:
        return template, str(exc)
    # The recipients' placeholders stay as they are written.
    values = {name: f"{{{name}}}" for _, name in pieces if name is not None}
    return render(pieces, {**values, unsubscribe.PLACEHOLDER: link})


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
        names = list(dict.fromkeys(name for _, name in self.pieces if name is not None))
        self.placeholders = [name for name in names if name != unsubscribe.PLACEHOLDER]
        # Each recipient's link is this and the token of their number.
        self.link = unsubscribe.base_url() if unsubscribe.PLACEHOLDER in names else None
        # No look-up per chunk while the stop list is empty.
        self.stop_list = optout.in_use()
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
        self.parts = None if names else count_parts(campaign.text)
        # Rendered texts seen lately: (problem, parts), at most CHECKED_TEXTS_MAX_BYTES of
        # texts, so memory stays flat.
        self.checked: dict[str, tuple[str | None, int]] = {}
        self.checked_bytes = 0

    def messages(
        self, chunk: Sequence[tuple[int, Any]]
    ) -> Iterable[tuple[int, Any, tuple[str, str, int] | None, str | None]]:
        """(row number, row, values, None) or (row number, row, None, reason) for each of a
        chunk of (row number, row): :meth:`message`, then the numbers it made looked up on the
        stop list in one query; a number on it is refused as "opted out". While the list is
        empty, lazily: each row is checked as the one before is stored."""
        if not self.stop_list:
            return ((n, row, *self.message(row)) for n, row in chunk)
        checked = [(n, row, *self.message(row)) for n, row in chunk]
        stopped = optout.blocked((v[0] for _, _, v, _ in checked if v), marketing=True)
        return [
            (n, row, None, optout.OPTED_OUT) if v and v[0] in stopped else (n, row, v, why)
            for n, row, v, why in checked
        ]

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
        if not self.placeholders:
            values = {}  # only the link to fill in: what the row gives is not read
        elif type(values) is not dict and not isinstance(values, Mapping):
            names = ", ".join(f"{{{n}}}" for n in self.placeholders)
            return None, f"{number}: the text needs values for {names}, got {values!r:.40}"
        link = ""
        if self.link is not None:
            # Checked with a token of zeros (letters and digits alike are one GSM character
            # each): a text that differs by its link alone is checked once.
            link = self.link + unsubscribe.make_token(number)
            values = {**values, unsubscribe.PLACEHOLDER: self.link.ljust(len(link), "0")}
        body, problem = render(self.pieces, values)
        if problem:
            return None, f"{number}: {problem}"
        problem, parts = self._check(body)
        if problem:
            return None, f"{number}: {problem}"
        if link:
            body, _ = render(self.pieces, {**values, unsubscribe.PLACEHOLDER: link})
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
