"""Injected faults: what the client sees and what the emulator did."""

from __future__ import annotations

import base64
import random
import threading
import time

import pytest
import requests

from django_smsclub.emulator import DEFAULT_PASSWORD, DEFAULT_TOKEN, DEFAULT_USERNAME, Emulator
from django_smsclub.emulator.faults import garble

HTTP = "/hfw_smpp_addon/"
R1, R2 = "380501111111", "380502222222"
OK_REPLY = "=IDS START=<br/>1<br/>=IDS END=<br/>"


def http_send(emu, to=R1, *, timeout=5.0, session=None):
    data = {
        "username": DEFAULT_USERNAME,
        "password": DEFAULT_PASSWORD,
        "from": "Shop",
        "to": to,
        "text": base64.b64encode(b"hello").decode(),
    }
    post = (session or requests).post
    return post(emu.url + HTTP + "httpsendsmspost.php", data=data, timeout=timeout)


def http_balance(emu):
    params = {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}
    return requests.get(emu.url + HTTP + "httpgetbalance.php", params=params, timeout=5)


def xml_send(emu):
    document = (
        '<?xml version="1.0" encoding="utf-8"?><request_sendsms>'
        f"<username>{DEFAULT_USERNAME}</username><password>{DEFAULT_PASSWORD}</password>"
        f"<from>Shop</from><to>{R1}</to><text>hello</text></request_sendsms>"
    )
    url = emu.url + HTTP + "xmlsendsmspost.php"
    return requests.post(url, data={"xmlrequest": document}, timeout=5)


def json_send(emu):
    body = {"phone": [R1], "message": "hello", "src_addr": "Shop"}
    headers = {"Authorization": "Bearer " + DEFAULT_TOKEN}
    return requests.post(emu.url + "/sms/send", json=body, headers=headers, timeout=5)


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


