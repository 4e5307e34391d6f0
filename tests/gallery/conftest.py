from __future__ import annotations

from typing import Any

import pytest

from tests.gallery.factories import FakeProvider, answer_through


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, settings: Any) -> FakeProvider:
    """A CometAPI faked at the HTTP layer: set `fake.routes[path suffix]`, read `requests`."""
    fake = FakeProvider()
    answer_through(monkeypatch, fake)
    return fake
