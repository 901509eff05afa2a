import pytest

from django_smsclub.services import webhooks
from tests.support.webhook_receiver import WebhookReceiver

SECRET = "test-secret-" + "x" * 32


@pytest.fixture
def receiver():
    """A receiver on 127.0.0.1 checking signatures with :data:`SECRET`."""
    server = WebhookReceiver(SECRET)
    yield server
    server.close()


@pytest.fixture
def hooks(pipeline_settings, receiver):
    """``pipeline_settings`` with one endpoint, ``crm``, on :func:`receiver`, synced; fast
    retries. Returns the settings dict."""
    pipeline_settings.update(
        WEBHOOKS={"crm": {"URL": receiver.url, "SECRET": SECRET}},
        WEBHOOK_TIMEOUT=2,
        WEBHOOK_RETRY_BACKOFF=30,
        WEBHOOK_RETRY_BACKOFF_MAX=600,
    )
    webhooks.sync_endpoints()
    return pipeline_settings
