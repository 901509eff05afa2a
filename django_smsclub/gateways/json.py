"""The JSON API, the provider's current interface: bearer token, at most 100 numbers a call.

One text to many numbers goes through ``/sms/send``; different texts in one request through
``/v2/sms/send`` (``data_message``: ``{phone, message}`` pairs). Either reply maps SMSC IDs to
phones (``info``) and refused numbers to reasons (``add_info``); every shape read here is in
docs/PROTOCOL.rst ("JSON API") with its source.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import requests

from ..exceptions import (
    AmbiguousSend,
    AuthenticationError,
    GatewayError,
    GatewayMisconfigured,
    GatewayUnavailable,
    ProviderRefused,
    RateLimited,
)
from ..logs import fields
from ..text import count_parts
from .base import Balance, Outgoing
from .transport import HttpTransport, retry_after

logger = logging.getLogger("django_smsclub.gateways")

PATHS = {
    "send": "/sms/send",
    "send_personal": "/v2/sms/send",
    "state": "/sms/status",
    "balance": "/sms/balance",
    "originator": "/sms/originator",
}

#: ``add_info`` keys that name a field of the request, not a phone (the provider's SDK,
#: ``ErrorHandler.php``): the whole request was refused.
REQUEST_FIELDS = frozenset({"phone", "message", "src_addr", "invalid_phone", "invalid_id_sms"})
#: The longest provider text kept in an error message.
MAX_REASON = 500


class JsonGateway(HttpTransport):
    """SMSClub's JSON API. Refusals of single numbers come back beside the accepted ones."""

    max_batch = 100
    max_state_batch = 100
    # /v2/sms/send takes a text per number, so personal texts share a request.
    personal_texts_per_request = True
    # The reply maps IDs to phones, so a phone may appear once per request.
    repeats_recipients = False
    default_base_url = "https://im.smsclub.mobi"
    #: The provider allows 9 requests per second per client.
    default_rate_limit = 9
    # Its 429 is an error object, read (with Retry-After) by _error like the others.
    reads_rate_limit_replies = True

    def send_batch(
        self, sender: str, messages: list[Outgoing]
    ) -> list[Sequence[str] | GatewayError]:
        if len({m.text for m in messages}) == 1:
            op = "send"
            payload: dict[str, Any] = {
                "phone": [m.recipient for m in messages],
                "message": messages[0].text,
                "src_addr": sender,
            }
        else:
            op = "send_personal"
            payload = {
                "src_addr": sender,
                "data_message": [{"phone": m.recipient, "message": m.text} for m in messages],
            }
        info, add_info = self._call(op, payload, idempotent=False)
        return self._outcomes(messages, _as_map(info, self, "info"), add_info)

    def fetch_state_batch(self, smsc_ids: list[str]) -> Mapping[str, str]:
        info, add_info = self._call("state", {"id_sms": smsc_ids}, idempotent=True)
        states = _as_map(info, self, "info", idempotent=True)
        if add_info:
            # A string names IDs the provider does not know ("invalid id_sms"): they stay
            # unanswered and end unknown when the tracking window closes.
            logger.info(
                "gateway %s: status reply says %.200s",
                self.name,
                _reason(add_info),
                extra=fields(gateway=self.name, smsc_ids=smsc_ids, outcome="unknown_ids"),
            )
        return {str(k): str(v) for k, v in states.items()}

    def balance(self) -> Balance:
        info, _ = self._call("balance", None, idempotent=True)
        try:
            amount = Decimal(str(info["money"]))
        except (KeyError, TypeError, InvalidOperation):
            raise self.garbled(f"balance reply {info!r:.80}", idempotent=True) from None
        if not amount.is_finite():
            raise self.garbled(f"balance reply {info!r:.80}", idempotent=True)
        currency = info.get("currency") if isinstance(info.get("currency"), str) else None
        return Balance(amount=amount, currency=currency)

    def senders(self) -> list[str]:
        """The alpha-names registered for this account."""
        info, _ = self._call("originator", None, idempotent=True)
        if not isinstance(info, list):
            raise self.garbled(f"originator reply {info!r:.80}", idempotent=True)
        return [str(name) for name in info]

    def _outcomes(
        self, messages: list[Outgoing], info: Mapping[str, Any], add_info: Any
    ) -> list[Sequence[str] | GatewayError]:
        """Each message's IDs or refusal, matched by phone (local or international form)."""
        sent = {message.recipient for message in messages}
        ids_by_phone: dict[str, list[str]] = {}
        for smsc_id, phone in info.items():
            ids_by_phone.setdefault(phone_key(phone), []).append(str(smsc_id))
        refused, whole_request = self._refusals(add_info, sent)
        results: list[Sequence[str] | GatewayError] = []
        for message in messages:
            ids = ids_by_phone.pop(message.recipient, [])
            parts = count_parts(message.text)
            reason = refused.get(message.recipient) or (None if ids else whole_request)
            if reason is not None and not ids:
                results.append(self._refused(message.recipient, reason))
            elif len(ids) in (1, parts):
                results.append(ids)
            else:
                results.append(
                    AmbiguousSend(
                        f"gateway {self.name}: the provider returned {len(ids)} IDs for "
                        f"{message.recipient}, whose text has {parts} part(s)",
                        gateway=self.name,
                    )
                )
        if ids_by_phone:
            # IDs for numbers we did not send to: the reply does not belong to this request.
            raise AmbiguousSend(
                f"gateway {self.name}: the reply lists numbers that were not sent: "
                f"{', '.join(sorted(ids_by_phone))[:200]}",
                gateway=self.name,
            )
        return results

    def _refusals(self, add_info: Any, sent: set[str]) -> tuple[dict[str, str], str | None]:
        """``add_info`` read as refusals: per phone we sent, and one of the whole request
        (a field name such as ``src_addr``, a phone we did not send, or a plain string)."""
        if add_info in (None, "", [], {}):
            return {}, None
        if not isinstance(add_info, dict):
            return {}, _reason(add_info)
        per_phone: dict[str, str] = {}
        others: list[str] = []
        for key, why in add_info.items():
            phone = phone_key(key)
            if phone in sent and str(key) not in REQUEST_FIELDS:
                per_phone[phone] = _reason(why)
            else:
                others.append(f"{key}: {_reason(why)}")
        return per_phone, "; ".join(others)[:MAX_REASON] or None

    def _refused(self, recipient: str, reason: str) -> ProviderRefused:
        reason = self.redact(reason)
        return ProviderRefused(
            f"gateway {self.name}: the provider refused {recipient}: {reason}",
            gateway=self.name,
            provider_text=reason,
        )

    def _call(self, op: str, payload: Any, *, idempotent: bool) -> tuple[Any, Any]:
        """POST to one endpoint; return ``(info, add_info)`` of ``success_request``."""
        headers = {"Authorization": f"Bearer {self.token}"}
        kwargs: dict[str, Any] = {"headers": headers}
        if payload is not None:
            kwargs["data"] = json.dumps(payload, ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json; charset=utf-8"
        response = self.request("POST", PATHS[op], idempotent=idempotent, **kwargs)
        body = self._json(response, idempotent=idempotent)
        if response.status_code != 200 or "success_request" not in body:
            raise self._error(response, body, idempotent=idempotent)
        success = body["success_request"]
        if not isinstance(success, dict):
            raise self.garbled("success_request is not an object", idempotent=idempotent)
        return success.get("info"), success.get("add_info")

    def _json(self, response: requests.Response, *, idempotent: bool) -> dict[str, Any]:
        try:
            body = json.loads(response.content.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            # RecursionError: arrays or objects nested thousands deep.
            raise self.garbled(
                f"HTTP {response.status_code}, not JSON: {response.content[:80]!r}",
                idempotent=idempotent,
            ) from None
        if not isinstance(body, dict):
            raise self.garbled(f"JSON reply is not an object: {body!r:.80}", idempotent=idempotent)
        return body

    def _error(
        self, response: requests.Response, body: dict[str, Any], *, idempotent: bool
    ) -> GatewayError:
        """The error a reply without ``success_request`` stands for.

        The provider's error object (``name``, ``message``, ``code``, ``status``) may come with
        its status on the HTTP status line or with HTTP 200: its own ``status`` decides.
        """
        status = _error_status(body) or response.status_code
        message = self.redact(_reason(body.get("message") or body.get("name") or f"HTTP {status}"))
        where = f"gateway {self.name}"
        if status in (401, 403):
            return AuthenticationError(
                f"{where}: the provider refused the token: {message}", gateway=self.name
            )
        if status == 429:
            return RateLimited(
                f"{where}: too many requests: {message}",
                gateway=self.name,
                retry_after=retry_after(response),
            )
        if status in (404, 405):
            return GatewayMisconfigured(
                f"{where}: HTTP {status}, no such endpoint; nothing was sent (check BASE_URL): "
                f"{message}",
                gateway=self.name,
            )
        if 400 <= status < 500:
            return ProviderRefused(
                f"{where}: the provider refused the request: {message}",
                gateway=self.name,
                provider_text=message,
            )
        if status == 503:
            return GatewayUnavailable(
                f"{where}: the provider is unavailable (status 503): {message}", gateway=self.name
            )
        # A 500 may come after the work was done: for a send, the messages may have gone.
        return self.garbled(f"status {status}: {message}", idempotent=idempotent)


def phone_key(phone: object) -> str:
    """A phone as the reply may write it, in the international digits we send.

    ``/v2/sms/send`` examples use local numbers (``0980000001``); the reply may name them in
    either form. JSON numbers (``380501234567`` without quotes) are read as their digits.
    """
    digits = "".join(c for c in str(phone) if c.isascii() and c.isdigit())
    if len(digits) == 10 and digits.startswith("0"):
        return "38" + digits
    return digits


def _as_map(
    value: Any, gateway: JsonGateway, what: str, *, idempotent: bool = False
) -> Mapping[str, Any]:
    """``info`` as a mapping: missing or ``[]`` (how PHP encodes an empty map) is empty."""
    if value is None or value == []:
        return {}
    if not isinstance(value, dict):
        raise gateway.garbled(f"{what} is not an object: {value!r:.80}", idempotent=idempotent)
    return value


def _reason(value: Any) -> str:
    """A provider's reason as text: a string, a list of them, or anything else as JSON."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        text = "; ".join(value)
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    return " ".join(text.split())[:MAX_REASON]


def _error_status(body: dict[str, Any]) -> int | None:
    """The ``status`` of the provider's error object, when the body is one."""
    status = body.get("status")
    if not ("name" in body or "message" in body):
        return None
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599:
        return status
    return None
