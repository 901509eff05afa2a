"""A locmem gateway with faults on cue, for the sending pipeline's tests.

``SMSCLUB`` names its classes by dotted path (:data:`SCRIPTED` and :data:`CP1251`); the
``gateway_script`` and ``pipeline_settings`` fixtures of ``tests/conftest.py`` set it up.
"""

import threading
import time

from django_smsclub.exceptions import ProviderRefused
from django_smsclub.gateways import locmem

SCRIPTED = "tests.support.scripted.ScriptedGateway"
CP1251 = "tests.support.scripted.Cp1251Gateway"


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
