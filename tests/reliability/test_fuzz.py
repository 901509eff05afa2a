"""Fuzzing: whatever comes in either works or fails with the documented error, quickly.

Texts, numbers and sender names against the rules of ``text`` and ``phones``; every gateway
reading replies over a real socket (random bytes, replies shaped like the provider's with
random contents, every prefix of a real reply, replies past ``MAX_REPLY_BYTES``, hostile XML,
odd JSON); the emulator's request parsers. Each test is bounded by ``max_examples`` and a
pytest-timeout mark; the whole file runs in well under a minute.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from base64 import b64encode
from decimal import Decimal
from urllib.parse import parse_qs, urlencode
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

import pytest
import requests
from hypothesis import HealthCheck, currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st

from django_smsclub import phones, text
from django_smsclub.emulator import DEFAULT_PASSWORD, DEFAULT_TOKEN, DEFAULT_USERNAME, Emulator
from django_smsclub.emulator import server as emulator_server
from django_smsclub.emulator.soap_api import ENDPOINT_PATH, WSDL_TEMPLATE
from django_smsclub.emulator.state import State
from django_smsclub.emulator.wire import Request, scrub
from django_smsclub.exceptions import (
    AmbiguousSend,
    AuthenticationError,
    GatewayMisconfigured,
    GatewayUnavailable,
    InvalidMessage,
    ProviderRefused,
    RateLimited,
)
from django_smsclub.gateways import Balance, Outgoing
from django_smsclub.gateways.base import is_smsc_id
from django_smsclub.gateways.http import HttpGateway
from django_smsclub.gateways.json import JsonGateway
from django_smsclub.gateways.replies import decode_reply, looks_like_error_text, reply_charset
from django_smsclub.gateways.soap import SoapGateway
from django_smsclub.gateways.soap_envelope import SOAP_ENC, SOAP_ENV, XSD, XSI
from django_smsclub.gateways.transport import MAX_REPLY_BYTES
from django_smsclub.gateways.xml import XmlGateway, cdata, parse_document
from django_smsclub.services import templates
from tests.support.canned import CannedServer

#: No test may hang: each has a minute at most (the slowest takes a few seconds).
pytestmark = pytest.mark.timeout(60)

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: Each example of these makes a few requests over a socket.
FUZZ_WIRE = settings(FUZZ, max_examples=75)

A, B = "380501111111", "380672222222"
PASSWORD, TOKEN = "fuzz-password-3141", "fuzz-token-2718"
CREDENTIALS = {
    "USERNAME": "380500000000",
    "PASSWORD": PASSWORD,
    "TOKEN": TOKEN,
    "SENDER": "Shop",
    "TIMEOUT": 5,
    "CONNECT_TIMEOUT": 2,
}
KINDS = {
    "http-post": (HttpGateway, {"METHOD": "POST"}),
    "http-get": (HttpGateway, {"METHOD": "GET"}),
    "xml": (XmlGateway, {}),
    "json": (JsonGateway, {}),
    "soap": (SoapGateway, {}),
}
BACKENDS = {"http-post": "http", "http-get": "http", "xml": "xml", "json": "json", "soap": "soap"}
#: What a send may end in, besides being accepted; what a query may raise.
# A JSON error object names its status (404: no such endpoint, 503: unavailable) even with
# HTTP 200: those errors come only from a status that says so.
SEND_ERRORS = (
    AmbiguousSend,
    ProviderRefused,
    AuthenticationError,
    RateLimited,
    GatewayMisconfigured,
    GatewayUnavailable,
)
QUERY_ERRORS = (
    GatewayUnavailable,
    ProviderRefused,
    AuthenticationError,
    RateLimited,
    GatewayMisconfigured,
)
REFUSALS = (ProviderRefused, AuthenticationError, RateLimited, GatewayMisconfigured)


# --- texts ------------------------------------------------------------------------------------

#: Lengths (in the provider's units) on both sides of every limit: one part, the parts of a
#: long text, two parts, and the longest text.
LIMIT_LENGTHS = sorted(
    {n + d for n in (160, 153, 306, 1071, 70, 67, 134, 469) for d in (-1, 0, 1)} | {0, 1}
)
ascii_chars = st.characters(min_codepoint=0x01, max_codepoint=0x7E)
astral_chars = st.characters(min_codepoint=0x10000)
surrogates = st.characters(categories=["Cs"])
#: NUL, controls, combining marks, right-to-left marks and overrides, zero widths, BOM,
#: characters Windows-1251 has and has not, an emoji, the two halves of a flag.
odd_chars = st.sampled_from(
    [
        *"\x00\x01\x1b\x7f\x80\x9f\u0301\u0489\u200d\u200f\u202e\u2066\ufeff\ufffd\uffff",
        *"\xa0\u2028єїґҐ№€ёß中اש😀",
        *"\U0001f1fa\U0001f1e6",
    ]
)
bmp_chars = st.one_of(
    st.characters(min_codepoint=0x400, max_codepoint=0x4FF),
    ascii_chars,
    st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"]),
    odd_chars.filter(lambda c: len(c) == 1 and ord(c) <= 0xFFFF),
)


@st.composite
def texts_near_limits(draw) -> str:
    """A text of a length around a limit: all ASCII, other characters, or with emoji."""
    units = draw(st.sampled_from(LIMIT_LENGTHS))
    kind = draw(st.sampled_from(["ascii", "unicode", "emoji"]))
    if kind == "ascii":
        return draw(st.text(ascii_chars, min_size=units, max_size=units))
    wide = draw(st.integers(0, units // 2)) if kind == "emoji" else 0
    chars = [
        *draw(st.text(astral_chars, min_size=wide, max_size=wide)),
        *draw(st.text(bmp_chars, min_size=units - 2 * wide, max_size=units - 2 * wide)),
    ]
    draw(st.randoms(use_true_random=False)).shuffle(chars)
    return "".join(chars)


any_texts = st.one_of(
    texts_near_limits(),
    st.text(max_size=600),
    st.text(st.one_of(odd_chars, st.characters()), max_size=120),
    st.text(st.one_of(surrogates, ascii_chars, bmp_chars), min_size=1, max_size=40),
)


def units(value: str) -> int:
    """UTF-16 units: a character beyond U+FFFF takes two, a lone surrogate one."""
    return sum(2 if ord(c) > 0xFFFF else 1 for c in value)


def fits_windows_1251(value: str) -> bool:
    try:
        value.encode("cp1251")
    except UnicodeEncodeError:
        return False
    return True


@FUZZ
@given(any_texts)
@example("a\ud800")  # a lone surrogate, as JSON can carry: once a UnicodeEncodeError
@example("😀" * 234 + "x")  # 469 units exactly, of emoji
def test_text_rules_hold_for_any_text_and_only_invalid_message_is_raised(value):
    plain = all(0x01 <= ord(c) <= 0x7E for c in value)
    length = units(value)
    single, multi, limit = (160, 153, 1071) if plain else (70, 67, 469)
    sendable = (
        bool(value.strip())
        and "\x00" not in value
        and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
        and length <= limit
    )

    info = text.describe(value)
    assert info.alphabet == ("ascii" if plain else "unicode")
    assert (info.length, info.max_length) == (length, limit)
    assert info.parts == (1 if length <= single else -(-length // multi))
    assert info.per_part == (single if info.parts == 1 else multi)
    assert text.count_parts(value) == info.parts

    pieces = text.split_parts(value)
    assert "".join(pieces) == value
    widths = [units(p) for p in pieces]
    assert all(w <= info.per_part for w in widths)
    if plain or not any(ord(c) > 0xFFFF for c in value):
        assert len(pieces) == info.parts
    else:
        # An emoji is never cut in two: a piece may end one unit short, so one more piece.
        assert all(w >= info.per_part - 1 for w in widths[:-1])
        if length <= limit:
            assert info.parts <= len(pieces) <= info.parts + 1

    fits = fits_windows_1251(value)
    assert text.fits_cp1251(value) == fits

    problem = text.text_problem(value)
    assert (problem is None) == sendable
    assert (text.text_problem(value, cp1251=True) is None) == (sendable and fits)
    if sendable:
        assert text.check_text(value) == info
    else:
        assert problem.startswith("text ")
        with pytest.raises(InvalidMessage) as caught:
            text.check_text(value)
        assert caught.value.problems == [problem]


@FUZZ
@given(st.one_of(st.none(), st.integers(), st.floats(), st.binary(), st.lists(st.text())))
def test_a_text_that_is_not_a_string_is_an_invalid_message(value):
    assert text.text_problem(value).startswith("text must be a string")
    with pytest.raises(InvalidMessage, match="must be a string"):
        text.check_text(value)


# --- sender names -----------------------------------------------------------------------------

LATIN_DIGITS_SPACE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ._-")


@FUZZ
@given(
    st.one_of(
        st.from_regex(r"[A-Za-z0-9 ]{0,13}", fullmatch=True),
        # Look-alikes: Cyrillic dze, Greek alpha, Arabic-Indic three, fullwidth s, Kelvin, long s.
        st.text(
            st.sampled_from("AZaz09 _-.!\t\x00\u0455\u0391\u0663\uff53\u212a\u017f"), max_size=13
        ),
        st.text(max_size=14),
        st.none(),
        st.integers(),
        st.binary(max_size=11),
    )
)
def test_a_sender_is_valid_exactly_when_it_is_1_to_11_of_latin_digits_space_dot_dash_underscore(
    sender,
):
    valid = (
        isinstance(sender, str)
        and bool(sender.strip())
        and len(sender) <= 11
        and set(sender) <= LATIN_DIGITS_SPACE
    )
    assert (text.sender_problem(sender) is None) == valid
    if valid:
        assert text.check_sender(sender) == sender
    else:
        with pytest.raises(InvalidMessage, match="sender"):
            text.check_sender(sender)


# --- numbers ----------------------------------------------------------------------------------

number_inputs = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(380_000_000_000, 380_999_999_999),
    st.floats(),
    st.binary(max_size=16),
    st.lists(st.integers(), max_size=2),
    st.text(max_size=50),
    st.text(st.one_of(surrogates, st.characters()), max_size=15),
    # Digits of any script, and what people put around them.
    st.text(
        st.one_of(st.characters(categories=["Nd"]), st.sampled_from("+()- .;,#*xt")), max_size=25
    ),
    st.from_regex(
        r"\s?\+?(380|38|0|48|1|44|683|290|)[ (]?[0-9]{1,3}[) -]?[0-9]{2,4}[ -]?[0-9]{0,4}"
        r"[ -]?[0-9]{0,4}( ?(;|,|ext\.?) ?[0-9]{1,10})?\s?",
        fullmatch=True,
    ),
)


def _unquoted(value: str) -> str:
    return value.replace("\\'", "'").replace('\\"', '"')


def names_the_input(raw: object, message: str) -> bool:
    """Whether ``message`` shows ``raw`` (its start, at least) as the error messages do."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if isinstance(raw, str):
        shown = repr(raw[:12])[1:-1]
        return shown in message or _unquoted(shown) in _unquoted(message)
    return type(raw).__name__ in message and repr(raw)[:20] in message


