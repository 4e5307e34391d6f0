"""mjweb.throttle: sign-ups, logins, password resets and submits counted per address and
per account; a spent rate is a clear refusal, and nothing is done."""

from __future__ import annotations

import uuid
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse

from gallery.models import Job
from mjweb import throttle
from tests.gallery.factories import make_finished_job

pytestmark = pytest.mark.django_db


def sign_up(client: Client, name: str, address: str) -> Any:
    return client.post(
        "/accounts/signup/",
        {
            "username": name,
            "email": f"{name}@example.com",
            "password1": "a long passphrase 9",
            "password2": "a long passphrase 9",
        },
        REMOTE_ADDR=address,
    )


def test_sign_ups_from_one_address_are_counted(settings: Any) -> None:
    settings.MJWEB_RATES = {**settings.MJWEB_RATES, "signup": [("ip", "3/h")]}
    for n in range(3):
        assert sign_up(Client(), f"farm{n}", "203.0.113.7").status_code == 302
    refused = sign_up(Client(), "farm3", "203.0.113.7")
    assert refused.status_code == 429
    assert "Too many sign-ups from your address (3 per h)" in refused.content.decode()
    assert int(refused["Retry-After"]) > 0
    assert not get_user_model().objects.filter(username="farm3").exists()
    assert sign_up(Client(), "elsewhere", "198.51.100.2").status_code == 302  # another address


def test_logins_from_one_address_are_counted_on_the_site_and_the_admin(
    settings: Any, alice: Any
) -> None:
    settings.MJWEB_RATES = {**settings.MJWEB_RATES, "login": [("ip", "2/m")]}
    client = Client(REMOTE_ADDR="203.0.113.8")
    for path in ("/accounts/login/", "/admin/login/"):
        client.post(path, {"username": "alice", "password": "wrong 1"})
    refused = client.post("/accounts/login/", {"username": "alice", "password": "correct horse 1"})
    assert refused.status_code == 429 and "Too many login attempts" in refused.content.decode()
    assert "_auth_user_id" not in client.session  # not logged in, even with the right password
    assert client.post("/admin/login/", {"username": "a", "password": "b"}).status_code == 429


def test_password_resets_are_counted_per_address_and_per_email(settings: Any, alice: Any) -> None:
    settings.MJWEB_RATES = {
        **settings.MJWEB_RATES,
        "password_reset": [("ip", "10/h"), ("post:email", "2/h")],
    }
    for address in ("203.0.113.9", "203.0.113.10"):
        answer = Client(REMOTE_ADDR=address).post(
            "/accounts/password/reset/", {"email": "alice@example.com"}
        )
        assert answer.status_code == 302
    refused = Client(REMOTE_ADDR="203.0.113.11").post(
        "/accounts/password/reset/", {"email": "alice@example.com"}
    )
    assert refused.status_code == 429 and "for this email" in refused.content.decode()
    assert len(mail.outbox) == 2  # the third was not sent
    other = Client(REMOTE_ADDR="203.0.113.11").post(
        "/accounts/password/reset/", {"email": "bob@example.com"}
    )
    assert other.status_code == 302


def test_submits_are_counted_per_account_and_refused_like_a_quota(
    settings: Any, alice: Any, alice_client: Client
) -> None:
    settings.MJWEB_RATES = {**settings.MJWEB_RATES, "submit": [("user", "2/m"), ("ip", "99/m")]}
    parent = make_finished_job(alice)
    for n in range(2):
        alice_client.post(
            "/imagine/",
            {"prompt": f"harbour {n}", "mode": "fast", "submit_key": str(uuid.uuid4())},
            HTTP_HX_REQUEST="true",
        )
    jobs = Job.objects.filter(owner=alice).count()
    refused = alice_client.post(
        "/imagine/",
        {"prompt": "harbour 3", "mode": "fast", "submit_key": str(uuid.uuid4())},
        HTTP_HX_REQUEST="true",
    )
    assert "Too many jobs submitted from your account (2 per m)" in refused.content.decode()
    press = alice_client.post(reverse("gallery:reroll", args=[parent.code]), HTTP_HX_REQUEST="true")
    assert "Too many jobs submitted" in press.content.decode()
    assert Job.objects.filter(owner=alice).count() == jobs  # nothing made, nothing held


def test_a_failing_cache_lets_requests_through() -> None:
    with mock.patch.object(throttle, "get_usage", side_effect=ConnectionError("redis down")):
        assert sign_up(Client(), "carol", "203.0.113.12").status_code == 302


def test_several_processes_need_a_shared_cache(settings: Any) -> None:
    settings.DEBUG, settings.REDIS_URL, settings.MJWEB_THROTTLE = False, "", True
    assert [e.id for e in throttle.shared_cache()] == ["mjweb.E002"]
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    assert throttle.shared_cache() == []
    settings.REDIS_URL, settings.MJWEB_THROTTLE = "", False
    assert throttle.shared_cache() == []
