"""The campaign form of the admin, and the readers that turn pasted numbers or an uploaded CSV
into recipient rows for :func:`django_smsclub.services.add_recipients`.

Recipients are streamed: a CSV is read row by row through a text wrapper over the upload, and
never held whole in memory, however many rows it has.
"""

from __future__ import annotations

import csv
import io
from abc import ABC, abstractmethod
from array import array
from collections.abc import Iterator
from typing import Any, TextIO

from django import forms
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import conf, services
from ..exceptions import ConfigurationError
from ..models import PRIORITY_CAMPAIGN, Campaign
from ..services import Action
from ..services.validation import CSV_LINE_MAX_BYTES
from ..services.windows import WINDOW_FIELDS
from .windows import time_zone_choices

#: The column of a CSV that holds the numbers (any case).
PHONE_COLUMN = "phone"
#: Encodings a CSV may come in: UTF-8 (with or without a BOM) and what Excel writes in
#: Ukrainian and Russian Windows.
ENCODINGS = [
    ("utf-8-sig", _("UTF-8")),
    ("cp1251", _("Windows-1251 (Excel in Ukrainian or Russian)")),
]
_DELIMITERS = ",;\t"
MAX_LINE_BYTES = CSV_LINE_MAX_BYTES


class RecipientRows(ABC):
    """Recipient rows as ``add_recipients`` takes them, each remembering its line.

    Iterating yields the rows one at a time; :meth:`line_of` then tells on which line of the
    pasted text or the file the n-th row stood, so a refused row can be found and fixed.
    """

    def __init__(self) -> None:
        # Four bytes per row: a million rows cost 4 MB, not a million Python ints.
        self._lines = array("I")

    def __iter__(self) -> Iterator[Any]:
        self._lines = array("I")
        for line, row in self.rows():
            self._lines.append(line)
            yield row

    @abstractmethod
    def rows(self) -> Iterator[tuple[int, Any]]:
        """``(line, row)`` pairs, read lazily."""

    def line_of(self, row_number: int) -> int:
        """The line of row ``row_number`` (1-based, as ``RefusedRow.row`` counts)."""
        return self._lines[row_number - 1]