@FUZZ
@given(number_inputs, st.sampled_from(["UA", "ua", "PL", "US", "ZZ", ""]))
@example("+683 4002", "UA")  # valid in Niue, 7 digits: once let through to the provider
def test_a_number_becomes_10_to_15_digits_or_an_invalid_message_naming_it(raw, region):
    try:
        number = phones.normalize_phone(raw, region=region)
    except InvalidMessage as exc:
        assert names_the_input(raw, str(exc)), (raw, str(exc))
        assert phones.phone_problem(raw, region=region) == str(exc)
    else:
        assert re.fullmatch(r"[0-9]{10,15}", number), (raw, number)
        # Written with a plus, the digits are the same number.
        assert phones.normalize_phone("+" + number, region=region) == number


# --- gateways, over a socket -----------------------------------------------------------------


@pytest.fixture(scope="module")
def canned():
    server = CannedServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def gateways(canned):
    """One gateway of each kind, aimed at the canned server (the SOAP one has read its WSDL)."""
    made = {
        kind: cls(kind, **CREDENTIALS, BASE_URL=canned.url, **extra)
        for kind, (cls, extra) in KINDS.items()
    }
    wsdl = WSDL_TEMPLATE.format(location=quoteattr(canned.url + ENDPOINT_PATH))
    canned.reply = (wsdl.encode(), "text/xml; charset=utf-8", 200)
    made["soap"].service_description()
    yield made
    for gateway in made.values():
        gateway.close()


