r"""Reading what SMSClub answers: error texts and the size and shape of replies.

The provider refuses a whole HTTP request with HTTP 200 and a short text instead of the
``=IDS START=`` list: Russian in every public source (``Не найдено соответствие пары
логин\пароль``), English on accounts so set. No closed list of its wordings exists, so any
short text that reads as words is taken for a refusal. A reply that is neither the expected
shape nor such a text is garbled: for a send that is an ambiguous outcome, never a guess.
"""

from __future__ import annotations

import re

import requests

from ..exceptions import AuthenticationError, GatewayError, ProviderRefused

MAX_ERROR_TEXT = 2000
MIN_ERROR_TEXT = 16
#: The share of letters, digits, spaces and ordinary punctuation in a real error text.
WORDLIKE_SHARE = 0.9
_TEXT_PUNCTUATION = frozenset(" .,:;!?-()'\"/\\№%+_")

_CHARSET = re.compile(r"charset=[\"']?([\w.:-]+)", re.IGNORECASE)
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[A-Za-z]")
_LETTER_RUN = re.compile(r"[^\W\d_]+")
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_MARKUP = re.compile(r"[<>{}]")
_ERROR_WORDS = re.compile(
    r"ошибк|неверн|некоррект|недостаточно|запрещ|заблокир|не найден|отказ|превыш|лимит|альфа"
    r"|номер|текст|средств|error|invalid|incorrect|insufficient|denied|forbidden|not found"
    r"|refused|rejected|blocked|exceeded|wrong|not allowed",
    re.IGNORECASE,
)
_LOGIN_WORDS = re.compile(r"логин|парол|авториз|login|password|unauthori", re.IGNORECASE)


def reply_charset(response: requests.Response) -> str | None:
    """The charset the reply's Content-Type names, if any."""
    match = _CHARSET.search(response.headers.get("Content-Type", ""))
    return match.group(1) if match else None


def decode_reply(body: bytes, charset: str | None) -> str | None:
    """The reply as text, or None if it is not text in any encoding SMSClub uses."""
    candidates = [c for c in (charset, "utf-8", "cp1251") if c]
    for encoding in dict.fromkeys(candidates):
        try:
            return body.decode(encoding)
        except (UnicodeError, LookupError):
            # UnicodeError too: some codecs a server may name (punycode) raise no more.
            continue
    return None


def looks_like_error_text(reply: str) -> bool:
    """Whether ``reply`` reads as one of the provider's plain error texts: words, mostly.

    A garbled reply decoded as Windows-1251 is printable too, but full of symbols; taking it
    for a refusal would mark a message that may have gone out as failed, and so resendable.
    """
    stripped = reply.strip()
    if not (0 < len(stripped) <= MAX_ERROR_TEXT and stripped.isprintable()) or "=IDS" in stripped:
        return False
    # Markup is a page or a document (a proxy's error page, JSON), never the provider's words.
    if _MARKUP.search(_BR.sub(" ", stripped)):
        return False
    wordlike = sum(1 for c in stripped if c.isalnum() or c in _TEXT_PUNCTUATION)
    if wordlike < WORDLIKE_SHARE * len(stripped):
        return False
    # Words are written in one script; chance mixes Cyrillic and Latin inside a word.
    if any(_CYRILLIC.search(w) and _LATIN.search(w) for w in _LETTER_RUN.findall(stripped)):
        return False
    if _ERROR_WORDS.search(stripped) or _LOGIN_WORDS.search(stripped):
        return True
    # Unknown words, Russian or English: only a longer text of several words, which chance
    # does not produce.
    return (
        len(stripped) >= MIN_ERROR_TEXT
        and " " in stripped
        and bool(_CYRILLIC.search(stripped) or _LATIN.search(stripped))
    )


def error_from_text(provider_text: str, *, gateway: str) -> GatewayError:
    """The exception a provider's error text stands for: a refused login or a refusal."""
    provider_text = provider_text.strip()[:MAX_ERROR_TEXT]
    if _LOGIN_WORDS.search(provider_text):
        return AuthenticationError(
            f"gateway {gateway}: the provider refused the login: {provider_text}",
            gateway=gateway,
        )
    return ProviderRefused(
        f"gateway {gateway}: the provider refused the request: {provider_text}",
        gateway=gateway,
        provider_text=provider_text,
    )


def strip_br(reply: str) -> list[str]:
    """Split an HTTP-gateway list on ``<br/>``, ``<br>`` and newlines, dropping empty pieces."""
    return [
        p.strip() for p in re.split(r"<br\s*/?>|\r?\n", reply, flags=re.IGNORECASE) if p.strip()
    ]
