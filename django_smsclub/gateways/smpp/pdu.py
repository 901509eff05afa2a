"""The SMPP 3.4 side of the wire: command statuses, text encoding, receipts and PDU framing.

smpplib encodes and parses the PDUs; what it gets wrong for SMSClub is done here: the text's
parts follow :mod:`django_smsclub.text` exactly, receipts are read from the TLVs or the text,
and frames are read whole off the socket (smpplib loses a half-read PDU on a read timeout).
"""

from __future__ import annotations

import re
import socket
import struct
from dataclasses import dataclass
from typing import Any

import smpplib.consts as c

from ... import text as sms_text
from ...exceptions import ConfigurationError

#: The esm_class bits that mark a deliver_sm as an SMSC delivery receipt (smpplib has no name).
RECEIPT_MASK = 0x3C
RECEIPT_TYPE = 0x04
UDHI = 0x40
SUBMIT_SM_RESP = 0x80000004
GENERIC_NACK = 0x80000000
DATA_CODING_DEFAULT = 0x00
DATA_CODING_UCS2 = 0x08

ESME_ROK = c.SMPP_ESME_ROK
#: Statuses that mean "slow down": the same PDU is submitted again after a pause.
THROTTLE_STATUSES = frozenset({c.SMPP_ESME_RTHROTTLED, c.SMPP_ESME_RMSGQFUL})
#: Statuses that refuse this submit but not the message for good: it may be sent later.
TEMPORARY_STATUSES = frozenset({c.SMPP_ESME_RSYSERR, c.SMPP_ESME_RX_T_APPN})
#: Bind refusals that say nothing about the credentials.
TEMPORARY_BIND_STATUSES = THROTTLE_STATUSES | TEMPORARY_STATUSES
#: What a receipt handler's failure answers: the SMSC keeps the receipt and delivers it again.
RECEIPT_RETRY_STATUS = c.SMPP_ESME_RX_T_APPN

#: query_sm message_state values, for receipts that carry the TLV but no ``stat:`` text.
MESSAGE_STATES = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}

#: The longest PDU read; an SMSC sends nothing near it.
MAX_FRAME = 64 * 1024

_RECEIPT_ID = re.compile(r"(?:^|\s)id:(\S+)", re.IGNORECASE)
_RECEIPT_STAT = re.compile(r"(?:^|\s)stat:(\S+)", re.IGNORECASE)
_RECEIPT_ERR = re.compile(r"(?:^|\s)err:(\S+)", re.IGNORECASE)
_RECEIPT_TEXT = re.compile(r"\stext:", re.IGNORECASE)


def status_name(status: int) -> str:
    """``ESME_RTHROTTLED (0x00000058)``: the name and number of an SMPP command_status."""
    for name, value in vars(c).items():
        if name.startswith("SMPP_ESME_R") and value == status:
            return f"{name[5:]} (0x{status:08X})"
    return f"status 0x{status:08X}"


def describe_status(status: int) -> str:
    """The status name with smpplib's description, for messages people read."""
    description = c.DESCRIPTIONS.get(status)
    return f"{status_name(status)}: {description}" if description else status_name(status)


@dataclass(frozen=True)
class EncodedText:
    """A text ready for submit_sm: its data_coding, esm_class and one payload per part."""

    data_coding: int
    esm_class: int
    payloads: tuple[bytes, ...]


def encode_text(text: str, reference: int) -> EncodedText:
    """Encode ``text`` for the wire and split it into parts with an 8-bit concatenation UDH.

    A text of printable ASCII travels as data_coding 0 (the SMSC's default alphabet), one octet
    per character; anything else as UCS-2 (data_coding 8). The parts follow :mod:`..text`
    exactly (160/153 characters, 70/67 UTF-16 units), so the IDs the SMSC returns match the
    part count the pipeline stores. smpplib's ``gsm.make_parts`` is not used: it counts GSM
    escape characters (``{}[]~^|\\``) twice and maps others wrongly, so its part count differs.
    A character beyond U+FFFF may be cut between two parts; phones join the parts before they
    decode them.
    """
    info = sms_text.describe(text)
    if info.alphabet is sms_text.Alphabet.ASCII:
        data, width, data_coding = text.encode("ascii"), 1, DATA_CODING_DEFAULT
    else:
        data, width, data_coding = text.encode("utf-16-be"), 2, DATA_CODING_UCS2
    if info.parts == 1:
        return EncodedText(data_coding, 0, (data,))
    size = info.per_part * width
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    if len(chunks) != info.parts:  # a defect, never a property of the text
        raise AssertionError(f"split {len(chunks)} parts where text.py counts {info.parts}")
    header = bytes((0x05, 0x00, 0x03, reference & 0xFF, len(chunks)))
    payloads = tuple(header + bytes((n,)) + chunk for n, chunk in enumerate(chunks, start=1))
    return EncodedText(data_coding, UDHI, payloads)


