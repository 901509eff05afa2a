"""The XML gateway: a UTF-8 document in the form field ``xmlrequest``, parsed safely."""

from __future__ import annotations

import re
from typing import Any
from xml.sax.saxutils import escape

from lxml import etree

from ..gateways.xml import safe_parser
from .rules import Refused
from .state import State
from .wire import REDACTED, Reply, Request, Route

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


def _error(message: str) -> Reply:
    return _reply("ERROR", message)


def parse(document: str, root_tag: str) -> etree._Element:
    """The request's root element, or :class:`Refused` with the provider's reason."""
    raw = document.encode("utf-8")
    if not raw.strip():
        raise Refused(EMPTY_ERROR, "format")
    if b"<!doctype" in raw.lower() or b"<!entity" in raw.lower():
        raise Refused(DTD_ERROR, "format")
    try:
        root = etree.fromstring(raw, safe_parser(keep_markup=True))
    except etree.XMLSyntaxError:
        raise Refused(FORMAT_ERROR, "format") from None
    if root.getroottree().docinfo.doctype:
        raise Refused(DTD_ERROR, "format")
    prolog = _PROLOG.match(raw)
    if prolog and raw[prolog.end() : prolog.end() + 1].isspace():
        raise Refused(WHITESPACE_ERROR, "format")
    _check_between_tags(root)
    if root.tag != root_tag:
        raise Refused(STRUCTURE_ERROR.format(f"ожидается <{root_tag}>"), "format")
    return root


def _check_between_tags(root: etree._Element) -> None:
    for element in root.iter():
        if len(element) == 0:
            continue
        for piece in [element.text, *(child.tail for child in element)]:
            if not piece:
                continue
            if piece.isspace():
                raise Refused(WHITESPACE_ERROR, "format")
            raise Refused(STRUCTURE_ERROR.format("текст между тегами"), "format")
        for child in element:
            if isinstance(child, etree._Entity):
                raise Refused(DTD_ERROR, "format")


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
    raise Refused(STRUCTURE_ERROR.format("каждому <to> нужен свой <text>"), "format")


def _send(state: State, request: Request, individual: bool) -> Reply:
    try:
        root = parse(request.form().get("xmlrequest", ""), "request_sendsms")
        account = state.login(_value(root, "username"), _value(root, "password"))
        if individual:
            messages = _pairs(root)
        else:
            body = _value(root, "text")
            messages = [(number, body) for number in _value(root, "to").split(";")]
        sent = state.send(account, _value(root, "from"), messages, "xml")
    except Refused as exc:
        return _error(str(exc))
    ids = "".join(f"<mess>{escape(i)}</mess>" for _, ids in sent.accepted for i in ids)
    summary = f"Сообщений: {len(sent.accepted)} ({sent.parts} частей)"
    return _reply("OK", summary, f"<ids>{ids}</ids>")


def send(state: State, request: Request) -> Reply:
    return _send(state, request, individual=False)


def send_individual(state: State, request: Request) -> Reply:
    return _send(state, request, individual=True)


def get_state(state: State, request: Request) -> Reply:
    try:
        root = parse(request.form().get("xmlrequest", ""), "request_getstate")
        account = state.login(_value(root, "username"), _value(root, "password"))
    except Refused as exc:
        return _error(str(exc))
    listed = _value(root, "smscid", "smssid")
    ids = [i.strip() for i in listed.split(";") if i.strip()]
    entries = "".join(
        f"<entry><smscid>{escape(i)}</smscid><state>{escape(word)}</state></entry>"
        for i, word in state.poll(account, ids)
    )
    return _reply("OK", "", f"<entries>{entries}</entries>")


def log_params(request: Request) -> dict[str, Any]:
    form: dict[str, Any] = dict(request.form())
    if "xmlrequest" in form:
        form["xmlrequest"] = _PASSWORD.sub(rf"\g<1>{REDACTED}\g<2>", form["xmlrequest"])
    return form


ROUTES: dict[str, Route] = {
    PREFIX + "xmlsendsmspost.php": Route("xml", "send", send, log_params),
    PREFIX + "xmlsendindividual.php": Route("xml", "send", send_individual, log_params),
    PREFIX + "xmlgetsmsstatepost.php": Route("xml", "state", get_state, log_params),
}
