"""SOAP 1.1 rpc/encoded envelopes as PHP's SoapClient writes and reads them.

zeep cannot write SOAP encoding (see :mod:`.soap`), so requests are built here with lxml:
``xsi:type`` on every value, ``SOAP-ENC:Array`` for lists. Replies are decoded by their shape
(arrays, Apache Maps, ``href`` multi-references), whatever the WSDL declares, after the safe
parser of :mod:`.xml` has read them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lxml import etree

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_ENC = "http://schemas.xmlsoap.org/soap/encoding/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"

_MAX_DEPTH = 8


@dataclass(frozen=True)
class Operation:
    """One rpc operation as the WSDL describes it."""

    name: str
    namespace: str
    soap_action: str
    parts: tuple[str, ...]


def build_envelope(operation: Operation, arguments: Sequence[str | list[str]]) -> bytes:
    """A SOAP 1.1 rpc/encoded request as PHP's SoapClient writes it."""
    nsmap = {"SOAP-ENV": SOAP_ENV, "xsd": XSD, "xsi": XSI, "SOAP-ENC": SOAP_ENC}
    if operation.namespace:
        nsmap["ns1"] = operation.namespace
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap=nsmap)
    envelope.set(f"{{{SOAP_ENV}}}encodingStyle", SOAP_ENC)
    body = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
    tag = f"{{{operation.namespace}}}{operation.name}" if operation.namespace else operation.name
    call = etree.SubElement(body, tag)
    for name, value in zip(operation.parts, arguments, strict=True):
        _encode(etree.SubElement(call, name), value)
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def decode(element: etree._Element, refs: Mapping[str, etree._Element], depth: int = 0) -> Any:
    """A SOAP-encoded value: a string, None (``xsi:nil``), a list (array) or a dict (Map)."""
    if depth > _MAX_DEPTH:
        raise ValueError("values nested too deep")
    href = element.get("href")
    if href is not None:
        target = refs.get(href[1:]) if href.startswith("#") else None
        if target is None:
            raise ValueError(f"unresolved reference {href[:40]!r}")
        element = target
    if element.get(f"{{{XSI}}}nil") in ("true", "1"):
        return None
    kind = (element.get(f"{{{XSI}}}type") or "").rpartition(":")[2]
    children = [c for c in element if isinstance(c.tag, str)]
    if not children:
        if kind == "Map":
            return {}
        if kind == "Array" or element.get(f"{{{SOAP_ENC}}}arrayType"):
            return []
        return (element.text or "").strip()
    if kind == "Map" or all(_is_map_item(c) for c in children):
        pairs = [(_named_child(c, "key"), _named_child(c, "value")) for c in children]
        if any(key is None or value is None for key, value in pairs):
            raise ValueError("a Map item without its key or value")
        decoded: dict[str, Any] = {}
        for key, value in pairs:
            name = decode(key, refs, depth + 1)  # type: ignore[arg-type]
            if not isinstance(name, str):
                raise ValueError("a Map key that is not a plain value")
            decoded[name] = decode(value, refs, depth + 1)  # type: ignore[arg-type]
        return decoded
    return [decode(c, refs, depth + 1) for c in children]


def id_list(result: Any) -> list[str]:
    """The SMSC IDs of a sendSms result: an array of them, or one alone."""
    ids = [result] if isinstance(result, str) else result
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise ValueError(f"{_shape(result)} instead of a list of IDs")
    return ids


def state_map(result: Any) -> dict[str, str]:
    """SMSC ID -> status word from a getReports result (a Map; empty when nothing is known)."""
    if result in (None, "", [], {}):
        return {}
    if not isinstance(result, dict) or not all(
        isinstance(v, str) or v is None for v in result.values()
    ):
        raise ValueError(f"{_shape(result)} instead of a map of IDs to states")
    return {key.strip(): (word or "").strip() for key, word in result.items() if key.strip()}


