"""Loaded into each benchmark worker (``celery worker -I bench.worker_probe``): counts the SQL
statements and gateway requests each task makes and the process's peak RSS, into Redis."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import redis
from celery.signals import task_postrun, task_prerun
from django.db import connection

from django_smsclub.gateways.transport import HttpTransport

store = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
_open: dict[str, contextlib.ExitStack] = {}
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
    store.hincrby("bench:requests", path.rsplit("/", 1)[-1], 1)
    return _request(self, method, path, **kwargs)


HttpTransport.request = _counted_request  # type: ignore[method-assign]


def _peak_rss_kib() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0