@pytest.fixture(scope="module")
def real_replies():
    """What the emulator answers each gateway for a send to A and B, their states, the balance:
    ``{kind: {op: (body, content type)}}``."""
    replies: dict[str, dict[str, tuple[bytes, str]]] = {}
    with Emulator() as emulator:
        emulator.json_rate_limit = None
        for kind, (cls, extra) in KINDS.items():
            gateway = cls(kind, **emulator.gateway_settings(BACKENDS[kind], **extra))
            seen = recorded(gateway.session)
            got = replies[kind] = {}
            outcomes = gateway.send("Shop", [Outgoing(A, "hi"), Outgoing(B, "hi")])
            assert all(o.accepted for o in outcomes)
            got["send"] = seen[-1].content, seen[-1].headers["Content-Type"]
            gateway.fetch_states([i for o in outcomes for i in o.smsc_ids])
            got["state"] = seen[-1].content, seen[-1].headers["Content-Type"]
            gateway.balance()
            got["balance"] = seen[-1].content, seen[-1].headers["Content-Type"]
            gateway.close()
    return replies


def note(outcome: str) -> None:
    """Count ``outcome`` in the statistics (``--hypothesis-show-statistics``) of a fuzz test."""
    if currently_in_test_context():
        event(outcome)


def recorded(session: requests.Session) -> list[requests.Response]:
    """Every response ``session`` gets from now on (its body is there once it was read)."""
    responses: list[requests.Response] = []
    session.hooks["response"].append(lambda response, **kwargs: responses.append(response))
    return responses


def answer(canned, body: bytes, content_type: str = "text/html", status: int = 200) -> None:
    canned.reply = (body, content_type, status)


def send_two(gateway):
    return gateway.send("Shop", [Outgoing(A, "hi"), Outgoing(B, "hi")])


def appears_in(smsc_id: str, body: bytes, content_type: str) -> bool:
    """Whether ``smsc_id`` is written in ``body``, as is or escaped for XML or JSON."""
    forms = {smsc_id, xml_escape(smsc_id), cdata(smsc_id), json.dumps(smsc_id)[1:-1]}
    forms |= {json.dumps(smsc_id, ensure_ascii=False)[1:-1]}
    decoded = decode_reply(body, charset_of(content_type)) or ""
    return any(form in decoded or form.encode() in body for form in forms)


def charset_of(content_type: str) -> str | None:
    response = requests.Response()
    response.headers["Content-Type"] = content_type
    return reply_charset(response)


def reads_as_refusal(kind: str, body: bytes, content_type: str, status: int) -> bool:
    """Whether a reply may stand for a refusal: words (HTTP), a 4xx JSON error object, and
    HTTP 429 whatever its body on the gateways that do not read it (a pause asked for)."""
    if status == 429 and kind != "json":
        return True
    if kind.startswith("http"):
        reply = decode_reply(body, charset_of(content_type))
        return status < 500 and reply is not None and looks_like_error_text(reply)
    if kind == "json":
        try:
            return 400 <= status < 500 and isinstance(json.loads(body), dict)
        except (ValueError, RecursionError):
            return False
    return False


def check_send(outcomes, body: bytes, content_type: str, refusal_allowed: bool) -> None:
    assert len(outcomes) == 2
    note("send: " + ", ".join(type(o.error).__name__ if o.error else "accepted" for o in outcomes))
    for outcome in outcomes:
        if outcome.accepted:
            assert outcome.smsc_ids
            for smsc_id in outcome.smsc_ids:
                assert is_smsc_id(smsc_id) and appears_in(smsc_id, body, content_type)
        else:
            assert isinstance(outcome.error, SEND_ERRORS), outcome.error
            if isinstance(outcome.error, REFUSALS):
                assert refusal_allowed, (body, outcome.error)
        assert PASSWORD not in repr(outcome) and TOKEN not in repr(outcome)


def check_states(gateway, refusal_allowed: bool) -> dict[str, str] | None:
    try:
        states = gateway.fetch_states(["11", "12"])
    except QUERY_ERRORS as exc:
        assert refusal_allowed or not isinstance(exc, REFUSALS), exc
        assert PASSWORD not in str(exc) and TOKEN not in str(exc)
        note(f"states: {type(exc).__name__}")
        return None
    note(f"states: {'some' if states else 'none'}")
    assert isinstance(states, dict)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in states.items())
    return states


def check_balance(gateway, refusal_allowed: bool) -> None:
    try:
        balance = gateway.balance()
    except QUERY_ERRORS as exc:
        assert refusal_allowed or not isinstance(exc, REFUSALS), exc
        return
    assert isinstance(balance, Balance)
    assert isinstance(balance.amount, Decimal) and balance.amount.is_finite()


plausible_ids = st.from_regex(r"[0-9]{1,12}", fullmatch=True)
smsc_ids_or_not = st.one_of(
    plausible_ids,
    st.text(max_size=12),
    st.sampled_from(["", " ", "9" * 70, "11: DELIVRD", "неверно указан id", "\u202e1", "1]]>2"]),
)
#: Two IDs, as a send to A and B should get back, or any list of anything.
ids_of_any_kind = st.one_of(
    st.lists(plausible_ids, min_size=2, max_size=2, unique=True),
    st.lists(smsc_ids_or_not, max_size=4),
)
#: Texts XML can mostly carry (no control characters), and any text now and then.
xml_texts = st.one_of(
    st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=40),
    st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=40),
    st.text(max_size=40),
)
words = st.one_of(
    st.sampled_from(["DELIVRD", "ENROUTE", "delivrd", "2165-05-28 21:14:21", "неверно указан id"]),
    st.text(max_size=12),
)


@FUZZ_WIRE
@given(recipient=number_inputs)
@example("0501234567")  # national digits: once sent as they were, unlike the reply's number
@example("1234567")  # too short: once sent, for the provider to refuse the whole request
@example("48501234567")  # a Polish number as phones stores it
def test_a_gateway_puts_only_normalised_numbers_on_the_wire_or_refuses_before_sending(
    canned, gateways, recipient
):
    answer(canned, b"=IDS START=<br/>1<br/>=IDS END=<br/>")
    requests_before = len(canned.bodies)
    try:
        [outcome] = gateways["http-post"].send("Shop", [Outgoing(recipient, "hi")])
    except InvalidMessage:
        assert len(canned.bodies) == requests_before
        return
    assert outcome.accepted
    [sent] = parse_qs(canned.bodies[-1].decode())["to"]
    # Bare digits that make a valid international number are taken as one.
    bare = isinstance(recipient, str) and recipient.isascii() and recipient.isdigit()
    international = bare and phones.phone_problem("+" + recipient) is None
    assert sent == (recipient if international else phones.normalize_phone(recipient))
    assert sent == phones.normalize_phone("+" + sent)


