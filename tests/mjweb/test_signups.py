"""Sign-up modes (open, verified, closed; invite: tests/mjweb/test_invites.py), the
disposable-email block list, the sign-up's address, and the admin's sign-ups per address."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from billing.ledger import account_for
from mjweb import signups
from mjweb.models import User

pytestmark = pytest.mark.django_db


def sign_up(
    client: Client, name: str, email: str | None = None, address: str = "203.0.113.5"
) -> Any:
    return client.post(
        "/accounts/signup/",
        {
            "username": name,
            "email": email or f"{name}@example.com",
            "password1": "a long passphrase 9",
            "password2": "a long passphrase 9",
        },
        REMOTE_ADDR=address,
    )


def imagine(client: Client) -> str:
    answer = client.post(
        "/imagine/",
        {"prompt": "a harbour", "mode": "fast", "submit_key": str(uuid.uuid4())},
        HTTP_HX_REQUEST="true",
    )
    return answer.content.decode()


def test_open_sign_up_starts_at_once_and_keeps_the_address(settings: Any) -> None:
    settings.MJWEB_SIGNUP_MODE = "open"
    client = Client()
    assert sign_up(client, "dora").status_code == 302
    dora = User.objects.get(username="dora")
    assert dora.signup_ip == "203.0.113.5" and not dora.awaits_verification
    assert account_for(dora).balance == settings.MJ_WELCOME_CREDITS
    assert not mail.outbox


def test_verified_sign_up_waits_for_the_link_then_gets_the_welcome_once(settings: Any) -> None:
    settings.MJWEB_SIGNUP_MODE = "verified"
    client = Client()
    assert sign_up(client, "erin").status_code == 302
    erin = User.objects.get(username="erin")
    assert erin.awaits_verification and account_for(erin).balance == 0
    page = client.get("/").content.decode()
    assert "Confirm your email to start" in page and "erin@example.com" in page
    assert "Confirm your email first" in imagine(client)  # no job before the link

    (message,) = mail.outbox
    assert message.to == ["erin@example.com"]
    link = re.search(r"http://testserver(/accounts/verify/[^/\s]+/)", message.body)
    assert link is not None
    answer = client.get(link.group(1), follow=True)
    assert "Your email is confirmed" in answer.content.decode()
    erin.refresh_from_db()
    assert not erin.awaits_verification
    assert account_for(erin).balance == settings.MJ_WELCOME_CREDITS
    again = client.get(link.group(1), follow=True)
    assert "already confirmed" in again.content.decode()
    assert account_for(erin).balance == settings.MJ_WELCOME_CREDITS  # once
    assert "Confirm your email first" not in imagine(client)


def test_a_bad_expired_or_stale_link_does_nothing(settings: Any, monkeypatch: Any) -> None:
    settings.MJWEB_SIGNUP_MODE = "verified"
    client = Client()
    sign_up(client, "finn")
    finn = User.objects.get(username="finn")
    token = signups.token_for(finn)
    assert client.get(f"/accounts/verify/{token}x/").status_code == 400
    monkeypatch.setattr(signups, "VERIFY_MAX_AGE", -1)
    assert client.get(f"/accounts/verify/{token}/").status_code == 400  # expired
    monkeypatch.setattr(signups, "VERIFY_MAX_AGE", 3600)
    User.objects.filter(pk=finn.pk).update(email="finn@elsewhere.example")
    assert client.get(f"/accounts/verify/{token}/").status_code == 400  # the address changed
    finn.refresh_from_db()
    assert finn.awaits_verification and account_for(finn).balance == 0


def test_the_link_can_be_sent_again_a_few_times(settings: Any) -> None:
    settings.MJWEB_SIGNUP_MODE = "verified"
    client = Client()
    sign_up(client, "gus")
    for _ in range(3):
        assert client.post("/accounts/verify/resend/").status_code == 302
    assert len(mail.outbox) == 4
    assert client.post("/accounts/verify/resend/").status_code == 429


def test_closed_sign_up_says_so_and_makes_nobody(settings: Any) -> None:
    settings.MJWEB_SIGNUP_MODE = "closed"
    assert Client().get("/accounts/signup/").status_code == 403
    answer = sign_up(Client(), "hana")
    assert answer.status_code == 403 and "Sign-up is closed" in answer.content.decode()
    assert not User.objects.filter(username="hana").exists()


@pytest.mark.parametrize(
    ("email", "refused"),
    [
        ("ivy@mailinator.com", "mailinator.com"),
        ("ivy@eu.mailinator.com", "mailinator.com"),
        ("ivy@corp.example", "corp.example"),
        ("ivy@mail.corp.example", "corp.example"),
        ("ivy@gmail.com", None),
    ],
)
def test_disposable_and_blocked_email_domains_are_refused(
    settings: Any, email: str, refused: str | None
) -> None:
    settings.MJWEB_BLOCKED_EMAIL_DOMAINS = ["corp.example"]
    answer = sign_up(Client(), "ivy", email)
    if refused:
        assert f"Addresses at {refused} cannot be used here" in answer.content.decode()
        assert not User.objects.filter(username="ivy").exists()
    else:
        assert answer.status_code == 302


def test_the_disposable_list_can_be_turned_off(settings: Any) -> None:
    settings.MJWEB_BLOCK_DISPOSABLE_EMAIL = False
    assert sign_up(Client(), "jack", "jack@mailinator.com").status_code == 302


def test_the_admin_shows_sign_ups_per_address(admin_client: Client) -> None:
    for n in range(3):
        sign_up(Client(), f"farm{n}", address="198.51.100.9")
    sign_up(Client(), "solo", address="192.0.2.1")
    page = admin_client.get("/admin/reports/signups/?days=7").content.decode()
    rows = re.findall(r"<code>([0-9.]+)</code></td><td><a href=\"([^\"]+)\">(\d+)</a>", page)
    assert [(ip, n) for ip, _, n in rows] == [("198.51.100.9", "3"), ("192.0.2.1", "1")]
    accounts = admin_client.get(rows[0][1].replace("&amp;", "&")).content.decode()
    assert all(f"farm{n}" in accounts for n in range(3)) and "solo" not in accounts
    assert admin_client.get("/admin/reports/signups/?days=oops").status_code == 200
