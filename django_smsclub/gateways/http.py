"""The HTTP gateway: form fields in, ``=IDS START=`` lists out; text as Windows-1251 + Base64."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation

import requests

from ..exceptions import ConfigurationError, GatewayError
from .base import Balance, Outgoing
from .replies import decode_reply, error_from_text, looks_like_error_text, reply_charset, strip_br
from .transport import HttpTransport

START, END = "=IDS START=", "=IDS END="

PATHS = {
    ("send", "POST"): "/hfw_smpp_addon/httpsendsmspost.php",
    ("send", "GET"): "/hfw_smpp_addon/httpsendsms.php",
    ("state", "POST"): "/hfw_smpp_addon/httpgetsmsstatepost.php",
    ("state", "GET"): "/hfw_smpp_addon/httpgetsmsstate.php",
    ("balance", "POST"): "/hfw_smpp_addon/httpgetbalance.php",
    ("balance", "GET"): "/hfw_smpp_addon/httpgetbalance.php",
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

    def send_batch(
        self, sender: str, messages: list[Outgoing]
    ) -> list[Sequence[str] | GatewayError]:
        fields = {
            "username": self.username,
            "password": self.password,
            "from": sender,
            "to": ";".join(m.recipient for m in messages),
            "text": base64.b64encode(messages[0].text.encode("cp1251")).decode("ascii"),
        }
        reply = self._call("send", fields, idempotent=False)
        items = self._id_list(reply, ambiguous=True)
        return list(self.assign_ids(messages, items))

    def fetch_state_batch(self, smsc_ids: list[str]) -> Mapping[str, str]:
        fields = {
            "username": self.username,
            "password": self.password,
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
        return http_balance(self, method=self.method)

    def _call(self, op: str, fields: dict[str, str], *, idempotent: bool) -> str:
        path = PATHS[(op, self.method)]
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


def http_balance(gateway: HttpTransport, *, method: str = "POST") -> Balance:
    """Balance and credit from the HTTP gateway's ``httpgetbalance.php`` (``1034.17<br/>0``)."""
    fields = {"username": gateway.username, "password": gateway.password}
    path = PATHS[("balance", method)]
    if method == "GET":
        response = gateway.request("GET", path, params=fields, idempotent=True)
    else:
        response = gateway.request("POST", path, data=fields, idempotent=True)
    reply = decode_reply(response.content, reply_charset(response)) or ""
    pieces = strip_br(reply)
    try:
        amount = Decimal(pieces[0].replace(",", "."))
        credit = Decimal(pieces[1].replace(",", ".")) if len(pieces) > 1 else None
    except (IndexError, InvalidOperation):
        if looks_like_error_text(reply):
            raise error_from_text(reply, gateway=gateway.name) from None
        raise gateway.garbled(f"balance reply {reply[:80]!r}", idempotent=True) from None
    if not amount.is_finite() or (credit is not None and not credit.is_finite()):
        raise gateway.garbled(f"balance reply {reply[:80]!r}", idempotent=True)
    return Balance(amount=amount, credit=credit)