CONTENT_TYPES = [
    "text/html",
    "text/html; charset=windows-1251",
    "text/html; charset=utf-8",
    "text/xml; charset=utf-8",
    "application/json",
    "text/plain; charset=utf-16",
    "text/plain; charset=punycode",
    "text/plain; charset=undefined",
    "text/plain; charset=rot13",
    "text/plain; charset=no-such-codec",
    "",
]
STATUSES = [200, 200, 200, 201, 302, 400, 401, 403, 404, 429, 500, 503]
random_bodies = st.one_of(
    st.binary(max_size=3000),
    st.text(max_size=300).map(str.encode),
    st.text(max_size=300).map(lambda t: t.encode("cp1251", "ignore")),
)


@pytest.mark.parametrize("kind", list(KINDS))
@FUZZ_WIRE
@given(
    body=random_bodies,
    content_type=st.sampled_from(CONTENT_TYPES),
    status=st.sampled_from(STATUSES),
)
def test_random_bytes_never_make_an_accepted_send_or_a_refusal_unless_they_read_as_one(
    canned, gateways, kind, body, content_type, status
):
    answer(canned, body, content_type, status)
    refusal = reads_as_refusal(kind, body, content_type, status)
    outcomes = send_two(gateways[kind])
    check_send(outcomes, body, content_type, refusal)
    assert not any(o.accepted for o in outcomes)
    check_states(gateways[kind], refusal)
    # XML and SOAP read the balance from the HTTP gateway's host.
    balance_kind = "http-post" if kind in ("xml", "soap") else kind
    check_balance(gateways[kind], reads_as_refusal(balance_kind, body, content_type, status))


@st.composite
def spoiled(draw, valid: dict, anything: dict) -> dict:
    """Either every field drawn from ``anything``, or ``valid`` with at most one field so."""
    if draw(st.booleans()):
        return {name: draw(strategy) for name, strategy in anything.items()}
    spoil = draw(st.sampled_from([None, *anything]))
    return {name: draw(anything[name]) if name == spoil else valid[name] for name in valid}


@st.composite
def http_id_lists(draw) -> str:
    """``=IDS START=`` lists of IDs or status lines, with random pieces, separators and
    markers (some of them cut)."""
    made = draw(
        spoiled(
            {
                "start": "=IDS START=<br/>",
                "pieces": draw(st.lists(plausible_ids, min_size=2, max_size=2)),
                "lines": False,
                "separator": "<br/>",
                "end": "=IDS END=<br/>",
            },
            {
                "start": st.sampled_from(["=IDS START=", "", "=IDS START", "x"]),
                "pieces": ids_of_any_kind,
                "lines": st.booleans(),
                "separator": st.sampled_from(["<br>", "\n", "\r\n", "<BR />", " ", "", ";"]),
                "end": st.sampled_from(["=IDS END=", "", "=IDS END", "=IDS START="]),
            },
        )
    )
    pieces = made["pieces"]
    if made["lines"]:
        pieces = [f"{i}{draw(st.sampled_from([': ', ':', ' ']))}{draw(words)}" for i in pieces]
    separator = made["separator"]
    return made["start"] + separator.join(pieces) + separator + made["end"]


@FUZZ_WIRE
@given(reply=http_id_lists(), encoding=st.sampled_from(["utf-8", "cp1251"]))
def test_http_id_lists_are_accepted_only_whole_and_only_with_ids_from_the_list(
    canned, gateways, reply, encoding
):
    body = reply.encode(encoding, "ignore")
    content_type = f"text/html; charset={encoding}"
    answer(canned, body, content_type)
    refusal = reads_as_refusal("http-post", body, content_type, 200)
    outcomes = send_two(gateways["http-post"])
    check_send(outcomes, body, content_type, refusal)
    listed = body.decode(encoding)
    if any(o.accepted for o in outcomes):
        start = listed.index("=IDS START=")
        assert listed.find("=IDS END=", start) > 0
    states = check_states(gateways["http-post"], refusal)
    for smsc_id, word in (states or {}).items():
        assert smsc_id and smsc_id in listed and word in listed


@st.composite
def xml_replies(draw) -> tuple[bytes, dict]:
    """XML gateway replies: a random root, status, text, IDs or entries, values in CDATA or
    escaped, in any order; and what went into them."""
    valid = {
        "root": "response",
        "status": "OK",
        "reason": "Сообщений: 2 (2 частей)",
        "ids": draw(st.lists(plausible_ids, min_size=2, max_size=2)),
        "tag": "mess",
        "entries": [("smscid", draw(plausible_ids), "DELIVRD")],
    }
    anything = {
        "root": st.sampled_from(["response", "Response", "reply"]),
        "status": st.sampled_from(["OK", "ERROR", "ok", " OK ", "", "FAIL"]) | st.text(max_size=5),
        "reason": st.sampled_from(["", "Сообщений: 2 (3 частей)", "Ошибка"]) | xml_texts,
        "ids": ids_of_any_kind,
        "tag": st.sampled_from(["mess", "id"]),
        "entries": st.lists(
            st.tuples(st.sampled_from(["smscid", "smssid", "id"]), smsc_ids_or_not, words),
            max_size=3,
        ),
    }
    made = draw(spoiled(valid, anything))
    quote = cdata if draw(st.booleans()) else xml_escape
    tag = made["tag"]
    children = [
        f"<status>{quote(made['status'])}</status>",
        f"<text>{quote(made['reason'])}</text>",
        "<ids>" + "".join(f"<{tag}>{quote(i)}</{tag}>" for i in made["ids"]) + "</ids>",
        "<entries>"
        + "".join(
            f"<entry><{name}>{quote(i)}</{name}><state>{quote(word)}</state></entry>"
            for name, i, word in made["entries"]
        )
        + "</entries>",
    ]
    children = draw(st.permutations(children))
    declaration = draw(st.sampled_from(["", "<?xml version='1.0' encoding='utf-8'?>"]))
    document = f"{declaration}<{made['root']}>{''.join(children)}</{made['root']}>"
    made["status"] = made["status"].strip().upper()
    return document.encode(), made


