"""SMS text rules: alphabet, parts, limits, Windows-1251 fitness and sender names."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from django_smsclub import text
from django_smsclub.exceptions import InvalidMessage, SmsClubError
from django_smsclub.text import Alphabet

ASCII_CHARS = [chr(c) for c in range(0x01, 0x7F)]
EMOJI = "\U0001f600"  # 😀, beyond U+FFFF: two UTF-16 units

ascii_chars = st.characters(min_codepoint=0x01, max_codepoint=0x7E)
non_ascii_chars = st.characters(blacklist_categories=["Cs"]).filter(
    lambda c: not 0x01 <= ord(c) <= 0x7E
)


def units(s: str) -> int:
    """UTF-16 code units, as the provider counts a Unicode text."""
    return len(s.encode("utf-16-le")) // 2


@st.composite
def unicode_texts(draw, max_size: int = 500) -> str:
    """A text with at least one character outside 0x01-0x7E."""
    body = draw(st.text(max_size=max_size))
    char = draw(non_ascii_chars)
    at = draw(st.integers(min_value=0, max_value=len(body)))
    return body[:at] + char + body[at:]


# --- alphabet ---------------------------------------------------------------------------------


def test_every_character_from_0x01_to_0x7e_is_ascii():
    for char in ASCII_CHARS:
        assert text.alphabet(char) is Alphabet.ASCII, hex(ord(char))
        assert text.alphabet("a" + char + "z") is Alphabet.ASCII, hex(ord(char))
    assert text.alphabet("".join(ASCII_CHARS)) is Alphabet.ASCII


@pytest.mark.parametrize(
    "char",
    ["\x00", "\x7f", "\x80", "\xa0", "é", "я", "і", "ї", "є", "ґ", "€", "№", "中", EMOJI, "\ufeff"],
)
def test_characters_outside_0x01_to_0x7e_are_unicode(char):
    assert text.alphabet(char) is Alphabet.UNICODE
    assert text.alphabet("Hello " + char) is Alphabet.UNICODE
    assert text.alphabet(char + "Hello") is Alphabet.UNICODE


def test_alphabet_is_a_str_enum():
    assert Alphabet.ASCII == "ascii"
    assert Alphabet.UNICODE == "unicode"


@given(st.text(alphabet=ascii_chars, min_size=1, max_size=300))
def test_any_text_of_0x01_to_0x7e_is_ascii(s):
    assert text.alphabet(s) is Alphabet.ASCII
    assert text.describe(s).alphabet is Alphabet.ASCII


@given(unicode_texts())
def test_any_text_with_one_other_character_is_unicode(s):
    assert text.alphabet(s) is Alphabet.UNICODE
    assert text.describe(s).alphabet is Alphabet.UNICODE


# --- parts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "parts"),
    [
        (1, 1),
        (159, 1),
        (160, 1),
        (161, 2),
        (305, 2),
        (306, 2),
        (307, 3),
        (459, 3),
        (460, 4),
        (612, 4),
        (613, 5),
        (765, 5),
        (766, 6),
        (918, 6),
        (919, 7),
        (1070, 7),
        (1071, 7),
    ],
)
def test_ascii_parts_at_every_boundary(length, parts):
    s = "a" * length
    assert text.count_parts(s) == parts
    info = text.check_text(s)
    assert info.parts == parts
    assert info.length == length
    assert info.alphabet is Alphabet.ASCII
    assert info.per_part == (160 if parts == 1 else 153)
    assert info.max_length == 1071


@pytest.mark.parametrize(
    ("length", "parts"),
    [
        (1, 1),
        (69, 1),
        (70, 1),
        (71, 2),
        (133, 2),
        (134, 2),
        (135, 3),
        (201, 3),
        (202, 4),
        (268, 4),
        (269, 5),
        (335, 5),
        (336, 6),
        (402, 6),
        (403, 7),
        (468, 7),
        (469, 7),
    ],
)
def test_unicode_parts_at_every_boundary(length, parts):
    s = "я" * length
    assert text.count_parts(s) == parts
    info = text.check_text(s)
    assert info.parts == parts
    assert info.length == length
    assert info.alphabet is Alphabet.UNICODE
    assert info.per_part == (70 if parts == 1 else 67)
    assert info.max_length == 469


def test_one_non_ascii_character_switches_the_whole_text_to_unicode_parts():
    assert text.count_parts("a" * 160) == 1
    assert text.count_parts("a" * 159 + "я") == 3  # 160 units of 67
    assert text.count_parts("a" * 69 + "я") == 1
    assert text.count_parts("a" * 70 + "\x7f") == 2  # DEL is not ASCII here


def test_ascii_text_over_1071_is_refused():
    text.check_text("a" * 1071)
    with pytest.raises(InvalidMessage):
        text.check_text("a" * 1072)
    assert text.text_problem("a" * 1072) is not None
    assert text.text_problem("a" * 1071) is None


def test_unicode_text_over_469_is_refused():
    text.check_text("я" * 469)
    with pytest.raises(InvalidMessage):
        text.check_text("я" * 470)


def test_too_long_ascii_error_names_length_limit_and_why():
    with pytest.raises(InvalidMessage) as excinfo:
        text.check_text("a" * 1072)
    message = str(excinfo.value)
    assert "1072" in message
    assert "1071" in message
    assert "ASCII" in message
    assert "153" in message
    assert "7 parts" in message
    assert excinfo.value.problems == [message]


def test_too_long_unicode_error_names_length_limit_and_why():
    with pytest.raises(InvalidMessage) as excinfo:
        text.check_text("я" * 470)
    message = str(excinfo.value)
    assert "470" in message
    assert "469" in message
    assert "non-ASCII" in message
    assert "67" in message


def test_too_long_error_shows_a_short_preview_not_the_whole_text():
    message = text.text_problem("b" * 5000)
    assert message is not None
    assert "b" * 100 not in message
    assert "5000" in message


# --- UTF-16 units -----------------------------------------------------------------------------


def test_an_emoji_counts_two_units():
    assert text.describe(EMOJI).length == 2
    assert text.describe(EMOJI * 35).length == 70
    assert text.count_parts(EMOJI * 35) == 1
    assert text.count_parts(EMOJI * 35 + "a") == 2
    assert text.count_parts("я" * 69 + EMOJI) == 2
    assert text.count_parts("я" * 68 + EMOJI) == 1
    assert text.count_parts(EMOJI * 67) == 2  # 134 units
    assert text.count_parts(EMOJI * 68) == 3  # 136 units


def test_emoji_limit_is_in_units():
    assert text.check_text(EMOJI * 234 + "я").length == 469
    assert text.check_text(EMOJI * 234 + "я").parts == 7
    with pytest.raises(InvalidMessage) as excinfo:
        text.check_text(EMOJI * 235)  # 235 characters, 470 units
    assert "470" in str(excinfo.value)
    assert "469" in str(excinfo.value)


def test_bmp_characters_count_one_unit():
    assert text.describe("ї" * 70).length == 70
    assert text.describe("中" * 70).parts == 1


@given(st.text(alphabet=ascii_chars, min_size=1, max_size=1200))
def test_ascii_parts_property(s):
    n = len(s)
    expected = 1 if n <= 160 else math.ceil(n / 153)
    info = text.describe(s)
    assert info.length == n
    assert info.parts == expected == text.count_parts(s)
    assert info.per_part == (160 if n <= 160 else 153)
    assert (text.text_problem(s) is None) == (n <= 1071 and bool(s.strip()))


@given(unicode_texts(max_size=600))
def test_unicode_parts_property(s):
    n = units(s)
    expected = 1 if n <= 70 else math.ceil(n / 67)
    info = text.describe(s)
    assert info.length == n
    assert info.parts == expected == text.count_parts(s)
    assert info.per_part == (70 if n <= 70 else 67)
    if n > 469:
        assert text.text_problem(s) is not None
        assert str(n) in text.text_problem(s)


@given(st.text(min_size=1, max_size=1200))
def test_check_text_agrees_with_text_problem(s):
    problem = text.text_problem(s)
    if problem is None:
        info = text.check_text(s)
        assert 1 <= info.parts <= 7
        assert info.length <= info.max_length
    else:
        with pytest.raises(InvalidMessage) as excinfo:
            text.check_text(s)
        assert str(excinfo.value) == problem


# --- what is not a text -----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", " ", "\n\t  "])
def test_empty_text_is_refused(value):
    with pytest.raises(InvalidMessage) as excinfo:
        text.check_text(value)
    assert "empty" in str(excinfo.value)


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(None, "NoneType"), (123, "int"), (b"hello", "bytes"), (["hi"], "list")],
)
def test_non_string_text_is_refused(value, type_name):
    with pytest.raises(InvalidMessage) as excinfo:
        text.check_text(value)
    assert type_name in str(excinfo.value)
    assert "string" in str(excinfo.value)
    assert text.text_problem(value) == str(excinfo.value)


def test_nul_is_refused():
    with pytest.raises(InvalidMessage, match="NUL"):
        text.check_text("hello\x00world")


def test_invalid_message_is_a_value_error_and_an_smsclub_error():
    with pytest.raises(ValueError):
        text.check_text("")
    with pytest.raises(SmsClubError):
        text.check_text("")


# --- Windows-1251 -----------------------------------------------------------------------------

UKRAINIAN = "Привіт! Їжак, єнот і ґанок. ІЇЄҐ іїєґ — №5, 100 €"


def test_cyrillic_with_ukrainian_letters_fits_cp1251():
    assert text.fits_cp1251(UKRAINIAN)
    assert text.unencodable_cp1251(UKRAINIAN) == []
    assert text.check_text(UKRAINIAN, cp1251=True).alphabet is Alphabet.UNICODE


def test_ascii_fits_cp1251():
    assert text.fits_cp1251("".join(ASCII_CHARS))


@pytest.mark.parametrize("char", [EMOJI, "中", "ł", "ß", "\u200d"])
def test_characters_outside_cp1251_do_not_fit(char):
    assert not text.fits_cp1251("Привіт " + char)
    assert text.unencodable_cp1251("Привіт " + char) == [char]


def test_unencodable_lists_distinct_characters_in_order():
    s = "a😀b中😀c中ł"
    assert text.unencodable_cp1251(s) == ["😀", "中", "ł"]


def test_cp1251_check_names_the_bad_characters():
    s = "Привіт 😀 中"
    text.check_text(s)  # fine for the XML and JSON gateways
    with pytest.raises(InvalidMessage) as excinfo:
        text.check_text(s, cp1251=True)
    message = str(excinfo.value)
    assert "😀" in message
    assert "U+1F600" in message
    assert "中" in message
    assert "U+4E2D" in message
    assert "Windows-1251" in message
    assert text.text_problem(s, cp1251=True) == message
    assert text.text_problem(s) is None


def test_cp1251_check_says_how_many_more_bad_characters_there_are():
    s = "".join(chr(0x4E00 + i) for i in range(8))
    message = text.text_problem(s, cp1251=True)
    assert message is not None
    assert "and 3 more" in message


def test_cp1251_check_passes_a_text_that_fits():
    assert text.text_problem(UKRAINIAN, cp1251=True) is None


@given(st.text(max_size=200))
def test_fits_cp1251_matches_the_codec(s):
    try:
        s.encode("cp1251")
    except UnicodeEncodeError:
        fits = False
    else:
        fits = True
    assert text.fits_cp1251(s) is fits
    bad = text.unencodable_cp1251(s)
    assert (bad == []) is fits
    assert len(bad) == len(set(bad))
    for char in bad:
        assert char in s
        with pytest.raises(UnicodeEncodeError):
            char.encode("cp1251")


# --- sender names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sender",
    [
        "Shop",
        "A",
        "ABCDEFGHIJK",
        "Shop 24",
        "0123456789",
        "My Shop",
        # Registered on SMSClub: test_an (provider's json_sms/originator_create.php), club_bulk.
        "test_an",
        "club_bulk",
        "SMS CLUB",
        # Allowed by long-lived clients' rules: [a-zA-Z0-9\s.]{1,11}, [\w\s.-]{1,11}.
        "Shop.ua",
        "Shop-1",
        "A.B-C_D 9",
    ],
)
def test_valid_senders(sender):
    assert text.sender_problem(sender) is None
    assert text.check_sender(sender) == sender


def test_twelve_character_sender_is_refused_naming_it():
    with pytest.raises(InvalidMessage) as excinfo:
        text.check_sender("ABCDEFGHIJKL")
    message = str(excinfo.value)
    assert "'ABCDEFGHIJKL'" in message
    assert "12" in message
    assert "11" in message


@pytest.mark.parametrize(
    "sender",
    [
        "Магазин",
        "Shopі",
        "Shop!",
        "Shop@1",
        "Shop+1",
        "Shop\n",
        "Shop\t",
        "Café",
        "Shop🙂",
        "Sh/op",
    ],
)
def test_sender_with_other_characters_is_refused_naming_them(sender):
    with pytest.raises(InvalidMessage) as excinfo:
        text.check_sender(sender)
    message = str(excinfo.value)
    assert repr(sender) in message
    assert "Latin letters, digits, spaces, '.', '-' and '_'" in message


def test_cyrillic_sender_error_names_the_bad_characters():
    message = text.sender_problem("Shopі")
    assert message is not None
    assert "'і'" in message


@pytest.mark.parametrize("sender", ["", "   "])
def test_empty_sender_is_refused(sender):
    with pytest.raises(InvalidMessage, match="empty"):
        text.check_sender(sender)


@pytest.mark.parametrize("sender", [None, 42, b"Shop"])
def test_non_string_sender_is_refused(sender):
    with pytest.raises(InvalidMessage, match="string"):
        text.check_sender(sender)


@given(st.text(alphabet="ABCxyz019 ._-", min_size=1, max_size=11))
def test_any_short_latin_sender_is_valid(sender):
    assume(sender.strip())
    assert text.sender_problem(sender) is None


@given(st.text(alphabet="ABCxyz019 ._-", min_size=12, max_size=30))
def test_any_long_sender_is_refused(sender):
    problem = text.sender_problem(sender)
    assert problem is not None
    assert str(len(sender)) in problem


@given(st.text(max_size=11), non_ascii_chars)
def test_any_sender_with_a_non_latin_character_is_refused(prefix, char):
    assert text.sender_problem((prefix + char)[-11:]) is not None


# --- split_parts ------------------------------------------------------------------------------


def test_single_part_text_is_one_piece():
    assert text.split_parts("a" * 160) == ["a" * 160]
    assert text.split_parts("я" * 70) == ["я" * 70]
    assert text.split_parts(EMOJI * 35) == [EMOJI * 35]


def test_ascii_split():
    s = "".join(chr(0x30 + i % 40) for i in range(307))
    parts = text.split_parts(s)
    assert [len(p) for p in parts] == [153, 153, 1]
    assert "".join(parts) == s


def test_unicode_split():
    s = "я" * 135
    assert [len(p) for p in text.split_parts(s)] == [67, 67, 1]


def test_emoji_split_counts_units_and_never_cuts_an_emoji():
    s = EMOJI * 40  # 80 units: two parts
    parts = text.split_parts(s)
    assert "".join(parts) == s
    assert [units(p) for p in parts] == [66, 14]
    assert all(p for p in parts)
    s = "я" * 66 + EMOJI + "я" * 10  # the emoji would straddle the boundary
    parts = text.split_parts(s)
    assert parts == ["я" * 66, EMOJI + "я" * 10]


@given(st.text(min_size=1, max_size=1200))
def test_split_parts_joins_back_and_respects_per_part(s):
    info = text.describe(s)
    parts = text.split_parts(s)
    assert "".join(parts) == s
    assert all(parts)
    for part in parts:
        assert text.describe(part).length <= info.per_part
        assert units(part) <= info.per_part
    if not any(ord(c) > 0xFFFF for c in s):
        assert len(parts) == info.parts
    else:
        assert len(parts) >= info.parts
