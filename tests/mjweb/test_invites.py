"""Invite-only sign-up (MJWEB_SIGNUP_MODE=invite) and the admin's invitations."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from billing.ledger import account_for
from mjweb.models import AuditEntry, Invite, User

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _invite_only(settings: Any) -> None:
    settings.MJWEB_SIGNUP_MODE = "invite"


def sign_up(client: Client, name: str, invite: str, email: str | None = None) -> Any:
    return client.post(
        "/accounts/signup/",
        {
            "username": name,
            "email": email or f"{name}@example.com",
            "password1": "a long passphrase 9",
            "password2": "a long passphrase 9",
            "invite": invite,
        },
    )


def test_without_an_invitation_there_is_no_sign_up_form() -> None:
    client = Client()
    page = client.get("/accounts/signup/")
    assert page.status_code == 403
    body = page.content.decode()
    assert "Sign-up is by invitation" in body and 'name="password1"' not in body
    unknown = client.get("/accounts/signup/?invite=nonsense")
    assert unknown.status_code == 403 and "not one we know" in unknown.content.decode()
    assert sign_up(client, "mallory", "nonsense").status_code == 403
    assert not User.objects.filter(username="mallory").exists()


def test_an_invitation_makes_one_account_with_its_welcome_credits(settings: Any) -> None:
    invite = Invite.objects.create(note="for Nina")
    form = Client().get(invite.path)
    assert form.status_code == 200 and "You have been invited" in form.content.decode()
    assert sign_up(Client(), "nina", invite.code).status_code == 302
    nina = User.objects.get(username="nina")
    invite.refresh_from_db()
    assert invite.used_by == nina and invite.used_at is not None
    assert account_for(nina).balance == settings.MJ_WELCOME_CREDITS
    # Good once: the link now says it has been used.
    again = sign_up(Client(), "nina2", invite.code)
    assert again.status_code == 403 and "used already" in again.content.decode()
    assert not User.objects.filter(username="nina2").exists()


def test_an_expired_invitation_is_refused() -> None:
    invite = Invite.objects.create(expires_at=timezone.now() - timedelta(minutes=1))
    page = Client().get(invite.path)
    assert page.status_code == 403 and "expired" in page.content.decode()
    assert sign_up(Client(), "otto", invite.code).status_code == 403


def test_an_invitation_for_one_address_is_for_that_address_only() -> None:
    invite = Invite.objects.create(email="Pia@Example.com")
    form = Client().get(invite.path)
    assert 'value="Pia@Example.com"' in form.content.decode()
    wrong = sign_up(Client(), "pia", invite.code, email="someone@example.com")
    assert (
        wrong.status_code == 200
        and "This invitation is for Pia@Example.com" in wrong.content.decode()
    )
    assert sign_up(Client(), "pia", invite.code, email="pia@example.com").status_code == 302


def test_two_sign_ups_racing_for_one_invitation_make_one_account(monkeypatch: Any) -> None:
    invite = Invite.objects.create()
    real_claim = Invite.claim

    def claim_after_another(self: Invite, user: User) -> bool:
        # The other sign-up spends it between this one's checks and its save.
        Invite.objects.filter(pk=self.pk).update(used_at=timezone.now())
        return real_claim(self, user)

    monkeypatch.setattr(Invite, "claim", claim_after_another)
    refused = sign_up(Client(), "quinn", invite.code)
    assert refused.status_code == 403 and "used already" in refused.content.decode()
    # The account made before the claim was rolled back with it.
    assert not User.objects.filter(username="quinn").exists()


def test_staff_make_an_invitation_in_the_admin_and_see_its_link(
    admin_client: Client, admin_user: Any, settings: Any
) -> None:
    answer = admin_client.post(
        "/admin/mjweb/invite/add/",
        {"email": "", "note": "for Rita", "expires_at_0": "2099-01-01", "expires_at_1": "12:00"},
    )
    assert answer.status_code == 302, answer.content.decode()[:2000]
    invite = Invite.objects.get(note="for Rita")
    assert invite.created_by == admin_user and len(invite.code) >= 20
    page = admin_client.get(f"/admin/mjweb/invite/{invite.pk}/change/").content.decode()
    assert f"{settings.SITE_URL}/accounts/signup/?invite={invite.code}" in page
    assert AuditEntry.objects.filter(verb=AuditEntry.Verb.ADD, object_id=str(invite.pk)).exists()
    listing = admin_client.get("/admin/mjweb/invite/?state=open").content.decode()
    assert "for Rita" in listing
