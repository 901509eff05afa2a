"""The HTTP gateway: form fields in, ``=IDS START=`` lists out; text in Windows-1251.

Two sets of endpoints (``ENDPOINTS``): ``legacy``, the document's ``hfw_smpp_addon`` paths,
where the text travels as Base64 of Windows-1251; ``current`` (``/http/``) and ``token``
(``/token/``, a token instead of the password), the provider's examples since 2017, where it
travels URL-encoded Windows-1251 without Base64 (docs/PROTOCOL.rst, "HTTP gateway").
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation

import requests

from ..exceptions import ConfigurationError, GatewayError
from .base import Balance, Outgoing
from .replies import decode_reply, error_from_text, looks_like_error_text, reply_charset, strip_br
from .transport import CURRENT_BASE_URL, ENDPOINT_SETS, HttpTransport, endpoint_set

START, END = "=IDS START=", "=IDS END="

PATHS = {
    ("send", "POST"): "/hfw_smpp_addon/httpsendsmspost.php",
    ("send", "GET"): "/hfw_smpp_addon/httpsendsms.php",
    ("state", "POST"): "/hfw_smpp_addon/httpgetsmsstatepost.php",
    ("state", "GET"): "/hfw_smpp_addon/httpgetsmsstate.php",
    ("balance", "POST"): "/hfw_smpp_addon/httpgetbalance.php",
    ("balance", "GET"): "/hfw_smpp_addon/httpgetbalance.php",
}
#: The current sets take GET and POST on the same paths.
CURRENT_PATHS = {
    "current": {"send": "/http/", "state": "/http/state.php", "balance": "/http/getbalance.php"},
    "token": {"send": "/token/", "state": "/token/state.php", "balance": "/token/getbalance.php"},
}


class HttpGateway(HttpTransport):
    """SMSClub's HTTP gateway. POST by default: a GET puts the password in access logs."""

    max_batch = 100
    max_state_batch = 100
    needs_cp1251 = True
    default_base_url = "http://smpp.smsclub.mobi"

    def __init__(self, name: str = "default", **options: object):
        super().__init__(name, **options)
        method = str(options.get("METHOD") or "POST").upper()
        if method not in ("GET", "POST"):
            raise ConfigurationError(f"gateway {name!r}: METHOD {method!r} must be GET or POST")
        self.method = method
        self.endpoints = endpoint_set(name, options, ENDPOINT_SETS)
        if self.endpoints != "legacy" and not options.get("BASE_URL"):
            self.base_url = CURRENT_BASE_URL
        if self.endpoints == "token" and not self.token:
            raise ConfigurationError(f"gateway {name!r}: ENDPOINTS 'token' needs a TOKEN")

    def send_batch(
        self, sender: str, messages: list[Outgoing]
    ) -> list[Sequence[str] | GatewayError]:
        cp1251 = messages[0].text.encode("cp1251")
        fields: dict[str, str | bytes] = {
            **credentials(self, self.endpoints),
            "from": sender,
            "to": ";".join(m.recipient for m in messages),
            # requests URL-encodes bytes as they are: %C0%E1... on the current endpoints.
            "text": base64.b64encode(cp1251).decode("ascii")
            if self.endpoints == "legacy"
            else cp1251,
        }
        reply = self._call("send", fields, idempotent=False)
        items = self._id_list(reply, ambiguous=True)
        return list(self.assign_ids(messages, items))

    def fetch_state_batch(self, smsc_ids: list[str]) -> Mapping[str, str]:
        fields: dict[str, str | bytes] = {
            **credentials(self, self.endpoints),
            "smscid": ";".join(smsc_ids),
        }
        reply = self._call("state", fields, idempotent=True)
        states: dict[str, str] = {}
        for line in self._id_list(reply, ambiguous=False):
            smsc_id, sep, word = line.partition(":")
            if sep and smsc_id.strip():
                states[smsc_id.strip()] = word.strip()
        return states

    def balance(self) -> Balance:
        return http_balance(self, method=self.method, endpoints=self.endpoints)

    def _call(self, op: str, fields: dict[str, str | bytes], *, idempotent: bool) -> str:
        path = endpoint_path(op, self.method, self.endpoints)
        if self.method == "GET":
            response = self.request("GET", path, params=fields, idempotent=idempotent)
        else:
            response = self.request("POST", path, data=fields, idempotent=idempotent)
        return self._text(response, idempotent=idempotent)

    def _text(self, response: requests.Response, *, idempotent: bool) -> str:
        reply = decode_reply(response.content, reply_charset(response))
        if reply is None:
            raise self.garbled("the reply is not text", idempotent=idempotent)
        return reply

    def _id_list(self, reply: str, *, ambiguous: bool) -> list[str]:
        """The lines between the markers, or the error the reply stands for."""
        start = reply.find(START)
        if start < 0:
            if looks_like_error_text(reply):
                raise error_from_text(reply, gateway=self.name)
            raise self.garbled(f"unexpected reply {reply[:80]!r}", idempotent=not ambiguous)
        end = reply.find(END, start)
        if end < 0:
            raise self.garbled("the reply has no =IDS END= marker", idempotent=not ambiguous)
        return strip_br(reply[start + len(START) : end])


def endpoint_path(op: str, method: str, endpoints: str) -> str:
    """The path of operation ``op`` (send, state, balance) in an endpoint set."""
    if endpoints == "legacy":
        return PATHS[(op, method)]
    return CURRENT_PATHS[endpoints][op]


def credentials(gateway: HttpTransport, endpoints: str) -> dict[str, str | bytes]:
    """The login fields: ``username`` with ``token`` on the token endpoints, else ``password``."""
    if endpoints == "token":
        return {"username": gateway.username, "token": gateway.token}
    return {"username": gateway.username, "password": gateway.password}


def http_balance(
    gateway: HttpTransport, *, method: str = "POST", endpoints: str = "legacy"
) -> Balance:
    """Balance and credit from the HTTP gateway's balance path (``1034.17<br/>0``; a third
    field, the currency, when the reply has one)."""
    fields = credentials(gateway, endpoints)
    path = endpoint_path("balance", method, endpoints)
    if method == "GET":
        response = gateway.request("GET", path, params=fields, idempotent=True)
    else:
        response = gateway.request("POST", path, data=fields, idempotent=True)
    reply = decode_reply(response.content, reply_charset(response)) or ""
    pieces = strip_br(reply)
    try:
        amount = Decimal(pieces[0].replace(",", "."))
        credit = Decimal(pieces[1].replace(",", ".")) if len(pieces) > 1 else None
        currency = pieces[2] if len(pieces) > 2 and pieces[2].isalpha() else None
    except (IndexError, InvalidOperation):
        if looks_like_error_text(reply):
            raise error_from_text(reply, gateway=gateway.name) from None
        raise gateway.garbled(f"balance reply {reply[:80]!r}", idempotent=True) from None
    if not amount.is_finite() or (credit is not None and not credit.is_finite()):
        raise gateway.garbled(f"balance reply {reply[:80]!r}", idempotent=True)
    return Balance(amount=amount, credit=credit, currency=currency)
