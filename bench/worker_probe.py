"""Loaded into each benchmark worker (``celery worker -I bench.worker_probe``): counts the SQL
statements and gateway requests each task makes and the process's peak RSS, into Redis. With
``BENCH_REQUEST_TIMES`` set it also logs when each request was made (after the rate limiter let
it go), as ``"<unix time> <path>"`` in the list ``bench:request_times``."""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

import redis
from celery.signals import task_postrun, task_prerun
from django.db import connection

from django_smsclub.gateways.transport import HttpTransport

store = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
_open: dict[str, contextlib.ExitStack] = {}
_log_times = bool(os.environ.get("BENCH_REQUEST_TIMES"))
_counts = {"queries": 0}


def _count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    _counts["queries"] += 1
    return execute(sql, params, many, context)


@task_prerun.connect
def _before(task_id: str, task: Any, **kwargs: Any) -> None:
    _counts["queries"] = 0
    stack = contextlib.ExitStack()
    stack.enter_context(connection.execute_wrapper(_count))
    _open[task_id] = stack


@task_postrun.connect
def _after(task_id: str, task: Any, **kwargs: Any) -> None:
    stack = _open.pop(task_id, None)
    if stack is not None:
        stack.close()
    store.hincrby("bench:queries", task.name, _counts["queries"])
    store.hincrby("bench:tasks", task.name, 1)
    store.hset("bench:rss", str(os.getpid()), _peak_rss_kib())


_request = HttpTransport.request


def _counted_request(self: HttpTransport, method: str, path: str, **kwargs: Any) -> Any:
    made = time.time()
    try:
        return _request(self, method, path, **kwargs)
    finally:
        # Written after the request, so the probe adds no delay between the rate limiter's
        # grant and the request.
        with store.pipeline(transaction=False) as pipe:
            if _log_times:
                pipe.rpush("bench:request_times", f"{made:.6f} {path}")
            pipe.hincrby("bench:requests", path.rsplit("/", 1)[-1], 1)
            pipe.execute()


HttpTransport.request = _counted_request  # type: ignore[method-assign]


def _peak_rss_kib() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0
