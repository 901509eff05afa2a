"""Recipient rows from an uploaded CSV file, read line by line as the campaign takes them.

The file needs a ``phone`` column; every other column is a placeholder of the campaign's text.
It is never read whole: Django keeps a large upload in a temporary file, and the rows are
produced one at a time while :func:`django_smsclub.services.add_recipients` stores them in
chunks.
"""

from __future__ import annotations

import csv
import re
from array import array
from collections.abc import Iterator
from itertools import chain

from django.core.files.uploadedfile import UploadedFile

from ..exceptions import BadUpload
from ..services.validation import CSV_LINE_MAX_BYTES

#: Encodings an upload may be in: what Excel saves as "CSV UTF-8" and as plain "CSV" in a
#: Ukrainian or Russian Windows.
ENCODINGS = ("utf-8", "cp1251")
PHONE_COLUMN = "phone"
MAX_LINE_BYTES = CSV_LINE_MAX_BYTES

_DELIMITERS = (",", ";", "\t")
_ROW_PROBLEM = re.compile(r"^row (\d+): ")


class CsvRecipients:
    """Iterates (phone, placeholder values) rows of an uploaded CSV file.

    Blank lines are skipped; :meth:`line_of` maps the n-th row back to its line in the file,
    so a refused row can be reported where the person who made the file will find it.
    """

    def __init__(self, upload: UploadedFile, encoding: str = "utf-8"):
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding {encoding!r} is not one of {ENCODINGS}")
        self.upload = upload
        self.encoding = encoding
        # One unsigned int per row, not a list of ints: a million rows take 4 MB.
        self._lines = array("I")

    def __iter__(self) -> Iterator[tuple[str, dict[str, str]]]:
        lines = self._decoded_lines()
        first = next(lines, None)
        if first is None:
            raise BadUpload(
                f"the file is empty; it needs a header line with a {PHONE_COLUMN!r} column"
            )
        delimiter = max(_DELIMITERS, key=first.count)
        reader = csv.reader(chain([first], lines), delimiter=delimiter, strict=True)
        header, phone = self._header(reader)
        try:
            for cells in reader:
                if not any(cell.strip() for cell in cells):
                    continue
                if len(cells) > len(header):
                    raise BadUpload(
                        f"line {reader.line_num} has {len(cells)} fields; the header has "
                        f"{len(header)}"
                    )
                self._lines.append(reader.line_num)
                values = {
                    name: cell.strip()
                    for column, (name, cell) in enumerate(zip(header, cells, strict=False))
                    if column != phone
                }
                yield (cells[phone] if phone < len(cells) else ""), values
        except csv.Error as exc:
            raise BadUpload(f"line {reader.line_num} is not valid CSV ({exc})") from None

    def line_of(self, row: int) -> int:
        """The file line of the ``row``-th row produced (1-based)."""
        return self._lines[row - 1]

    def with_lines(self, problem: str) -> str:
        """A services problem ``"row N: ..."`` as ``"line M: ..."``."""
        match = _ROW_PROBLEM.match(problem)
        if not match or int(match[1]) > len(self._lines):
            return problem
        return f"line {self.line_of(int(match[1]))}: {problem[match.end() :]}"

    def _header(self, reader: Iterator[list[str]]) -> tuple[list[str], int]:
        try:
            header = [cell.strip() for cell in next(reader)]
        except csv.Error as exc:
            raise BadUpload(f"line 1 (the header) is not valid CSV ({exc})") from None
        lowered = [name.lower() for name in header]
        if PHONE_COLUMN not in lowered:
            raise BadUpload(
                f"the header {', '.join(header)!r} has no {PHONE_COLUMN!r} column; the first "
                f"line must name the columns, one of them {PHONE_COLUMN!r}"
            )
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise BadUpload(f"the header names the column(s) {', '.join(repeated)!r} twice")
        return header, lowered.index(PHONE_COLUMN)

    def _decoded_lines(self) -> Iterator[str]:
        for number, raw in enumerate(self._raw_lines(), start=1):
            try:
                line = raw.decode(self.encoding)
            except UnicodeDecodeError:
                other = next(e for e in ENCODINGS if e != self.encoding)
                raise BadUpload(
                    f"line {number} is not {self.encoding} text; save the file as CSV "
                    f"{self.encoding.upper()} or send encoding={other}"
                ) from None
            yield line.removeprefix("\ufeff") if number == 1 else line

    def _raw_lines(self) -> Iterator[bytes]:
        """The file's lines with their endings (\\n, \\r\\n or \\r), chunk by chunk, each at
        most :data:`MAX_LINE_BYTES` long (its ending aside).

        Not ``File.__iter__``: it would hold a file without line breaks in memory whole.
        """
        pending = b""
        count = 0
        for chunk in self.upload.chunks():
            lines = (pending + chunk).splitlines(keepends=True)
            # The last piece may go on in the next chunk, or be a \r whose \n starts it.
            pending = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""
            for line in lines:
                count += 1
                _check_length(line, count)
                yield line
            _check_length(pending, count + 1)
        if pending:
            yield pending


def _check_length(line: bytes, number: int) -> None:
    if len(line.rstrip(b"\r\n")) > MAX_LINE_BYTES:
        raise BadUpload(f"line {number} is longer than {MAX_LINE_BYTES} bytes; is this a CSV file?")
