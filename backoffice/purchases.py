"""Credit packs (what Stripe Checkout sells) and the purchases made of them."""

from __future__ import annotations

from django.contrib import admin

from backoffice.site import AuditedAdmin, ReadOnlyAdmin, created
from billing.models import CreditPack, Purchase


@admin.register(CreditPack)
class CreditPackAdmin(AuditedAdmin):
    list_display = ["name", "credits", "price", "active", "position"]
    list_editable = ["active", "position"]
    list_filter = ["active", "currency"]
    fields = ["name", "credits", "amount", "currency", "active", "position"]

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        # Purchases refer to it: take it off sale instead.
        return False


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyAdmin):
    list_display = [created, "user", "credits", "price", "status", "credits_taken_back"]
    list_filter = ["status", "currency"]
    search_fields = ["user__username", "user__email", "session_id", "payment_intent"]
    list_select_related = ["user"]
    fields = [
        "user",
        "pack",
        "credits",
        "amount",
        "currency",
        "status",
        "session_id",
        "payment_intent",
        "amount_refunded",
        "credits_taken_back",
        "created_at",
        "paid_at",
    ]
