"""Credits: accounts, the append-only ledger, prices, and per-user limits.

Only `billing.ledger` writes CreditAccount and LedgerEntry rows. The database itself refuses
what must never happen (an overdraft, a negative hold, a second hold, capture or release of a
job), so a bug or a hand-written SQL statement cannot break the books either.

A user's Quota row overrides the site default field by field: an empty value inherits it.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from mjweb import catalogue

MODES = catalogue.MODE_NAMES


class CreditAccount(models.Model):
    """A user's credits. `balance` is what they own; `held` is the part running jobs reserve.

    What they can spend is `balance - held`. Both change only through billing.ledger, under
    a row lock, each change with its LedgerEntry in the same transaction.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="credit_account"
    )
    balance = models.BigIntegerField(default=0)
    held = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(held__gte=0), name="account_held_not_negative"),
            models.CheckConstraint(
                condition=Q(balance__gte=models.F("held")), name="account_balance_covers_held"
            ),
        ]

    def __str__(self) -> str:
        return f"Credits of {self.user}"

    @property
    def available(self) -> int:
        return self.balance - self.held


class EntryKind(models.TextChoices):
    GRANT = "grant", _("Grant")
    PURCHASE = "purchase", _("Purchase")
    HOLD = "hold", _("Hold")
    CAPTURE = "capture", _("Charge")
    RELEASE = "release", _("Refund")
    ADJUSTMENT = "adjustment", _("Adjustment")


# The kinds that belong to a job.
JOB_KINDS = (EntryKind.HOLD, EntryKind.CAPTURE, EntryKind.RELEASE)


