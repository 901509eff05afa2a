import threading
import time

import pytest
from django.db import connections

from django_smsclub.exceptions import ProviderRefused
from django_smsclub.gateways import locmem


@pytest.fixture(autouse=True)
def _empty_locmem_outbox():
    locmem.reset()
    yield
    locmem.reset()


class ScriptedGateway(locmem.LocmemGateway):
    """The locmem gateway with faults on cue, for the sending pipeline's tests.

    Each send request takes the next action of ``SCRIPT.send`` (each status request the next
    of ``SCRIPT.state``, after ``SCRIPT.state_delay`` seconds): an exception to raise, or None
    to behave. ``OPTIONS["REFUSE"]`` maps
    numbers to the provider's words for refusing them alone. Every request is logged.
    """

    def send_batch(self, sender, messages):
        SCRIPT.log("send", [m.recipient for m in messages])
        action = SCRIPT.next("send")
        if action is not None:
            raise action
        refused = self.options.get("REFUSE", {})
        results = super().send_batch(sender, [m for m in messages if m.recipient not in refused])
        accepted = iter(results)
        return [
            ProviderRefused(refused[m.recipient], gateway=self.name)
            if m.recipient in refused
            else next(accepted)
            for m in messages
        ]

    def fetch_state_batch(self, smsc_ids):
        SCRIPT.log("state", list(smsc_ids))
        time.sleep(SCRIPT.state_delay)
        action = SCRIPT.next("state")
        if action is not None:
            raise action
        return super().fetch_state_batch(smsc_ids)


class Cp1251Gateway(ScriptedGateway):
    """Texts travel as Windows-1251, as through the HTTP gateway."""

    needs_cp1251 = True


class Script:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.send: list[BaseException | None] = []
            self.state: list[BaseException | None] = []
            self.requests: list[tuple[float, str, list[str]]] = []
            self.state_delay = 0.0

    def next(self, kind):
        with self.lock:
            queue = getattr(self, kind)
            return queue.pop(0) if queue else None

    def log(self, kind, items):
        with self.lock:
            self.requests.append((time.time(), kind, items))

    def sent(self):
        return [items for _, kind, items in self.requests if kind == "send"]

    def polled(self):
        return [items for _, kind, items in self.requests if kind == "state"]


SCRIPT = Script()


@pytest.fixture
def gateway_script():
    """The actions and request log of :class:`ScriptedGateway`, empty at the start."""
    SCRIPT.reset()
    yield SCRIPT
    SCRIPT.reset()


@pytest.fixture
def pipeline_settings(settings, gateway_script):
    """SMSCLUB with in-memory gateways: ``default`` (scripted) and ``cp1251`` (HTTP-like)."""
    settings.SMSCLUB = {
        "DEFAULT_GATEWAY": "default",
        "GATEWAYS": {
            "default": {"BACKEND": "tests.conftest.ScriptedGateway", "SENDER": "Shop"},
            "cp1251": {"BACKEND": "tests.conftest.Cp1251Gateway", "SENDER": "Shop"},
        },
        "POLL_INTERVALS": [30, 60, 120, 300],
        "RETRY_BACKOFF": 30,
        "RETRY_BACKOFF_MAX": 600,
        "MAX_SEND_ATTEMPTS": 3,
        "STALE_SENDING_AFTER": 900,
    }
    return settings.SMSCLUB


@pytest.fixture
def race():
    """Run callables at the same moment in threads, each with its own database connection;
    return their results in order, or raise the first error one of them raised."""

    def run(*calls, timeout=60):
        barrier = threading.Barrier(len(calls))
        results = [None] * len(calls)
        errors = []

        def target(index, call):
            try:
                barrier.wait()
                results[index] = call()
            except BaseException as exc:
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=target, args=item) for item in enumerate(calls)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout)
        assert not any(thread.is_alive() for thread in threads), "a racing thread hung"
        if errors:
            raise errors[0]
        return results

    return run
