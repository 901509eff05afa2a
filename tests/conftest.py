import pytest

from django_smsclub.gateways import locmem


@pytest.fixture(autouse=True)
def _empty_locmem_outbox():
    locmem.reset()
    yield
    locmem.reset()
