"""Message statuses, the provider's status words and how part statuses add up."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from django_smsclub import status
from django_smsclub.status import Status

#: The provider's words (PROTOCOL.md, "Status words") and what each means to us.
PROTOCOL_WORDS = {
    "ENROUTE": Status.SENT,
    "ACCEPTD": Status.SENT,
    "ACCEPTE": Status.SENT,
    "DELIVRD": Status.DELIVERED,
    "UNDELIV": Status.UNDELIVERED,
    "EXPIRED": Status.EXPIRED,
    "REJECTD": Status.REJECTED,
    "FAILED": Status.FAILED,
    "DELETED": Status.FAILED,
    "NOREPORT": Status.SENT,
}
TERMINAL_WORDS = {"DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "FAILED", "DELETED"}

FINAL = {"delivered", "undelivered", "expired", "rejected", "failed", "cancelled", "unknown"}
NOT_FINAL = {"queued", "sending", "sent"}
FAILURES = {"undelivered", "expired", "rejected", "failed", "unknown"}


def _variants(word: str) -> list[str]:
    return [
        word,
        word.lower(),
        word.capitalize(),
        word[0].lower() + word[1:],
        f"  {word}  ",
        f"\t{word.lower()}\n",
        f"{word}\r\n",
    ]


@pytest.mark.parametrize(
    ("word", "variant"),
    [(w, v) for w in PROTOCOL_WORDS for v in _variants(w)],
)
def test_every_protocol_word_maps_in_any_case_and_padding(word, variant):
    result = status.status_from_word(variant)
    assert result == PROTOCOL_WORDS[word]
    assert type(result) is Status


def test_terminal_words_give_final_statuses():
    for word, mapped in PROTOCOL_WORDS.items():
        assert status.is_final(mapped) is (word in TERMINAL_WORDS), word


@pytest.mark.parametrize(("word", "mapped"), list(status.PROVIDER_WORDS.items()))
def test_every_known_word_maps_case_insensitively(word, mapped):
    assert status.status_from_word(word) == mapped
    assert status.status_from_word(word.lower()) == mapped
    assert status.status_from_word(f" {word.swapcase()} ") == mapped


def test_provider_words_cover_the_protocol():
    for word, mapped in PROTOCOL_WORDS.items():
        assert status.PROVIDER_WORDS[word] == mapped
    assert all(word == word.upper() for word in status.PROVIDER_WORDS)


@pytest.mark.parametrize(
    "word",
    [
        "2165-05-28 21:14:21",
        "неверно указан id",
        "Неверно указан ID",
        "",
        "   ",
        None,
        "DELIVRD!",
        "DELIV RD",
        "DELIVRD2",
        "xDELIVRD",
        "delivrd delivrd",
        "delıvrd",  # dotless i: upper() would make it DELIVRD
        "ſtatus",
        "\x00",
        "ok",
        42,
        4.2,
        ["DELIVRD"],
        {"state": "DELIVRD"},
        b"\xff\xfe",
    ],
)
def test_unknown_words_mean_sent_and_never_crash(word):
    result = status.status_from_word(word)
    assert result is Status.SENT


#: The JSON API's Russian words: the provider's PHP SDK, src/Handlers/StatusHandler.php.
SDK_RUSSIAN_WORDS = {
    "Ожидает отправки": Status.SENT,
    "Отправлено": Status.SENT,
    "Доставлено": Status.DELIVERED,
    "Просрочено": Status.EXPIRED,
    "Недоставляемое": Status.UNDELIVERED,
    "Отклонено": Status.REJECTED,
}


@pytest.mark.parametrize(("word", "mapped"), list(SDK_RUSSIAN_WORDS.items()))
def test_russian_status_words_of_the_json_api_map_in_any_case_and_padding(word, mapped):
    assert status.status_from_word(word) is mapped
    assert status.status_from_word(f"  {word.upper()}\n") is mapped
    assert status.status_from_word(word.lower().replace(" ", "  ")) is mapped
    assert status.status_from_word(word.encode()) is mapped


def test_russian_words_without_a_public_source_are_kept_as_guesses():
    assert status.status_from_word("Не доставлено") is Status.UNDELIVERED
    assert status.status_from_word("В очереди") is Status.SENT


def test_an_unknown_word_is_logged_once_per_process(caplog):
    word = "NEWWORD-7f3a"
    with caplog.at_level("WARNING", logger="django_smsclub.status"):
        for _ in range(5):
            assert status.status_from_word(word) is Status.SENT
        assert status.status_from_word(" Новое слово 7f3a ") is Status.SENT
        assert status.status_from_word("неверно указан id") is Status.SENT
    logged = [r.getMessage() for r in caplog.records]
    assert len([line for line in logged if word in line]) == 1
    assert len([line for line in logged if "Новое слово 7f3a" in line]) == 1
    assert not [line for line in logged if "неверно указан id" in line]


def test_bytes_are_read_as_text():
    assert status.status_from_word(b"DELIVRD") is Status.DELIVERED
    assert status.status_from_word(b" undeliv ") is Status.UNDELIVERED


@given(st.text())
def test_any_text_maps_to_a_status_and_unknown_text_to_sent(word):
    result = status.status_from_word(word)
    assert type(result) is Status
    stripped = " ".join(word.split())
    if stripped.isascii() and stripped.upper() in status.PROVIDER_WORDS:
        assert result == status.PROVIDER_WORDS[stripped.upper()]
    elif stripped.casefold() in status.PROVIDER_WORDS_RU:
        assert result == status.PROVIDER_WORDS_RU[stripped.casefold()]
    else:
        assert result is Status.SENT


@given(st.sampled_from(sorted(status.PROVIDER_WORDS)), st.data())
def test_any_casing_of_a_known_word(word, data):
    flips = data.draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    cased = "".join(c.lower() if f else c for c, f in zip(word, flips, strict=True))
    padding = data.draw(st.text(alphabet=" \t\r\n", max_size=3))
    assert status.status_from_word(padding + cased + padding) == status.PROVIDER_WORDS[word]


# --- final statuses ---------------------------------------------------------------------------


def test_final_statuses_are_exactly_the_designed_ones():
    assert set(status.FINAL_STATUSES) == FINAL
    assert {s.value for s in Status} == FINAL | NOT_FINAL


def test_failure_statuses_are_the_final_ones_that_did_not_reach_the_person():
    assert set(status.FAILURE_STATUSES) == FAILURES
    assert status.FAILURE_STATUSES <= status.FINAL_STATUSES


@pytest.mark.parametrize("value", sorted(FINAL))
def test_is_final(value):
    assert status.is_final(value)
    assert status.is_final(Status(value))


@pytest.mark.parametrize("value", [*sorted(NOT_FINAL), "ENROUTE", "", "whatever"])
def test_is_not_final(value):
    assert not status.is_final(value)


def test_status_values_and_labels():
    assert Status.SENT == "sent"
    assert Status.DELIVERED.label == "delivered"
    assert Status("undelivered") is Status.UNDELIVERED


# --- aggregation of parts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([], Status.SENT),
        (["delivered"], Status.DELIVERED),
        (["delivered"] * 7, Status.DELIVERED),
        (["sent"], Status.SENT),
        (["delivered", "sent"], Status.SENT),
        (["delivered", "queued"], Status.SENT),
        (["delivered", "sending"], Status.SENT),
        (["rejected", "sent"], Status.SENT),  # one part may still arrive
        (["failed", "sent", "delivered"], Status.SENT),
        (["delivered", "undelivered"], Status.UNDELIVERED),
        (["undelivered", "delivered", "delivered"], Status.UNDELIVERED),
        (["delivered", "expired"], Status.EXPIRED),
        (["delivered", "rejected"], Status.REJECTED),
        (["delivered", "failed"], Status.FAILED),
        (["delivered", "unknown"], Status.UNKNOWN),
        (["delivered", "cancelled"], Status.CANCELLED),
        (["cancelled", "cancelled"], Status.CANCELLED),
        (["expired", "rejected"], Status.REJECTED),
        (["rejected", "expired"], Status.REJECTED),
        (["expired", "undelivered"], Status.UNDELIVERED),
        (["undelivered", "failed"], Status.FAILED),
        (["failed", "rejected"], Status.REJECTED),
        (["unknown", "expired"], Status.EXPIRED),
        (["unknown", "cancelled"], Status.UNKNOWN),
        (["unknown", "expired", "undelivered", "failed", "rejected"], Status.REJECTED),
        (["unknown", "expired", "undelivered", "failed"], Status.FAILED),
        (["unknown", "expired", "undelivered"], Status.UNDELIVERED),
    ],
)
def test_aggregate(parts, expected):
    for order in {tuple(p) for p in itertools.permutations(parts)} or {()}:
        result = status.aggregate(order)
        assert result == expected, order
        assert type(result) is Status, order
        # the same with Status members instead of plain strings
        result = status.aggregate(Status(s) for s in order)
        assert result == expected, order
        assert type(result) is Status, order


def test_aggregate_returns_a_status_in_every_branch():
    for parts in ([], ["sent"], ["delivered"], ["rejected"], ["delivered", "expired"]):
        assert type(status.aggregate(parts)) is Status


def test_failure_order_runs_from_least_to_most_telling():
    order = [Status.UNKNOWN, Status.EXPIRED, Status.UNDELIVERED, Status.FAILED, Status.REJECTED]
    for weaker, stronger in itertools.combinations(order, 2):
        assert status.aggregate([weaker, stronger]) is stronger
        assert status.aggregate([stronger, weaker, Status.DELIVERED]) is stronger


statuses = st.sampled_from([s.value for s in Status])


@given(st.lists(statuses, max_size=8))
def test_aggregate_properties(parts):
    result = status.aggregate(parts)
    assert type(result) is Status
    assert result == status.aggregate(reversed(parts))
    if not parts or any(p not in FINAL for p in parts):
        assert result is Status.SENT
    elif all(p == "delivered" for p in parts):
        assert result is Status.DELIVERED
    else:
        assert result in parts
        assert result != Status.DELIVERED
        assert result in FINAL
