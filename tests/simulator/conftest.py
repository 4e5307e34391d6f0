from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gallery.factories import FakeClock, HookReceiver


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def receiver() -> Iterator[HookReceiver]:
    hook = HookReceiver()
    yield hook
    hook.close()
