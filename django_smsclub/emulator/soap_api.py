"""The SOAP gateway, shaped like a PHP ``SoapServer`` in rpc/encoded style.

``GET /soap/soapGateway.wsdl`` serves the service description, its ``soap:address`` pointing at
this emulator (taken from the request's ``Host``, as PHP would). ``POST /soap/soapGateway.php``
takes SOAP 1.1 envelopes: ``sendSms(login, password, alphaName, destAddr, text)`` answers a
SOAP-ENC array of strings; ``getReports(login, password, smcIds)`` answers the PHP associative
array SMSC ID -> status word as an Apache ``Map`` of ``item``/``key``/``value``. Refusals are
SOAP faults (HTTP 500) carrying the provider's Russian words.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

from .accounts import Account
from .rules import Refused
from .state import State
from .wire import REDACTED, Reply, Request, Route, safe_parser

WSDL_PATH = "/soap/soapGateway.wsdl"
ENDPOINT_PATH = "/soap/soapGateway.php"
SERVICE_NS = "urn:soapGateway"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_ENC = "http://schemas.xmlsoap.org/soap/encoding/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"
APACHE = "http://xml.apache.org/xml-soap"
CONTENT_TYPE = "text/xml; charset=utf-8"

#: PHP SoapServer's own fault strings for envelopes it cannot read.
BAD_REQUEST = "Bad Request"
DTD_REFUSED = "DTD are not supported by SOAP"
VERSION_MISMATCH = "Wrong Version"
NO_SUCH_FUNCTION = 'Function ("{}") is not a valid method for this service'

SIGNATURES = {
    "sendSms": ("login", "password", "alphaName", "destAddr", "text"),
    "getReports": ("login", "password", "smcIds"),
}
OPS = {"sendSms": "send", "getReports": "state"}

# What people type around the digits of a number: "(050)123-45-67", "+380(99)123-45-67".
_NUMBER_DRESSING = re.compile(r"[\s()\-.+]")
_PASSWORD = re.compile(r"(<(?:\w+:)?password\b[^>]*>).*?(</(?:\w+:)?password\s*>)", re.DOTALL)


def wsdl(state: State, request: Request) -> Reply:
    """The WSDL, with the endpoint on the host the client asked for."""
    host = request.headers.get("host") or "127.0.0.1"
    location = f"http://{host}{ENDPOINT_PATH}"
    return Reply(200, CONTENT_TYPE, WSDL_TEMPLATE.format(location=quoteattr(location)).encode())


@dataclass(frozen=True)
class Call:
    """One envelope as read: the operation it names and its decoded arguments."""

    operation: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    fault: Refused | None = None


def read_call(body: bytes) -> Call:
    """The call an envelope makes, or a :class:`Call` holding the fault it earns."""
    try:
        root = _parse(body)
        envelope_body = root.find(f"{{{SOAP_ENV}}}Body")
        if envelope_body is None:
            raise Refused("format", message=BAD_REQUEST)
        call = next((c for c in envelope_body if isinstance(c.tag, str)), None)
        if call is None:
            raise Refused("format", message=BAD_REQUEST)
        operation = etree.QName(call).localname
        if operation not in SIGNATURES:
            raise Refused("function", message=NO_SUCH_FUNCTION.format(operation))
        by_id = {id_: e for e in root.iter() if isinstance(e.tag, str) and (id_ := e.get("id"))}
        given = [c for c in call if isinstance(c.tag, str)]
        names = SIGNATURES[operation]
        named = {etree.QName(c).localname: c for c in given}
        # PHP binds rpc arguments by name when the names match, by position otherwise.
        if not set(names) <= set(named):
            named = dict(zip(names, given, strict=False))
        arguments = {name: _decode(named[name], by_id, depth=0) for name in names if name in named}
        return Call(operation, arguments)
    except Refused as exc:
        return Call(fault=exc)


def route_for(request: Request) -> Route:
    """The route of one POST to the endpoint: the operation is named inside the envelope."""
    call = read_call(request.body) if request.method == "POST" else Call(fault=_bad_request())
    op = OPS.get(call.operation, "call")
    return Route("soap", op, partial(_answer, call), partial(_log_params, call))


def fault(code: str, message: str) -> Reply:
    """A SOAP 1.1 fault as PHP SoapServer sends it: HTTP 500, faultcode and faultstring."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP_ENV}"><SOAP-ENV:Body><SOAP-ENV:Fault>'
        f"<faultcode>SOAP-ENV:{code}</faultcode><faultstring>{escape(message)}</faultstring>"
        "</SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>\n"
    )
    return Reply(500, CONTENT_TYPE, body.encode("utf-8"))


