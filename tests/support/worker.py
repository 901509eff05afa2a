"""A real Celery worker thread on the project's app and broker, and waiting for its work."""

import logging
import time

import pytest
from celery.contrib.testing.worker import start_worker

from testproject.celery import app


def wait_until(condition, timeout=30.0, meanwhile=None):
    """Wait for ``condition``; call ``meanwhile`` every 0.3 s, as Celery beat would."""
    deadline = time.monotonic() + timeout
    nudged = 0.0
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the worker"
        if meanwhile is not None and time.monotonic() - nudged > 0.3:
            meanwhile()
            nudged = time.monotonic()
        time.sleep(0.05)


@pytest.fixture
def worker():
    """A worker thread on the project's app and broker (memory://, or Redis on CI)."""
    saved = app.conf.worker_hijack_root_logger, app.conf.broker_transport_options
    root = logging.getLogger()
    root_handlers, root_level = list(root.handlers), root.level
    app.conf.worker_hijack_root_logger = False
    # The in-memory broker is polled; a short interval keeps the test (and its shutdown) quick.
    app.conf.broker_transport_options = {**saved[1], "polling_interval": 0.05}
    # Tests without a worker enqueue sends too; this worker must not run theirs.
    app.control.purge()
    try:
        with start_worker(app, perform_ping_check=False, shutdown_timeout=30, loglevel="WARNING"):
            yield app
    finally:
        app.conf.worker_hijack_root_logger, app.conf.broker_transport_options = saved
        # The worker set up Celery's logging on the root logger; later tests expect theirs.
        root.handlers[:] = root_handlers
        root.setLevel(root_level)
