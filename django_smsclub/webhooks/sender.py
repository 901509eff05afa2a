"""One webhook request: a signed JSON POST with a timeout, a bounded read of the reply, and no
redirects followed.

A redirect is an answer, not a new address: a webhook URL that moved is changed where it is
configured, and a receiver cannot send the signed body (and the next ones) to another host.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import requests

from .. import __version__
from .signature import (
    EVENT_HEADER,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature_header,
)

#: Bytes of a reply read at most (for the delivery log); the rest is never read.
MAX_REPLY_BYTES = 4096
#: Characters of a reply, or of an error, kept in the delivery log.
MAX_ERROR_CHARS = 500
#: The longest wait for a connection, whatever the timeout (a longer one is most likely a
#: host that is down).
CONNECT_TIMEOUT = 5.0
ATTEMPT_HEADER = "X-SMSClub-Attempt"
USER_AGENT = f"django-smsclub-webhooks/{__version__}"


@dataclass(frozen=True)
class Reply:
    """What one attempt came to: ``ok`` (a 2xx reply), or the HTTP status and an error."""

    ok: bool
    status_code: int | None = None
    error: str = ""
    seconds: float = 0.0


def post(
    url: str,
    body: bytes,
    *,
    secret: str,
    event: str,
    event_id: str,
    attempt: int = 1,
    timeout: float = 10.0,
    now: float | None = None,
) -> Reply:
    """POST ``body`` (JSON) to ``url``, signed with ``secret``; never raises for the network.

    ``timeout`` bounds the connection, each wait for the reply and the reading of the reply
    (at most :data:`MAX_REPLY_BYTES` of it).
    """
    timestamp = int(time.time() if now is None else now)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event,
        EVENT_ID_HEADER: event_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature_header(body, secret, timestamp),
        ATTEMPT_HEADER: str(attempt),
    }
    started = time.monotonic()
    try:
        response = _session().post(
            url,
            data=body,
            headers=headers,
            timeout=(min(CONNECT_TIMEOUT, timeout), timeout),
            allow_redirects=False,
            stream=True,
        )
    except requests.Timeout:
        return Reply(False, error=f"timed out after {timeout:g} s", seconds=_since(started))
    except requests.RequestException as exc:
        return Reply(False, error=_describe(exc), seconds=_since(started))
    try:
        reply = _read(response, started + timeout)
    finally:
        response.close()
    code = response.status_code
    if 200 <= code < 300:
        return Reply(True, code, seconds=_since(started))
    if 300 <= code < 400:
        location = response.headers.get("Location", "")
        error = f"HTTP {code}: redirected to {location[:200]!r}; webhooks follow no redirect"
    else:
        error = f"HTTP {code}" + (f": {reply}" if reply else "")
    return Reply(False, code, error[:MAX_ERROR_CHARS], _since(started))


_local = threading.local()


def _session() -> requests.Session:
    """A pooled session per thread (a worker's thread, or the web process's for a test)."""
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        _local.session = session
    return session


def _read(response: Any, deadline: float) -> str:
    """Up to :data:`MAX_REPLY_BYTES` of the reply as text; less if ``deadline`` passes."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(1024):
            chunks.append(chunk)
            size += len(chunk)
            if size >= MAX_REPLY_BYTES or time.monotonic() > deadline:
                break
    except requests.RequestException:
        pass  # the status is what counts; a reply cut short is still logged as far as it came
    text = b"".join(chunks)[:MAX_REPLY_BYTES].decode("utf-8", "replace")
    return " ".join(text.split())[:MAX_ERROR_CHARS]


def _describe(exc: requests.RequestException) -> str:
    """A short reason for a failed request, without the URL (which may carry credentials)."""
    reason: BaseException = exc
    # requests wraps urllib3's MaxRetryError, which wraps the error that counts.
    while reason.args and isinstance(reason.args[0], BaseException):
        reason = reason.args[0]
    inner = getattr(reason, "reason", None)
    if isinstance(inner, BaseException):
        reason = inner
    text = str(reason)
    if ": " in text and type(reason).__name__ in ("NewConnectionError", "NameResolutionError"):
        text = text.rpartition(": ")[2]
    kind = "connection failed" if isinstance(exc, requests.ConnectionError) else "request failed"
    return f"{kind}: {type(reason).__name__}: {text}"[:MAX_ERROR_CHARS]


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