def _answer(call: Call, state: State, request: Request) -> Reply:
    account: Account | None = None
    try:
        if call.fault is not None:
            raise call.fault
        arguments = call.arguments
        account = state.login(arguments.get("login"), arguments.get("password"))
        if call.operation == "sendSms":
            return _send(state, account, arguments)
        return _reports(state, account, arguments.get("smcIds"))
    except Refused as exc:
        if account is not None:
            exc.language = account.refusal_language
        # PHP blames the caller ("Client") for what it sent and itself for what it lacks.
        code = "Server" if exc.kind in ("function", "funds") else "Client"
        return fault(code, str(exc))


def _send(state: State, account: Account, arguments: dict[str, Any]) -> Reply:
    dest = arguments.get("destAddr")
    numbers = dest if isinstance(dest, list) else [dest]
    if not numbers or dest is None:
        raise Refused("recipient", "")
    wanted = [(_free_form(n), arguments.get("text")) for n in numbers]
    sent = state.send(account, arguments.get("alphaName"), wanted, "soap")
    ids = [i for _, ids in sent.accepted for i in ids]
    items = "".join(f'<item xsi:type="xsd:string">{escape(i)}</item>' for i in ids)
    result = (
        f'<return SOAP-ENC:arrayType="xsd:string[{len(ids)}]" xsi:type="SOAP-ENC:Array">'
        f"{items}</return>"
    )
    return _response("sendSmsResponse", result)


def _reports(state: State, account: Account, smc_ids: object) -> Reply:
    listed = smc_ids if isinstance(smc_ids, list) else [smc_ids]
    ids = [str(i).strip() for i in listed if isinstance(i, str) and i.strip()]
    answers = dict(state.poll(account, ids))
    items = "".join(
        f"<item><key xsi:type={_key_type(i)}>{escape(i)}</key>"
        f'<value xsi:type="xsd:string">{escape(word)}</value></item>'
        for i, word in answers.items()
    )
    return _response("getReportsResponse", f'<return xsi:type="ns2:Map">{items}</return>')


def _key_type(smsc_id: str) -> str:
    # A PHP array key that looks like an integer is an integer, and goes out as xsd:int.
    if smsc_id.isdigit() and int(smsc_id) < 2**31 and str(int(smsc_id)) == smsc_id:
        return '"xsd:int"'
    return '"xsd:string"'


def _response(name: str, result: str) -> Reply:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP_ENV}" xmlns:ns1="{SERVICE_NS}" '
        f'xmlns:xsd="{XSD}" xmlns:xsi="{XSI}" xmlns:ns2="{APACHE}" xmlns:SOAP-ENC="{SOAP_ENC}" '
        f'SOAP-ENV:encodingStyle="{SOAP_ENC}"><SOAP-ENV:Body>'
        f"<ns1:{name}>{result}</ns1:{name}></SOAP-ENV:Body></SOAP-ENV:Envelope>\n"
    )
    return Reply(200, CONTENT_TYPE, body.encode("utf-8"))


def _free_form(number: object) -> object:
    """A number as people write it, reduced to digits as the provider does; others untouched."""
    if isinstance(number, str):
        return _NUMBER_DRESSING.sub("", number)
    return number


def _parse(body: bytes) -> etree._Element:
    if not body.strip():
        raise Refused("format", message=BAD_REQUEST)
    lowered = body.lower()
    if b"<!doctype" in lowered or b"<!entity" in lowered:
        raise Refused("format", message=DTD_REFUSED)
    try:
        root = etree.fromstring(body, safe_parser())
    except etree.XMLSyntaxError:
        raise Refused("format", message=BAD_REQUEST) from None
    if root.getroottree().docinfo.doctype:
        raise Refused("format", message=DTD_REFUSED)
    if etree.QName(root).localname != "Envelope":
        raise Refused("format", message=BAD_REQUEST)
    if etree.QName(root).namespace != SOAP_ENV:
        raise Refused("format", message=VERSION_MISMATCH)
    return root


def _decode(element: etree._Element, by_id: dict[str, etree._Element], depth: int) -> Any:
    """A SOAP-encoded value: a string, None (xsi:nil), a list (array) or a dict (Map)."""
    if depth > 8:
        raise Refused("format", message=BAD_REQUEST)
    href = element.get("href")
    if href:
        target = by_id.get(href[1:]) if href.startswith("#") else None
        if target is None:
            raise Refused("format", message=BAD_REQUEST)
        element = target
    if element.get(f"{{{XSI}}}nil") in ("true", "1"):
        return None
    children = [c for c in element if isinstance(c.tag, str)]
    if not children:
        return element.text or ""
    if all(_is_map_item(c) for c in children):
        return {
            str(_decode(_child(c, "key"), by_id, depth + 1)): _decode(
                _child(c, "value"), by_id, depth + 1
            )
            for c in children
        }
    return [_decode(c, by_id, depth + 1) for c in children]


def _is_map_item(element: etree._Element) -> bool:
    names = [etree.QName(c).localname for c in element if isinstance(c.tag, str)]
    return etree.QName(element).localname == "item" and sorted(names) == ["key", "value"]


