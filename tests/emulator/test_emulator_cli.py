"""Running the emulator: the management command, ``python -m``, plain Python, the pytest fixture."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import requests

from django_smsclub.emulator import DEFAULT_PASSWORD, DEFAULT_TOKEN, DEFAULT_USERNAME

ROOT = Path(__file__).resolve().parents[2]
URL_RE = re.compile(r"listening on (http://127\.0\.0\.1:(\d+))")


def bare_env() -> dict[str, str]:
    """The environment without Django settings, with the project importable."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Running:
    """A server process whose stdout is read line by line in the background."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            args,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 30) -> re.Match[str]:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern.pattern}: {self.seen}") from None
            self.seen.append(line)
            match = pattern.search(line)
            if match:
                return match

    def stop(self, signum: int) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_management_command(signum):
    env = {**bare_env(), "DJANGO_SETTINGS_MODULE": "testproject.settings"}
    args = [sys.executable, str(ROOT / "manage.py"), "smsclub_emulator", "--port", "0"]
    server = Running([*args, "--deliver-after-polls", "0"], env)
    try:
        url, port = server.wait_for(URL_RE).groups()
        assert int(port) > 0
        params = {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}
        reply = requests.get(url + "/hfw_smpp_addon/httpgetbalance.php", params=params, timeout=5)
        assert reply.text == "1000.00<br/>0.00"
        body = {"phone": ["380501111111"], "message": "hi", "src_addr": "Shop"}
        headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
        sent = requests.post(url + "/sms/send", json=body, headers=headers, timeout=5).json()
        [smsc_id] = sent["success_request"]["info"]
        status = requests.post(
            url + "/sms/status", json={"id_sms": [smsc_id]}, headers=headers, timeout=5
        ).json()
        assert status["success_request"]["info"] == {smsc_id: "DELIVRD"}
    finally:
        output = server.stop(signum)
    assert server.process.returncode == 0, output
    for credential in (DEFAULT_USERNAME, DEFAULT_PASSWORD, DEFAULT_TOKEN):
        assert credential in output
    assert "stopped" in output


@pytest.mark.parametrize("how", ["manage.py", "python -m"])
def test_reply_variant_options(how):
    if how == "manage.py":
        env = {**bare_env(), "DJANGO_SETTINGS_MODULE": "testproject.settings"}
        args = [sys.executable, str(ROOT / "manage.py"), "smsclub_emulator"]
    else:
        env, args = bare_env(), [sys.executable, "-m", "django_smsclub.emulator"]
    options = ["--port", "0", "--id-style", "padded", "--refusal-language", "en"]
    server = Running([*args, *options, "--status-words", "ru", "--balance", "7"], env)
    try:
        url = server.wait_for(URL_RE).group(1)
        params = {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}
        reply = requests.get(url + "/http/getbalance.php", params=params, timeout=5)
        assert reply.text == "7.00<br/>0.00"
        headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
        body = {"phone": ["380501111111"], "message": "hi", "src_addr": "Shop"}
        sent = requests.post(url + "/sms/send", json=body, headers=headers, timeout=5).json()
        assert sent == {"success_request": {"info": {"000001": "380501111111"}}}
        status = requests.post(
            url + "/sms/status", json={"id_sms": ["000001"]}, headers=headers, timeout=5
        )
        assert status.json() == {"success_request": {"info": {"000001": "Отправлено"}}}
        params["password"] = "x"
        bad = requests.get(url + "/http/getbalance.php", params=params, timeout=5)
        assert bad.text == "Login and password pair not found"
    finally:
        server.stop(signal.SIGTERM)
    assert server.process.returncode == 0


def test_bad_option_value_is_refused():
    args = [sys.executable, "-m", "django_smsclub.emulator", "--id-style", "hex"]
    result = subprocess.run(  # noqa: S603
        args, cwd=ROOT, env=bare_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "'hex'" in result.stderr


def test_python_dash_m_without_django_settings():
    args = [sys.executable, "-m", "django_smsclub.emulator", "--port", "0"]
    server = Running(args, bare_env())
    try:
        url = server.wait_for(URL_RE).group(1)
        params = {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}
        reply = requests.get(url + "/hfw_smpp_addon/httpgetbalance.php", params=params, timeout=5)
        assert reply.text == "1000.00<br/>0.00"
    finally:
        output = server.stop(signal.SIGINT)
    assert server.process.returncode == 0, output


def test_plain_python_never_touches_django_settings():
    script = textwrap.dedent(
        """
        import base64, requests
        from django.conf import settings
        from django_smsclub.emulator import Emulator

        with Emulator() as emu:
            emu.deliver_after(polls=0)
            data = {"username": "380501234567", "password": "emulator-password",
                    "from": "Shop", "to": "380501111111;0671234567",
                    "text": base64.b64encode("Привіт".encode("cp1251")).decode()}
            url = emu.url + "/hfw_smpp_addon/httpsendsmspost.php"
            reply = requests.post(url, data=data, timeout=5).text
            assert reply.count("<br/>") == 4, reply
            assert emu.messages_to("0671234567")[0].recipient == "380671234567"
        assert not settings.configured
        print("ok")
        """
    )
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=bare_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_pytest_fixture_without_django_settings(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_host.py").write_text(
        textwrap.dedent(
            """
            import requests

            def test_uses_fixture(smsclub_emulator):
                url = smsclub_emulator.url + "/sms/originator"
                headers = {"Authorization": "Bearer emulator-token"}
                reply = requests.post(url, headers=headers, timeout=5)
                assert reply.json() == {"success_request": {"info": ["Shop", "SMS CLUB"]}}
                assert smsclub_emulator.gateway_settings("json")["BASE_URL"] == smsclub_emulator.url

            def test_fixture_is_fresh(smsclub_emulator):
                assert smsclub_emulator.requests == []
            """
        )
    )
    # The package is installed, so its pytest11 entry point provides the fixture.
    args = [sys.executable, "-m", "pytest", "-q"]
    result = subprocess.run(  # noqa: S603
        [*args, "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=bare_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