@FUZZ_WIRE
@given(reply=xml_replies())
def test_xml_replies_are_accepted_only_as_ok_documents_listing_every_id(canned, gateways, reply):
    body, made = reply
    answer(canned, body, "text/xml; charset=utf-8")
    explicit_error = made["root"] == "response" and made["status"] == "ERROR"
    outcomes = send_two(gateways["xml"])
    check_send(outcomes, body, "text/xml; charset=utf-8", refusal_allowed=explicit_error)
    if any(o.accepted for o in outcomes):
        assert (made["root"], made["status"], made["tag"]) == ("response", "OK", "mess")
        listed = [i.strip() for i in made["ids"]]
        assert len(listed) == 2
        assert all(o.smsc_ids == (i,) for o, i in zip(outcomes, listed, strict=True) if o.accepted)
    check_states(gateways["xml"], refusal_allowed=explicit_error)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**40), 10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=15),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
json_phones = st.one_of(
    st.sampled_from([A, B, "+" + A, int(A), "380 67 222 22 22", "380999999999", ""]), json_values
)
json_info = st.one_of(st.dictionaries(smsc_ids_or_not, json_phones, max_size=4), json_values)
json_add_info = st.one_of(
    st.dictionaries(
        st.sampled_from([A, B, "+" + A]) | st.text(max_size=12), json_values, max_size=3
    ),
    json_values,
)


@st.composite
def json_sends(draw) -> dict:
    """A ``success_request`` for a send to A and B: an ID per number, written any way."""
    made = draw(
        spoiled(
            {
                "ids": draw(st.lists(plausible_ids, min_size=2, max_size=2, unique=True)),
                "phones": (A, B),
                "add_info": None,
            },
            {
                "ids": st.lists(smsc_ids_or_not, min_size=2, max_size=2) | ids_of_any_kind,
                "phones": st.tuples(
                    *(st.sampled_from([n, int(n), "+" + n, f"{n[:3]} {n[3:]}"]) for n in (A, B))
                )
                | st.tuples(json_phones, json_phones),
                "add_info": json_add_info,
            },
        )
    )
    success: dict = {"info": dict(zip(made["ids"], made["phones"], strict=False))}
    if made["add_info"] is not None:
        success["add_info"] = made["add_info"]
    return {"success_request": success}


json_bodies = st.one_of(
    json_sends(),
    json_sends(),
    st.fixed_dictionaries(
        {
            "success_request": st.fixed_dictionaries(
                {}, optional={"info": json_info, "add_info": json_add_info}
            )
        }
    ),
    st.fixed_dictionaries({"success_request": json_values}),
    st.fixed_dictionaries(
        {}, optional={"name": json_scalars, "message": json_scalars, "status": json_scalars}
    ),
    json_values,
)


def digits(value: object) -> str:
    return "".join(c for c in str(value) if c.isdigit())


def effective_status(document: object, status: int) -> int:
    """The status a JSON reply stands for: its error object's own ``status`` (with HTTP 200
    too), else the status line."""
    if status != 200 or not isinstance(document, dict) or "success_request" in document:
        return status
    named = document.get("status")
    if isinstance(named, str) and named.isdigit():
        named = int(named)
    if (
        ("name" in document or "message" in document)
        and isinstance(named, int)
        and not isinstance(named, bool)
        and 100 <= named <= 599
    ):
        return named
    return status


@FUZZ_WIRE
@given(
    document=json_bodies,
    status=st.sampled_from([200] * 6 + [400, 401, 403, 404, 429, 500]),
    ascii_only=st.booleans(),
)
def test_json_replies_of_any_shape_and_status_end_as_the_status_and_info_say(
    canned, gateways, document, status, ascii_only
):
    body = json.dumps(document, ensure_ascii=ascii_only).encode()
    answer(canned, body, "application/json", status)
    success = document.get("success_request") if isinstance(document, dict) else None
    info = success.get("info") if isinstance(success, dict) else None
    add_info = success.get("add_info", {}) if isinstance(success, dict) else None
    said = effective_status(document, status)
    outcomes = send_two(gateways["json"])
    check_send(outcomes, body, "application/json", refusal_allowed=True)
    for outcome in outcomes:
        error, recipient = outcome.error, outcome.outgoing.recipient
        if outcome.accepted:
            assert status == 200 and isinstance(info, dict)
            assert all(digits(info[i]) == recipient for i in outcome.smsc_ids)
        elif isinstance(error, AuthenticationError):
            assert said in (401, 403)
        elif isinstance(error, RateLimited):
            assert said == 429
        elif isinstance(error, GatewayMisconfigured):
            assert said in (404, 405)
        elif isinstance(error, GatewayUnavailable):
            assert said == 503
        elif isinstance(error, ProviderRefused):
            # add_info refuses the numbers it names, or (a field name, a string) the request.
            refused = status == 200 and add_info not in (None, "", [], {})
            assert 400 <= said < 500 or refused
    check_states(gateways["json"], refusal_allowed=400 <= said < 500)
    check_balance(gateways["json"], refusal_allowed=400 <= said < 500)


JSON_EDGES = [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'{"success_request": {"info": {"1": 1' + b"0" * 5000 + b"}}}",
    b'{"success_request": {"info": {"1' + b"0" * 5000 + b'": "380501111111"}}}',
    b'{"success_request": {"info": {"1": 1e999, "2": -1e999}}}',
    b'{"success_request": {"info": {"1": NaN, "2": Infinity}}}',
    b'{"success_request": {"info": {"money": NaN, "currency": "UAH"}}}',
    b'{"success_request": {"info": {"money": 1e999999}}}',
    b'{"success_request": {"info": {"money": "8111.1700", "currency": 5}}}',
    b'{"success_request": {"info": {"\\ud800": "380501111111", "12": "380672222222"}}}',
    b'{"success_request": {"info": {"": "380501111111", "12": "380672222222"}}}',
    b'{"success_request": {"info": {"11": "380501111111", "12": "380672222222"}, "add_info": 5}}',
    b'{"success_request": {"info": {"11": 380501111111, "12": "+380 67 222 22 22"}}}',
    b'{"success_request": {"info": {"11": "380501111111", "11": "380672222222"}}}',
    b'{"success_request": null}',
    b'{"success_request": {"info": {"11": "380501111111"}}, "success_request": 1}',
    b'\xef\xbb\xbf{"success_request": {"info": {}}}',
    b'{"success_request": {"info": {"11": "380501111111", "12": "380672222222"}}}\x00',
]


@pytest.mark.parametrize("body", JSON_EDGES, ids=lambda b: b[:40].decode("utf-8", "replace"))
@pytest.mark.parametrize("status", [200, 400])
def test_json_with_deep_nesting_huge_numbers_nan_or_bad_keys_is_read_or_refused_cleanly(
    canned, gateways, body, status
):
    answer(canned, body, "application/json", status)
    check_send(send_two(gateways["json"]), body, "application/json", refusal_allowed=status == 400)
    check_states(gateways["json"], refusal_allowed=status == 400)
    check_balance(gateways["json"], refusal_allowed=status == 400)


