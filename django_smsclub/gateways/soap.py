"""The SOAP gateway: driven by the service's own WSDL, speaking rpc/encoded like PHP's SoapClient.

zeep reads the WSDL; the envelopes are written and read with lxml (:mod:`.soap_envelope`). What
zeep 4.3 does and cannot do for this service (each checked against the emulator's PHP-shaped WSDL):

- zeep loads the WSDL and tells the endpoint (``soap:address``) and, per operation, its style,
  ``soapAction``, the namespace of ``soap:body`` and the part names in order. The document is
  fetched once per process through zeep's :class:`~zeep.cache.InMemoryCache` (shared, no
  expiry) and parsed once per gateway instance (one zeep ``Client`` each).
- With ``Settings(forbid_external=True)`` zeep cannot load an rpc/encoded WSDL at all: the first
  reference to a SOAP-ENC type (``SOAP-ENC:Array``) makes it auto-import the SOAP encoding
  schema from ``http://schemas.xmlsoap.org/soap/encoding/``, and ``forbid_external`` refuses
  that import. So ``forbid_external`` is off and the transport is the gatekeeper instead: it
  fetches the configured WSDL URL and nothing else, and answers the SOAP-ENC import from a copy
  kept in this module. That is stricter than ``forbid_external``, which only stops http(s)
  imports and would still open local files named by an import.
- zeep does not implement SOAP encoding (``use="encoded"``): parts go out as literal elements
  without ``xsi:type``, and a Python list given to an ``xsd:anyType`` part (``destAddr`` and
  ``smcIds`` take one value or an array) is written as its ``repr()``,
  ``<destAddr>['380…', '380…']</destAddr>``, without an error. An array only goes out as an
  ``AnyObject`` of an array type the WSDL itself declares, and even then without
  ``SOAP-ENC:arrayType``; the provider's WSDL is not public, so no such type can be relied on.
- zeep's ``Transport`` is not used as it comes: given the gateway's session, its ``__init__``
  mounts a ``file://`` adapter on it and replaces its User-Agent, and its ``load()`` caches a
  fetched document before parsing it, so a WSDL cut off in transit would be kept for the life of
  the process. :class:`WsdlTransport` leaves the session alone, and the gateway caches the WSDL
  only once zeep has read it and found both operations.
- zeep reads a reply by the return type the WSDL declares: ``getReports``' Map of
  ``item``/``key``/``value`` becomes key/value objects only when the WSDL carries Apache's Map
  schema; declared as ``xsd:anyType`` the same reply comes back as raw lxml elements, declared as
  ``SOAP-ENC:Array`` as an object whose ``_value_1`` holds them.

So requests are built as PHP's SoapClient writes them (``xsi:type`` on every value,
``SOAP-ENC:Array`` for lists), and replies are parsed with the safe lxml parser and decoded by
their shape (arrays, Maps, ``href`` multi-references), whatever the WSDL declares.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from ..exceptions import GatewayError, GatewayUnavailable
from .base import Balance, Outgoing
from .http import http_balance
from .redaction import protect_logger
from .replies import error_from_text
from .soap_envelope import (
    SOAP_ENC,
    SOAP_ENCODING_SCHEMA,
    SOAP_ENV,
    Operation,
    build_envelope,
    decode,
    fault_text,
    first_child,
    id_list,
    state_map,
)
from .transport import HttpTransport, read_bounded
from .xml import parse_document, xml_text_problem

try:
    import zeep
    from zeep.cache import InMemoryCache
    from zeep.exceptions import ExternalReferenceForbidden
    from zeep.transports import Transport
    from zeep.wsdl.bindings.soap import Soap11Binding
except ImportError as exc:  # the optional "soap" extra is not installed
    raise ImportError(
        f"the SOAP gateway needs zeep: pip install 'django-smsclub[soap]' ({exc})"
    ) from exc

DEFAULT_WSDL = "http://gate.smsclub.mobi/soap/soapGateway.wsdl"
#: Where the WSDL lives under ``BASE_URL`` (an emulator or a proxy serving every gateway).
WSDL_PATH = "/soap/soapGateway.wsdl"
#: SOAP has no balance operation; the balance comes from the HTTP gateway's host.
DEFAULT_BALANCE_URL = "http://smpp.smsclub.mobi"

#: The operations used and the parameters they take, in the provider's documented order.
OPERATIONS = {
    "sendSms": ("login", "password", "alphaName", "destAddr", "text"),
    "getReports": ("login", "password", "smcIds"),
}

#: WSDL documents by URL, for the whole process (zeep's in-memory cache is global).
wsdl_cache = InMemoryCache(timeout=None)

#: DTDs, entities and huge trees refused. ``forbid_external`` stays off: see the module
#: docstring; :class:`WsdlTransport` refuses every document but the WSDL instead.
ZEEP_SETTINGS = zeep.Settings(
    strict=True,
    forbid_dtd=True,
    forbid_entities=True,
    forbid_external=False,
    xml_huge_tree=False,
)

#: zeep quotes whole envelopes, credentials included, at DEBUG.
protect_logger("zeep.transports")


@dataclass(frozen=True)
class ServiceDescription:
    """What the client needs from the WSDL: where to post, and how to call each operation."""

    endpoint: str
    operations: Mapping[str, Operation]


class SoapGateway(HttpTransport):
    """SMSClub's SOAP gateway: one text per request, one number or an array of them.

    Options besides the common ones: ``WSDL`` (default: ``BASE_URL`` + ``/soap/soapGateway.wsdl``
    when ``BASE_URL`` is set, else the provider's), ``BALANCE_URL`` (the HTTP gateway's host the
    balance is read from; default ``BASE_URL``, else ``http://smpp.smsclub.mobi``).
    """

    max_batch = 100
    max_state_batch = 100
    default_base_url = DEFAULT_BALANCE_URL

    def __init__(self, name: str = "default", **options: Any):
        super().__init__(name, **options)
        base_url = str(options.get("BASE_URL") or "").rstrip("/")
        self.wsdl_url: str = str(options.get("WSDL") or "") or (
            base_url + WSDL_PATH if base_url else DEFAULT_WSDL
        )
        # ``base_url`` is what the shared HTTP machinery posts to: here, only the balance.
        if options.get("BALANCE_URL"):
            self.base_url = str(options["BALANCE_URL"]).rstrip("/")
        self._client: zeep.Client | None = None
        self._service: ServiceDescription | None = None
        self._lock = threading.Lock()

    def extra_text_problem(self, text: str) -> str | None:
        # An envelope is XML 1.0: the same control characters are out as in the XML gateway.
        return xml_text_problem(text)

    def send_batch(
        self, sender: str, messages: list[Outgoing]
    ) -> list[Sequence[str] | GatewayError]:
        recipients = [m.recipient for m in messages]
        destination: str | list[str] = recipients[0] if len(recipients) == 1 else recipients
        arguments = [self.username, self.password, sender, destination, messages[0].text]
        result = self._call("sendSms", arguments, idempotent=False)
        try:
            ids = id_list(result)
        except ValueError as exc:
            raise self.garbled(f"sendSms returned {exc}", idempotent=False) from None
        return list(self.assign_ids(messages, ids))

    def fetch_state_batch(self, smsc_ids: list[str]) -> Mapping[str, str]:
        listed: str | list[str] = smsc_ids[0] if len(smsc_ids) == 1 else list(smsc_ids)
        result = self._call("getReports", [self.username, self.password, listed], idempotent=True)
        try:
            return state_map(result)
        except ValueError as exc:
            raise self.garbled(f"getReports returned {exc}", idempotent=True) from None

    def balance(self) -> Balance:
        return http_balance(self)

    def service_description(self) -> ServiceDescription:
        """The endpoint and operations of the WSDL, loaded on first use.

        Any failure to get or read the WSDL is :class:`GatewayUnavailable`: nothing was sent.
        """
        with self._lock:
            if self._service is None:
                transport = WsdlTransport(self)
                try:
                    client = zeep.Client(self.wsdl_url, transport=transport, settings=ZEEP_SETTINGS)
                    self._service = describe_service(client)
                except Exception as exc:  # anything zeep or the network raises on a bad WSDL
                    raise GatewayUnavailable(
                        self.redact(
                            f"gateway {self.name}: cannot use the WSDL at {self.wsdl_url} "
                            f"({self.describe(exc)})"
                        ),
                        gateway=self.name,
                    ) from None
                # Cached only once it proved usable: zeep's own load() caches what it fetched
                # before parsing it, which would keep a cut-off WSDL for the life of the process.
                if transport.fetched is not None:
                    wsdl_cache.add(self.wsdl_url, transport.fetched)
                self._client = client
            return self._service

    def _call(self, name: str, arguments: list[Any], *, idempotent: bool) -> Any:
        service = self.service_description()
        operation = service.operations[name]
        envelope = build_envelope(operation, arguments)
        response = self._post(service.endpoint, envelope, operation, idempotent=idempotent)
        return self._result(response, idempotent=idempotent)

    def _post(
        self, url: str, envelope: bytes, operation: Operation, *, idempotent: bool
    ) -> requests.Response:
        """Post one envelope; an HTTP 500 is read, since a SOAP fault arrives that way."""
        headers = {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"{operation.soap_action}"',
        }
        return self.request(
            "POST", url, data=envelope, headers=headers, idempotent=idempotent, server_errors=True
        )

    def _result(self, response: requests.Response, *, idempotent: bool) -> Any:
        """The decoded return value, or the error a fault or a bad reply stands for."""
        status = response.status_code
        try:
            root = parse_document(response.content)
        except ValueError as exc:
            raise self.garbled(f"HTTP {status}, {exc}", idempotent=idempotent) from None
        body = root.find(f"{{{SOAP_ENV}}}Body") if root.tag == f"{{{SOAP_ENV}}}Envelope" else None
        if body is None:
            raise self.garbled(f"HTTP {status}, not a SOAP 1.1 envelope", idempotent=idempotent)
        fault = body.find(f"{{{SOAP_ENV}}}Fault")
        if fault is not None:
            raise error_from_text(fault_text(fault), gateway=self.name)
        wrapper = first_child(body)
        if status != 200 or wrapper is None:
            raise self.garbled(
                f"HTTP {status} without a result or a SOAP fault", idempotent=idempotent
            )
        value = first_child(wrapper)
        if value is None:
            return None
        refs = {ref: e for e in root.iter() if isinstance(e.tag, str) and (ref := e.get("id"))}
        try:
            return decode(value, refs)
        except ValueError as exc:
            raise self.garbled(str(exc), idempotent=idempotent) from None


class WsdlTransport(Transport):
    """zeep's loader on the gateway's pooled session and timeouts.

    It takes the configured WSDL from :data:`wsdl_cache` or else the network (keeping what it
    fetched in :attr:`fetched`; the gateway caches it once it proved usable), answers the SOAP-ENC
    schema import from :data:`SOAP_ENCODING_SCHEMA`, and refuses every other document, local or
    remote.
    """

    def __init__(self, gateway: SoapGateway):
        # Not Transport.__init__: it would mount a file:// adapter on the gateway's session
        # and replace its User-Agent. These are the attributes zeep reads.
        self.cache = wsdl_cache
        self.load_timeout = gateway.timeout
        self.operation_timeout = gateway.timeout
        self.logger = logging.getLogger("zeep.transports")
        self.session = gateway.session
        self._close_session = False
        self._gateway = gateway
        self.fetched: bytes | None = None

    def load(self, url: str) -> bytes:
        if url == SOAP_ENC:
            return SOAP_ENCODING_SCHEMA
        if url != self._gateway.wsdl_url:
            raise ExternalReferenceForbidden(url)
        cached = self.cache.get(url)
        if cached:
            return bytes(cached)
        self.logger.debug("Loading remote data from: %s", url)
        response = self.session.get(
            url, timeout=self.load_timeout, stream=True, allow_redirects=False
        )
        content = read_bounded(response)
        if response.status_code != 200:
            raise requests.HTTPError(f"HTTP {response.status_code} for the WSDL")
        self.fetched = content
        return content


def describe_service(client: zeep.Client) -> ServiceDescription:
    """The first SOAP 1.1 port of the WSDL that offers both operations, as rpc calls."""
    problems: list[str] = []
    for service in client.wsdl.services.values():
        for port in service.ports.values():
            if not isinstance(port.binding, Soap11Binding):
                continue
            address = str(port.binding_options.get("address") or "")
            if urlsplit(address).scheme not in ("http", "https"):
                problems.append(f"port {port.name} has no http(s) address")
                continue
            try:
                operations = {name: _operation(port.binding, name) for name in OPERATIONS}
            except ValueError as exc:
                problems.append(f"port {port.name}: {exc}")
                continue
            return ServiceDescription(address, operations)
    raise ValueError("no SOAP 1.1 port with sendSms and getReports; " + "; ".join(problems))


def _operation(binding: Soap11Binding, name: str) -> Operation:
    operation = binding.get(name)
    if operation.style != "rpc":
        raise ValueError(f"{name} is {operation.style}-style, not rpc")
    parts = tuple(operation.input.abstract.parts)
    if len(parts) != len(OPERATIONS[name]):
        raise ValueError(f"{name} takes {len(parts)} parameters, not {len(OPERATIONS[name])}")
    namespace = operation.input.body.qname.namespace if operation.input.body is not None else None
    return Operation(name, namespace or "", operation.soapaction or "", parts)
