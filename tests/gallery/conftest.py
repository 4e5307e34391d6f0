from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.gallery.factories import FakeClock, FakeProvider, HookReceiver, answer_through


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def receiver() -> Iterator[HookReceiver]:
    hook = HookReceiver()
    yield hook
    hook.close()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, settings: Any) -> FakeProvider:
    """A CometAPI faked at the HTTP layer: set `fake.routes[path suffix]`, read `requests`."""
    fake = FakeProvider()
    answer_through(monkeypatch, fake)
    return fake
