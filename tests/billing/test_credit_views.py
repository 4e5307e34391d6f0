"""What users and admins see of credits: header balance, statement, prices, refusals."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from billing import ledger
from billing.models import CreditAccount, LedgerEntry
from gallery import lifecycle, services
from gallery.models import Job
from tests.gallery.factories import make_finished_job

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def imagine(client: Client, prompt: str = "a fox", **extra: Any) -> Any:
    data = {"prompt": prompt, "mode": "fast", "submit_key": str(uuid.uuid4())}
    return client.post(reverse("gallery:imagine"), data, **extra)


def test_the_header_shows_the_available_balance(alice_client: Client) -> None:
    body = alice_client.get(reverse("gallery:home")).content.decode()
    assert 'id="balance"' in body
    assert '<span class="amount">1000</span> credits' in body
    assert 'hx-trigger="balance-changed from:body"' in body


def test_the_balance_fragment_counts_held_credits(alice: Any, alice_client: Client) -> None:
    services.submit(owner=alice, prompt="running")
    body = alice_client.get(reverse("billing:balance"), **HX).content.decode()
    assert '<span class="amount">944</span> credits' in body
    assert "56 held" in body


def test_a_submit_tells_the_page_that_credits_moved(alice_client: Client) -> None:
    response = imagine(alice_client, **HX)
    assert response.status_code == 200
    assert json.loads(response.headers["HX-Trigger"]) == {"balance-changed": {}}


def test_the_live_poll_tells_the_page_when_a_jobs_credits_moved(alice: Any) -> None:
    client = Client()
    client.force_login(alice)
    job = services.submit(owner=alice, prompt="x")
    seen = {"live": f"{job.code}~{job.live_version}~"}
    response = client.get(reverse("gallery:live"), seen, **HX)
    assert response.status_code == 204 and "HX-Trigger" not in response.headers
    lifecycle.fail(job, kind=Job.FailKind.PROVIDER_ERROR, reason="boom")
    response = client.get(reverse("gallery:live"), seen, **HX)
    assert json.loads(response.headers["HX-Trigger"]) == {"balance-changed": {}}
    assert "Refunded 56 credits" in response.content.decode()


def test_a_refusal_for_credits_says_price_and_balance_and_writes_nothing(
    alice: Any, alice_client: Client, bob: Any
) -> None:
    ledger.adjust(alice, -990, actor=bob, reason="test", key="v1")
    response = imagine(alice_client, **HX)
    assert response.status_code == 200
    body = response.content.decode()
    assert "This costs 56 credits and you have 10 available." in body
    assert "HX-Trigger" not in response.headers
    response = imagine(alice_client)
    assert response.status_code == 422
    assert "This costs 56 credits and you have 10 available." in response.content.decode()
    assert not Job.objects.exists()
    assert not LedgerEntry.objects.filter(kind="hold").exists()


def test_the_form_shows_each_modes_price(alice_client: Client) -> None:
    body = alice_client.get(reverse("gallery:home")).content.decode()
    assert '<span class="price">56 credits</span>' in body
    assert '<span class="price">21 credits</span>' in body
    assert '<span class="price">168 credits</span>' in body
    assert '<span class="cost cost-fast"> · 56 credits</span>' in body


def test_every_button_shows_its_price_before_the_press(alice: Any, alice_client: Client) -> None:
    job = make_finished_job(alice)
    body = alice_client.get(reverse("gallery:job", args=[job.code])).content.decode()
    assert 'aria-label="Reroll: run the same prompt again, 56 credits"' in body
    assert 'aria-label="U1: Upscale image 1, 14 credits"' in body
    assert 'U1 <span class="price" aria-hidden="true">14</span>' in body


def test_a_card_shows_what_the_job_cost(alice: Any, alice_client: Client) -> None:
    job = services.submit(owner=alice, prompt="x")
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, provider_job_id="t-1")
    job.refresh_from_db()
    body = alice_client.get(reverse("gallery:job", args=[job.code])).content.decode()
    assert "56 credits held until it finishes" in body
    lifecycle.succeed(job)
    body = alice_client.get(reverse("gallery:job", args=[job.code])).content.decode()
    assert "Cost 56 credits" in body


def test_cancel_gives_the_credits_back_in_place(alice: Any, alice_client: Client) -> None:
    job = services.submit(owner=alice, prompt="x")
    response = alice_client.post(reverse("gallery:cancel", args=[job.code]), **HX)
    assert response.status_code == 200
    assert json.loads(response.headers["HX-Trigger"]) == {"balance-changed": {}}
    assert "Refunded 56 credits" in response.content.decode()
    assert CreditAccount.objects.get(user=alice).held == 0


def test_cancel_after_the_provider_has_it_is_refused(alice: Any, alice_client: Client) -> None:
    job = services.submit(owner=alice, prompt="x")
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUBMITTED, provider_job_id="t-2")
    response = alice_client.post(reverse("gallery:cancel", args=[job.code]))
    assert response.status_code == 409
    assert "Too late to cancel" in response.content.decode()
    assert Job.objects.get(pk=job.pk).charge == Job.Charge.HELD


def test_nobody_else_can_cancel_my_job(alice: Any, bob_client: Client) -> None:
    job = services.submit(owner=alice, prompt="x")
    assert bob_client.post(reverse("gallery:cancel", args=[job.code])).status_code == 404
    assert Client().post(reverse("gallery:cancel", args=[job.code])).status_code == 302
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED


def test_the_statement_lists_my_entries_with_job_links(alice: Any, alice_client: Client) -> None:
    job = services.submit(owner=alice, prompt="a lighthouse")
    lifecycle.cancel(job)
    body = alice_client.get(reverse("billing:statement")).content.decode()
    assert "Welcome credits" in body
    assert job.get_absolute_url() in body
    assert "Refunded: cancelled" in body
    assert body.count('<tr class="kind-') == 3


def test_the_statement_is_mine_only(alice: Any, bob: Any, bob_client: Client) -> None:
    services.submit(owner=alice, prompt="alice's secret prompt")
    body = bob_client.get(reverse("billing:statement")).content.decode()
    assert "alice&#x27;s secret prompt" not in body and "secret prompt" not in body
    assert body.count('<tr class="kind-') == 1


def test_anonymous_users_are_sent_to_log_in() -> None:
    for name in ("billing:statement", "billing:balance"):
        response = Client().get(reverse(name))
        assert response.status_code == 302
        assert response.headers["Location"].startswith(reverse("login"))


def test_the_statement_pages_through_many_entries(alice: Any, alice_client: Client) -> None:
    for n in range(60):
        ledger.grant(alice, 1, key=f"bulk:{n}", memo=f"grant {n}")
    first = alice_client.get(reverse("billing:statement")).content.decode()
    second = alice_client.get(reverse("billing:statement") + "?page=2").content.decode()
    assert first.count('<tr class="kind-') == 50
    assert second.count('<tr class="kind-') == 11
    assert "Welcome credits" in second and "grant 59" in first


@pytest.fixture
def admin_client(django_user_model: Any) -> Client:
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(admin)
    return client


def test_an_admin_grants_credits_with_a_reason(alice: Any, admin_client: Client) -> None:
    account = ledger.account_for(alice)
    url = reverse("admin:billing_creditaccount_credit", args=[account.pk])
    form = {"kind": "grant", "amount": "300", "reason": "", "key": str(uuid.uuid4())}
    response = admin_client.post(url, form)
    assert response.status_code == 200
    assert "required" in response.content.decode()
    assert CreditAccount.objects.get(pk=account.pk).balance == 1000
    form["reason"] = "Refund for a provider outage"
    assert admin_client.post(url, form).status_code == 302
    assert admin_client.post(url, form).status_code == 302  # a double submit: one entry
    entry = LedgerEntry.objects.get(key=f"admin:{form['key']}")
    assert entry.actor.username == "root"
    assert (entry.kind, entry.amount, entry.memo) == ("grant", 300, "Refund for a provider outage")
    assert CreditAccount.objects.get(pk=account.pk).balance == 1300


def test_an_admin_adjustment_cannot_take_held_credits(alice: Any, admin_client: Client) -> None:
    services.submit(owner=alice, prompt="x")
    account = ledger.account_for(alice)
    url = reverse("admin:billing_creditaccount_credit", args=[account.pk])
    form = {"kind": "adjustment", "amount": "-1000", "reason": "oops", "key": str(uuid.uuid4())}
    body = admin_client.post(url, form).content.decode()
    assert "Only 944 credits are available" in body
    assert CreditAccount.objects.get(pk=account.pk).balance == 1000


def test_staff_without_the_permission_cannot_grant(alice: Any) -> None:
    staff = get_user_model().objects.create_user("staff", "s@example.com", "pw", is_staff=True)
    client = Client()
    client.force_login(staff)
    account = ledger.account_for(alice)
    url = reverse("admin:billing_creditaccount_credit", args=[account.pk])
    form = {"kind": "grant", "amount": "5", "reason": "x", "key": str(uuid.uuid4())}
    assert client.post(url, form).status_code == 403
    assert CreditAccount.objects.get(pk=account.pk).balance == 1000


def test_ledger_entries_cannot_be_changed_in_the_admin(alice: Any, admin_client: Client) -> None:
    entry = LedgerEntry.objects.get(account__user=alice)
    change = reverse("admin:billing_ledgerentry_change", args=[entry.pk])
    delete = reverse("admin:billing_ledgerentry_delete", args=[entry.pk])
    assert admin_client.get(reverse("admin:billing_ledgerentry_add")).status_code == 403
    assert admin_client.post(change, {"amount": 1}).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert LedgerEntry.objects.get(pk=entry.pk).amount == 1000
