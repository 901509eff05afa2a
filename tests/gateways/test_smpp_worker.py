"""The ``smsclub_smpp`` process: sends through the pipeline's services, records receipts, stops
cleanly. Against smpp34 on 127.0.0.1 and a real database."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from django_smsclub import services, signals, text
from django_smsclub.gateways.smpp import Receipt
from django_smsclub.gateways.smpp.pdu import canonical_id
from django_smsclub.models import DeliveryReport, Message
from django_smsclub.services import release_claims
from django_smsclub.smpp_worker import ReceiptBook, SmppWorker
from django_smsclub.status import Status
from tests.support.settings import gateway, smsclub_settings
from tests.support.smpp_server import SmppTestServer

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "pw4smpp"
TWO_PARTS = "Ваше замовлення №{n} готове до видачі у відділенні. " * 2


@pytest.fixture
def smpp_settings(settings, smsc, monkeypatch):
    settings.SMSCLUB = smsclub_settings(
        smpp=gateway_settings(smsc), DEFAULT_GATEWAY="smpp", POLL_INTERVALS=[300]
    )
    # The Celery send task is not part of this: the worker alone sends SMPP messages.
    monkeypatch.setattr(services, "enqueue_send", lambda *args, **kwargs: None)
    return settings.SMSCLUB


def gateway_settings(smsc: SmppTestServer) -> dict:
    return {
        "BACKEND": "smpp",
        "HOST": smsc.host,
        "PORT": smsc.port,
        "USERNAME": "380501234567",
        "PASSWORD": PASSWORD,
        "SENDER": "Shop",
        "TIMEOUT": 5,
    }


@pytest.fixture
def heard():
    """Every signal the pipeline sends, as (signal name, message pk, new status)."""
    caught: list[tuple[str, int, str]] = []
    lock = threading.Lock()
    receivers = []
    for name in ("message_status_changed", "message_delivered", "message_failed"):

        def receiver(sender, message, old_status, new_status, name=name, **kwargs):
            with lock:
                caught.append((name, message.pk, new_status))

        getattr(signals, name).connect(receiver, weak=False)
        receivers.append((name, receiver))
    yield caught
    for name, receiver in receivers:
        getattr(signals, name).disconnect(receiver)


def wait_until(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("smpp_settings")
def test_receipts_update_message_status_end_to_end(smsc, heard):
    delivered = [f"38050100{n:04d}" for n in range(6)]
    undelivered = [f"38050200{n:04d}" for n in range(4)]
    smsc.auto_receipt = "DELIVRD"
    smsc.receipt_words.update(dict.fromkeys(undelivered, "UNDELIV"))
    services.send_sms(delivered + undelivered, TWO_PARTS.format(n=1))
    worker = SmppWorker("smpp", idle=0.05)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert wait_until(
            lambda: (
                not Message.objects.exclude(
                    status__in=[Status.DELIVERED, Status.UNDELIVERED]
                ).exists()
            )
        ), list(Message.objects.values_list("recipient", "status"))
    finally:
        worker.stop()
        thread.join(10)
    assert not thread.is_alive()

    statuses = dict(Message.objects.values_list("recipient", "status"))
    assert statuses == {
        **dict.fromkeys(delivered, Status.DELIVERED),
        **dict.fromkeys(undelivered, Status.UNDELIVERED),
    }
    reports = DeliveryReport.objects.all()
    assert reports.count() == 2 * len(statuses)
    assert {r.raw_status for r in reports} == {"DELIVRD", "UNDELIV"}
    # Stored canonical: the SMSC's "0000000001" is "1", as every receipt form of it.
    assert {r.smsc_id for r in reports} == {canonical_id(s.message_id) for s in smsc.accepted()}
    pks = dict(Message.objects.values_list("recipient", "pk"))
    # Each message signalled once per change: delivered or failed exactly once.
    assert sorted(pk for name, pk, _ in heard if name == "message_delivered") == sorted(
        pks[r] for r in delivered
    )
    assert sorted(pk for name, pk, _ in heard if name == "message_failed") == sorted(
        pks[r] for r in undelivered
    )
    changes = [(pk, status) for name, pk, status in heard if name == "message_status_changed"]
    assert len(changes) == len(set(changes)) == 3 * len(statuses)  # sending, sent, final
    assert worker.receipts.held == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("smpp_settings")
def test_a_receipt_before_its_id_is_stored_is_held_and_applied_later(heard):
    book = ReceiptBook("smpp")
    book.receive([Receipt("0000000042", "DELIVRD")])
    assert book.held == 1

    [message] = services.send_sms("380501112233", "hi")
    services.claim_batch("smpp", 10)
    Message.objects.filter(pk=message.pk).update(status=Status.SENT)
    DeliveryReport.objects.create(message=message, part=1, smsc_id="0000000042", gateway="smpp")

    assert book.retry() == 1
    assert book.held == 0
    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert ("message_delivered", message.pk, Status.DELIVERED) in heard


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("smpp_settings")
def test_a_receipt_for_an_id_never_stored_is_dropped_after_the_hold(caplog):
    book = ReceiptBook("smpp", hold=0.0)
    book.receive([Receipt("0000000099", "DELIVRD")])
    time.sleep(0.01)
    with caplog.at_level(logging.WARNING, logger="django_smsclub.smpp"):
        assert book.retry() == 0
    assert book.held == 0
    assert "0000000099" in caplog.text


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("smpp_settings")
def test_released_claims_are_queued_again_without_an_attempt(heard):
    services.send_sms(["380501112233", "380501112244"], "hi")
    claimed = services.claim_batch("smpp", 10)
    # An attempt is a request made: a claim alone charges none.
    assert {m.attempts for m in claimed} == {0}

    assert release_claims(claimed) == 2
    assert release_claims(claimed) == 0  # no longer claimed: nothing moves twice

    assert set(Message.objects.values_list("status", "attempts", "claimed_at")) == {
        (Status.QUEUED, 0, None)
    }
    assert sorted(s for n, _, s in heard if n == "message_status_changed") == [
        Status.QUEUED,
        Status.QUEUED,
        Status.SENDING,
        Status.SENDING,
    ]


@pytest.mark.django_db
def test_the_command_wants_an_smpp_gateway(settings, smsc):
    settings.SMSCLUB = smsclub_settings(
        xml=gateway("xml", USERNAME="u", PASSWORD="p", SENDER="Shop"),
        a=gateway_settings(smsc),
        b=gateway_settings(smsc),
        DEFAULT_GATEWAY="xml",
    )
    with pytest.raises(CommandError, match="not an SmppGateway"):
        call_command("smsclub_smpp", gateway="xml", verbosity=0)
    with pytest.raises(CommandError, match="several SMPP gateways"):
        call_command("smsclub_smpp", verbosity=0)


def test_sigterm_mid_batch_sends_each_message_once_or_queues_it_again(tmp_path, smsc):
    project = Project(tmp_path, smsc)
    recipients = [f"38067{n:07d}" for n in range(150)]
    project.python(
        "from django.core.management import call_command\n"
        "from django_smsclub import services\n"
        "call_command('migrate', verbosity=0)\n"
        "services.enqueue_send = lambda *a, **k: None\n"
        f"services.send_sms({recipients!r}, {TWO_PARTS.format(n=7)!r}, gateway='smpp')\n"
    )
    parts = text.count_parts(TWO_PARTS.format(n=7))
    assert parts == 2

    # A slow SMSC (100 submits a second), so the signal lands in the middle of the batch.
    smsc.accept_delay = 0.01
    worker = project.start_worker("--batch-size", "500")
    assert smsc.wait_for(lambda: len(smsc.accepted()) >= 40, 20), project.log()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0, project.log()

    rows = project.messages()
    submitted = _submits_per_recipient(smsc)
    assert Status.SENDING not in {status for status, _ in rows.values()}
    sent = {r for r, (status, _) in rows.items() if status == Status.SENT}
    queued = {r for r, (status, _) in rows.items() if status == Status.QUEUED}
    assert sent | queued == set(recipients), rows
    assert sent and queued  # stopped mid-batch
    assert {r: submitted.get(r) for r in sent} == dict.fromkeys(sent, parts)
    assert not queued & set(submitted)
    assert {rows[r][1] for r in queued} == {0}  # no attempt counted for them
    log = project.log()
    assert "SIGTERM received" in log and "put back unsent" in log and "unbound" in log

    # The next run sends the rest, and receipts bring every message to delivered: the first
    # run's from IDs stored long ago, the new ones often before their IDs are stored.
    smsc.accept_delay = 0.0
    smsc.auto_receipt = "DELIVRD"
    earlier = [s.message_id for s in smsc.accepted()]
    worker = project.start_worker()
    assert smsc.wait_for(lambda: smsc.sessions_bound == 2, 20), project.log()
    for message_id in earlier:
        assert smsc.send_receipt(message_id, "DELIVRD") == 0
    assert wait_until(
        lambda: {s for s, _ in project.messages().values()} == {Status.DELIVERED}, 30
    ), project.log()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0, project.log()

    assert _submits_per_recipient(smsc) == dict.fromkeys(recipients, parts)  # never twice
    delivered = project.signals("message_delivered")
    assert len(delivered) == len(set(delivered)) == len(recipients)
    log = project.log()
    assert "bind_transceiver" in log  # -v 3 dumps the PDUs, the bind too...
    assert PASSWORD not in log and PASSWORD.encode().hex() not in log  # ...without the password


def _submits_per_recipient(smsc: SmppTestServer) -> dict[str, int]:
    counts: dict[str, int] = {}
    for submit in smsc.accepted():
        counts[submit.destination_addr] = counts.get(submit.destination_addr, 0) + 1
    return counts


class Project:
    """A settings module, a probe app and a SQLite file for subprocess runs."""

    def __init__(self, root: Path, smsc: SmppTestServer):
        self.root = root
        self.database = root / "db.sqlite3"
        self.probe = root / "signals.jsonl"
        self.logfile = root / "worker.log"
        (root / "smpp_probe").mkdir()
        (root / "smpp_probe" / "__init__.py").write_text("")
        (root / "smpp_probe" / "apps.py").write_text(
            textwrap.dedent(
                f"""
                import json

                from django.apps import AppConfig


                class ProbeConfig(AppConfig):
                    name = "smpp_probe"

                    def ready(self):
                        from django_smsclub import signals

                        def record(sender, message, old_status, new_status, **kwargs):
                            with open({str(self.probe)!r}, "a") as out:
                                out.write(json.dumps([message.pk, new_status]) + "\\n")

                        signals.message_delivered.connect(record, weak=False)
                """
            )
        )
        settings = {"smpp": gateway_settings(smsc)}
        (root / "smpp_e2e_settings.py").write_text(
            textwrap.dedent(
                f"""
                from testproject.settings import *  # noqa: F403

                INSTALLED_APPS = [*INSTALLED_APPS, "smpp_probe"]  # noqa: F405
                DATABASES = {{
                    "default": {{
                        "ENGINE": "django.db.backends.sqlite3",
                        "NAME": {str(self.database)!r},
                        "OPTIONS": {{"timeout": 30, "transaction_mode": "IMMEDIATE"}},
                    }}
                }}
                SMSCLUB = {{
                    "DEFAULT_GATEWAY": "smpp",
                    "GATEWAYS": {settings!r},
                    "POLL_INTERVALS": [300],
                }}
                LOGGING = {{"version": 1, "disable_existing_loggers": False}}
                """
            )
        )
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(root), str(REPO)]),
            "DJANGO_SETTINGS_MODULE": "smpp_e2e_settings",
        }
        self.env.pop("DATABASE_URL", None)

    def python(self, code: str) -> None:
        subprocess.run(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-c", "import django\ndjango.setup()\n" + code],
            env=self.env,
            cwd=self.root,
            check=True,
            timeout=60,
        )

    def start_worker(self, *args: str) -> subprocess.Popen:
        log = self.logfile.open("a")
        return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [
                sys.executable,
                str(REPO / "manage.py"),
                "smsclub_smpp",
                "--gateway",
                "smpp",
                "--idle",
                "0.1",
                "-v",
                "3",
                *args,
            ],
            env=self.env,
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def messages(self) -> dict[str, tuple[str, int]]:
        with sqlite3.connect(self.database, timeout=30) as db:
            rows = db.execute("SELECT recipient, status, attempts FROM django_smsclub_message")
            return {recipient: (status, attempts) for recipient, status, attempts in rows}

    def signals(self, name: str) -> list[int]:
        if not self.probe.exists():
            return []
        return [json.loads(line)[0] for line in self.probe.read_text().splitlines()]

    def log(self) -> str:
        return self.logfile.read_text() if self.logfile.exists() else ""