def fault_text(fault: etree._Element) -> str:
    """The reason a SOAP fault gives: its faultstring, else its faultcode."""
    # SOAP 1.1 leaves faultcode and faultstring unqualified; some servers qualify them.
    for name in ("faultstring", "faultcode"):
        found = _named_child(fault, name)
        if found is not None and (found.text or "").strip():
            return (found.text or "").strip()
    return "(a SOAP fault without a reason)"


def first_child(element: etree._Element) -> etree._Element | None:
    """The first element inside ``element``; comments and processing instructions skipped."""
    return next((c for c in element if isinstance(c.tag, str)), None)


def _encode(element: etree._Element, value: str | list[str]) -> None:
    if isinstance(value, list):
        element.set(f"{{{SOAP_ENC}}}arrayType", f"xsd:string[{len(value)}]")
        element.set(f"{{{XSI}}}type", "SOAP-ENC:Array")
        for item in value:
            _encode(etree.SubElement(element, "item"), item)
    else:
        element.set(f"{{{XSI}}}type", "xsd:string")
        element.text = value


def _shape(value: Any) -> str:
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    return f"a {type(value).__name__}"


def _named_child(element: etree._Element, name: str) -> etree._Element | None:
    return next(
        (c for c in element if isinstance(c.tag, str) and etree.QName(c).localname == name),
        None,
    )


def _is_map_item(element: etree._Element) -> bool:
    names = sorted(etree.QName(c).localname for c in element if isinstance(c.tag, str))
    return etree.QName(element).localname == "item" and names == ["key", "value"]


#: What zeep needs of the SOAP 1.1 encoding schema (``Array``, ``Struct`` and their attributes,
#: as http://schemas.xmlsoap.org/soap/encoding/ defines them), so it never fetches it.
SOAP_ENCODING_SCHEMA = b"""<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
    xmlns:tns="http://schemas.xmlsoap.org/soap/encoding/"
    targetNamespace="http://schemas.xmlsoap.org/soap/encoding/">
  <xs:attribute name="root">
    <xs:simpleType>
      <xs:restriction base="xs:boolean">
        <xs:pattern value="0|1"/>
      </xs:restriction>
    </xs:simpleType>
  </xs:attribute>
  <xs:attributeGroup name="commonAttributes">
    <xs:attribute name="id" type="xs:ID"/>
    <xs:attribute name="href" type="xs:anyURI"/>
    <xs:anyAttribute namespace="##other" processContents="lax"/>
  </xs:attributeGroup>
  <xs:simpleType name="arrayCoordinate">
    <xs:restriction base="xs:string"/>
  </xs:simpleType>
  <xs:attribute name="arrayType" type="xs:string"/>
  <xs:attribute name="offset" type="tns:arrayCoordinate"/>
  <xs:attributeGroup name="arrayAttributes">
    <xs:attribute ref="tns:arrayType"/>
    <xs:attribute ref="tns:offset"/>
  </xs:attributeGroup>
  <xs:attribute name="position" type="tns:arrayCoordinate"/>
  <xs:attributeGroup name="arrayMemberAttributes">
    <xs:attribute ref="tns:position"/>
  </xs:attributeGroup>
  <xs:group name="Array">
    <xs:sequence>
      <xs:any namespace="##any" minOccurs="0" maxOccurs="unbounded" processContents="lax"/>
    </xs:sequence>
  </xs:group>
  <xs:element name="Array" type="tns:Array"/>
  <xs:complexType name="Array">
    <xs:group ref="tns:Array" minOccurs="0"/>
    <xs:attributeGroup ref="tns:arrayAttributes"/>
    <xs:attributeGroup ref="tns:commonAttributes"/>
  </xs:complexType>
  <xs:group name="Struct">
    <xs:sequence>
      <xs:any namespace="##any" minOccurs="0" maxOccurs="unbounded" processContents="lax"/>
    </xs:sequence>
  </xs:group>
  <xs:element name="Struct" type="tns:Struct"/>
  <xs:complexType name="Struct">
    <xs:group ref="tns:Struct" minOccurs="0"/>
    <xs:attributeGroup ref="tns:commonAttributes"/>
  </xs:complexType>
</xs:schema>
"""