class TestKinds:
    def test_latency(self, emu):
        emu.faults.add("latency", seconds=0.3)
        started = time.monotonic()
        reply = http_send(emu)
        assert time.monotonic() - started >= 0.3
        assert reply.text == OK_REPLY
        assert emu.requests[0].fault == "latency"

    def test_latency_past_the_client_timeout_still_sends(self, emu):
        emu.faults.add("latency", seconds=0.5)
        with pytest.raises(requests.ReadTimeout):
            http_send(emu, timeout=0.1)
        wait_for(lambda: len(emu.accepted) == 1)
        wait_for(lambda: len(emu.requests) == 1)
        assert emu.requests[0].status_code == 200

    def test_http_500(self, emu):
        emu.faults.add("http_500")
        reply = http_send(emu)
        assert reply.status_code == 500
        assert emu.accepted == []
        assert (emu.requests[0].status_code, emu.requests[0].fault) == (500, "http_500")

    def test_http_500_on_json_is_a_json_error(self, emu):
        emu.faults.add("http_500", gateway="json")
        reply = json_send(emu)
        assert reply.status_code == 500
        assert reply.json()["status"] == 500
        assert reply.json()["name"] == "Internal Server Error"
        assert emu.accepted == []

    def test_drop_before(self, emu):
        emu.faults.add("drop_before")
        with pytest.raises(requests.ConnectionError):
            http_send(emu)
        assert emu.accepted == []
        assert emu.balance_of() == 1000
        record = emu.requests[0]
        assert (record.status_code, record.fault, record.op) == (None, "drop_before", "send")

    def test_drop_after(self, emu):
        emu.faults.add("drop_after")
        with pytest.raises(requests.ConnectionError):
            http_send(emu, f"{R1};{R2}")
        assert [s.recipient for s in emu.accepted] == [R1, R2]
        assert emu.balance_of() == 999
        assert (emu.requests[0].status_code, emu.requests[0].fault) == (None, "drop_after")

    def test_drop_on_a_kept_alive_connection(self, emu):
        session = requests.Session()
        assert http_send(emu, session=session).status_code == 200
        emu.faults.add("drop_after", times=1)
        with pytest.raises(requests.ConnectionError):
            http_send(emu, session=session)
        assert http_send(emu, session=session).text == "=IDS START=<br/>3<br/>=IDS END=<br/>"
        assert len(emu.accepted) == 3

    @pytest.mark.parametrize("seed", range(6))
    def test_garbled(self, emu, seed):
        emu.faults.add("garbled", seed=seed)
        reply = http_send(emu)
        assert reply.status_code == 200
        assert reply.content != OK_REPLY.encode()
        assert not reply.content.endswith(b"=IDS END=<br/>")
        assert len(emu.accepted) == 1
        assert emu.requests[0].fault == "garbled"

    def test_garbled_json_is_not_json(self, emu):
        emu.faults.add("garbled", gateway="json", seed=3)
        reply = json_send(emu)
        assert reply.status_code == 200
        with pytest.raises(ValueError):
            reply.json()
        assert len(emu.accepted) == 1

    def test_garble_cuts_or_replaces(self):
        body = OK_REPLY.encode()
        results = {garble(body, random.Random(seed)) for seed in range(20)}
        assert body[: len(body) // 2] in results
        assert any(r.startswith(b"\xff\xfe") for r in results)
        assert body not in results


class TestSelection:
    def test_times(self, emu):
        fault = emu.faults.add("http_500", times=2)
        codes = [http_send(emu).status_code for _ in range(4)]
        assert codes == [500, 500, 200, 200]
        assert fault.fired == 2
        assert len(emu.accepted) == 2

    def test_rate_is_seeded(self):
        patterns = []
        for _ in range(2):
            with Emulator() as emu:
                fault = emu.faults.add("http_500", rate=0.5, seed=42, op="balance")
                patterns.append([http_balance(emu).status_code for _ in range(20)])
                assert fault.fired == patterns[-1].count(500)
        assert patterns[0] == patterns[1]
        assert 0 < patterns[0].count(500) < 20

    def test_rate_and_times(self, emu):
        fault = emu.faults.add("http_500", rate=1.0, times=1)
        assert [http_balance(emu).status_code for _ in range(3)] == [500, 200, 200]
        assert fault.fired == 1

    def test_gateway_and_op_filters(self, emu):
        emu.faults.add("http_500", gateway="xml", op="send")
        assert xml_send(emu).status_code == 500
        assert http_send(emu).status_code == 200
        assert json_send(emu).status_code == 200
        document = (
            '<?xml version="1.0" encoding="utf-8"?><request_getstate>'
            f"<username>{DEFAULT_USERNAME}</username><password>{DEFAULT_PASSWORD}</password>"
            "<smscid>1</smscid></request_getstate>"
        )
        url = emu.url + HTTP + "xmlgetsmsstatepost.php"
        assert requests.post(url, data={"xmlrequest": document}, timeout=5).status_code == 200

    def test_first_firing_kind_wins_and_latencies_add_up(self, emu):
        emu.faults.add("latency", seconds=0.1)
        emu.faults.add("latency", seconds=0.1)
        emu.faults.add("http_500", op="balance")
        second = emu.faults.add("drop_before")
        started = time.monotonic()
        assert http_balance(emu).status_code == 500
        assert time.monotonic() - started >= 0.2
        assert second.fired == 0

    def test_clear_and_remove(self, emu):
        first = emu.faults.add("http_500", op="balance")
        emu.faults.add("drop_before", op="send")
        assert len(emu.faults) == 2
        emu.faults.remove(first)
        assert http_balance(emu).status_code == 200
        emu.faults.clear()
        assert http_send(emu).status_code == 200
        assert list(emu.faults) == []

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"kind": "explode"},
            {"kind": "latency", "gateway": "telegraph"},
            {"kind": "latency", "op": "delete"},
            {"kind": "http_500", "times": 0},
            {"kind": "http_500", "rate": 1.5},
            {"kind": "latency", "seconds": -1},
        ],
    )
    def test_bad_rules_are_refused(self, emu, kwargs):
        with pytest.raises(ValueError):
            emu.faults.add(kwargs.pop("kind"), **kwargs)

    def test_stop_cuts_latency_short(self):
        emu = Emulator().start()
        emu.faults.add("latency", seconds=30)
        errors: list[BaseException] = []

        def call() -> None:
            try:
                http_balance(emu)
            except requests.RequestException as exc:
                errors.append(exc)

        thread = threading.Thread(target=call)
        thread.start()
        wait_for(lambda: next(iter(emu.faults)).fired == 1)
        started = time.monotonic()
        emu.stop()
        thread.join(timeout=10)
        assert not thread.is_alive()
        assert time.monotonic() - started < 5
