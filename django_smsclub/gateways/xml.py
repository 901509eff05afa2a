"""The XML gateway: a UTF-8 document, values in CDATA; on the legacy endpoints in the form
field ``xmlrequest``, on the current ones (``ENDPOINTS: "current"``, ``/xml/``) as the raw
``text/xml`` request body (the provider's PHP, Python and Perl examples).

Requests are written byte by byte: the provider forbids any whitespace between tags and every
value must sit in CDATA (a ``]]>`` inside a value is split across two sections, which lxml's
serialiser cannot do). Replies are parsed with lxml with entities, DTDs and network off.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import requests
from lxml import etree

from ..exceptions import AmbiguousSend, GatewayError
from .base import Balance, Outgoing
from .http import http_balance
from .replies import error_from_text
from .transport import CURRENT_BASE_URL, MAX_REPLY_BYTES, HttpTransport, endpoint_set

PATHS = {
    "legacy": {
        "send": "/hfw_smpp_addon/xmlsendsmspost.php",
        "individual": "/hfw_smpp_addon/xmlsendindividual.php",
        "state": "/hfw_smpp_addon/xmlgetsmsstatepost.php",
    },
    "current": {
        "send": "/xml/",
        "individual": "/xml/individual.php",
        "state": "/xml/state.php",
    },
}
XML_CONTENT_TYPE = "text/xml; charset=utf-8"

# Characters XML 1.0 cannot carry at all, not even in CDATA.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_PARTS_COUNT = re.compile(r"\((\d+)\s")


def cdata(value: str) -> str:
    """``value`` as CDATA; a ``]]>`` inside is split across two sections."""
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def build_request(root: str, fields: Sequence[tuple[str, str]]) -> bytes:
    """The request document: declaration, root, one CDATA element per field, no whitespace."""
    body = "".join(f"<{tag}>{cdata(value)}</{tag}>" for tag, value in fields)
    return f"<?xml version='1.0' encoding='utf-8'?><{root}>{body}</{root}>".encode()


def xml_text_problem(text: str) -> str | None:
    """Why ``text`` cannot travel in an XML 1.0 document (control characters), or None."""
    bad = sorted(set(_NOT_XML.findall(text)))
    if bad:
        shown = ", ".join(f"U+{ord(c):04X}" for c in bad)
        return f"text {text[:30]!r} has control characters XML cannot carry: {shown}"
    return None


def safe_parser(*, keep_markup: bool = False) -> etree.XMLParser:
    """A parser for documents from the network: no entities, no DTD, no network, bounded.

    Comments and processing instructions are dropped unless ``keep_markup`` (the emulator
    checks a request as it was written).
    """
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=not keep_markup,
        remove_pis=not keep_markup,
    )


def parse_document(body: bytes) -> etree._Element:
    """The root element of ``body``; ValueError for anything not a plain, small document."""
    if len(body) > MAX_REPLY_BYTES:
        raise ValueError(f"document larger than {MAX_REPLY_BYTES} bytes")
    try:
        tree = etree.fromstring(body, parser=safe_parser()).getroottree()
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not well-formed XML ({exc})") from None
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise ValueError("a DOCTYPE is not allowed")
    return tree.getroot()


class XmlGateway(HttpTransport):
    """SMSClub's XML gateway: bulk sends of one text, personal texts in one request."""

    max_batch = 100
    max_state_batch = 100
    personal_texts_per_request = True
    default_base_url = "http://smpp.smsclub.mobi"

    def __init__(self, name: str = "default", **options: object):
        super().__init__(name, **options)
        self.endpoints = endpoint_set(name, options, ("legacy", "current"))
        if self.endpoints != "legacy" and not options.get("BASE_URL"):
            self.base_url = CURRENT_BASE_URL

    def extra_text_problem(self, text: str) -> str | None:
        return xml_text_problem(text)

    def send_batch(
        self, sender: str, messages: list[Outgoing]
    ) -> list[Sequence[str] | GatewayError]:
        credentials = [("username", self.username), ("password", self.password), ("from", sender)]
        texts = {m.text for m in messages}
        if len(texts) == 1:
            path = PATHS[self.endpoints]["send"]
            fields = [
                *credentials,
                ("to", ";".join(m.recipient for m in messages)),
                ("text", messages[0].text),
            ]
        else:
            path = PATHS[self.endpoints]["individual"]
            fields = list(credentials)
            for message in messages:
                fields += [("to", message.recipient), ("text", message.text)]
        document = build_request("request_sendsms", fields)
        response = self._post(path, document, idempotent=False)
        root = self._reply(response.content, idempotent=False)
        ids = [(mess.text or "").strip() for mess in root.iterfind("ids/mess")]
        self._check_part_count(root, ids)
        return list(self.assign_ids(messages, ids))

    def fetch_state_batch(self, smsc_ids: list[str]) -> Mapping[str, str]:
        document = build_request(
            "request_getstate",
            [
                ("username", self.username),
                ("password", self.password),
                ("smscid", ";".join(smsc_ids)),
            ],
        )
        response = self._post(PATHS[self.endpoints]["state"], document, idempotent=True)
        root = self._reply(response.content, idempotent=True)
        states: dict[str, str] = {}
        for entry in root.iterfind("entries/entry"):
            smsc_id = entry.findtext("smscid") or entry.findtext("smssid") or ""
            if smsc_id.strip():
                states[smsc_id.strip()] = (entry.findtext("state") or "").strip()
        return states

    def balance(self) -> Balance:
        # The XML gateway has no balance request: the HTTP gateway's of the same set answers.
        return http_balance(self, endpoints=self.endpoints)

    def _post(self, path: str, document: bytes, *, idempotent: bool) -> requests.Response:
        if self.endpoints == "legacy":
            return self.request("POST", path, data={"xmlrequest": document}, idempotent=idempotent)
        headers = {"Content-Type": XML_CONTENT_TYPE}
        return self.request("POST", path, data=document, headers=headers, idempotent=idempotent)

    def _reply(self, body: bytes, *, idempotent: bool) -> etree._Element:
        try:
            root = parse_document(body)
        except ValueError as exc:
            raise self.garbled(str(exc), idempotent=idempotent) from None
        status = (root.findtext("status") or "").strip().upper()
        if root.tag != "response" or status not in ("OK", "ERROR"):
            raise self.garbled(
                f"unexpected reply <{root.tag!s}> status {status!r}", idempotent=idempotent
            )
        if status == "ERROR":
            raise error_from_text(root.findtext("text") or "(no reason given)", gateway=self.name)
        return root

    def _check_part_count(self, root: etree._Element, ids: list[str]) -> None:
        # "Сообщений: N (M частей)": when the provider states M, it must match the IDs.
        match = _PARTS_COUNT.search(root.findtext("text") or "")
        if match and int(match.group(1)) != len(ids):
            raise AmbiguousSend(
                f"gateway {self.name}: the reply counts {match.group(1)} parts "
                f"but lists {len(ids)} IDs",
                gateway=self.name,
            )