APACHE = "http://xml.apache.org/xml-soap"


@st.composite
def soap_values(draw, name: str = "return", depth: int = 0) -> str:
    """A SOAP-encoded value as servers write them: a string, nil, an array, a Map, a reference;
    at the top, often an array of IDs or a Map of IDs to words."""
    shapes = ["string", "string", "nil", "empty", "array", "map", "href"] if depth < 3 else []
    shapes += ["ids", "ids", "report", "report"] if depth == 0 else ["string"]
    shape = draw(st.sampled_from(shapes))
    if shape == "ids":
        items = "".join(
            f'<item xsi:type="xsd:string">{xml_escape(i)}</item>' for i in draw(ids_of_any_kind)
        )
        return f'<{name} xsi:type="SOAP-ENC:Array">{items}</{name}>'
    if shape == "report":
        pairs = draw(st.lists(st.tuples(smsc_ids_or_not, words), max_size=3))
        items = "".join(
            f'<item><key xsi:type="xsd:int">{xml_escape(i)}</key>'
            f'<value xsi:type="xsd:string">{xml_escape(w)}</value></item>'
            for i, w in pairs
        )
        return f'<{name} xsi:type="ns2:Map">{items}</{name}>'
    if shape == "string":
        return f'<{name} xsi:type="xsd:string">{xml_escape(draw(smsc_ids_or_not))}</{name}>'
    if shape == "nil":
        return f'<{name} xsi:nil="true"/>'
    if shape == "empty":
        kind = draw(st.sampled_from(["SOAP-ENC:Array", "ns2:Map", "xsd:string"]))
        return f'<{name} xsi:type="{kind}"/>'
    if shape == "href":
        return f'<{name} href="{draw(st.sampled_from(["#ref1", "#nowhere", "ref1", ""]))}"/>'
    if shape == "array":
        items = draw(st.lists(soap_values("item", depth + 1), max_size=3))
        return (
            f'<{name} SOAP-ENC:arrayType="xsd:string[{len(items)}]" xsi:type="SOAP-ENC:Array">'
            f"{''.join(items)}</{name}>"
        )
    pairs = draw(
        st.lists(
            st.tuples(soap_values("key", depth + 1), soap_values("value", depth + 1)), max_size=3
        )
    )
    return (
        f'<{name} xsi:type="ns2:Map">'
        + "".join(f"<item>{k}{v}</item>" for k, v in pairs)
        + f"</{name}>"
    )


@st.composite
def soap_replies(draw) -> tuple[bytes, int]:
    """An envelope holding a result, a fault, nothing or something else; and its HTTP status."""
    ids = "".join(
        f'<item xsi:type="xsd:string">{i}</item>'
        for i in draw(st.lists(plausible_ids, min_size=2, max_size=2))
    )
    made = draw(
        spoiled(
            {
                "envelope": SOAP_ENV,
                "content": f'<ns1:sendSmsResponse><return xsi:type="SOAP-ENC:Array">{ids}'
                "</return></ns1:sendSmsResponse>",
                "extra": "",
                "status": 200,
            },
            {
                "envelope": st.sampled_from([SOAP_ENV, "http://www.w3.org/2003/05/soap-envelope"]),
                "content": st.one_of(
                    st.builds(
                        "<ns1:sendSmsResponse>{}</ns1:sendSmsResponse>".format, soap_values()
                    ),
                    st.builds(
                        "<ns1:getReportsResponse>{}</ns1:getReportsResponse>".format, soap_values()
                    ),
                    st.builds(
                        "<SOAP-ENV:Fault><faultcode>{}</faultcode><faultstring>{}</faultstring>"
                        "</SOAP-ENV:Fault>".format,
                        st.sampled_from(["SOAP-ENV:Client", "SOAP-ENV:Server", ""]),
                        xml_texts.map(xml_escape),
                    ),
                    st.sampled_from(["", "<ns1:sendSmsResponse/>"]),
                ),
                "extra": st.just('<multiRef id="ref1" xsi:type="xsd:string">77</multiRef>'),
                "status": st.sampled_from([500, 200]),
            },
        )
    )
    document = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{made["envelope"]}" '
        f'xmlns:ns1="urn:soapGateway" xmlns:xsd="{XSD}" xmlns:xsi="{XSI}" xmlns:ns2="{APACHE}" '
        f'xmlns:SOAP-ENC="{SOAP_ENC}"><SOAP-ENV:Body>{made["content"]}{made["extra"]}'
        "</SOAP-ENV:Body></SOAP-ENV:Envelope>"
    )
    return document.encode(), made["status"]


@FUZZ_WIRE
@given(reply=soap_replies())
def test_soap_replies_are_accepted_only_as_results_and_refused_only_as_faults(
    canned, gateways, reply
):
    body, status = reply
    answer(canned, body, "text/xml; charset=utf-8", status)
    fault = b"SOAP-ENV:Fault>" in body and SOAP_ENV.encode() in body
    outcomes = send_two(gateways["soap"])
    check_send(outcomes, body, "text/xml; charset=utf-8", refusal_allowed=fault)
    if any(o.accepted for o in outcomes):
        assert status == 200 and not fault
    check_states(gateways["soap"], refusal_allowed=fault)


def is_whole(kind: str, prefix: bytes, body: bytes) -> bool:
    if kind.startswith("http"):
        return b"=IDS END=" in prefix
    return prefix.strip() == body.strip()


