"""The XML gateway: a UTF-8 document, parsed safely, answered with ``<response>``.

Legacy paths (``/hfw_smpp_addon/xml*.php``) take the document in the form field ``xmlrequest``,
URL-encoded or multipart (the document's own PHP example posts multipart). Current paths
(``/xml/``, ``/xml/individual.php``, ``/xml/state.php``) take it as the raw request body.
Whitespace between tags is accepted, as from the provider's own examples, unless
``State.xml_strict_whitespace`` asks for the document's rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

from lxml import etree

from .rules import Refused
from .state import State
from .wire import MAX_DOCUMENT, REDACTED, Reply, Request, Route, safe_parser

PREFIX = "/hfw_smpp_addon/"
CONTENT_TYPE = "text/xml; charset=utf-8"
DECLARATION = '<?xml version="1.0" encoding="utf-8"?>'

EMPTY_ERROR = "Пустой запрос"
FORMAT_ERROR = "Неверный формат XML"
DTD_ERROR = "Неверный формат XML: DTD и сущности запрещены"
WHITESPACE_ERROR = "Недопустимые пробелы или переводы строк между тегами"
STRUCTURE_ERROR = "Неверная структура запроса: {}"

_PROLOG = re.compile(rb"\A<\?xml[^>]*\?>")
_PASSWORD = re.compile(r"(<password\b[^>]*>).*?(</password\s*>)", re.DOTALL)


def _reply(status: str, message: str, extra: str = "") -> Reply:
    body = (
        f"{DECLARATION}<response><status>{status}</status>"
        f"<text>{escape(message)}</text>{extra}</response>"
    )
    return Reply(200, CONTENT_TYPE, body.encode("utf-8"))


def refusal(message: str) -> Reply:
    return _reply("ERROR", message)


def _format(message: str) -> Refused:
    return Refused("format", message=message)


def parse(raw: bytes, root_tag: str, *, strict: bool = False) -> etree._Element:
    """The request's root element, or :class:`Refused` with the provider's reason.

    ``strict``: whitespace between tags (and around the document) is refused.
    """
    if len(raw) > MAX_DOCUMENT:
        raise _format(FORMAT_ERROR)
    if not raw.strip():
        raise _format(EMPTY_ERROR)
    if b"<!doctype" in raw.lower() or b"<!entity" in raw.lower():
        raise _format(DTD_ERROR)
    if strict and raw[:1].isspace():
        raise _format(WHITESPACE_ERROR)
    try:
        root = etree.fromstring(raw.lstrip(), safe_parser(keep_markup=True))
    except etree.XMLSyntaxError:
        raise _format(FORMAT_ERROR) from None
    if root.getroottree().docinfo.doctype:
        raise _format(DTD_ERROR)
    prolog = _PROLOG.match(raw)
    if strict and prolog and raw[prolog.end() : prolog.end() + 1].isspace():
        raise _format(WHITESPACE_ERROR)
    _check_between_tags(root, strict)
    if root.tag != root_tag:
        raise _format(STRUCTURE_ERROR.format(f"ожидается <{root_tag}>"))
    return root


def _check_between_tags(root: etree._Element, strict: bool) -> None:
    for element in root.iter():
        if len(element) == 0:
            continue
        for piece in [element.text, *(child.tail for child in element)]:
            if not piece or (piece.isspace() and not strict):
                continue
            if piece.isspace():
                raise _format(WHITESPACE_ERROR)
            raise _format(STRUCTURE_ERROR.format("текст между тегами"))
        for child in element:
            if isinstance(child, etree._Entity):
                raise _format(DTD_ERROR)


def _value(root: etree._Element, *tags: str) -> str:
    for tag in tags:
        found = root.find(tag)
        if found is not None:
            return found.text or ""
    return ""


def _pairs(root: etree._Element) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    pending: str | None = None
    for child in root:
        if child.tag == "to":
            if pending is not None:
                break
            pending = child.text or ""
        elif child.tag == "text":
            if pending is None:
                break
            pairs.append((pending, child.text or ""))
            pending = None
    else:
        if pairs and pending is None:
            return pairs
    raise _format(STRUCTURE_ERROR.format("каждому <to> нужен свой <text>"))


Document = Callable[[Request], bytes]


def form_document(request: Request) -> bytes:
    """The legacy paths' document: the form field ``xmlrequest``."""
    return request.form().get("xmlrequest", "").encode("utf-8")


def body_document(request: Request) -> bytes:
    """The current paths' document: the whole request body."""
    return request.body


def _send(document: Document, state: State, request: Request, individual: bool) -> Reply:
    try:
        strict = state.xml_strict_whitespace
        root = parse(document(request), "request_sendsms", strict=strict)
        account = state.login(_value(root, "username"), _value(root, "password"))
        if individual:
            messages = _pairs(root)
        else:
            body = _value(root, "text")
            messages = [(number, body) for number in _value(root, "to").split(";")]
        sent = state.send(account, _value(root, "from"), messages, "xml")
    except Refused as exc:
        return refusal(str(exc))
    ids = "".join(f"<mess>{escape(i)}</mess>" for _, ids in sent.accepted for i in ids)
    summary = f"Сообщений: {len(sent.accepted)} ({sent.parts} частей)"
    return _reply("OK", summary, f"<ids>{ids}</ids>")


def get_state(document: Document, state: State, request: Request) -> Reply:
    try:
        strict = state.xml_strict_whitespace
        root = parse(document(request), "request_getstate", strict=strict)
        account = state.login(_value(root, "username"), _value(root, "password"))
    except Refused as exc:
        return refusal(str(exc))
    listed = _value(root, "smscid", "smssid")
    ids = [i.strip() for i in listed.split(";") if i.strip()]
    entries = "".join(
        f"<entry><smscid>{escape(i)}</smscid><state>{escape(word)}</state></entry>"
        for i, word in state.poll(account, ids)
    )
    return _reply("OK", "", f"<entries>{entries}</entries>")


def _hide_password(document: str) -> str:
    return _PASSWORD.sub(rf"\g<1>{REDACTED}\g<2>", document)


def form_log_params(request: Request) -> dict[str, Any]:
    form: dict[str, Any] = dict(request.form())
    if "xmlrequest" in form:
        form["xmlrequest"] = _hide_password(form["xmlrequest"])
    return form


def body_log_params(request: Request) -> dict[str, Any]:
    body = _hide_password(request.body.decode("utf-8", errors="replace"))
    return {"body": body[:MAX_LOGGED]}


def _route(op: str, document: Document, **kwargs: bool) -> Route:
    log = form_log_params if document is form_document else body_log_params

    def handle(state: State, request: Request) -> Reply:
        if op == "state":
            return get_state(document, state, request)
        return _send(document, state, request, **kwargs)

    return Route("xml", op, handle, log)


#: How much of a raw body the request log keeps.
MAX_LOGGED = 20_000

ROUTES: dict[str, Route] = {
    PREFIX + "xmlsendsmspost.php": _route("send", form_document, individual=False),
    PREFIX + "xmlsendindividual.php": _route("send", form_document, individual=True),
    PREFIX + "xmlgetsmsstatepost.php": _route("state", form_document),
    "/xml/": _route("send", body_document, individual=False),
    "/xml/individual.php": _route("send", body_document, individual=True),
    "/xml/state.php": _route("state", body_document),
}
