"""An account of the emulated provider and the reply variants it is set to answer with."""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal

from .rules import LANGUAGES

#: How the provider writes an account's SMSC IDs: ``1``, ``000001`` or ``p000000001``.
ID_STYLES = ("plain", "padded", "alnum")
#: The words of JSON status replies: the SMPP words (``DELIVRD``) or the Russian ones.
STATUS_WORDS = ("en", "ru")
#: How a JSON reply writes an ``info`` with nothing in it: PHP's ``[]`` or ``{}``.
EMPTY_INFO = ("list", "object")
#: The Russian words the provider's SDK maps (``StatusHandler.php``), by SMPP word.
RUSSIAN_WORDS = {
    "ENROUTE": "Отправлено",
    "DELIVRD": "Доставлено",
    "EXPIRED": "Просрочено",
    "UNDELIV": "Недоставляемое",
    "REJECTD": "Отклонено",
}
OPTIONS = ("id_style", "refusal_language", "status_words", "json_errors_http_200", "empty_info")


@dataclass
class Account:
    """One account; the fields after ``price_per_part`` choose the reply variants it gets."""

    username: str
    password: str
    token: str | None = None
    senders: tuple[str, ...] = ("Shop",)
    balance: Decimal = Decimal("1000")
    credit: Decimal = Decimal("0")
    price_per_part: Decimal = Decimal("0.50")
    id_style: str = "plain"
    refusal_language: str = "ru"
    status_words: str = "en"
    json_errors_http_200: bool = False
    empty_info: str = "list"

    def __post_init__(self) -> None:
        check_options(
            id_style=self.id_style,
            refusal_language=self.refusal_language,
            status_words=self.status_words,
            empty_info=self.empty_info,
        )

    def smsc_id(self, number: int) -> str:
        """The ``number``-th ID the provider hands out, written as this account gets it."""
        if self.id_style == "padded":
            return f"{number:06d}"
        if self.id_style == "alnum":
            return f"p{number:09x}"
        return str(number)

    def json_word(self, word: str) -> str:
        """``word`` as a JSON status reply to this account writes it."""
        if self.status_words == "ru":
            return RUSSIAN_WORDS.get(word, word)
        return word


_CHOICES = {
    "id_style": ID_STYLES,
    "refusal_language": LANGUAGES,
    "status_words": STATUS_WORDS,
    "empty_info": EMPTY_INFO,
}


def check_options(**options: object) -> None:
    """ValueError naming the option and the bad value unless every option is known and valid."""
    known = {f.name for f in fields(Account)}
    for name, value in options.items():
        if name not in known or name not in OPTIONS:
            raise ValueError(f"unknown account option {name!r}; one of {', '.join(OPTIONS)}")
        choices = _CHOICES.get(name)
        if choices is not None and value not in choices:
            raise ValueError(f"{name} must be one of {choices}, not {value!r}")
        if name == "json_errors_http_200" and not isinstance(value, bool):
            raise ValueError(f"json_errors_http_200 must be True or False, not {value!r}")