@pytest.mark.parametrize("kind", ["http-post", "xml", "json", "soap"])
def test_every_prefix_of_a_real_reply_is_garbled_until_the_reply_is_whole(
    canned, gateways, real_replies, kind
):
    gateway = gateways[kind]
    for op in ("send", "state"):
        body, content_type = real_replies[kind][op]
        for end in range(len(body) + 1):
            prefix = body[:end]
            answer(canned, prefix, content_type)
            whole = is_whole(kind, prefix, body)
            if op == "send":
                outcomes = send_two(gateway)
                check_send(outcomes, prefix, content_type, refusal_allowed=False)
                assert [o.accepted for o in outcomes] == [whole, whole], prefix
            else:
                states = check_states(gateway, refusal_allowed=False)
                assert (states is not None) == whole, prefix


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_valid_reply_past_max_reply_bytes_is_not_read_and_one_at_the_limit_is(
    canned, gateways, real_replies, kind
):
    gateway = gateways[kind]
    for op in ("send", "state", "balance"):
        body, content_type = real_replies[kind][op]
        # Trailing spaces keep every reply valid (HTTP lists, XML, JSON, SOAP alike).
        answer(canned, body + b" " * (MAX_REPLY_BYTES - len(body) + 1), content_type)
        if op == "send":
            outcomes = send_two(gateway)
            assert all(isinstance(o.error, AmbiguousSend) for o in outcomes)
            assert f"larger than {MAX_REPLY_BYTES} bytes" in str(outcomes[0].error)
        else:
            with pytest.raises(GatewayUnavailable, match="larger than"):
                gateway.fetch_states(["1", "2"]) if op == "state" else gateway.balance()
        answer(canned, body + b" " * (MAX_REPLY_BYTES - len(body)), content_type)
        if op == "send":
            assert all(o.accepted for o in send_two(gateway))
        elif op == "state":
            assert gateway.fetch_states(["1", "2"])
        else:
            assert gateway.balance().amount > 0


# --- hostile XML ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory):
    """A local file no reply may bring into anything we show: its content is a marker."""
    path = tmp_path_factory.mktemp("xxe") / "secret.txt"
    marker = f"xxe-marker-{uuid.uuid4().hex}"
    path.write_text(marker)
    return path, marker


@pytest.fixture(scope="module")
def attacker():
    """A server an external entity or DTD may point at; no reply may make us call it."""
    server = CannedServer()
    server.reply = (b'<!ENTITY x "fetched">', "application/xml-dtd", 200)
    yield server
    server.close()


BILLION_LAUGHS = (
    '<!DOCTYPE r [<!ENTITY lol0 "lol">'
    + "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10))
    + "]>"
)
QUADRATIC = f'<!DOCTYPE r [<!ENTITY a "{"a" * 50_000}">]>'


def hostile_payloads(secret: str, attacker_url: str) -> dict[str, tuple[str, str, bool]]:
    """name -> (what goes before the root, what goes in each ID slot, refused unread)."""
    file_url = f"file://{secret}"
    xinclude = (
        f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{file_url}" parse="text"/>'
    )
    stylesheet = f'<?xml-stylesheet type="text/xsl" href="{attacker_url}/s.xsl"?>'
    return {
        "external entity (file)": (f'<!DOCTYPE r [<!ENTITY x SYSTEM "{file_url}">]>', "&x;", True),
        "external entity (http)": (
            f'<!DOCTYPE r [<!ENTITY x SYSTEM "{attacker_url}/x">]>',
            "&x;",
            True,
        ),
        "parameter entity": (
            f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{attacker_url}/p.dtd"> %p;]>',
            "&x;",
            True,
        ),
        "external DTD": (f'<!DOCTYPE r SYSTEM "{attacker_url}/r.dtd">', "11", True),
        "internal entity": ('<!DOCTYPE r [<!ENTITY x "11">]>', "&x;", True),
        "bare doctype": ("<!DOCTYPE r>", "11", True),
        "billion laughs": (BILLION_LAUGHS, "&lol9;", True),
        "quadratic blowup": (QUADRATIC, "&a;" * 2000, True),
        "undeclared entity": ("", "&x;", True),
        "deep nesting": ("", "<a>" * 100_000 + "11" + "</a>" * 100_000, True),
        # Well-formed without a DTD: read, but the inclusion and the stylesheet are not followed.
        "xinclude": ("", xinclude, False),
        "stylesheet": (stylesheet, "11", False),
    }


def hostile_document(kind: str, op: str, prolog: str, slot: str) -> bytes:
    """A reply of the XML or SOAP gateway to a send or a status query, ``slot`` in each ID."""
    pair = f"<smscid>{slot}</smscid><state>{slot}</state>"
    documents = {
        ("xml", "send"): f"<status>OK</status><ids><mess>{slot}</mess><mess>{slot}</mess></ids>",
        ("xml", "state"): f"<status>OK</status><entries><entry>{pair}</entry></entries>",
        ("soap", "send"): (
            '<ns1:sendSmsResponse><return xsi:type="SOAP-ENC:Array">'
            f"<item>{slot}</item><item>{slot}</item></return></ns1:sendSmsResponse>"
        ),
        ("soap", "state"): (
            '<ns1:getReportsResponse><return xsi:type="ns2:Map">'
            f"<item><key>{slot}</key><value>{slot}</value></item></return>"
            "</ns1:getReportsResponse>"
        ),
    }
    inner = documents[kind, op]
    if kind == "xml":
        return f'<?xml version="1.0"?>{prolog}<response>{inner}</response>'.encode()
    return (
        f'<?xml version="1.0"?>{prolog}<SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP_ENV}" '
        f'xmlns:ns1="urn:soapGateway" xmlns:xsi="{XSI}" xmlns:ns2="{APACHE}" '
        f'xmlns:SOAP-ENC="{SOAP_ENC}"><SOAP-ENV:Body>{inner}</SOAP-ENV:Body></SOAP-ENV:Envelope>'
    ).encode()


@pytest.mark.parametrize("kind", ["xml", "soap"])
def test_hostile_xml_is_never_resolved_expanded_or_fetched(
    canned, gateways, secret_file, attacker, caplog, kind
):
    caplog.set_level("DEBUG")
    path, marker = secret_file
    gateway = gateways[kind]
    for name, (prolog, slot, refused) in hostile_payloads(str(path), attacker.url).items():
        for op in ("send", "state"):
            body = hostile_document(kind, op, prolog, slot)
            answer(canned, body, "text/xml; charset=utf-8")
            started = time.monotonic()
            if op == "send":
                outcomes = send_two(gateway)
                shown = repr(outcomes)
                if refused:
                    assert all(isinstance(o.error, AmbiguousSend) for o in outcomes), name
            else:
                try:
                    shown = repr(gateway.fetch_states(["11"]))
                    assert not refused, name
                except GatewayUnavailable as exc:
                    shown = repr(exc)
            assert time.monotonic() - started < 5, name
            assert marker not in shown and "fetched" not in shown and "lollol" not in shown, name
        if refused:
            with pytest.raises(ValueError):
                parse_document(hostile_document("xml", "send", prolog, slot))
    assert marker not in caplog.text
    assert attacker.bodies == [], "a reply made the gateway fetch something"


