"""Buying credits through Stripe Checkout.

- `start(user, pack)`: a Purchase and one Checkout session for it (Stripe's idempotency key
  is the purchase, so a retried request makes no second session); the buyer is sent to
  Stripe's page.
- `handle(payload, signature)`: Stripe's webhook, its signature checked with
  STRIPE_WEBHOOK_SECRET. Credits are granted only here, when a session is paid
  (`checkout.session.completed` with payment_status "paid", or
  `checkout.session.async_payment_succeeded`), once per purchase whatever Stripe retries or
  repeats: the grant's ledger key is the purchase's. Refunds (`charge.refunded`) take back
  the refunded share of the credits, disputes (`charge.dispute.created`) what is left of
  them, and a dispute won (`charge.dispute.closed`, "won") gives them back: ledger
  adjustments, each with its audit entry. Credits already spent cannot be taken back; the
  shortfall is written in the entry's memo and the audit.
With STRIPE_SECRET_KEY or STRIPE_WEBHOOK_SECRET unset the feature is off (`enabled()`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx
import stripe
from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from billing import ledger
from billing.models import CreditPack, EntryKind, Purchase, PurchaseStatus, money
from mjweb import audit
from mjweb.models import AuditEntry

logger = logging.getLogger(__name__)


def enabled() -> bool:
    return bool(settings.STRIPE_SECRET_KEY and settings.STRIPE_WEBHOOK_SECRET)


class PaymentError(Exception):
    """Checkout could not be started; the message is for the buyer."""


class _HTTPX(stripe.HTTPXClient):
    """Stripe's httpx client, with a transport seam (tests answer from Stripe's documented
    shapes through httpx.MockTransport; nothing reaches the network)."""

    def __init__(self, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(timeout=30, allow_sync_methods=True)
        if transport is not None:
            self._client = httpx.Client(transport=transport)

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Any, post_data: Any
    ) -> list[Any]:
        # The form Stripe encodes is text: httpx takes text as `content` (`data` is for
        # dicts, and warns of anything else).
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        kwargs["content"] = kwargs.pop("data", None) or None
        return [args, kwargs]


# Tests set this; None uses the network.
TRANSPORT: httpx.BaseTransport | None = None


def client() -> stripe.StripeClient:
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY, http_client=_HTTPX(TRANSPORT), max_network_retries=2
    )


def start(user: Any, pack: CreditPack, *, success_url: str, cancel_url: str) -> str:
    """Make the purchase and its Checkout session; returns the URL to send the buyer to."""
    if not enabled():
        raise PaymentError(_("Buying credits is not available on this site."))
    if not pack.active:
        raise PaymentError(_("This pack is no longer offered; choose another."))
    purchase = Purchase.objects.create(
        user=user, pack=pack, credits=pack.credits, amount=pack.amount, currency=pack.currency
    )
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": pack.currency,
                    "unit_amount": pack.amount,
                    "product_data": {"name": f"{pack.credits:,} credits ({pack.name})"},
                },
            }
        ],
        "client_reference_id": str(purchase.pk),
        "metadata": {"purchase": str(purchase.pk), "user": str(user.pk)},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    if user.email:
        params["customer_email"] = user.email
    try:
        session = client().v1.checkout.sessions.create(
            params=params,  # type: ignore[arg-type]
            options={"idempotency_key": f"mjweb-purchase-{purchase.pk}"},
        )
    except stripe.StripeError as exc:
        logger.warning("Checkout session for purchase %s failed: %s", purchase.pk, exc)
        Purchase.objects.filter(pk=purchase.pk).update(status=PurchaseStatus.FAILED)
        raise PaymentError(
            "The payment page could not be opened just now; nothing was charged. Try again."
        ) from None
    Purchase.objects.filter(pk=purchase.pk).update(session_id=session.id)
    return str(session.url)


# --- the webhook -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: int
    message: str


def handle(payload: bytes, signature: str) -> Outcome:
    """Verify and apply one webhook delivery. 400 for a bad signature or body (Stripe shows
    it and retries); 200 for what we applied or deliberately ignore."""
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8", "replace"),
            signature,
            settings.STRIPE_WEBHOOK_SECRET,
            tolerance=stripe.Webhook.DEFAULT_TOLERANCE,
        )
    except stripe.SignatureVerificationError:
        return Outcome(400, "bad signature")
    try:
        event = json.loads(payload)
        kind = str(event["type"])
        data = event["data"]["object"]
        if not isinstance(data, dict):
            raise TypeError("data.object is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        return Outcome(400, f"malformed event: {exc}")
    handler = HANDLERS.get(kind)
    if handler is None:
        return Outcome(200, f"ignored: {kind}")
    return handler(data)


def _purchase_of_session(session: dict[str, Any]) -> Purchase | None:
    session_id = str(session.get("id") or "")
    found = Purchase.objects.filter(session_id=session_id).first() if session_id else None
    if found is None:
        # The webhook may outrun the write of the session's id: the reference names it.
        reference = str(session.get("client_reference_id") or "")
        if reference.isdigit():
            found = Purchase.objects.filter(pk=int(reference), session_id__isnull=True).first()
    return found


def _paid(session: dict[str, Any]) -> Outcome:
    if session.get("payment_status") not in ("paid", "no_payment_required"):
        return Outcome(200, "ignored: not paid yet")
    purchase = _purchase_of_session(session)
    if purchase is None:
        logger.warning("Stripe reported session %s, which is not ours", session.get("id"))
        return Outcome(200, "ignored: unknown session")
    if session.get("amount_total") != purchase.amount or (
        str(session.get("currency") or "").lower() != purchase.currency
    ):
        logger.error("session %s paid an amount we did not ask for", session.get("id"))
        return Outcome(200, "ignored: the amount paid is not the pack's")
    with transaction.atomic():
        locked = Purchase.objects.select_for_update().get(pk=purchase.pk)
        entry = ledger.grant(
            locked.user,
            locked.credits,
            key=locked.grant_key,
            memo=f"Bought {locked.credits:,} credits for {locked.price}",
            kind=EntryKind.PURCHASE,
        )
        if locked.status in (PurchaseStatus.PENDING, PurchaseStatus.EXPIRED, PurchaseStatus.FAILED):
            locked.status = PurchaseStatus.PAID
            locked.paid_at = locked.paid_at or entry.created_at
        locked.session_id = locked.session_id or str(session.get("id") or "") or None
        locked.payment_intent = str(session.get("payment_intent") or locked.payment_intent)
        locked.save(update_fields=["status", "paid_at", "session_id", "payment_intent"])
    return Outcome(200, "granted")


def _unpaid(status: str) -> Any:
    def mark(session: dict[str, Any]) -> Outcome:
        purchase = _purchase_of_session(session)
        if purchase is None:
            return Outcome(200, "ignored: unknown session")
        Purchase.objects.filter(pk=purchase.pk, status=PurchaseStatus.PENDING).update(status=status)
        return Outcome(200, f"marked {status}")

    return mark


def _purchase_of_charge(charge: dict[str, Any]) -> Purchase | None:
    intent = str(charge.get("payment_intent") or "")
    return Purchase.objects.filter(payment_intent=intent).first() if intent else None


def _refunded(charge: dict[str, Any]) -> Outcome:
    purchase = _purchase_of_charge(charge)
    if purchase is None:
        return Outcome(200, "ignored: a charge that bought no credits here")
    refunded = charge.get("amount_refunded")
    if not isinstance(refunded, int) or refunded < 0:
        return Outcome(400, "malformed charge: amount_refunded")
    with transaction.atomic():
        locked = Purchase.objects.select_for_update().get(pk=purchase.pk)
        if refunded <= locked.amount_refunded:
            return Outcome(200, "ignored: no new refund")
        locked.amount_refunded = refunded
        due = _refunded_credits(locked) - locked.credits_taken_back
        locked.status = (
            PurchaseStatus.REFUNDED if refunded >= locked.amount else PurchaseStatus.PARTLY_REFUNDED
        )
        taken = _take_back(
            locked,
            due,
            key=f"purchase:{locked.pk}:refund:{refunded}",
            why=f"Refund of {money(refunded, locked.currency)} of {locked.price}",
        )
        locked.credits_taken_back += taken
        locked.save(update_fields=["amount_refunded", "status", "credits_taken_back"])
    return Outcome(200, "taken back")


def _disputed(dispute: dict[str, Any]) -> Outcome:
    purchase = _purchase_of_charge(dispute)
    if purchase is None:
        return Outcome(200, "ignored: a charge that bought no credits here")
    dispute_id = str(dispute.get("id") or "")
    with transaction.atomic():
        locked = Purchase.objects.select_for_update().get(pk=purchase.pk)
        if locked.status == PurchaseStatus.DISPUTED:
            return Outcome(200, "ignored: already disputed")
        due = locked.credits - locked.credits_taken_back
        locked.status = PurchaseStatus.DISPUTED
        taken = _take_back(
            locked,
            due,
            key=f"purchase:{locked.pk}:dispute:{dispute_id}",
            why=f"Payment disputed ({dispute.get('reason') or 'no reason given'})",
        )
        locked.credits_taken_back += taken
        locked.save(update_fields=["status", "credits_taken_back"])
    return Outcome(200, "taken back")


def _dispute_closed(dispute: dict[str, Any]) -> Outcome:
    if dispute.get("status") != "won":
        return Outcome(200, "ignored: the dispute was not won")
    purchase = _purchase_of_charge(dispute)
    if purchase is None:
        return Outcome(200, "ignored: a charge that bought no credits here")
    dispute_id = str(dispute.get("id") or "")
    with transaction.atomic():
        locked = Purchase.objects.select_for_update().get(pk=purchase.pk)
        if locked.status != PurchaseStatus.DISPUTED:
            return Outcome(200, "ignored: not disputed")
        back = locked.credits_taken_back - _refunded_credits(locked)
        locked.status = (
            PurchaseStatus.PARTLY_REFUNDED if locked.amount_refunded else PurchaseStatus.PAID
        )
        if back > 0:
            entry = ledger.grant(
                locked.user,
                back,
                key=f"purchase:{locked.pk}:dispute-won:{dispute_id}",
                memo=f"Dispute won: the credits of {locked.price} are yours again",
                kind=EntryKind.PURCHASE,
            )
            _audit(locked, entry.amount, f"Dispute {dispute_id} won: credits given back.")
            locked.credits_taken_back -= back
        locked.save(update_fields=["status", "credits_taken_back"])
    return Outcome(200, "given back")


def _refunded_credits(purchase: Purchase) -> int:
    """The credits its refunds so far stand for (their share of what was paid)."""
    return round(
        purchase.credits * min(purchase.amount_refunded, purchase.amount) / purchase.amount
    )


def _take_back(purchase: Purchase, due: int, *, key: str, why: str) -> int:
    """Take up to `due` credits from the buyer (no more than they still have available);
    returns how many were taken."""
    if due <= 0:
        return 0
    entry, short = ledger.take_back(purchase.user, due, key=key, memo=why)
    taken = -entry.amount if entry is not None else 0
    note = f"{why}: {taken} of {due} credits taken back"
    if short:
        note += f"; {short} had already been spent"
    _audit(purchase, -taken, note + ".")
    return taken


def _audit(purchase: Purchase, credits: int, reason: str) -> None:
    audit.record(
        actor=None,
        verb=AuditEntry.Verb.ADJUST,
        obj=purchase,
        after={"credits": credits, "status": purchase.status},
        reason=reason,
    )


HANDLERS = {
    "checkout.session.completed": _paid,
    "checkout.session.async_payment_succeeded": _paid,
    "checkout.session.async_payment_failed": _unpaid(PurchaseStatus.FAILED),
    "checkout.session.expired": _unpaid(PurchaseStatus.EXPIRED),
    "charge.refunded": _refunded,
    "charge.dispute.created": _disputed,
    "charge.dispute.closed": _dispute_closed,
}


def recent(user: Any, limit: int = 20) -> list[Purchase]:
    """The user's purchases that reached Stripe, newest first."""
    return list(Purchase.objects.filter(user=user).exclude(session_id=None)[:limit])
