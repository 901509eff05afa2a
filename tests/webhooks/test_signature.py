"""verify_signature: what a receiver calls to know a request is ours and fresh."""

import hashlib
import hmac

from django_smsclub.webhooks import sign, signature_header, verify_signature

SECRET = "s" * 40
BODY = b'{"event":"message.final","event_id":"1"}'
NOW = 1_800_000_000


def header(body=BODY, secret=SECRET, t=NOW):
    return {"X-SMSClub-Signature": signature_header(body, secret, t)}


def test_the_signature_is_the_documented_hmac_of_time_dot_body():
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()

    assert sign(BODY, SECRET, NOW) == expected
    assert signature_header(BODY, SECRET, NOW) == f"t={NOW},v1={expected}"


def test_a_fresh_signature_of_the_exact_body_holds():
    assert verify_signature(BODY, header(), SECRET, now=NOW + 10)
    assert verify_signature(BODY.decode(), header(), SECRET, now=NOW)


def test_a_changed_body_another_secret_or_a_missing_header_does_not():
    assert not verify_signature(BODY + b" ", header(), SECRET, now=NOW)
    assert not verify_signature(BODY, header(), "t" * 40, now=NOW)
    assert not verify_signature(BODY, {}, SECRET, now=NOW)
    assert not verify_signature(BODY, header(secret="t" * 40), SECRET, now=NOW)


def test_a_replay_outside_the_window_fails_either_way():
    assert verify_signature(BODY, header(), SECRET, now=NOW + 300)
    assert not verify_signature(BODY, header(), SECRET, now=NOW + 301)
    assert not verify_signature(BODY, header(), SECRET, now=NOW - 301)
    assert verify_signature(BODY, header(), SECRET, tolerance=3600, now=NOW + 3000)


def test_headers_are_found_in_any_case_and_as_request_meta_spells_them():
    value = header()["X-SMSClub-Signature"]

    assert verify_signature(BODY, {"x-smsclub-signature": value}, SECRET, now=NOW)
    assert verify_signature(BODY, {"HTTP_X_SMSCLUB_SIGNATURE": value}, SECRET, now=NOW)
    assert verify_signature(BODY, value, SECRET, now=NOW)


def test_several_secrets_while_one_is_replaced():
    assert verify_signature(BODY, header(secret="new" * 12), [SECRET, "new" * 12], now=NOW)
    assert not verify_signature(BODY, header(secret="old" * 12), [SECRET, ""], now=NOW)


def test_malformed_headers_are_refused_not_raised():
    for value in (
        "",
        "garbage",
        "t=,v1=",
        "t=abc,v1=00",
        f"t={NOW}",
        "v1=00",
        f"t={NOW}" + "9" * 20,
    ):
        assert not verify_signature(BODY, value, SECRET, now=NOW), value