class LedgerEntry(models.Model):
    """One credit movement, never changed or deleted (PostgreSQL refuses it by trigger).

    `amount` is the credits moved as people read it: positive for grants, purchases, holds,
    charges and refunds, signed for adjustments. `balance_delta` and `held_delta` are its
    exact effect on the account (the database checks they agree with the kind), so the
    account always equals the sum of its entries; `balance_after` and `held_after` are the
    account right after. A charge normally takes the credits off both balance and held; a
    late success whose hold was already released is charged from the balance alone.
    """

    Kind = EntryKind

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=12, choices=EntryKind.choices)
    amount = models.BigIntegerField()
    balance_delta = models.BigIntegerField()
    held_delta = models.BigIntegerField()
    balance_after = models.BigIntegerField()
    held_after = models.BigIntegerField()
    job = models.ForeignKey(
        "gallery.Job",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_entries",
    )
    # The admin who granted or adjusted; empty for what the system did.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    memo = models.TextField(blank=True)
    # Idempotency: "hold:<job code>", "capture:<job code>", "welcome:<user id>"...
    key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "ledger entries"
        indexes = [
            models.Index(fields=["account", "-id"], name="entry_account_recent"),
            # The admin's kind filter on 100,000 entries, newest first.
            models.Index(fields=["kind", "-id"], name="entry_kind_recent"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind__in=[EntryKind.GRANT, EntryKind.PURCHASE], amount__gt=0)
                    & Q(balance_delta=models.F("amount"), held_delta=0)
                )
                | Q(kind=EntryKind.ADJUSTMENT, balance_delta=models.F("amount"), held_delta=0)
                | Q(kind=EntryKind.HOLD, amount__gte=0, balance_delta=0)
                & Q(held_delta=models.F("amount"))
                | Q(kind=EntryKind.RELEASE, amount__gte=0, balance_delta=0)
                & Q(held_delta=-models.F("amount"))
                | Q(kind=EntryKind.CAPTURE, amount__gte=0)
                & Q(balance_delta=-models.F("amount"))
                & (Q(held_delta=-models.F("amount")) | Q(held_delta=0)),
                name="entry_effect_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(held_after__gte=0) & Q(balance_after__gte=models.F("held_after")),
                name="entry_after_in_bounds",
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=JOB_KINDS) | Q(job__isnull=False),
                name="entry_job_kinds_name_a_job",
            ),
            # At most one hold, one charge and one refund per job, whatever the key says.
            models.UniqueConstraint(
                fields=["job", "kind"],
                condition=Q(kind__in=JOB_KINDS),
                name="entry_one_per_job_and_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} ({self.key})"

    @property
    def available_after(self) -> int:
        return self.balance_after - self.held_after

    @property
    def available_change(self) -> int:
        """How this entry moved what the user can spend (a charge from a hold moves nothing)."""
        return self.balance_delta - self.held_delta


PRICED_ACTIONS = list(catalogue.PRICED_ACTIONS)


class Price(models.Model):
    """What one press costs, in credits (1 credit = $0.001 by default), per action and mode."""

    action = models.CharField(max_length=20, choices=catalogue.choices(catalogue.ACTION_NAMES))
    mode = models.CharField(max_length=10, choices=catalogue.choices(MODES))
    credits = models.PositiveIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["action", "mode"]
        constraints = [
            models.UniqueConstraint(fields=["action", "mode"], name="price_action_mode_unique"),
            models.CheckConstraint(
                condition=Q(action__in=PRICED_ACTIONS), name="price_action_valid"
            ),
            models.CheckConstraint(condition=Q(mode__in=MODES), name="price_mode_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} ({self.mode}): {self.credits} credits"


class Quota(models.Model):
    """A user's own limits; every empty field inherits the site default (MJ_* settings)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota"
    )
    # Comma-separated speed modes this user may choose; empty = the site default.
    allowed_modes = models.CharField(
        max_length=40,
        blank=True,
        help_text="Comma-separated: fast, relax, turbo. Empty uses the site default "
        "(MJ_ALLOWED_MODES).",
    )
    jobs_per_day = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Jobs a day (failed and cancelled ones do not count); 0 = no limit. "
        "Empty uses the site default (MJ_JOBS_PER_DAY).",
    )
    jobs_at_once = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Jobs queued or running at the same time; 0 = no limit. "
        "Empty uses the site default (MJ_JOBS_AT_ONCE).",
    )

    def __str__(self) -> str:
        return f"Quota of {self.user}"

    def clean(self) -> None:
        modes = [m.strip() for m in self.allowed_modes.split(",") if m.strip()]
        unknown = sorted(set(modes) - set(MODES))
        if unknown:
            raise ValidationError({"allowed_modes": f"Unknown mode(s): {', '.join(unknown)}."})
        self.allowed_modes = ",".join(m for m in MODES if m in modes)


class CreditPack(models.Model):
    """Credits sold together at one price through Stripe Checkout (billing.payments)."""

    name = models.CharField(max_length=80, help_text="What the buyer sees, e.g. Starter.")
    credits = models.PositiveIntegerField()
    # In the currency's smallest unit, as Stripe takes it (cents: 500 is $5.00).
    amount = models.PositiveIntegerField(help_text="In the currency's smallest unit: 500 = $5.00.")
    currency = models.CharField(max_length=3, default="usd", help_text="ISO code, lower case.")
    active = models.BooleanField(default=True, help_text="Offered on the Buy credits page.")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "amount", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(credits__gt=0), name="pack_credits_positive"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="pack_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.credits:,} credits for {self.price}"

    @property
    def price(self) -> str:
        return money(self.amount, self.currency)

    def clean(self) -> None:
        self.currency = self.currency.lower()
        if not (len(self.currency) == 3 and self.currency.isalpha()):
            raise ValidationError({"currency": "A three-letter currency code, like usd or eur."})


# Currencies whose smallest unit is the unit itself (Stripe's zero-decimal currencies).
ZERO_DECIMAL = frozenset(
    (
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga",
        "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
    )
)  # fmt: skip


def money(amount: int, currency: str) -> str:
    """An amount in the currency's smallest unit, written for people: "5.00 USD"."""
    code = currency.upper()
    if currency.lower() in ZERO_DECIMAL:
        return f"{amount:,} {code}"
    return f"{amount / 100:,.2f} {code}"


class PurchaseStatus(models.TextChoices):
    PENDING = "pending", _("Waiting for payment")
    PAID = "paid", _("Paid")
    EXPIRED = "expired", _("Not paid")
    FAILED = "failed", _("Payment failed")
    REFUNDED = "refunded", _("Refunded")
    PARTLY_REFUNDED = "partly_refunded", _("Partly refunded")
    DISPUTED = "disputed", _("Disputed")


class Purchase(models.Model):
    """One Checkout session for one pack: its credits are granted once, when Stripe's signed
    webhook says it was paid, and taken back by its refunds and disputes."""

    Status = PurchaseStatus

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="purchases"
    )
    pack = models.ForeignKey(CreditPack, null=True, on_delete=models.SET_NULL, related_name="+")
    # What was sold, copied from the pack when the session was made (a pack may change).
    credits = models.PositiveIntegerField()
    amount = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    session_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    payment_intent = models.CharField(max_length=255, blank=True, db_index=True)
    status = models.CharField(
        max_length=20, choices=PurchaseStatus.choices, default=PurchaseStatus.PENDING
    )
    # Credits taken back so far by refunds and disputes (and given back by won disputes).
    credits_taken_back = models.PositiveIntegerField(default=0)
    amount_refunded = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"], name="purchase_user_recent")]

    def __str__(self) -> str:
        return f"{self.credits:,} credits for {self.price} ({self.get_status_display()})"

    @property
    def price(self) -> str:
        return money(self.amount, self.currency)

    @property
    def grant_key(self) -> str:
        """The ledger key of its credits: a second grant for one purchase is impossible."""
        return f"purchase:{self.pk}"