def test_billion_laughs_and_quadratic_blowup_are_refused_unexpanded_in_milliseconds():
    for prolog, slot in ((BILLION_LAUGHS, "&lol9;"), (QUADRATIC, "&a;" * 2000)):
        document = f"{prolog}<r>{slot}</r>".encode()
        started = time.monotonic()
        with pytest.raises(ValueError, match="DOCTYPE|entity"):
            parse_document(document)
        assert time.monotonic() - started < 0.5


# --- the emulator's request parsers -----------------------------------------------------------

PATHS = sorted([*emulator_server.ROUTES, *emulator_server.DISPATCH])
form_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            DEFAULT_USERNAME,
            DEFAULT_PASSWORD,
            "Shop",
            "380501234567;0501234567",
            ";;",
            b64encode(b"hi").decode(),
            b64encode("Привіт".encode("cp1251")).decode(),
            b64encode(b"\x98\x00").decode(),
            "not base64 ***",
            "1;2;3",
        ]
    ),
)
form_bodies = st.dictionaries(
    st.sampled_from(["username", "password", "from", "to", "text", "smscid", "xmlrequest", "x"]),
    form_values,
    max_size=7,
).map(urlencode)


@st.composite
def xml_requests(draw) -> str:
    root = draw(st.sampled_from(["request_sendsms", "request_getstate", "other"]))
    tags = ["username", "password", "from", "to", "text", "smscid", "smssid"]
    fields = draw(st.lists(st.tuples(st.sampled_from(tags), form_values), max_size=8))
    quote = cdata if draw(st.booleans()) else xml_escape
    space = draw(st.sampled_from(["", "", " ", "\n"]))
    body = space.join(f"<{tag}>{quote(value)}</{tag}>" for tag, value in fields)
    prolog = draw(st.sampled_from(["", "<?xml version='1.0' encoding='utf-8'?>", BILLION_LAUGHS]))
    return urlencode({"xmlrequest": f"{prolog}<{root}>{body}</{root}>"})


@st.composite
def soap_requests(draw) -> str:
    operation = draw(st.sampled_from(["sendSms", "getReports", "deleteAll"]))
    names = draw(
        st.sampled_from(
            [
                ["login", "password", "alphaName", "destAddr", "text"],
                ["login", "password", "smcIds"],
                ["a", "b", "c", "d", "e"],
            ]
        )
    )
    arguments = []
    for name in names:
        fixed = {"login": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD, "alphaName": "Shop"}
        if name in fixed and draw(st.booleans()):
            arguments.append(f"<{name}>{fixed[name]}</{name}>")
        else:
            arguments.append(draw(soap_values(name)))
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP_ENV}" '
        f'xmlns:ns1="urn:soapGateway" xmlns:xsd="{XSD}" xmlns:xsi="{XSI}" xmlns:ns2="{APACHE}" '
        f'xmlns:SOAP-ENC="{SOAP_ENC}"><SOAP-ENV:Body><ns1:{operation}>{"".join(arguments)}'
        f"</ns1:{operation}></SOAP-ENV:Body></SOAP-ENV:Envelope>"
    )


json_requests = st.one_of(
    st.dictionaries(
        st.sampled_from(["phone", "message", "src_addr", "id_sms", "x"]),
        st.one_of(
            json_values,
            st.lists(
                st.sampled_from(["380501234567", "0501234567", "+380501234567", 5]), max_size=4
            ),
            st.sampled_from(["Shop", "hi", "\ud800", "x" * 2000]),
        ),
        max_size=4,
    ).map(lambda d: json.dumps(d)),
    json_values.map(json.dumps),
)
request_bodies = st.one_of(
    st.binary(max_size=500),
    form_bodies.map(str.encode),
    xml_requests().map(str.encode),
    soap_requests().map(str.encode),
    json_requests.map(str.encode),
)


@settings(FUZZ, max_examples=300)
@given(
    path=st.sampled_from(PATHS),
    method=st.sampled_from(["POST", "POST", "GET", "PUT"]),
    body=request_bodies,
    query=st.one_of(st.text(max_size=40), form_bodies),
    token=st.sampled_from([DEFAULT_TOKEN, "", "wrong"]),
)
def test_the_emulator_answers_any_request_with_a_reply_never_a_crash(
    path, method, body, query, token
):
    state = State()
    state.json_rate_limit = None
    headers = {"authorization": f"Bearer {token}", "host": "127.0.0.1:1"}
    request = Request(method, path, query, body, headers)
    route = emulator_server.ROUTES.get(path) or emulator_server.DISPATCH[path](request)
    logged = scrub(route.log_params(request), state.secrets())
    assert DEFAULT_PASSWORD not in repr(logged) and DEFAULT_TOKEN not in repr(logged)
    reply = route.handle(state, request)
    assert 200 <= reply.status < 600 and isinstance(reply.body, bytes)
    # PHP's SoapServer answers a fault with HTTP 500; any other 500 would be a crash.
    assert reply.status != 500 or (route.gateway == "soap" and b"SOAP-ENV:Fault" in reply.body)


@settings(FUZZ, max_examples=60)
@given(path=st.sampled_from([*PATHS, "/", "/sms/nothing"]), body=request_bodies)
def test_the_emulator_server_never_answers_500_but_for_soap_faults(emulator, path, body):
    response = requests.post(emulator.url + path, data=body, timeout=10)
    assert response.status_code != 500 or path == ENDPOINT_PATH
    if response.status_code == 500:
        assert b"SOAP-ENV:Fault" in response.content


@pytest.fixture(scope="module")
def emulator():
    with Emulator() as running:
        running.json_rate_limit = None
        yield running


# --- campaign templates (issue 12) -----------------------------------------------------------

_TEMPLATE_TEXT = st.text(
    alphabet=st.sampled_from(list("{}!:.[]0ar>5 xя_")) | st.characters(), max_size=60
)


@FUZZ
@given(
    template=_TEMPLATE_TEXT,
    values=st.dictionaries(
        st.sampled_from(["a", "r", "x", "a_5"]),
        st.text(max_size=40) | st.integers() | st.text(min_size=1000, max_size=1200),
    ),
)
def test_a_template_is_plain_names_or_refused_and_renders_bounded(template, values):
    names, problem = templates.placeholders(template)
    if problem is not None:
        assert names == []
        return
    assert all(name.isidentifier() for name in names)
    pieces, _ = templates.parse(template)
    body, why = templates.render(pieces, values)
    if why is None:
        assert len(body) <= templates.MAX_RENDERED_LENGTH
        assert body == template.format_map(values)
    else:
        assert body == ""
