"""HTTP for the gateways that speak it (HTTP, XML, JSON, SOAP): one pooled session per gateway,
a bounded read of each reply, and transport failures mapped onto the exception hierarchy.

Kept apart from the send flow of :class:`~.base.Gateway` (as django-anymail keeps
``base_requests.py`` apart from ``base.py``), so the SMPP gateway, which holds a socket of its
own, inherits no HTTP machinery.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NameResolutionError, NewConnectionError
from urllib3.util.retry import Retry

from .. import metrics
from ..exceptions import (
    AmbiguousSend,
    ConfigurationError,
    GatewayMisconfigured,
    GatewayUnavailable,
    RateLimited,
)
from .base import Gateway
from .redaction import protect_logger

#: Replies larger than this are not read: no SMSClub reply comes near it.
MAX_REPLY_BYTES = 4 * 1024 * 1024

#: Errors requests raises before anything is sent: the URL or a header cannot be used at all.
MISCONFIGURED = (
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidHeader,
)

#: Loggers whose debug lines can quote a request whole: urllib3 quotes GET URLs (the request
#: line, and each retry: "Incremented Retry for (url=...)").
REDACTED_LOGGERS = (
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.poolmanager",
    "urllib3.util.retry",
)
protect_logger(*REDACTED_LOGGERS)


#: The provider's two sets of HTTP endpoints, and their hosts (``BASE_URL`` overrides them):
#: the document's ``hfw_smpp_addon`` paths, and those of the provider's examples since 2017.
LEGACY_BASE_URL = "http://smpp.smsclub.mobi"
CURRENT_BASE_URL = "https://gate.smsclub.mobi"
ENDPOINT_SETS = ("legacy", "current", "token")


def endpoint_set(name: str, options: dict[str, Any], allowed: tuple[str, ...]) -> str:
    """The gateway's ``ENDPOINTS`` setting, checked against the sets its gateway speaks."""
    value = options.get("ENDPOINTS") or "legacy"
    if value not in allowed:
        choices = " or ".join(repr(a) for a in allowed)
        raise ConfigurationError(f"gateway {name!r}: ENDPOINTS {value!r} must be {choices}")
    return str(value)


class HttpTransport(Gateway):
    """Base of the gateways that talk to SMSClub over HTTP with ``requests``.

    It adds the transport to the fixed flow: a pooled session, :meth:`request` and the mapping
    of its failures. What counts is whether the request may have reached the provider: a send
    that failed after it went out is :class:`AmbiguousSend`, never retried; one that surely
    did not is :class:`GatewayUnavailable`.
    """

    #: Whether the gateway reads an HTTP 429 reply itself (the JSON API's error object);
    #: for the others :meth:`request` raises :class:`RateLimited`.
    reads_rate_limit_replies: ClassVar[bool] = False

    def __init__(self, name: str = "default", **options: Any):
        super().__init__(name, **options)
        self._session: requests.Session | None = None

    @property
    def session(self) -> requests.Session:
        """One pooled session per gateway; connection errors retried only before sending."""
        if self._session is None:
            session = requests.Session()
            retry = Retry(total=None, connect=2, read=0, redirect=0, status=0, other=0)
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=retry)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = "django-smsclub"
            self._session = session
        return self._session

    def close(self) -> None:
        """Close the pooled connections; the next request opens new ones."""
        if self._session is not None:
            self._session.close()
            self._session = None
        super().close()

    @metrics.timed_request
    def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        server_errors: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """Make one HTTP request and read at most MAX_REPLY_BYTES of its reply.

        ``idempotent`` requests (status, balance) may be repeated safely, so every failure is
        :class:`GatewayUnavailable`. For a send, only a failure to connect is; anything after
        the request went out is :class:`AmbiguousSend`. A URL or header that cannot be used
        (no scheme, say) is :class:`GatewayMisconfigured`: nothing went out, and trying again
        will not help. ``path`` may be a whole URL.
        ``server_errors`` hands an HTTP 5xx reply back to be read (a SOAP fault comes so).
        """
        url = path if "://" in path else self.base_url + path
        where = f"{self.name} {urlsplit(url).path}"
        after_sending = GatewayUnavailable if idempotent else AmbiguousSend
        try:
            response = self.session.request(
                method, url, timeout=self.timeout, stream=True, allow_redirects=False, **kwargs
            )
        except MISCONFIGURED as exc:
            raise GatewayMisconfigured(
                f"gateway {where}: the request cannot be made, nothing was sent; check "
                f"BASE_URL and the other settings ({self.describe(exc)})",
                gateway=self.name,
            ) from None
        except requests.ConnectTimeout as exc:
            raise GatewayUnavailable(
                f"gateway {where}: connection timed out ({self.describe(exc)})", gateway=self.name
            ) from None
        except requests.ConnectionError as exc:
            reached = not _never_connected(exc)
            cls = after_sending if reached else GatewayUnavailable
            what = "connection lost after the request was sent" if reached else "cannot connect"
            raise cls(
                f"gateway {where}: {what} ({self.describe(exc)})", gateway=self.name
            ) from None
        except requests.RequestException as exc:
            raise after_sending(
                f"gateway {where}: no reply ({self.describe(exc)})", gateway=self.name
            ) from None
        try:
            body = read_bounded(response)
        except requests.RequestException as exc:
            raise after_sending(
                f"gateway {where}: reply cut off ({self.describe(exc)})", gateway=self.name
            ) from None
        response._content = body
        if response.status_code == 429 and not self.reads_rate_limit_replies:
            # Too Many Requests: refused before it was acted on, whatever the operation. A
            # retry after the server's Retry-After, never a spent attempt (nor a guess).
            raise RateLimited(
                f"gateway {where}: too many requests (HTTP 429); the request was not acted on",
                gateway=self.name,
                retry_after=retry_after(response),
            )
        if response.status_code >= 500 and not server_errors:
            raise after_sending(
                f"gateway {where}: HTTP {response.status_code} from the provider",
                gateway=self.name,
            )
        return response

    def describe(self, exc: BaseException) -> str:
        """``exc`` for an error message: exceptions from requests can quote the URL, and a GET
        URL holds the password."""
        return self.redact(f"{type(exc).__name__}: {exc}")[:300]


def retry_after(response: requests.Response) -> float | None:
    """The seconds a reply's ``Retry-After`` asks for (a number of seconds), or None."""
    try:
        value = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return value if 0 <= value < 86400 else None


def read_bounded(response: requests.Response) -> bytes:
    """The body of a streamed ``response``, refused past :data:`MAX_REPLY_BYTES`; closes it."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > MAX_REPLY_BYTES:
                raise requests.RequestException(f"reply larger than {MAX_REPLY_BYTES} bytes")
            chunks.append(chunk)
    finally:
        response.close()
    return b"".join(chunks)


def _never_connected(exc: requests.ConnectionError) -> bool:
    """Whether the error happened while connecting (nothing of the request was sent)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, NewConnectionError | NameResolutionError | ConnectionRefusedError):
            return True
        reason = getattr(cause, "reason", None)
        if isinstance(reason, BaseException) and id(reason) not in seen:
            cause = reason
            continue
        args = getattr(cause, "args", ())
        nested = next((a for a in args if isinstance(a, BaseException)), None)
        cause = nested or cause.__cause__ or cause.__context__
    return False
