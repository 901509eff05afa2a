"""A request as the API modules see it, their reply, and the route that joins the two."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

from lxml import etree

from .state import State

REDACTED = "***"
#: The largest XML document the emulator parses (the server refuses larger bodies anyway).
MAX_DOCUMENT = 1024 * 1024


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    body: bytes
    #: Header names in lower case.
    headers: Mapping[str, str]

    def query_params(self, encoding: str = "utf-8") -> dict[str, str]:
        return _form(self.query, encoding)

    def form(self, encoding: str = "utf-8") -> dict[str, str]:
        """The form in the body, URL-encoded or multipart (the last value of a name wins).

        ``encoding`` is the one the percent-escapes (or multipart values) are read in.
        """
        if self.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            return _multipart(self.headers["content-type"], self.body, encoding)
        return _form(self.body.decode(encoding, errors="replace"), encoding)


@dataclass
class Reply:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    """One endpoint: which gateway and operation it is, how it answers, what it logs."""

    gateway: str
    op: str
    handle: Callable[[State, Request], Reply]
    log_params: Callable[[Request], dict[str, Any]]


def _form(encoded: str, encoding: str = "utf-8") -> dict[str, str]:
    return dict(parse_qsl(encoded, keep_blank_values=True, encoding=encoding, errors="replace"))


def _multipart(content_type: str, body: bytes, encoding: str) -> dict[str, str]:
    """The text fields of a ``multipart/form-data`` body (as PHP's ``$_POST`` holds them)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return {}
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = _field_name(part)
        if name is None or part.get_filename() is not None:
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            fields[name] = payload.decode(part.get_content_charset() or encoding, "replace")
    return fields


def _field_name(part: Message) -> str | None:
    if part.get_content_disposition() != "form-data":
        return None
    name = part.get_param("name", header="content-disposition")
    return name if isinstance(name, str) else None


def safe_parser(*, keep_markup: bool = False) -> etree.XMLParser:
    """A parser for request documents: no entities, no DTD, no network, no huge trees."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=not keep_markup,
        remove_pis=not keep_markup,
    )


def redact(params: dict[str, Any], *names: str) -> dict[str, Any]:
    """``params`` with the values of ``names`` replaced by ``***``."""
    return {k: REDACTED if k in names and v else v for k, v in params.items()}


def scrub(value: Any, secrets: set[str]) -> Any:
    """``value`` (nested dicts, lists, strings) with every secret replaced by ``***``."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {scrub(k, secrets): scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, secrets) for v in value]
    return value
