"""Buying credits through Stripe Checkout, without the network: the session is created
through a mocked HTTP transport answering Stripe's documented shapes, and every webhook is
signed here with the endpoint secret, as Stripe signs it (t=<time>,v1=<HMAC-SHA256>)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from django.test import Client

from billing import ledger, payments
from billing.models import CreditPack, EntryKind, LedgerEntry, Purchase
from mjweb.models import AuditEntry

pytestmark = pytest.mark.django_db

SECRET = "whsec_test_0123456789"
WEBHOOK = "/credits/stripe/webhook/"


class FakeStripe:
    """Stripe's API as far as Checkout goes: POST /v1/checkout/sessions."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.fail_with: int | None = None
        self.count = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail_with is not None:
            return httpx.Response(
                self.fail_with,
                json={"error": {"type": "api_error", "message": "Something went wrong."}},
            )
        assert request.url.path == "/v1/checkout/sessions"
        self.count += 1
        form = parse_qs(request.content.decode())
        session_id = f"cs_test_{self.count:04d}"
        return httpx.Response(
            200,
            json={
                "id": session_id,
                "object": "checkout.session",
                "mode": "payment",
                "status": "open",
                "payment_status": "unpaid",
                "amount_total": int(form["line_items[0][price_data][unit_amount]"][0]),
                "currency": form["line_items[0][price_data][currency]"][0],
                "client_reference_id": form["client_reference_id"][0],
                "url": f"https://checkout.stripe.com/c/pay/{session_id}",
            },
        )


