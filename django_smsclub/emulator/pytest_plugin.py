"""The ``smsclub_emulator`` pytest fixture (registered through the ``pytest11`` entry point).

Nothing here needs Django settings: host projects without them can still use the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .core import Emulator


@pytest.fixture
def smsclub_emulator() -> Iterator[Emulator]:
    """A started SMSClub emulator on a free port of 127.0.0.1, stopped after the test."""
    from .core import Emulator

    with Emulator() as emulator:
        yield emulator
