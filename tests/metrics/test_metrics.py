"""Prometheus metrics: the ``/metrics`` page after a send through the pipeline, request and
rate-limit hooks, the backlog read at scrape time, and nothing broken without the extra."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.cache import caches
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from django_smsclub import metrics, send_sms, services
from django_smsclub.exceptions import GatewayUnavailable
from django_smsclub.gateways.xml import XmlGateway
from django_smsclub.models import DeliveryReport
from django_smsclub.ratelimit import RateLimiter
from tests.support.settings import gateway, smsclub_settings

ROOT = Path(__file__).resolve().parents[2]


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def locmem_settings(settings):
    settings.SMSCLUB = smsclub_settings(default=gateway("locmem", SENDER="Shop"))
    return settings


@pytest.mark.django_db
def test_metrics_page_shows_a_send_through_the_pipeline(
    client, locmem_settings, django_capture_on_commit_callbacks
):
    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):
        send_sms(["+380501234567", "+380671234567"], "Your order is ready")
    queued = scrape(client)
    assert value(queued, "smsclub_queue_depth", gateway="default", status="queued") == 2
    assert value(queued, "smsclub_queue_lag_seconds", gateway="default") >= 0

    with django_capture_on_commit_callbacks(execute=True):
        services.send_due("default")
    after = scrape(client)
    sent = ("smsclub_messages_total", {"gateway": "default", "status": "sent"})
    assert value(after, sent[0], **sent[1]) - value(before, sent[0], **sent[1]) == 2
    assert value(after, "smsclub_queue_depth", gateway="default", status="queued") == 0


@pytest.mark.django_db
def test_report_lag_is_how_far_behind_the_most_overdue_poll_is(
    client, locmem_settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        send_sms("+380501234567", "Hello")
        services.send_due("default")
    DeliveryReport.objects.update(next_poll_at=timezone.now() - timedelta(minutes=5))
    lag = value(scrape(client), "smsclub_report_lag_seconds", gateway="default")
    assert 300 <= lag < 360


@pytest.mark.django_db
def test_nothing_waiting_shows_no_backlog(client, locmem_settings):
    assert not [key for key in scrape(client) if key[0] == "smsclub_queue_depth"]


def test_requests_are_counted_by_gateway_and_outcome(client, smsclub_emulator):
    good = XmlGateway("metrics-xml", **_settings(smsclub_emulator))
    before = metrics.REQUESTS.labels(gateway="metrics-xml", outcome="ok")._value.get()
    good.balance()
    assert metrics.REQUESTS.labels(gateway="metrics-xml", outcome="ok")._value.get() == before + 1

    down = XmlGateway("metrics-down", **{**_settings(smsclub_emulator), "BASE_URL": _closed_url()})
    with pytest.raises(GatewayUnavailable):
        down.balance()
    samples = scrape(client)
    labels = {"gateway": "metrics-down", "outcome": "GatewayUnavailable"}
    assert value(samples, "smsclub_gateway_requests_total", **labels) == 1
    assert value(samples, "smsclub_gateway_request_seconds_count", **labels) == 1


def test_rate_limit_waits_are_counted(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    caches["default"].clear()
    now = [1000.0]
    limiter = RateLimiter(
        "django_smsclub:rate:feedc0ffee", 1, clock=lambda: now[0], sleep=lambda s: _advance(now, s)
    )
    waits = metrics.RATE_LIMIT_WAITS.labels(account="feedc0ff")
    before = waits._value.get()
    limiter.acquire()
    assert waits._value.get() == before  # the first request did not wait
    assert limiter.acquire() > 0
    assert waits._value.get() == before + 1


def test_smpp_submit_outcomes():
    pytest.importorskip("smpplib")
    from django_smsclub.gateways.smpp.connection import Lost
    from django_smsclub.gateways.smpp.submit import _outcome

    assert _outcome(0) == "ok"
    assert _outcome(0x58) == "ESME_RTHROTTLED"
    assert _outcome(Lost("closed")) == "lost"


def test_without_prometheus_client_nothing_breaks():
    script = """
import sys
sys.modules["prometheus_client"] = None  # as if the [metrics] extra were not installed
import django
django.setup()
from django.test import Client
from django_smsclub import metrics
from django_smsclub.metrics import collector
assert not metrics.ENABLED
metrics.status_changed("default", "sent")
metrics.request_done("default", "ok", 0.1)
metrics.rate_limit_waited("django_smsclub:rate:abc", 0.5)
collector.install()
response = Client().get("/metrics")
print(response.status_code, response.content.decode().strip())
"""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "testproject.settings"}
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL"):
        env.pop(name, None)
    result = subprocess.run(  # noqa: S603 (our own interpreter and script)
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("501 prometheus_client is not installed")


def _settings(emulator):
    options = emulator.gateway_settings("xml")
    options.pop("BACKEND", None)
    return options


def _closed_url() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _advance(now: list[float], seconds: float) -> None:
    now[0] += seconds


def test_a_scrape_survives_a_database_error_and_logs_it(client, caplog, monkeypatch):
    from django_smsclub import selectors

    def broken():
        raise RuntimeError("database gone")

    monkeypatch.setattr(selectors, "backlogs", broken)
    with caplog.at_level("ERROR", logger="django_smsclub"):
        samples = scrape(client)
    assert not [key for key in samples if key[0] == "smsclub_queue_depth"]
    [record] = [r for r in caplog.records if "backlog" in r.getMessage()]
    assert record.outcome == "scrape_failed"
