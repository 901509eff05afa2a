"""Credentials kept out of messages and logs: one filter for every logger that can quote them.

A gateway's password or token travels in URLs (GET), form bodies, XML and SOAP envelopes and
SMPP bind PDUs, and third-party libraries log those whole at DEBUG: urllib3 quotes request URLs,
zeep quotes envelopes, smpplib dumps every PDU in hex. The error messages this package writes
never hold a credential either. Each secret is therefore searched for in every form it takes on
the wire: as written, URL-quoted, XML-escaped and hex-encoded (with and without the NUL that
ends a C-octet string in a PDU).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus
from xml.sax.saxutils import escape as xml_escape

from ..logs import FIELDS

#: What a secret is replaced with.
MASK = "***"

#: The extra fields of the package's log records whose text is searched too. None should ever
#: hold a credential; this makes sure.
LOGGED_FIELDS = tuple(FIELDS)

#: Forms shorter than this are not searched for in log lines: a two-letter password would blank
#: out ordinary words in every line of the process. (The hex forms of a short SMPP password are
#: long enough, and a PDU dump holds nothing else.)
MIN_LOGGED_SECRET = 4


def secret_forms(secret: str) -> list[str]:
    """Every spelling of ``secret`` a request or a log line can hold, longest first."""
    if not secret:
        return []
    raw = secret.encode("latin-1", "replace")
    forms = (
        secret,
        quote(secret, safe=""),
        quote_plus(secret),  # requests writes a space in a GET URL as "+"
        xml_escape(secret),
        raw.hex(),
        (raw + b"\0").hex(),
    )
    return sorted(dict.fromkeys(forms), key=len, reverse=True)


def redact(message: str, secrets: Iterable[str]) -> str:
    """``message`` with every form of each of ``secrets`` replaced by :data:`MASK`."""
    forms = sorted({f for s in secrets for f in secret_forms(s)}, key=len, reverse=True)
    for form in forms:
        message = message.replace(form, MASK)
    return message


class SecretsFilter(logging.Filter):
    """Rewrites log records that quote a registered secret in any of its forms.

    A filter on a logger sees only that logger's own records, so it is added to each logger
    by name (:func:`protect_logger`); the secrets are shared by all of them.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._forms: tuple[str, ...] = ()

    def register(self, secret: str) -> None:
        """Search log lines for ``secret`` from now on (its forms long enough to be safe)."""
        forms = [f for f in secret_forms(secret) if len(f) >= MIN_LOGGED_SECRET]
        with self._lock:
            merged = dict.fromkeys([*self._forms, *forms])
            self._forms = tuple(sorted(merged, key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        forms = self._forms
        if forms:
            message = record.getMessage()
            redacted = _masked(message, forms)
            if redacted != message:
                record.msg, record.args = redacted, ()
            # The structured fields (django_smsclub.logs) a JSON formatter writes out whole.
            for name in LOGGED_FIELDS:
                value = record.__dict__.get(name)
                if isinstance(value, str):
                    record.__dict__[name] = _masked(value, forms)
                elif isinstance(value, list | tuple) and any(isinstance(v, str) for v in value):
                    record.__dict__[name] = [
                        _masked(v, forms) if isinstance(v, str) else v for v in value
                    ]
        return True


def _masked(text: str, forms: tuple[str, ...]) -> str:
    for form in forms:
        text = text.replace(form, MASK)
    return text


#: The one filter of the package.
secrets_filter = SecretsFilter()


def register_secret(*secrets: str) -> None:
    """Keep ``secrets`` out of the logs of every protected logger."""
    for secret in secrets:
        if secret:
            secrets_filter.register(secret)


def protect_logger(*names: str) -> None:
    """Put the filter on the loggers ``names`` (once each)."""
    for name in names:
        logger = logging.getLogger(name)
        if secrets_filter not in logger.filters:
            logger.addFilter(secrets_filter)
