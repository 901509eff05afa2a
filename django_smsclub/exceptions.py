"""The errors django-smsclub raises.

Every message names the value that is wrong and never contains a password or token.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ImproperlyConfigured


class SmsClubError(Exception):
    """Base of every error this package raises."""


class ConfigurationError(SmsClubError, ImproperlyConfigured):
    """The ``SMSCLUB`` setting is missing something or holds a bad value.

    Also Django's ``ImproperlyConfigured``, so code that catches either catches it.
    """


class InvalidMessage(SmsClubError, ValueError):
    """A recipient, sender or text cannot be sent; nothing was sent or stored.

    ``problems`` lists one human-readable line per bad value, so a caller that validated a
    whole batch can show every mistake at once.
    """

    #: Problems its message quotes; the rest are counted (all stay on ``problems``).
    shown_problems = 5

    def __init__(self, problems: str | Iterable[str]):
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        super().__init__(summary(self.problems, self.shown_problems))


def summary(problems: list[str], shown: int) -> str:
    """``problems`` joined, the first ``shown`` of them and a count of the rest when there are
    more: 20,000 bad rows make a message of a few lines, not of 100 KB."""
    if len(problems) <= shown:
        return "; ".join(problems)
    return f"{len(problems)} problems, the first {shown}: " + "; ".join(problems[:shown])


class CampaignStateError(SmsClubError, ValueError):
    """A campaign cannot do that in its present state (start a running one, add to a done one)."""


class GatewayError(SmsClubError):
    """The gateway could not do what was asked. ``gateway`` names the settings key."""

    #: Whether the request may have reached the provider and been acted on.
    may_have_sent: bool = False
    #: Whether trying the same request again later is safe and may succeed.
    retryable: bool = False

    def __init__(self, message: str, *, gateway: str = ""):
        self.gateway = gateway
        super().__init__(message)


class OperationNotSupported(GatewayError):
    """The gateway's protocol has no such operation (SMPP has no balance query)."""


class AuthenticationError(GatewayError):
    """The provider refused the login, password or token. Never retried."""


class ProviderRefused(GatewayError):
    """The provider refused the request for a permanent reason; ``provider_text`` is its word."""

    def __init__(self, message: str, *, gateway: str = "", provider_text: str = ""):
        self.provider_text = provider_text
        super().__init__(message, gateway=gateway)


class GatewayUnavailable(GatewayError):
    """The request surely did not reach the provider (connection refused, DNS); retried."""

    retryable = True


class NotAttempted(GatewayUnavailable):
    """The message's request was never made (an earlier request of its batch failed): it goes
    back to ``queued`` as it was, its attempt not counted."""


class NotSubmitted(GatewayUnavailable):
    """The SMPP session was draining (its process is stopping): the message was never submitted."""


class GatewayMisconfigured(GatewayError):
    """The gateway's settings make the request impossible to build (a ``BASE_URL`` without a
    scheme, a bad header): nothing was sent. Not retried: only a settings change helps."""


class AmbiguousSend(GatewayError):
    """The request went out but its outcome is unknown: the SMS may have been sent.

    Never retried automatically: a second attempt could reach the person twice.
    """

    may_have_sent = True


class RateLimited(GatewayError):
    """The provider asked us to slow down; the request was not acted on."""

    retryable = True

    def __init__(self, message: str, *, gateway: str = "", retry_after: float | None = None):
        self.retry_after = retry_after
        super().__init__(message, gateway=gateway)


class BadUpload(SmsClubError, ValueError):
    """An uploaded file (recipients, numbers for the stop list) cannot be read; the message
    names the line and why."""
