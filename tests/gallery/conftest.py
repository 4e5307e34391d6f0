from __future__ import annotations

import pytest

from tests.gallery.factories import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
