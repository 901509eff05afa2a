"""SMS text rules: the alphabet a text needs, how many parts it takes, and sender names.

SMSClub allows 1071 characters when every character is printable ASCII (0x01-0x7E) and 469
otherwise: seven concatenated parts of 153 or 67 characters. A text that fits one part holds
160 or 70 characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from .exceptions import InvalidMessage

SINGLE_PART = {"ascii": 160, "unicode": 70}
MULTI_PART = {"ascii": 153, "unicode": 67}
MAX_PARTS = 7
MAX_LENGTH = {
    "ascii": MAX_PARTS * MULTI_PART["ascii"],
    "unicode": MAX_PARTS * MULTI_PART["unicode"],
}
SENDER_MAX_LENGTH = 11

#: What SMSClub registers as an alpha-name: Latin letters, digits, space, ``.``, ``-``, ``_``
#: (registered names seen: ``SMS CLUB``, ``test_an``, ``club_bulk``; see docs/PROTOCOL.rst).
_SENDER_RE = re.compile(r"[A-Za-z0-9 ._-]+")
_ASCII_RE = re.compile(r"[\x01-\x7e]*")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


class Alphabet(StrEnum):
    ASCII = "ascii"
    UNICODE = "unicode"


@dataclass(frozen=True)
class TextInfo:
    """What a text costs: its alphabet, length, parts and characters per part."""

    alphabet: Alphabet
    length: int
    parts: int
    per_part: int
    max_length: int


def alphabet(text: str) -> Alphabet:
    """ASCII when every character is in 0x01-0x7E, otherwise Unicode (UCS-2 on the wire)."""
    return Alphabet.ASCII if _ASCII_RE.fullmatch(text) else Alphabet.UNICODE


def count_parts(text: str) -> int:
    """How many SMS parts ``text`` takes (it may be over the limit; see :func:`check_text`)."""
    return describe(text).parts


def describe(text: str) -> TextInfo:
    """The alphabet, length and parts of ``text``."""
    abc = alphabet(text)
    # Unicode texts travel as UCS-2/UTF-16: a character beyond U+FFFF (an emoji) takes two units.
    # "surrogatepass": a lone surrogate (JSON can carry one) counts as the one unit it is.
    length = (
        len(text) if abc is Alphabet.ASCII else len(text.encode("utf-16-le", "surrogatepass")) // 2
    )
    if length <= SINGLE_PART[abc]:
        parts, per_part = 1, SINGLE_PART[abc]
    else:
        per_part = MULTI_PART[abc]
        parts = -(-length // per_part)
    return TextInfo(abc, length, max(parts, 1), per_part, MAX_LENGTH[abc])


def check_text(text: object, *, cp1251: bool = False) -> TextInfo:
    """Return what ``text`` costs, or raise :class:`InvalidMessage` saying why it cannot go.

    ``cp1251`` adds the HTTP gateway's rule: every character must exist in Windows-1251.
    """
    problem = text_problem(text, cp1251=cp1251)
    if problem:
        raise InvalidMessage(problem)
    return describe(str(text))


def text_problem(text: object, *, cp1251: bool = False) -> str | None:
    """The reason ``text`` cannot be sent, or None when it can."""
    if not isinstance(text, str):
        return f"text must be a string, not {type(text).__name__} {text!r:.40}"
    if not text.strip():
        return f"text {text!r} is empty"
    if "\x00" in text:
        return f"text {_preview(text)} contains a NUL character, which no SMS can carry"
    surrogate = _SURROGATE_RE.search(text)
    if surrogate:
        return (
            f"text {_preview(text)} contains a lone surrogate (U+{ord(surrogate.group()):04X}), "
            "which is half of a character and no SMS can carry"
        )
    info = describe(text)
    if info.length > info.max_length:
        why = (
            "every character is ASCII, so at most 7 parts of 153"
            if info.alphabet is Alphabet.ASCII
            else "it has non-ASCII characters, so at most 7 parts of 67"
        )
        counted = (
            ""
            if info.length == len(text)
            else " (characters beyond U+FFFF, such as emoji, count twice)"
        )
        return (
            f"text {_preview(text)} is {info.length} characters long{counted}; the limit is "
            f"{info.max_length} because {why}"
        )
    if cp1251:
        bad = unencodable_cp1251(text)
        if bad:
            shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in bad[:5])
            if len(bad) > 5:
                shown += f" and {len(bad) - 5} more"
            return (
                f"text {_preview(text)} has characters that Windows-1251 cannot hold: {shown}; "
                "the HTTP gateway sends Windows-1251, use the XML or JSON gateway for them"
            )
    return None


def fits_cp1251(text: str) -> bool:
    """Whether every character of ``text`` exists in Windows-1251 (the HTTP gateway's encoding)."""
    return not unencodable_cp1251(text)


def unencodable_cp1251(text: str) -> list[str]:
    """The distinct characters of ``text`` that Windows-1251 cannot encode, in order."""
    try:
        text.encode("cp1251")
    except UnicodeEncodeError:
        pass
    else:
        return []
    seen: dict[str, None] = {}
    for char in text:
        if char not in seen:
            try:
                char.encode("cp1251")
            except UnicodeEncodeError:
                seen[char] = None
    return list(seen)


def sender_problem(sender: object) -> str | None:
    """Why ``sender`` is not a valid alpha-name, or None when it is."""
    if not isinstance(sender, str):
        return f"sender must be a string, not {type(sender).__name__} {sender!r:.40}"
    if not sender.strip():
        return f"sender {sender!r} is empty"
    if len(sender) > SENDER_MAX_LENGTH:
        return (
            f"sender {sender!r} is {len(sender)} characters long; "
            f"an alpha-name holds at most {SENDER_MAX_LENGTH}"
        )
    if not _SENDER_RE.fullmatch(sender):
        bad = sorted({c for c in sender if not _SENDER_RE.fullmatch(c)})
        return (
            f"sender {sender!r} has characters {''.join(bad)!r}; "
            "an alpha-name holds only Latin letters, digits, spaces, '.', '-' and '_'"
        )
    return None


def check_sender(sender: object) -> str:
    """Return ``sender`` if it is a valid alpha-name, else raise :class:`InvalidMessage`."""
    problem = sender_problem(sender)
    if problem:
        raise InvalidMessage(problem)
    return str(sender)


def split_parts(text: str) -> list[str]:
    """The text of each part, as a phone or the emulator would see them.

    Each part holds at most ``describe(text).per_part`` units (UTF-16 units for a Unicode text)
    and the parts join back to ``text``. A character beyond U+FFFF is never cut in two: when
    one would straddle a part boundary it starts the next part, so a text with such characters
    may split into one more piece than :func:`count_parts` says the provider bills.
    """
    info = describe(text)
    if info.parts == 1:
        return [text]
    if info.alphabet is Alphabet.ASCII:
        return [text[i : i + info.per_part] for i in range(0, len(text), info.per_part)]
    parts: list[str] = []
    start = units = 0
    for index, char in enumerate(text):
        width = 2 if ord(char) > 0xFFFF else 1
        if units + width > info.per_part:
            parts.append(text[start:index])
            start, units = index, 0
        units += width
    parts.append(text[start:])
    return parts


def _preview(text: str) -> str:
    return repr(text if len(text) <= 30 else text[:27] + "...")
