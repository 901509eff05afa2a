"""The JSON API, the provider's current interface: bearer token, at most 100 numbers a call."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import requests

from ..exceptions import (
    AmbiguousSend,
    AuthenticationError,
    GatewayError,
    ProviderRefused,
    RateLimited,
)
from ..text import count_parts
from .base import Balance, Outgoing
from .transport import HttpTransport

PATHS = {
    "send": "/sms/send",
    "state": "/sms/status",
    "balance": "/sms/balance",
    "originator": "/sms/originator",
}


class JsonGateway(HttpTransport):
    """SMSClub's JSON API. Refusals of single numbers come back beside the accepted ones."""

    max_batch = 100
    max_state_batch = 100
    # The reply maps IDs to phones, so a phone may appear once per request.
    repeats_recipients = False
    default_base_url = "https://im.smsclub.mobi"
    #: The provider allows 9 requests per second per client.
    default_rate_limit = 9

    def send_batch(
        self, sender: str, messages: list[Outgoing]
    ) -> list[Sequence[str] | GatewayError]:
        payload = {
            "phone": [m.recipient for m in messages],
            "message": messages[0].text,
            "src_addr": sender,
        }
        info, add_info = self._call("send", payload, idempotent=False)
        if not isinstance(info, dict) or not isinstance(add_info, dict):
            raise self.garbled("send reply without an info object", idempotent=False)
        ids_by_phone: dict[str, list[str]] = {}
        for smsc_id, phone in info.items():
            ids_by_phone.setdefault(_digits(phone), []).append(str(smsc_id))
        refused = {_digits(phone): str(why) for phone, why in add_info.items()}
        results: list[Sequence[str] | GatewayError] = []
        for message in messages:
            ids = ids_by_phone.pop(message.recipient, [])
            parts = count_parts(message.text)
            if message.recipient in refused and not ids:
                results.append(
                    ProviderRefused(
                        f"gateway {self.name}: the provider refused {message.recipient}: "
                        f"{refused[message.recipient]}",
                        gateway=self.name,
                        provider_text=refused[message.recipient],
                    )
                )
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

    def fetch_state_batch(self, smsc_ids: list[str]) -> Mapping[str, str]:
        info, _ = self._call("state", {"id_sms": smsc_ids}, idempotent=True)
        if not isinstance(info, dict):
            raise self.garbled("status reply without an info object", idempotent=True)
        return {str(k): str(v) for k, v in info.items()}

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
        return success.get("info"), success.get("add_info", {})

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
        status = response.status_code
        message = self.redact(str(body.get("message") or body.get("name") or f"HTTP {status}"))
        where = f"gateway {self.name}"
        if status == 401 or status == 403:
            return AuthenticationError(
                f"{where}: the provider refused the token: {message}", gateway=self.name
            )
        if status == 429:
            return RateLimited(
                f"{where}: too many requests: {message}",
                gateway=self.name,
                retry_after=_retry_after(response),
            )
        if 400 <= status < 500:
            return ProviderRefused(
                f"{where}: the provider refused the request: {message}",
                gateway=self.name,
                provider_text=message,
            )
        return self.garbled(f"HTTP {status}: {message}", idempotent=idempotent)


def _digits(phone: object) -> str:
    return "".join(c for c in str(phone) if c.isdigit())


def _retry_after(response: requests.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
