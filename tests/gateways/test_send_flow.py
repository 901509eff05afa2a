"""The fixed flow of ``Gateway.send``, over the in-memory gateway.

The services call it once per claimed batch: each message from its own sender, a malformed
message refused alone with ``skip_invalid``, one request per sender and text, and the batch
stopped after a request fails for a reason other than a refusal, whatever the sender.
"""

from __future__ import annotations

import pytest

from django_smsclub.exceptions import (
    AmbiguousSend,
    GatewayUnavailable,
    InvalidMessage,
    ProviderRefused,
)
from django_smsclub.gateways import Outgoing, locmem
from django_smsclub.gateways.locmem import LocmemGateway
from tests.support.scripted import ScriptedGateway

A, B, C, D = "380501111111", "380672222222", "380933333333", "380504444444"


def scripted() -> ScriptedGateway:
    return ScriptedGateway("default", SENDER="Default")


def sent() -> list[tuple[str, str]]:
    return [(sms.recipient, sms.sender) for sms in locmem.outbox]


def test_each_message_goes_from_its_own_sender_else_from_the_calls():
    outcomes = LocmemGateway("default", SENDER="Default").send(
        "Shop", [Outgoing(A, "hi"), Outgoing(B, "hi", sender="Other"), Outgoing(C, "hi")]
    )
    assert all(o.accepted for o in outcomes)
    assert sorted(sent()) == sorted([(A, "Shop"), (B, "Other"), (C, "Shop")])


def test_the_gateways_own_sender_is_used_when_neither_names_one():
    [outcome] = LocmemGateway("default", SENDER="Default").send(None, [Outgoing(A, "hi")])
    assert outcome.accepted and sent() == [(A, "Default")]


def test_outcomes_come_back_in_the_given_order_whatever_the_requests(gateway_script):
    messages = [Outgoing(A, "hi", ref=1, sender="Other"), Outgoing(B, "hi", ref=2)]
    messages += [Outgoing(C, "bye", ref=3, sender="Other"), Outgoing(D, "hi", ref=4)]
    outcomes = scripted().send("Shop", messages)
    assert [o.outgoing for o in outcomes] == messages
    assert all(o.accepted for o in outcomes)


def test_two_senders_in_one_call_make_separate_requests(gateway_script):
    scripted().send(
        "Shop", [Outgoing(A, "hi"), Outgoing(B, "hi", sender="Other"), Outgoing(C, "hi")]
    )
    assert gateway_script.sent() == [[A, C], [B]]


def test_before_request_runs_before_the_request_of_each_sender(gateway_script):
    made_before = []
    scripted().send(
        "Shop",
        [Outgoing(A, "hi"), Outgoing(B, "hi", sender="Other")],
        before_request=lambda: made_before.append(len(gateway_script.sent())),
    )
    assert made_before == [0, 1]


def test_with_skip_invalid_a_malformed_message_fails_alone(gateway_script):
    good, bad_number, bad_text, bad_sender, also_good = scripted().send(
        "Shop",
        [
            Outgoing(A, "hi"),
            Outgoing("12345", "hi"),
            Outgoing(B, ""),
            Outgoing(C, "hi", sender="Bad-Sender!"),
            Outgoing(D, "hi"),
        ],
        skip_invalid=True,
    )
    assert good.accepted and also_good.accepted
    for outcome, named in [(bad_number, "12345"), (bad_text, "empty"), (bad_sender, "Bad-Sender!")]:
        assert isinstance(outcome.error, InvalidMessage)
        assert len(outcome.error.problems) == 1 and named in str(outcome.error)
    assert gateway_script.sent() == [[A, D]]
    assert sorted(sent()) == [(A, "Shop"), (D, "Shop")]


def test_without_skip_invalid_one_bad_message_fails_the_call_before_any_request(gateway_script):
    with pytest.raises(InvalidMessage, match="Bad-Sender!") as info:
        scripted().send("Shop", [Outgoing(A, "hi"), Outgoing("12345", "hi", sender="Bad-Sender!")])
    assert len(info.value.problems) == 2
    assert gateway_script.sent() == []


def test_a_bad_sender_of_the_call_does_not_fail_messages_with_their_own():
    [outcome] = LocmemGateway("default").send("Bad-Sender!", [Outgoing(A, "hi", sender="Shop")])
    assert outcome.accepted and sent() == [(A, "Shop")]


def test_a_failure_in_the_first_senders_request_stops_the_second_senders(gateway_script):
    gateway_script.send = [GatewayUnavailable("down", gateway="default")]
    first, other, third = scripted().send(
        "Shop", [Outgoing(A, "hi"), Outgoing(B, "hi", sender="Other"), Outgoing(C, "hi")]
    )
    assert first.error is third.error and str(first.error) == "down"
    assert isinstance(other.error, GatewayUnavailable) and "not attempted" in str(other.error)
    assert gateway_script.sent() == [[A, C]]
    assert locmem.outbox == []


def test_a_refusal_does_not_stop_the_other_senders_requests(gateway_script):
    gateway_script.send = [ProviderRefused("no such alpha-name", gateway="default")]
    refused, other = scripted().send("Shop", [Outgoing(A, "hi"), Outgoing(B, "hi", sender="Other")])
    assert isinstance(refused.error, ProviderRefused)
    assert other.accepted and sent() == [(B, "Other")]


def test_a_crash_in_send_batch_is_ambiguous_and_stops_the_batch(gateway_script):
    gateway_script.send = [RuntimeError("a defect")]
    crashed, other = scripted().send("Shop", [Outgoing(A, "hi"), Outgoing(B, "hi", sender="Other")])
    assert isinstance(crashed.error, AmbiguousSend) and crashed.error.may_have_sent
    assert isinstance(other.error, GatewayUnavailable) and other.error.retryable
    assert gateway_script.sent() == [[A]]


class OneShortGateway(LocmemGateway):
    """Answers one message fewer than it was given."""

    def send_batch(self, sender, messages):
        return super().send_batch(sender, messages)[:-1]


def test_a_wrong_count_of_results_is_ambiguous():
    outcomes = OneShortGateway("default").send("Shop", [Outgoing(A, "hi"), Outgoing(B, "hi")])
    assert all(isinstance(o.error, AmbiguousSend) for o in outcomes)
    assert "1 outcome(s) for 2 message(s)" in str(outcomes[0].error)