def source_address(sender: str) -> tuple[int, int]:
    """(TON, NPI) of a sender: alphanumeric names are TON 5, numbers international."""
    if sender.isdigit():
        return 1, 1
    return 5, 0


@dataclass(frozen=True)
class Receipt:
    """A delivery receipt: the SMSC's message ID (canonical, see :func:`canonical_id`) and its
    status word (``DELIVRD``, ...)."""

    message_id: str
    stat: str
    error: str = ""


@dataclass(frozen=True)
class IdBases:
    """How an SMSC writes message IDs: in ``submit_sm_resp`` (and the ``receipted_message_id``
    TLV, which repeats it) and in the receipt text's ``id:``. 16 for hexadecimal, 10 for
    decimal, None for "the same as the other", so only zeros and case are told apart (Kannel's
    ``msg-id-type`` is the same idea)."""

    submit: int | None = None
    receipt: int | None = None


SAME_BASES = IdBases()


def canonical_id(raw: str, base: int | None = None) -> str:
    """One spelling of a message ID, so an ID matches whichever form the SMSC wrote it in.

    A hexadecimal ID (``base`` 16) becomes its decimal number, so it matches the decimal
    spelling of the other side; otherwise the ID is lower-cased and its leading zeros dropped
    (``0000AB12`` and ``ab12`` are one ID, as are ``000042`` and ``42``). An ID that is not a
    number in ``base`` is kept, lower-cased.
    """
    value = raw.strip("\0 \t\r\n").lower()
    if base == 16 and value:
        try:
            return str(int(value, 16))
        except ValueError:
            pass
    return value.lstrip("0") or value[:1]


def parse_receipt(pdu: Any, bases: IdBases = SAME_BASES) -> Receipt | None:
    """The receipt a deliver_sm carries, or None if it names no message ID or no status.

    The TLVs win where present: ``receipted_message_id`` (the ID as ``submit_sm_resp`` gave
    it) over the ``id:`` of the text, which many SMSCs write in another base, and
    ``message_state`` over the ``stat:`` word. The text (``id:... sub:... dlvrd:... submit
    date:... done date:... stat:... err:...``) is read for what the TLVs do not carry.
    """
    body = as_text(getattr(pdu, "short_message", None)) or as_text(
        getattr(pdu, "message_payload", None)
    )
    # Whatever follows "text:" is the start of the message itself, which may read "id:...".
    head = _RECEIPT_TEXT.split(body, maxsplit=1)[0]
    message_id = as_text(getattr(pdu, "receipted_message_id", None)).strip("\0 ")
    if message_id:
        message_id = canonical_id(message_id, bases.submit)
    else:
        found = _RECEIPT_ID.search(head)
        message_id = canonical_id(found.group(1), bases.receipt) if found else ""
    found = _RECEIPT_STAT.search(head)
    state = getattr(pdu, "message_state", None) or 0
    stat = MESSAGE_STATES.get(state) or (found.group(1) if found else "")
    error = _RECEIPT_ERR.search(head)
    if not message_id or not stat:
        return None
    return Receipt(message_id, stat, error.group(1) if error else "")


def id_bases(name: str, value: object) -> IdBases:
    """The ``MESSAGE_ID_BASES`` setting: ``(submit, receipt)`` bases, each 10, 16 or None."""
    if value in (None, ""):
        return SAME_BASES
    if isinstance(value, list | tuple) and len(value) == 2:
        submit, receipt = value
        if submit in (None, 10, 16) and receipt in (None, 10, 16):
            return IdBases(submit, receipt)
    raise ConfigurationError(
        f"gateway {name!r}: MESSAGE_ID_BASES {value!r} must be a pair (submit_sm_resp, receipt) "
        "of 10, 16 or None, say (16, 10)"
    )


def as_text(value: object) -> str:
    """A PDU field as text: octet strings read as Latin-1, so no byte is ever refused."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


class SessionEnded(Exception):
    """The session is over for the reason given (the SMSC closed it, or a frame was garbled)."""


def read_frame(sock: socket.socket) -> bytes:
    """One whole PDU off ``sock``, however many reads it takes; :class:`SessionEnded` when the
    connection closes or the length cannot be a PDU's."""
    header = _recv_exact(sock, 4)
    (length,) = struct.unpack(">L", header)
    if not 16 <= length <= MAX_FRAME:
        raise SessionEnded(f"garbled PDU length {length}")
    return header + _recv_exact(sock, length - 4)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise SessionEnded("the SMSC closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)
