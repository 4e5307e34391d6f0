from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from mjweb.models import User

pytestmark = pytest.mark.django_db


def test_signup_creates_the_user_and_logs_in(client: Client) -> None:
    response = client.post(
        reverse("signup"),
        {
            "username": "carol",
            "email": "carol@example.com",
            "password1": "a long passphrase 9",
            "password2": "a long passphrase 9",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("gallery:home")
    assert User.objects.get(username="carol").email == "carol@example.com"
    assert client.get(reverse("gallery:home")).status_code == 200


def test_signup_refuses_a_taken_email_case_insensitively(client: Client, alice: Any) -> None:
    response = client.post(
        reverse("signup"),
        {
            "username": "alice2",
            "email": "ALICE@example.com",
            "password1": "a long passphrase 9",
            "password2": "a long passphrase 9",
        },
    )
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert not User.objects.filter(username="alice2").exists()


def test_login_and_logout(client: Client, alice: Any) -> None:
    response = client.post(reverse("login"), {"username": "alice", "password": "correct horse 1"})
    assert response.status_code == 302
    assert client.get(reverse("gallery:home")).status_code == 200
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("gallery:home")).status_code == 302


def test_password_reset_sends_an_email(client: Client, alice: Any) -> None:
    response = client.post(reverse("password_reset"), {"email": "alice@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert "/accounts/reset/" in mail.outbox[0].body


def test_password_change(alice_client: Client, alice: Any) -> None:
    response = alice_client.post(
        reverse("password_change"),
        {
            "old_password": "correct horse 1",
            "new_password1": "another long phrase 7",
            "new_password2": "another long phrase 7",
        },
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("another long phrase 7")


def test_a_login_with_a_username_longer_than_any_account_is_refused_not_a_500(
    client: Client,
) -> None:
    """axes keeps a failed login's username in a 255-character column: it counts the
    attempt under what fits (a username is at most 150), and the form says it is wrong."""
    for path in ("/accounts/login/", "/admin/login/"):
        answer = client.post(path, {"username": "u" * 300, "password": "whatever it is"})
        assert answer.status_code == 200
        assert answer.context["form"].errors
