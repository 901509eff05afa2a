"""The HTTP gateway: legacy ``/hfw_smpp_addon/http*.php``, current ``/http/``, token ``/token/``.

Legacy paths take the text in Windows-1251 then Base64 (the document); the current and token
paths take it in Windows-1251, URL-encoded, no Base64 (the provider's examples since 2017). The
token paths authenticate with ``username`` and the account's ``token`` instead of the password.
Every path answers GET and POST alike; replies are ``=IDS START=`` lists or a short refusal text.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from .accounts import Account
from .rules import Refused
from .state import State
from .wire import Reply, Request, Route, redact

PREFIX = "/hfw_smpp_addon/"
CONTENT_TYPE = "text/html; charset=windows-1251"

Params = Callable[[Request], dict[str, str]]


@dataclass(frozen=True)
class Dialect:
    """How one family of paths reads a request: where the values are, the text, the secret."""

    params: Params
    base64: bool = True
    credential: str = "password"


def _query(request: Request) -> dict[str, str]:
    return request.query_params()


def _form(request: Request) -> dict[str, str]:
    return request.form()


def _either(request: Request) -> dict[str, str]:
    return {**request.query_params(), **request.form()}


def _either_cp1251(request: Request) -> dict[str, str]:
    return {**request.query_params("cp1251"), **request.form("cp1251")}


def _page(body: str) -> Reply:
    return Reply(200, CONTENT_TYPE, body.encode("cp1251", errors="replace"))


def refusal(message: str) -> Reply:
    """A refusal of the whole request: HTTP 200 and a short text, no ``=IDS START=``."""
    return _page(message)


def _id_list(state: State, lines: list[str]) -> str:
    if state.http_reply_shape == "doc":
        return "=IDS START=" + "<br/>".join(lines) + "=IDS END="
    if state.http_reply_shape == "lines":
        return "=IDS START=\n" + "".join(f"{line}\n" for line in lines) + "=IDS END=\n"
    return "=IDS START=<br/>" + "".join(f"{line}<br/>" for line in lines) + "=IDS END=<br/>"


def _decode_text(encoded: str) -> str:
    try:
        raw = base64.b64decode(encoded.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        raise Refused("text", ("not_base64",)) from None
    try:
        return raw.decode("cp1251")
    except UnicodeDecodeError:
        raise Refused("text", ("not_cp1251",)) from None


def _login(dialect: Dialect, state: State, values: dict[str, str]) -> Account:
    secret = values.get(dialect.credential)
    return state.login(values.get("username"), secret, credential=dialect.credential)


def send(dialect: Dialect, state: State, request: Request) -> Reply:
    values = dialect.params(request)
    try:
        account = _login(dialect, state, values)
        text = values.get("text", "")
        try:
            body = _decode_text(text) if dialect.base64 else text
        except Refused as exc:
            exc.language = account.refusal_language
            raise
        recipients = values.get("to", "").split(";")
        sent = state.send(account, values.get("from", ""), [(r, body) for r in recipients], "http")
    except Refused as exc:
        return _page(str(exc))
    return _page(_id_list(state, [i for _, ids in sent.accepted for i in ids]))


def get_state(dialect: Dialect, state: State, request: Request) -> Reply:
    values = dialect.params(request)
    try:
        account = _login(dialect, state, values)
    except Refused as exc:
        return _page(str(exc))
    ids = [i.strip() for i in values.get("smscid", "").split(";") if i.strip()]
    return _page(_id_list(state, [f"{i}: {word}" for i, word in state.poll(account, ids)]))


def balance(dialect: Dialect, state: State, request: Request) -> Reply:
    values = dialect.params(request)
    try:
        account = _login(dialect, state, values)
    except Refused as exc:
        return _page(str(exc))
    with state.lock:
        amount, credit = account.balance, account.credit
    return _page(f"{amount:.2f}<br/>{credit:.2f}")


def _log(params: Params) -> Callable[[Request], dict[str, Any]]:
    def log_params(request: Request) -> dict[str, Any]:
        return redact(dict(params(request)), "password", "token")

    return log_params


def _route(op: str, handler: Callable[..., Reply], dialect: Dialect) -> Route:
    return Route("http", op, partial(handler, dialect), _log(dialect.params))


_CURRENT = Dialect(_either_cp1251, base64=False)
_TOKEN = Dialect(_either_cp1251, base64=False, credential="token")

ROUTES: dict[str, Route] = {
    PREFIX + "httpsendsms.php": _route("send", send, Dialect(_query)),
    PREFIX + "httpsendsmspost.php": _route("send", send, Dialect(_form)),
    PREFIX + "httpgetsmsstate.php": _route("state", get_state, Dialect(_query)),
    PREFIX + "httpgetsmsstatepost.php": _route("state", get_state, Dialect(_form)),
    PREFIX + "httpgetbalance.php": _route("balance", balance, Dialect(_either)),
    "/http/": _route("send", send, _CURRENT),
    "/http/state.php": _route("state", get_state, _CURRENT),
    "/http/getbalance.php": _route("balance", balance, _CURRENT),
    "/token/": _route("send", send, _TOKEN),
    "/token/state.php": _route("state", get_state, _TOKEN),
    "/token/getbalance.php": _route("balance", balance, _TOKEN),
}
