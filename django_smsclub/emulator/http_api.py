"""The HTTP gateway: ``/hfw_smpp_addon/http*.php``, Base64 Windows-1251 texts, ``<br/>`` lists."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from functools import partial
from typing import Any

from . import rules
from .rules import Refused
from .state import State
from .wire import Reply, Request, Route, redact

PREFIX = "/hfw_smpp_addon/"
CONTENT_TYPE = "text/html; charset=windows-1251"

Params = Callable[[Request], dict[str, str]]


def _query(request: Request) -> dict[str, str]:
    return request.query_params()


def _form(request: Request) -> dict[str, str]:
    return request.form()


def _either(request: Request) -> dict[str, str]:
    return {**request.query_params(), **request.form()}


def _page(body: str) -> Reply:
    return Reply(200, CONTENT_TYPE, body.encode("cp1251", errors="replace"))


def _id_list(state: State, lines: list[str]) -> str:
    if state.http_reply_shape == "doc":
        return "=IDS START=" + "<br/>".join(lines) + "=IDS END="
    return "=IDS START=<br/>" + "".join(f"{line}<br/>" for line in lines) + "=IDS END=<br/>"


def _decode_text(encoded: str) -> str:
    try:
        raw = base64.b64decode(encoded.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        raise Refused(rules.TEXT_ERROR.format("текст не в кодировке Base64"), "text") from None
    try:
        return raw.decode("cp1251")
    except UnicodeDecodeError:
        raise Refused(
            rules.TEXT_ERROR.format("текст не в кодировке Windows-1251"), "text"
        ) from None


def send(params: Params, state: State, request: Request) -> Reply:
    values = params(request)
    try:
        account = state.login(values.get("username"), values.get("password"))
        body = _decode_text(values.get("text", ""))
        recipients = values.get("to", "").split(";")
        sent = state.send(account, values.get("from", ""), [(r, body) for r in recipients], "http")
    except Refused as exc:
        return _page(str(exc))
    return _page(_id_list(state, [i for _, ids in sent.accepted for i in ids]))


def get_state(params: Params, state: State, request: Request) -> Reply:
    values = params(request)
    try:
        account = state.login(values.get("username"), values.get("password"))
    except Refused as exc:
        return _page(str(exc))
    ids = [i.strip() for i in values.get("smscid", "").split(";") if i.strip()]
    return _page(_id_list(state, [f"{i}: {word}" for i, word in state.poll(account, ids)]))


def balance(params: Params, state: State, request: Request) -> Reply:
    values = params(request)
    try:
        account = state.login(values.get("username"), values.get("password"))
    except Refused as exc:
        return _page(str(exc))
    with state.lock:
        amount, credit = account.balance, account.credit
    return _page(f"{amount:.2f}<br/>{credit:.2f}")


def _log(params: Params) -> Callable[[Request], dict[str, Any]]:
    def log_params(request: Request) -> dict[str, Any]:
        return redact(dict(params(request)), "password")

    return log_params


def _route(op: str, handler: Callable[..., Reply], params: Params) -> Route:
    return Route("http", op, partial(handler, params), _log(params))


ROUTES: dict[str, Route] = {
    PREFIX + "httpsendsms.php": _route("send", send, _query),
    PREFIX + "httpsendsmspost.php": _route("send", send, _form),
    PREFIX + "httpgetsmsstate.php": _route("state", get_state, _query),
    PREFIX + "httpgetsmsstatepost.php": _route("state", get_state, _form),
    PREFIX + "httpgetbalance.php": _route("balance", balance, _either),
}