def _child(element: etree._Element, name: str) -> etree._Element:
    return next(c for c in element if isinstance(c.tag, str) and etree.QName(c).localname == name)


def _bad_request() -> Refused:
    return Refused("format", message=BAD_REQUEST)


def _log_params(call: Call, request: Request) -> dict[str, Any]:
    if call.fault is not None:
        text = request.body[:2000].decode("utf-8", errors="replace")
        return {"fault": str(call.fault), "envelope": _PASSWORD.sub(rf"\1{REDACTED}\2", text)}
    params: dict[str, Any] = {"operation": call.operation, **call.arguments}
    if params.get("password"):
        params["password"] = REDACTED
    return params


def _wsdl_log_params(request: Request) -> dict[str, Any]:
    return dict(request.query_params())


ROUTES: dict[str, Route] = {
    WSDL_PATH: Route("soap", "wsdl", wsdl, _wsdl_log_params),
}
#: Paths whose route depends on the request: the operation is named in the envelope.
DISPATCH: dict[str, Callable[[Request], Route]] = {ENDPOINT_PATH: route_for}

WSDL_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<definitions name="soapGateway" targetNamespace="urn:soapGateway"
    xmlns="http://schemas.xmlsoap.org/wsdl/"
    xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    xmlns:SOAP-ENC="http://schemas.xmlsoap.org/soap/encoding/"
    xmlns:apachesoap="http://xml.apache.org/xml-soap"
    xmlns:tns="urn:soapGateway">
  <types>
    <xsd:schema targetNamespace="urn:soapGateway">
      <xsd:import namespace="http://schemas.xmlsoap.org/soap/encoding/"/>
      <xsd:import namespace="http://schemas.xmlsoap.org/wsdl/"/>
      <xsd:complexType name="ArrayOfString">
        <xsd:complexContent>
          <xsd:restriction base="SOAP-ENC:Array">
            <xsd:attribute ref="SOAP-ENC:arrayType" wsdl:arrayType="xsd:string[]"/>
          </xsd:restriction>
        </xsd:complexContent>
      </xsd:complexType>
    </xsd:schema>
    <xsd:schema targetNamespace="http://xml.apache.org/xml-soap">
      <xsd:import namespace="http://schemas.xmlsoap.org/soap/encoding/"/>
      <xsd:complexType name="mapItem">
        <xsd:sequence>
          <xsd:element name="key" type="xsd:anyType"/>
          <xsd:element name="value" type="xsd:anyType"/>
        </xsd:sequence>
      </xsd:complexType>
      <xsd:complexType name="Map">
        <xsd:sequence>
          <xsd:element name="item" type="apachesoap:mapItem" minOccurs="0"
              maxOccurs="unbounded"/>
        </xsd:sequence>
      </xsd:complexType>
    </xsd:schema>
  </types>
  <message name="sendSmsRequest">
    <part name="login" type="xsd:string"/>
    <part name="password" type="xsd:string"/>
    <part name="alphaName" type="xsd:string"/>
    <part name="destAddr" type="xsd:anyType"/>
    <part name="text" type="xsd:string"/>
  </message>
  <message name="sendSmsResponse">
    <part name="return" type="tns:ArrayOfString"/>
  </message>
  <message name="getReportsRequest">
    <part name="login" type="xsd:string"/>
    <part name="password" type="xsd:string"/>
    <part name="smcIds" type="xsd:anyType"/>
  </message>
  <message name="getReportsResponse">
    <part name="return" type="apachesoap:Map"/>
  </message>
  <portType name="soapGatewayPortType">
    <operation name="sendSms">
      <input message="tns:sendSmsRequest"/>
      <output message="tns:sendSmsResponse"/>
    </operation>
    <operation name="getReports">
      <input message="tns:getReportsRequest"/>
      <output message="tns:getReportsResponse"/>
    </operation>
  </portType>
  <binding name="soapGatewayBinding" type="tns:soapGatewayPortType">
    <soap:binding style="rpc" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="sendSms">
      <soap:operation soapAction="urn:soapGateway#sendSms" style="rpc"/>
      <input>
        <soap:body use="encoded" namespace="urn:soapGateway"
            encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"/>
      </input>
      <output>
        <soap:body use="encoded" namespace="urn:soapGateway"
            encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"/>
      </output>
    </operation>
    <operation name="getReports">
      <soap:operation soapAction="urn:soapGateway#getReports" style="rpc"/>
      <input>
        <soap:body use="encoded" namespace="urn:soapGateway"
            encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"/>
      </input>
      <output>
        <soap:body use="encoded" namespace="urn:soapGateway"
            encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"/>
      </output>
    </operation>
  </binding>
  <service name="soapGateway">
    <port name="soapGatewayPort" binding="tns:soapGatewayBinding">
      <soap:address location={location}/>
    </port>
  </service>
</definitions>
"""
