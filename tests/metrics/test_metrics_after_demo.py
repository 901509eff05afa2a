"""``/metrics`` shows the counters after the demo: the demo runs in a process of its own (as the
Celery workers do), so the page adds up what every process counted through
``PROMETHEUS_MULTIPROC_DIR`` (docs/metrics.rst, "After the demo")."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client")

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_the_metrics_page_shows_what_the_demo_process_counted(client, tmp_path, monkeypatch):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    demo = subprocess.run(
        [sys.executable, "manage.py", "smsclub_demo", "--recipients", "40", "--seed", "3"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    printed = dict(re.findall(r"^(\w+)\s+(\d+)\s+\d+$", demo.stdout, flags=re.MULTILINE))
    assert sum(map(int, printed.values())) == 40

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    page = client.get("/metrics").content.decode()

    counted = {
        status: int(float(value))
        for status, value in re.findall(
            r'^smsclub_messages_total\{gateway="demo",status="(\w+)"\} (\S+)$',
            page,
            flags=re.MULTILINE,
        )
    }
    assert counted["sent"] == 40
    for status, messages in printed.items():
        assert counted[status] == int(messages), status
    requests = re.search(
        r'^smsclub_gateway_requests_total\{gateway="demo",outcome="ok"\} (\S+)$', page, re.M
    )
    assert requests and float(requests.group(1)) >= 2  # at least a send and a status request
