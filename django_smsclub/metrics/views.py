"""The ``/metrics`` page Prometheus scrapes.

Celery workers count in processes of their own: run every process with
``PROMETHEUS_MULTIPROC_DIR`` set (prometheus_client's multiprocess mode) and this view adds up
what they all counted. Without ``prometheus_client`` the page answers 501.
"""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse

from .. import metrics


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not metrics.ENABLED:
        return HttpResponse(
            "prometheus_client is not installed: pip install django-smsclub[metrics]\n",
            status=501,
            content_type="text/plain; charset=utf-8",
        )
    import prometheus_client
    from prometheus_client import multiprocess

    from .collector import BacklogCollector

    registry = prometheus_client.REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(BacklogCollector())
    return HttpResponse(
        prometheus_client.generate_latest(registry),
        content_type=prometheus_client.CONTENT_TYPE_LATEST,
    )