@pytest.fixture
def stripe_api(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    settings.STRIPE_SECRET_KEY, settings.STRIPE_WEBHOOK_SECRET = "sk_test_key", SECRET
    fake = FakeStripe()
    monkeypatch.setattr(payments, "TRANSPORT", httpx.MockTransport(fake))
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # Stripe's retry backoff
    yield fake


@pytest.fixture
def pack() -> CreditPack:
    return CreditPack.objects.create(name="Starter", credits=5000, amount=500, currency="usd")


def signed(event: dict[str, Any], *, secret: str = SECRET, at: int | None = None) -> dict[str, str]:
    payload = json.dumps(event)
    stamp = at or int(time.time())
    mac = hmac.new(secret.encode(), f"{stamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return {"data": payload, "HTTP_STRIPE_SIGNATURE": f"t={stamp},v1={mac}"}


def deliver(client: Client, event: dict[str, Any], **signing: Any) -> Any:
    parts = signed(event, **signing)
    return client.post(
        WEBHOOK,
        parts["data"],
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=parts["HTTP_STRIPE_SIGNATURE"],
    )


def event(kind: str, data: dict[str, Any], event_id: str = "") -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{abs(hash((kind, json.dumps(data, sort_keys=True)))):x}",
        "object": "event",
        "type": kind,
        "data": {"object": data},
    }


def session(purchase: Purchase, **fields: Any) -> dict[str, Any]:
    return {
        "id": purchase.session_id,
        "object": "checkout.session",
        "client_reference_id": str(purchase.pk),
        "amount_total": purchase.amount,
        "currency": purchase.currency,
        "payment_status": "paid",
        "payment_intent": f"pi_{purchase.pk}",
        **fields,
    }


def bought(client: Client, pack: CreditPack) -> Purchase:
    response = client.post("/credits/buy/", {"pack": pack.pk})
    assert response.status_code == 302
    assert response["Location"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
    return Purchase.objects.latest("pk")


def balance(user: Any) -> int:
    return ledger.account_for(user).balance


def test_without_stripe_the_feature_is_hidden(alice_client: Client, settings: Any) -> None:
    settings.STRIPE_SECRET_KEY = settings.STRIPE_WEBHOOK_SECRET = ""
    assert alice_client.get("/credits/buy/").status_code == 404
    assert "Buy credits" not in alice_client.get("/credits/").content.decode()
    assert Client().post(WEBHOOK, "{}", content_type="application/json").status_code == 404


def test_a_pack_opens_one_checkout_session(
    stripe_api: FakeStripe, pack: CreditPack, alice: Any, alice_client: Client
) -> None:
    page = alice_client.get("/credits/buy/").content.decode()
    assert "Starter" in page and "5000 credits" in page and "5.00 USD" in page
    purchase = bought(alice_client, pack)
    assert purchase.status == "pending" and purchase.session_id == "cs_test_0001"
    assert (purchase.credits, purchase.amount, purchase.currency) == (5000, 500, "usd")
    request = stripe_api.requests[-1]
    assert request.headers["Authorization"] == "Bearer sk_test_key"
    assert request.headers["Idempotency-Key"] == f"mjweb-purchase-{purchase.pk}"
    form = parse_qs(request.content.decode())
    assert form["mode"] == ["payment"]
    assert form["line_items[0][quantity]"] == ["1"]
    assert form["customer_email"] == ["alice@example.com"]
    assert form["metadata[purchase]"] == [str(purchase.pk)]
    assert form["success_url"][0].endswith("/credits/buy/done/?session={CHECKOUT_SESSION_ID}")
    assert balance(alice) == 1000  # nothing until Stripe says it was paid


def test_stripe_failing_leaves_nothing_charged(
    stripe_api: FakeStripe, pack: CreditPack, alice: Any, alice_client: Client
) -> None:
    stripe_api.fail_with = 500
    response = alice_client.post("/credits/buy/", {"pack": pack.pk}, follow=True)
    assert "could not be opened just now; nothing was charged" in response.content.decode()
    assert Purchase.objects.get().status == "failed" and balance(alice) == 1000
    response = alice_client.post("/credits/buy/", {"pack": 999}, follow=True)
    assert "Choose one of the packs below." in response.content.decode()


def test_a_paid_session_grants_its_credits_once_whatever_the_retries(
    stripe_api: FakeStripe, pack: CreditPack, alice: Any, alice_client: Client, client: Client
) -> None:
    purchase = bought(alice_client, pack)
    completed = event("checkout.session.completed", session(purchase), "evt_1")
    assert deliver(client, completed).json() == {"ok": True, "result": "granted"}
    assert balance(alice) == 6000
    assert deliver(client, completed).status_code == 200  # Stripe retries the same event
    again = event("checkout.session.async_payment_succeeded", session(purchase), "evt_2")
    assert deliver(client, again).status_code == 200  # another event for the same session
    assert balance(alice) == 6000
    entries = LedgerEntry.objects.filter(kind=EntryKind.PURCHASE, account__user=alice)
    assert entries.count() == 1 and entries.get().amount == 5000
    purchase.refresh_from_db()
    assert purchase.status == "paid" and purchase.payment_intent == f"pi_{purchase.pk}"
    statement = alice_client.get("/credits/").content.decode()
    assert "Purchases" in statement and "5.00 USD" in statement and "Bought 5,000" in statement
    done = alice_client.get(f"/credits/buy/done/?session={purchase.session_id}")
    assert "5000 credits were added" in done.content.decode()


def test_a_delayed_payment_grants_when_it_succeeds(
    stripe_api: FakeStripe, pack: CreditPack, alice: Any, alice_client: Client, client: Client
) -> None:
    purchase = bought(alice_client, pack)
    unpaid = session(purchase, payment_status="unpaid")
    deliver(client, event("checkout.session.completed", unpaid))
    assert balance(alice) == 1000
    deliver(client, event("checkout.session.async_payment_succeeded", session(purchase)))
    assert balance(alice) == 6000

    other = bought(alice_client, pack)
    deliver(client, event("checkout.session.async_payment_failed", session(other)))
    other.refresh_from_db()
    assert other.status == "failed"
    third = bought(alice_client, pack)
    deliver(client, event("checkout.session.expired", session(third, payment_status="unpaid")))
    third.refresh_from_db()
    assert third.status == "expired" and balance(alice) == 6000


def test_bad_deliveries_are_refused_and_change_nothing(
    stripe_api: FakeStripe, pack: CreditPack, alice: Any, alice_client: Client, client: Client
) -> None:
    purchase = bought(alice_client, pack)
    paid = event("checkout.session.completed", session(purchase))
    assert deliver(client, paid, secret="whsec_someone_else").status_code == 400
    assert deliver(client, paid, at=int(time.time()) - 3600).status_code == 400  # too old
    no_header = client.post(WEBHOOK, json.dumps(paid), content_type="application/json")
    assert no_header.status_code == 400
    parts = signed(paid)
    broken = client.post(
        WEBHOOK,
        "{not json",
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=parts["HTTP_STRIPE_SIGNATURE"],
    )
    assert broken.status_code == 400
    malformed = {"type": "checkout.session.completed", "data": {"object": "nope"}}
    assert deliver(client, malformed).status_code == 400
    assert balance(alice) == 1000 and Purchase.objects.get().status == "pending"

    unknown = session(purchase, id="cs_test_not_ours", client_reference_id="")
    assert deliver(client, event("checkout.session.completed", unknown)).json()["result"] == (
        "ignored: unknown session"
    )
    cheaper = session(purchase, amount_total=100)
    assert (
        "not the pack's"
        in deliver(client, event("checkout.session.completed", cheaper)).json()["result"]
    )
    assert deliver(client, event("customer.created", {"id": "cus_1"})).status_code == 200
    assert balance(alice) == 1000


def test_refunds_take_back_their_share_once(
    stripe_api: FakeStripe, pack: CreditPack, alice: Any, alice_client: Client, client: Client
) -> None:
    purchase = bought(alice_client, pack)
    deliver(client, event("checkout.session.completed", session(purchase)))
    charge = {"id": "ch_1", "object": "charge", "payment_intent": f"pi_{purchase.pk}"}
    half = event("charge.refunded", {**charge, "amount_refunded": 250, "refunded": False})
    deliver(client, half)
    deliver(client, half)  # repeated: nothing more
    assert balance(alice) == 3500
    purchase.refresh_from_db()
    assert purchase.status == "partly_refunded" and purchase.credits_taken_back == 2500
    deliver(client, event("charge.refunded", {**charge, "amount_refunded": 500, "refunded": True}))
    assert balance(alice) == 1000
    purchase.refresh_from_db()
    assert purchase.status == "refunded" and purchase.credits_taken_back == 5000
    adjustments = LedgerEntry.objects.filter(kind=EntryKind.ADJUSTMENT, account__user=alice)
    assert sorted(entry.amount for entry in adjustments) == [-2500, -2500]
    audits = AuditEntry.objects.filter(content_type__model="purchase")
    assert audits.count() == 2 and all("Refund of" in entry.reason for entry in audits)


def test_credits_already_spent_cannot_be_taken_back(
    stripe_api: FakeStripe, pack: CreditPack, alice: Any, alice_client: Client, client: Client
) -> None:
    purchase = bought(alice_client, pack)
    deliver(client, event("checkout.session.completed", session(purchase)))
    admin = type(alice).objects.create_superuser("root", "root@example.com", "x")
    ledger.adjust(alice, -5800, actor=admin, reason="spent, say", key="spend")
    charge = {"id": "ch_2", "payment_intent": f"pi_{purchase.pk}", "amount_refunded": 500}
    deliver(client, event("charge.refunded", charge))
    assert balance(alice) == 0  # never below zero
    purchase.refresh_from_db()
    assert purchase.credits_taken_back == 200
    reason = AuditEntry.objects.filter(content_type__model="purchase").get().reason
    assert "200 of 5000 credits taken back; 4800 had already been spent" in reason


def test_a_dispute_takes_the_credits_and_a_won_one_gives_them_back(
    stripe_api: FakeStripe, pack: CreditPack, alice: Any, alice_client: Client, client: Client
) -> None:
    purchase = bought(alice_client, pack)
    deliver(client, event("checkout.session.completed", session(purchase)))
    dispute = {
        "id": "dp_1",
        "object": "dispute",
        "charge": "ch_3",
        "payment_intent": f"pi_{purchase.pk}",
        "reason": "fraudulent",
        "status": "needs_response",
    }
    deliver(client, event("charge.dispute.created", dispute))
    deliver(client, event("charge.dispute.created", dispute))
    assert balance(alice) == 1000
    purchase.refresh_from_db()
    assert purchase.status == "disputed"
    deliver(client, event("charge.dispute.closed", {**dispute, "status": "lost"}))
    assert balance(alice) == 1000
    deliver(client, event("charge.dispute.closed", {**dispute, "status": "won"}))
    deliver(client, event("charge.dispute.closed", {**dispute, "status": "won"}))
    assert balance(alice) == 6000
    purchase.refresh_from_db()
    assert purchase.status == "paid" and purchase.credits_taken_back == 0
    assert (
        deliver(client, event("charge.refunded", {"payment_intent": "pi_other"}))
        .json()["result"]
        .startswith("ignored")
    )


def test_the_out_of_credits_refusal_offers_the_packs(
    stripe_api: FakeStripe, pack: CreditPack, alice: Any, alice_client: Client
) -> None:
    admin = type(alice).objects.create_superuser("root", "root@example.com", "x")
    ledger.adjust(alice, -1000, actor=admin, reason="spent", key="spent")
    form = {"prompt": "a lighthouse", "mode": "fast", "submit_key": str(uuid.uuid4())}
    response = alice_client.post("/imagine/", form)
    page = response.content.decode()
    assert "This costs 56 credits and you have 0 available" in page
    assert 'href="/credits/buy/"' in page


def test_the_usage_report_lists_purchases(
    stripe_api: FakeStripe,
    pack: CreditPack,
    alice_client: Client,
    client: Client,
    admin_client: Client,
) -> None:
    purchase = bought(alice_client, pack)
    deliver(client, event("checkout.session.completed", session(purchase)))
    page = admin_client.get("/admin/reports/usage/").content.decode()
    assert "Credits bought" in page and "5.00 USD" in page
