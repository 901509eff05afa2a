"""Message statuses, the provider's status words, and how part statuses add up."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from django.db import models
from django.utils.translation import gettext_lazy as _


class Status(models.TextChoices):
    QUEUED = "queued", _("queued")
    SENDING = "sending", _("sending")
    SENT = "sent", _("sent")
    DELIVERED = "delivered", _("delivered")
    UNDELIVERED = "undelivered", _("undelivered")
    EXPIRED = "expired", _("expired")
    REJECTED = "rejected", _("rejected")
    FAILED = "failed", _("failed")
    CANCELLED = "cancelled", _("cancelled")
    UNKNOWN = "unknown", _("unknown")


#: Statuses a message never leaves.
FINAL_STATUSES: frozenset[str] = frozenset(
    {
        Status.DELIVERED,
        Status.UNDELIVERED,
        Status.EXPIRED,
        Status.REJECTED,
        Status.FAILED,
        Status.CANCELLED,
        Status.UNKNOWN,
    }
)
#: Final statuses that mean the person did not get the text.
FAILURE_STATUSES: frozenset[str] = frozenset(
    {Status.UNDELIVERED, Status.EXPIRED, Status.REJECTED, Status.FAILED, Status.UNKNOWN}
)

logger = logging.getLogger("django_smsclub.status")

#: Provider word (upper case) -> our status. Words not here are kept verbatim and mean "sent".
#: Sources of each word: docs/PROTOCOL.rst ("Status words").
PROVIDER_WORDS: dict[str, Status] = {
    "ENROUTE": Status.SENT,
    "ACCEPTD": Status.SENT,
    "ACCEPTE": Status.SENT,
    "ACCEPTED": Status.SENT,
    "NOREPORT": Status.SENT,
    "UNKNOWN": Status.SENT,
    "DELIVRD": Status.DELIVERED,
    "DELIVERED": Status.DELIVERED,
    "UNDELIV": Status.UNDELIVERED,
    "UNDELIVERABLE": Status.UNDELIVERED,
    "EXPIRED": Status.EXPIRED,
    "REJECTD": Status.REJECTED,
    "REJECTED": Status.REJECTED,
    "FAILED": Status.FAILED,
    "DELETED": Status.FAILED,
}

#: Russian words the JSON API answers with (the provider's PHP SDK, ``StatusHandler.php``),
#: compared case-insensitively (``casefold``). The last two appear in no public source: kept
#: as guesses, harmless if never seen.
PROVIDER_WORDS_RU: dict[str, Status] = {
    "ожидает отправки": Status.SENT,
    "отправлено": Status.SENT,
    "доставлено": Status.DELIVERED,
    "просрочено": Status.EXPIRED,
    "недоставляемое": Status.UNDELIVERED,
    "отклонено": Status.REJECTED,
    "не доставлено": Status.UNDELIVERED,
    "в очереди": Status.SENT,
}

#: Words the provider documents as answers that are not statuses: kept, never logged.
KNOWN_NON_STATUS_WORDS = frozenset({"неверно указан id"})

#: The longest unknown word logged, and how many distinct ones a process logs at most.
_LOGGED_WORD_LENGTH = 80
_MAX_LOGGED_WORDS = 1000
_logged_words: set[str] = set()
_logged_lock = threading.Lock()

# A part's worst outcome decides a failed message; ordered from least to most telling.
_FAILURE_ORDER: list[str] = [
    Status.UNKNOWN,
    Status.EXPIRED,
    Status.UNDELIVERED,
    Status.FAILED,
    Status.REJECTED,
]


def status_from_word(word: object) -> Status:
    """Our status for a provider word, case-insensitively; unknown words mean still pending.

    Anything else (None, a date, a Russian error text, bytes, a number) is "sent": it never
    raises, so one odd reply cannot stop the tracking of the others.
    """
    if isinstance(word, bytes):
        word = word.decode("utf-8", "replace")
    if not isinstance(word, str):
        return Status.SENT
    word = " ".join(word.split())
    # Only ASCII words are the provider's English ones: str.upper() would turn "delıvrd"
    # (dotless i) into "DELIVRD".
    if word.isascii():
        status = PROVIDER_WORDS.get(word.upper())
    else:
        status = PROVIDER_WORDS_RU.get(word.casefold())
    if status is None:
        _log_unknown(word)
        return Status.SENT
    return status


def _log_unknown(word: str) -> None:
    """Log an unknown status word once per process (a poll repeats it for every report)."""
    if not word or word.casefold() in KNOWN_NON_STATUS_WORDS:
        return
    key = word[:_LOGGED_WORD_LENGTH]
    with _logged_lock:
        if key in _logged_words or len(_logged_words) >= _MAX_LOGGED_WORDS:
            return
        _logged_words.add(key)
    logger.warning("unknown provider status word %r: kept verbatim, the message stays sent", key)


def is_final(status: str) -> bool:
    return status in FINAL_STATUSES


def aggregate(part_statuses: Iterable[str]) -> Status:
    """A message's status from its parts' statuses.

    Delivered when every part is; a failure kind when every part is final and one is not
    delivered; otherwise still sent.
    """
    statuses = list(part_statuses)
    if not statuses:
        return Status.SENT
    if any(s not in FINAL_STATUSES for s in statuses):
        return Status.SENT
    failures = [s for s in statuses if s != Status.DELIVERED]
    if not failures:
        return Status.DELIVERED
    worst = max(failures, key=lambda s: _FAILURE_ORDER.index(s) if s in _FAILURE_ORDER else -1)
    return Status(worst)
