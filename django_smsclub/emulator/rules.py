"""What the provider checks in a request, and its words for what it refuses.

The emulator keeps its own copy of the provider's rules (never our app's): the alpha-name rule
as the provider registers names, its number rule, and its part counting from the gateway
document (160/153 characters per part when every character is ASCII 0x01-0x7E, else 70/67 UTF-16
units; at most seven parts, so 1071 or 469).
"""

from __future__ import annotations

import re

RU, EN = "ru", "en"
LANGUAGES = (RU, EN)

#: The provider's Russian refusal texts (the login text is the only wording published) and our
#: English variants (no public source shows an English HTTP or XML refusal).
TEXTS = {
    RU: {
        "auth": "Не найдено соответствие пары логин\\пароль",
        "sender": "Неверное альфа-имя отправителя: {}",
        "text": "Неверный текст сообщения: {}",
        "recipient": "Неверный номер получателя: {}",
        "funds": "Недостаточно средств на счете",
        "no_text": "нет текста",
        "empty": "пустое сообщение",
        "too_long": "длина {} символов, допустимо не более {}",
        "bad_chars": "недопустимые символы",
        "not_base64": "текст не в кодировке Base64",
        "not_cp1251": "текст не в кодировке Windows-1251",
    },
    EN: {
        "auth": "Login and password pair not found",
        "sender": "Invalid sender name: {}",
        "text": "Invalid message text: {}",
        "recipient": "Invalid recipient number: {}",
        "funds": "Insufficient funds on the account",
        "no_text": "no text",
        "empty": "empty message",
        "too_long": "{} characters long, at most {} allowed",
        "bad_chars": "characters not allowed",
        "not_base64": "the text is not Base64",
        "not_cp1251": "the text is not Windows-1251",
    },
}
LOGIN_ERROR = TEXTS[RU]["auth"]
SENDER_ERROR = TEXTS[RU]["sender"]
TEXT_ERROR = TEXTS[RU]["text"]
RECIPIENT_ERROR = TEXTS[RU]["recipient"]
FUNDS_ERROR = TEXTS[RU]["funds"]
WRONG_ID = "неверно указан id"
#: The JSON API's reasons per refused number (``add_info``), as public clients show them.
BLACKLISTED = "Данный номер находится в черном списке"
INVALID_NUMBER = "Некорректный номер получателя"

#: Alpha-names as real registered names show them: 1-11 of Latin letters, digits, space, ``._-``.
_ALPHA_NAME = re.compile(r"[A-Za-z0-9 ._-]{1,11}")
#: Ukrainian mobile operators' codes (after 380): Kyivstar, Vodafone, lifecell, 3mob, Intertelecom.
UA_MOBILE_CODES = frozenset(
    {
        *("39", "50", "63", "66", "67", "68", "73", "89"),
        *("91", "92", "93", "94", "95", "96", "97", "98", "99"),
    }
)
_DIGITS = re.compile(r"[0-9]+")
_ASCII = re.compile(r"[\x01-\x7e]*")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SINGLE = {True: 160, False: 70}
_MULTI = {True: 153, False: 67}
MAX_PARTS = 7


class Refused(Exception):
    """The provider refuses the whole request; ``kind`` says why (a key of :data:`TEXTS`).

    ``detail`` is what the text names: a value as given (a number, a sender), or a
    ``(key, *values)`` tuple of a translatable reason. ``message`` overrides the text.
    ``str()`` is the text in :attr:`language`; :meth:`text` gives it in either language.
    """

    def __init__(
        self, kind: str, detail: str | tuple[object, ...] = "", *, message: str | None = None
    ):
        self.kind = kind
        self.detail = detail
        self.message = message
        #: The language of the account concerned (set once the provider knows the account).
        self.language = RU
        super().__init__(kind, detail)

    def __str__(self) -> str:
        return self.text(self.language)

    def text(self, language: str) -> str:
        if self.message is not None:
            return self.message
        words = TEXTS.get(language, TEXTS[RU])
        detail = self.detail
        if isinstance(detail, tuple):
            key, *values = detail
            detail = words[str(key)].format(*values)
        template = words.get(self.kind, "{}")
        return template.format(detail) if "{}" in template else template


def recipient(raw: object) -> str | None:
    """The number as the provider keys it (``380XXXXXXXXX`` for Ukraine), or None if refused.

    Digits only: a Ukrainian number as 12 digits ``380`` + operator code + 7 digits or as the
    national 10 digits ``0XXXXXXXXX``; a foreign number as 11-15 international digits.
    """
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        return None
    digits = raw.strip()
    if not _DIGITS.fullmatch(digits):
        return None
    if len(digits) == 10 and digits.startswith("0"):
        digits = "38" + digits
    if digits.startswith("380"):
        return digits if len(digits) == 12 and digits[3:5] in UA_MOBILE_CODES else None
    if digits.startswith("0") or not 11 <= len(digits) <= 15:
        return None
    return digits


def normalized(number: str) -> str:
    """``number`` as the emulator keys it: its international digits when valid."""
    return recipient(number.strip().lstrip("+")) or number


def is_ascii(message: str) -> bool:
    return bool(_ASCII.fullmatch(message))


def units(message: str) -> int:
    """The text's length as the SMSC counts it: characters if ASCII, else UTF-16 units."""
    if is_ascii(message):
        return len(message)
    return len(message.encode("utf-16-le", "surrogatepass")) // 2


def count_parts(message: str) -> int:
    """How many SMS parts the provider bills for ``message``."""
    ascii_only, length = is_ascii(message), units(message)
    if length <= _SINGLE[ascii_only]:
        return 1
    return -(-length // _MULTI[ascii_only])


def split_parts(message: str) -> list[str]:
    """The text of each part (a character beyond U+FFFF is never cut in two)."""
    ascii_only = is_ascii(message)
    if units(message) <= _SINGLE[ascii_only]:
        return [message]
    size = _MULTI[ascii_only]
    pieces: list[str] = []
    start = used = 0
    for index, char in enumerate(message):
        width = 2 if ord(char) > 0xFFFF else 1
        if used + width > size:
            pieces.append(message[start:index])
            start, used = index, 0
        used += width
    pieces.append(message[start:])
    return pieces


def text_refusal(message: object) -> Refused | None:
    """Why the provider refuses ``message`` as a text, or None."""
    if not isinstance(message, str):
        return Refused("text", ("no_text",))
    if not message.strip():
        return Refused("text", ("empty",))
    if "\x00" in message or _SURROGATE.search(message):
        return Refused("text", ("bad_chars",))
    limit = MAX_PARTS * _MULTI[is_ascii(message)]
    if units(message) > limit:
        return Refused("text", ("too_long", units(message), limit))
    return None


def sender_refusal(sender: object, registered: tuple[str, ...]) -> Refused | None:
    """The refusal when ``sender`` is not a valid alpha-name registered for the account."""
    valid = isinstance(sender, str) and _ALPHA_NAME.fullmatch(sender) is not None
    if not valid or sender not in registered:
        return Refused("sender", sender if isinstance(sender, str) else "")
    return None
