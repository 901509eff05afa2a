import threading

import pytest
from django.db import connections

from django_smsclub.emulator import Emulator
from django_smsclub.gateways import locmem
from tests.support.canned import CannedServer
from tests.support.clock import clock  # noqa: F401  (a fixture: timezone.now frozen)
from tests.support.scripted import CP1251, SCRIPT, SCRIPTED
from tests.support.settings import gateway, smsclub_settings
from tests.support.worker import worker  # noqa: F401  (a fixture: a Celery worker thread)


@pytest.fixture(autouse=True)
def _empty_locmem_outbox():
    locmem.reset()
    yield
    locmem.reset()


@pytest.fixture
def gateway_script():
    """The actions and request log of :class:`ScriptedGateway`, empty at the start."""
    SCRIPT.reset()
    yield SCRIPT
    SCRIPT.reset()


@pytest.fixture
def pipeline_settings(settings, gateway_script):
    """SMSCLUB with in-memory gateways: ``default`` (scripted) and ``cp1251`` (HTTP-like)."""
    settings.SMSCLUB = smsclub_settings(
        default=gateway(SCRIPTED, SENDER="Shop"),
        cp1251=gateway(CP1251, SENDER="Shop"),
        POLL_INTERVALS=[30, 60, 120, 300],
        RETRY_BACKOFF=30,
        RETRY_BACKOFF_MAX=600,
        MAX_SEND_ATTEMPTS=3,
        STALE_SENDING_AFTER=900,
    )
    return settings.SMSCLUB


@pytest.fixture
def canned():
    """A :class:`~tests.support.canned.CannedServer`: set its ``reply``, read its ``bodies``."""
    server = CannedServer()
    yield server
    server.close()


@pytest.fixture
def emu():
    """A fresh emulator of this test's own (``smsclub_emulator`` is shared by the session)."""
    with Emulator() as emulator:
        yield emulator


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
