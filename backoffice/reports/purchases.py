"""Credits bought through Stripe in a range: per currency, the purchases paid (by when they
were paid), their credits and money, and what refunds and disputes took back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Sum
from django.db.models.functions import Coalesce

from backoffice.reports.period import Period
from billing.models import Purchase, PurchaseStatus, money


@dataclass(frozen=True)
class PurchaseLine:
    currency: str
    purchases: int
    credits: int
    amount: int
    refunded: int
    credits_taken_back: int

    @property
    def money(self) -> str:
        return money(self.amount, self.currency)

    @property
    def money_refunded(self) -> str:
        return money(self.refunded, self.currency)


def purchases(period: Period, user: Any = None) -> list[PurchaseLine]:
    paid = Purchase.objects.filter(
        paid_at__gte=period.start, paid_at__lt=period.end, paid_at__isnull=False
    ).exclude(status__in=(PurchaseStatus.PENDING, PurchaseStatus.EXPIRED))
    if user is not None:
        paid = paid.filter(user=user)
    rows = (
        paid.values("currency")
        .annotate(
            purchases=Count("pk"),
            credits=Coalesce(Sum("credits"), 0),
            amount=Coalesce(Sum("amount"), 0),
            refunded=Coalesce(Sum("amount_refunded"), 0),
            credits_taken_back=Coalesce(Sum("credits_taken_back"), 0),
        )
        .order_by("currency")
    )
    return [PurchaseLine(**row) for row in rows]