class PastedNumbers(RecipientRows):
    """One number per line, written any way; blank lines are skipped."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def rows(self) -> Iterator[tuple[int, Any]]:
        for line, raw in enumerate(io.StringIO(self.text), start=1):
            number = raw.strip()
            if number:
                yield line, number


class CsvRecipients(RecipientRows):
    """A CSV with a header: a ``phone`` column, and one column per ``{placeholder}``.

    The delimiter (comma, semicolon or tab) is the one the header uses. Each row becomes
    ``(phone, values)``; a cell the row does not have is left out of ``values``, so the
    campaign refuses the row for the missing value rather than sending a blank.
    """

    def __init__(self, upload: UploadedFile, encoding: str, placeholders: list[str]):
        super().__init__()
        self.upload = upload
        self.encoding = encoding
        self.placeholders = placeholders

    def check(self) -> int:
        """Read the whole file once; return its number of data rows.

        Raises :class:`ValidationError` for a file that is not text in the chosen encoding, is
        not CSV, has no ``phone`` column or lacks a column for a placeholder of the text.
        """
        count = 0
        for _line, _row in self.rows():
            count += 1
        if not count:
            raise ValidationError(_("The file has a header but no rows."), code="empty")
        return count

    def rows(self) -> Iterator[tuple[int, Any]]:
        file = self.upload.file
        if file is None:
            raise ValueError("the upload has no file to read")
        file.seek(0)
        # newline="" lets the csv module see line breaks inside quoted cells.
        text = io.TextIOWrapper(file, encoding=self.encoding, newline="")
        try:
            yield from self._read(text)
        except UnicodeDecodeError:
            raise ValidationError(
                _(
                    "The file is not %(encoding)s text. Save it as CSV UTF-8, or choose "
                    "the encoding it was saved in."
                ),
                code="encoding",
                params={"encoding": dict(ENCODINGS)[self.encoding]},
            ) from None
        except csv.Error as exc:
            raise ValidationError(
                _("The file is not a CSV file (%(error)s)."),
                code="csv",
                params={"error": exc},
            ) from None
        finally:
            # Leave the upload open: Django closes it, and the file is read twice.
            text.detach()

    def _bounded_lines(self, text: TextIO) -> Iterator[str]:
        """The lines of ``text``, each read only up to :data:`MAX_LINE_BYTES` (its ending
        aside): a longer one, or a file with no line break, is refused, not held whole."""
        encoding = "utf-8" if self.encoding.startswith("utf-8") else self.encoding
        number = 0
        while line := text.readline(MAX_LINE_BYTES + 2):
            number += 1
            if len(line.rstrip("\r\n").encode(encoding, "surrogatepass")) > MAX_LINE_BYTES:
                raise ValidationError(
                    _(
                        "Line %(line)d of the file is longer than %(limit)d bytes; is it a "
                        "CSV file?"
                    ),
                    code="long_line",
                    params={"line": number, "limit": MAX_LINE_BYTES},
                )
            yield line

    def _read(self, text: TextIO) -> Iterator[tuple[int, Any]]:
        lines = self._bounded_lines(text)
        header = next(lines, "")
        if not header.strip():
            raise ValidationError(_("The file is empty."), code="empty")
        delimiter = max(_DELIMITERS, key=header.count)
        columns = [name.strip() for name in next(csv.reader([header], delimiter=delimiter))]
        phone = next((c for c in columns if c.lower() == PHONE_COLUMN), None)
        if phone is None:
            raise ValidationError(
                _(
                    "The file has no “%(phone)s” column; its header is: %(header)s. "
                    "The first row must name the columns."
                ),
                code="no_phone",
                params={"phone": PHONE_COLUMN, "header": ", ".join(columns)},
            )
        missing = [name for name in self.placeholders if name not in columns]
        if missing:
            raise ValidationError(
                ngettext(
                    "The text has the placeholder %(names)s, but the file has no column "
                    "of that name.",
                    "The text has the placeholders %(names)s, but the file has no columns "
                    "of those names.",
                    len(missing),
                ),
                code="no_column",
                params={"names": ", ".join(f"{{{name}}}" for name in missing)},
            )
        reader = csv.reader(lines, delimiter=delimiter)
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            values = {column: cell for column, cell in zip(columns, cells, strict=False) if column}
            # reader.line_num counts from the first line it read: the header is line 1.
            yield reader.line_num + 1, (values.get(phone, ""), values)


def placeholder_names(text: str) -> list[str]:
    """The ``{names}`` of a campaign text, in order; none when the text is not a template
    (the campaign's own checks say why)."""
    names, _problem = services.placeholders(text)
    return names


def gateway_choices(current: str = "") -> list[tuple[str, str]]:
    """``SMSCLUB['GATEWAYS']`` as choices, the default first; ``current`` kept if unknown."""
    try:
        names = conf.gateway_names()
        default = conf.default_gateway_name()
    except ConfigurationError:
        names, default = [], ""
    choices = [("", _("The default gateway (%(name)s)") % {"name": default})]
    choices += [(name, name) for name in names]
    if current and current not in names:
        choices.append((current, _("%(name)s (not configured)") % {"name": current}))
    return choices


class CampaignForm(forms.ModelForm):
    """A campaign, and recipients to add to it while it is a draft."""

    gateway = forms.ChoiceField(
        label=capfirst(_("gateway")),
        required=False,
        help_text=_("The SMSClub account and interface to send through."),
    )
    numbers = forms.CharField(
        label=_("Paste numbers"),
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 30, "class": "smsclub-numbers"}),
        help_text=_(
            "One number per line, written any way: 050 123 45 67, +380501234567, "
            "(050) 123-45-67. For a text with placeholders such as {name}, upload a CSV file "
            "instead."
        ),
    )
    csv_file = forms.FileField(
        label=_("or upload a CSV file"),
        required=False,
        help_text=_(
            "The first row names the columns: “phone”, and one column per placeholder of the "
            "text ({name} takes the “name” column). Comma, semicolon or tab separated."
        ),
    )
    encoding = forms.ChoiceField(
        label=_("File encoding"), choices=ENCODINGS, initial="utf-8-sig", required=False
    )

    class Meta:
        model = Campaign
        fields = [
            "name",
            "sender",
            "text",
            "gateway",
            "send_at",
            "priority",
            *WINDOW_FIELDS,
        ]
        # Plain inputs: the admin's clock widget offers "Now" and the browser's offset from
        # the server, but these are wall-clock times in the window's own zone.
        widgets = {
            name: forms.TimeInput(format="%H:%M", attrs={"placeholder": hint, "size": 8})
            for name, hint in (("send_window_start", "09:00"), ("send_window_end", "21:00"))
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        gateway = self.fields.get("gateway")
        if isinstance(gateway, forms.ChoiceField):
            gateway.choices = gateway_choices(self.instance.gateway)
        zone = self.fields.get("time_zone")
        if zone is not None:
            self.fields["time_zone"] = forms.ChoiceField(
                label=zone.label,
                required=False,
                help_text=zone.help_text,
                choices=time_zone_choices(self.instance.time_zone),
            )
        priority = self.fields.get("priority")
        if priority is not None:
            # Left empty (or absent from an older form): the campaigns' default.
            priority.required = False
            priority.widget.attrs.setdefault("placeholder", str(PRIORITY_CAMPAIGN))
        #: The rows to add once the campaign is saved, or None.
        self.recipients: RecipientRows | None = None

    def clean_priority(self) -> int:
        value = self.cleaned_data.get("priority")
        if value is None:
            return self.instance.priority if self.instance.pk else PRIORITY_CAMPAIGN
        return int(value)

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        numbers = cleaned.get("numbers") or ""
        upload = cleaned.get("csv_file")
        if not numbers.strip() and not upload:
            return cleaned
        if self.instance.pk and not services.allows(self.instance, Action.ADD_RECIPIENTS):
            raise ValidationError(
                _("Recipients can only be added to a draft campaign."), code="not_draft"
            )
        if numbers.strip() and upload:
            raise ValidationError(
                _("Paste numbers or upload a file, not both at once."), code="both"
            )
        text = cleaned.get("text", self.instance.text) or ""
        names = placeholder_names(text)
        if numbers.strip():
            if names:
                self.add_error(
                    "numbers",
                    ValidationError(
                        _(
                            "The text has placeholders (%(names)s); pasted numbers carry no "
                            "values for them. Upload a CSV file with a column for each."
                        ),
                        code="placeholders",
                        params={"names": ", ".join(f"{{{n}}}" for n in names)},
                    ),
                )
            else:
                self.recipients = PastedNumbers(numbers)
        elif upload:
            reader = CsvRecipients(upload, cleaned.get("encoding") or "utf-8-sig", names)
            try:
                reader.check()
            except ValidationError as exc:
                self.add_error("csv_file", exc)
            else:
                self.recipients = reader
        return cleaned
