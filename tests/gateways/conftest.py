"""Fixtures of the gateway tests."""

import pytest

from tests.support.smpp_server import serve_smsc

# A fresh SMSC (tests.support.smpp_server.SmppTestServer) for each test.
smsc = pytest.fixture(serve_smsc, name="smsc")
