"""What the provider checks in a request, with the provider's own (Russian) words."""

from __future__ import annotations

import re

from .. import phones, text

LOGIN_ERROR = "Не найдено соответствие пары логин\\пароль"
SENDER_ERROR = "Неверное альфа-имя отправителя: {}"
TEXT_ERROR = "Неверный текст сообщения: {}"
RECIPIENT_ERROR = "Неверный номер получателя: {}"
FUNDS_ERROR = "Недостаточно средств на счете"
WRONG_ID = "неверно указан id"

_DIGITS = re.compile(r"\d{10,15}")


class Refused(Exception):
    """The provider refuses the whole request; ``kind`` says why, ``str()`` is its text."""

    def __init__(self, message: str, kind: str):
        self.kind = kind
        super().__init__(message)


def recipient(raw: object) -> str | None:
    """The number's international digits, or None when the provider would refuse it."""
    if not isinstance(raw, str):
        return None
    digits = raw.strip()
    if not _DIGITS.fullmatch(digits):
        return None
    for candidate in ("+" + digits, digits):
        if phones.phone_problem(candidate, region="UA") is None:
            return phones.normalize_phone(candidate, region="UA")
    return None


def normalized(number: str) -> str:
    """``number`` as the emulator keys it: its international digits when valid."""
    return recipient(number.lstrip("+")) or number


def text_refusal(message: object) -> str | None:
    """Why the provider refuses ``message`` as a text, or None."""
    problem = text.text_problem(message)
    if problem is None:
        return None
    if not isinstance(message, str):
        return "нет текста"
    if not message.strip():
        return "пустое сообщение"
    info = text.describe(message)
    if info.length > info.max_length:
        return f"длина {info.length} символов, допустимо не более {info.max_length}"
    return "недопустимые символы"


def sender_refusal(sender: object, registered: tuple[str, ...]) -> str | None:
    """The refusal text when ``sender`` is not a valid alpha-name registered for the account."""
    if text.sender_problem(sender) is not None or sender not in registered:
        return SENDER_ERROR.format(sender if isinstance(sender, str) else "")
    return None
