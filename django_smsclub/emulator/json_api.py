"""The JSON API: ``/sms/*`` and ``/v2/sms/send``, a bearer token, ``success_request`` replies.

Errors are Yii2's object ``{"name", "message", "code": 0, "status"}``, with the matching HTTP
status or, for an account set ``json_errors_http_200``, with HTTP 200. Numbers the provider
refuses go to ``add_info`` (number -> reason); a send where every number is refused has no
``info`` at all. An empty ``info`` is PHP's ``[]`` unless the account asks for ``{}``. A
missing or empty field is refused the way the provider's SDK expects: ``add_info`` keyed by the
field (``phone``, ``message``, ``src_addr``), or a plain string for a status request without
``id_sms``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from . import rules
from .accounts import Account
from .rules import Refused
from .state import State
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
    503: "Service Unavailable",
}
#: Yii2's default messages, for a ``refuse`` fault that names no text.
DEFAULT_MESSAGES = {
    400: "Bad Request",
    401: "Your request was made with invalid credentials.",
    404: "Page not found.",
    405: "Method Not Allowed.",
    429: "Rate limit exceeded.",
    500: "An internal server error occurred.",
    503: "Service temporarily unavailable.",
}

Handler = Callable[[State, Account, dict[str, Any]], dict[str, Any]]


class _Invalid(Exception):
    pass


class _Missing(Exception):
    """A required field is missing or empty: the provider answers ``add_info`` keyed by it."""

    def __init__(self, add_info: dict[str, str] | str):
        self.add_info = add_info
        super().__init__(add_info)


#: The provider SDK's reasons for a request-level refusal (``ErrorHandler``, codes 101-105).
MISSING = {
    "phone": "не заполнен номер получателя",
    "message": "не заполнен текст сообщения",
    "src_addr": "не заполнен отправитель сообщения",
    "data_message": "не заполнен номер получателя",
}
INVALID_ID = "некорректный ID сообщения"


def reply(status: int, payload: object, headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return Reply(status, CONTENT_TYPE, body, headers or {})


def error(
    status: int,
    message: str | None = None,
    headers: dict[str, str] | None = None,
    *,
    http_200: bool = False,
) -> Reply:
    """Yii2's error object for ``status``; the HTTP status line is 200 when ``http_200``."""
    text = DEFAULT_MESSAGES[status] if message is None else message
    payload = {"name": ERROR_NAMES[status], "message": text, "code": 0, "status": status}
    return reply(200 if http_200 else status, payload, headers)


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


def _items(data: dict[str, Any], name: str) -> list[Any]:
    values = data.get(name)
    if not isinstance(values, list) or not values:
        raise _Invalid(f"{name}: a non-empty list is required.")
    if len(values) > MAX_ITEMS:
        raise _Invalid(f"{name}: at most {MAX_ITEMS} items per request, got {len(values)}.")
    return [_number_as_text(v) for v in values]


def _number_as_text(value: object) -> object:
    """A JSON number (clients send phones and IDs as integers) as its digits."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _endpoint(handler: Handler) -> Callable[[State, Request], Reply]:
    def handle(state: State, request: Request) -> Reply:
        if request.method != "POST":
            return error(405, "Method Not Allowed. This URL can only handle the following: POST.")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        account = state.by_token(token.strip()) if scheme.lower() == "bearer" else None
        if account is None:
            return error(401, "Your request was made with invalid credentials.")
        http_200 = account.json_errors_http_200
        if not state.allow_json(token.strip()) or not state.allow_account(account):
            return error(429, "Rate limit exceeded.", {"Retry-After": "1"}, http_200=http_200)
        try:
            return reply(200, {"success_request": handler(state, account, _body(request))})
        except _Missing as exc:
            return reply(200, {"success_request": {"add_info": exc.add_info}})
        except (_Invalid, Refused) as exc:
            return error(400, str(exc), http_200=http_200)

    return handle


def _require(data: dict[str, Any], *names: str) -> None:
    missing = {n: MISSING[n] for n in names if data.get(n) in (None, "", [])}
    if missing:
        raise _Missing(missing)


def send(state: State, account: Account, data: dict[str, Any]) -> dict[str, Any]:
    _require(data, "phone", "message", "src_addr")
    message = data.get("message")
    return _send(state, account, data, [(phone, message) for phone in _items(data, "phone")])


def send_personal(state: State, account: Account, data: dict[str, Any]) -> dict[str, Any]:
    """``/v2/sms/send``: ``data_message`` is a list of ``{"phone", "message"}`` pairs."""
    _require(data, "data_message", "src_addr")
    messages: list[tuple[object, object]] = []
    for item in _items(data, "data_message"):
        if not isinstance(item, dict) or "phone" not in item or "message" not in item:
            raise _Invalid("data_message: every item needs a phone and a message.")
        messages.append((_number_as_text(item["phone"]), item["message"]))
    return _send(state, account, data, messages)


def _send(
    state: State, account: Account, data: dict[str, Any], messages: list[tuple[object, object]]
) -> dict[str, Any]:
    sent = state.send(
        account,
        data.get("src_addr"),
        messages,
        "json",
        partial=True,
        ids_per_part=state.json_ids_per_part,
    )
    result: dict[str, Any] = {}
    if sent.accepted:
        result["info"] = {i: number for number, ids in sent.accepted for i in ids}
    if sent.refused:
        result["add_info"] = sent.refused
    return result


def get_state(state: State, account: Account, data: dict[str, Any]) -> dict[str, Any]:
    if data.get("id_sms") in (None, "", []):
        raise _Missing(INVALID_ID)
    ids = [i.strip() for i in _items(data, "id_sms") if isinstance(i, str)]
    answers = state.poll(account, ids)
    info = {i: account.json_word(word) for i, word in answers if word != rules.WRONG_ID}
    return {"info": info or ([] if account.empty_info == "list" else {})}


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
    "/v2/sms/send": Route("json", "send", _endpoint(send_personal), log_params),
    "/sms/status": Route("json", "state", _endpoint(get_state), log_params),
    "/sms/balance": Route("json", "balance", _endpoint(balance), log_params),
    "/sms/originator": Route("json", "originator", _endpoint(originator), log_params),
}
