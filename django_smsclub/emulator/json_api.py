"""The JSON API: ``/sms/*``, a bearer token, ``success_request`` replies, Yii-style errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from . import rules
from .rules import Refused
from .state import Account, State
from .wire import Reply, Request, Route

CONTENT_TYPE = "application/json; charset=UTF-8"
MAX_ITEMS = 100
ERROR_NAMES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
}

Handler = Callable[[State, Account, dict[str, Any]], dict[str, Any]]


class _Invalid(Exception):
    pass


def reply(status: int, payload: object, headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return Reply(status, CONTENT_TYPE, body, headers or {})


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    payload = {"name": ERROR_NAMES[status], "message": message, "code": 0, "status": status}
    return reply(status, payload, headers)


def _body(request: Request) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    try:
        data = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _Invalid("Invalid JSON data in request body: Syntax error.") from None
    if not isinstance(data, dict):
        raise _Invalid("The request body must be a JSON object.")
    return data


def _items(data: dict[str, Any], name: str) -> list[str]:
    values = data.get(name)
    if not isinstance(values, list) or not values:
        raise _Invalid(f"{name}: a non-empty list is required.")
    if len(values) > MAX_ITEMS:
        raise _Invalid(f"{name}: at most {MAX_ITEMS} items per request, got {len(values)}.")
    return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in values]


def _endpoint(handler: Handler) -> Callable[[State, Request], Reply]:
    def handle(state: State, request: Request) -> Reply:
        if request.method != "POST":
            return error(405, "Method Not Allowed. This URL can only handle the following: POST.")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        account = state.by_token(token.strip()) if scheme.lower() == "bearer" else None
        if account is None:
            return error(401, "Your request was made with invalid credentials.")
        if not state.allow_json(token.strip()):
            return error(429, "Rate limit exceeded.", {"Retry-After": "1"})
        try:
            return reply(200, {"success_request": handler(state, account, _body(request))})
        except _Invalid as exc:
            return error(400, str(exc))
        except Refused as exc:
            return error(400, str(exc))

    return handle


def send(state: State, account: Account, data: dict[str, Any]) -> dict[str, Any]:
    phones = _items(data, "phone")
    message = data.get("message")
    sent = state.send(
        account,
        data.get("src_addr"),
        [(phone, message) for phone in phones],
        "json",
        partial=True,
        ids_per_part=state.json_ids_per_part,
    )
    result: dict[str, Any] = {"info": {i: number for number, ids in sent.accepted for i in ids}}
    if sent.refused:
        result["add_info"] = sent.refused
    return result


def get_state(state: State, account: Account, data: dict[str, Any]) -> dict[str, Any]:
    ids = [i.strip() for i in _items(data, "id_sms") if isinstance(i, str)]
    answers = state.poll(account, ids)
    return {"info": {i: word for i, word in answers if word != rules.WRONG_ID}}


def balance(state: State, account: Account, data: dict[str, Any]) -> dict[str, Any]:
    with state.lock:
        return {"info": {"money": f"{account.balance:.4f}", "currency": "UAH"}}


def originator(state: State, account: Account, data: dict[str, Any]) -> dict[str, Any]:
    return {"info": list(account.senders)}


def log_params(request: Request) -> dict[str, Any]:
    try:
        return _body(request)
    except _Invalid:
        return {"body": request.body[:1000].decode("utf-8", errors="replace")}


ROUTES: dict[str, Route] = {
    "/sms/send": Route("json", "send", _endpoint(send), log_params),
    "/sms/status": Route("json", "state", _endpoint(get_state), log_params),
    "/sms/balance": Route("json", "balance", _endpoint(balance), log_params),
    "/sms/originator": Route("json", "originator", _endpoint(originator), log_params),
}
