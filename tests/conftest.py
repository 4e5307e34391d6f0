from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

DATA = Path(__file__).parent / "data"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def _media_root(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    # Tests run with production settings (DEBUG off) but over plain HTTP and without a
    # collectstatic manifest.
    settings.SECURE_SSL_REDIRECT = False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # Tests speak to a simulator or to MockTransports on loopback.
    settings.MJ_PROVIDER = "simulator"
    # No callbacks to whatever may listen on SITE_URL; webhook tests turn them on.
    settings.MJ_WEBHOOKS = False
    # Staff clients log in without an authenticator; tests/mjweb/test_twofactor.py turns it on.
    settings.MJWEB_STAFF_2FA = False
    # The throttles count in the (process-local) cache: every test starts from zero.
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _default_prices(request: pytest.FixtureRequest) -> None:
    """Transactional tests start from emptied tables: put the seeded prices back."""
    marker = request.node.get_closest_marker("django_db")
    if marker is not None and marker.kwargs.get("transaction"):
        request.getfixturevalue("transactional_db")
        from billing.prices import seed_defaults

        seed_defaults()


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("alice", "alice@example.com", "correct horse 1")


@pytest.fixture
def bob(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("bob", "bob@example.com", "correct horse 2")


@pytest.fixture
def alice_client(alice: Any) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(bob: Any) -> Client:
    client = Client()
    client.force_login(bob)
    return client


@pytest.fixture
def clock() -> Any:
    """A clock the simulator reads instead of time.monotonic: tests move it, never sleep."""
    from tests.gallery.factories import FakeClock

    return FakeClock()


@pytest.fixture
def receiver() -> Iterator[Any]:
    """A webhook endpoint on loopback that records what it is sent."""
    from tests.gallery.factories import HookReceiver

    hook = HookReceiver()
    yield hook
    hook.close()
