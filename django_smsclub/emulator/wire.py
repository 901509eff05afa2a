"""A request as the API modules see it, their reply, and the route that joins the two."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from .state import State

REDACTED = "***"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    body: bytes
    #: Header names in lower case.
    headers: Mapping[str, str]

    def query_params(self) -> dict[str, str]:
        return _form(self.query)

    def form(self) -> dict[str, str]:
        """The form-encoded body (the last value of a repeated name wins, as in PHP)."""
        return _form(self.body.decode("utf-8", errors="replace"))


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


def _form(encoded: str) -> dict[str, str]:
    return dict(parse_qsl(encoded, keep_blank_values=True))


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
