"""The only code that writes credit entries and account balances.

Every function is one transaction (a savepoint when the caller already has one) that locks
the user's account row first, so concurrent calls for one user run one after another. Each
entry has a unique key: calling again with a key already used returns the entry written the
first time and changes nothing, so a retried task, a duplicate webhook or a double click can
never move credits twice. The database's CHECK and UNIQUE constraints back all of this up.

A job's credits go: hold at submit -> capture on success, or release on failure, cancel or
timeout. The ledger knows a job only by reference (`JobRef`: its row id for the entry's
foreign key, its public code for the keys); where a job's credits stand is read from the job's
own entries, under the account lock. The job's owner (gallery) records that on the job in the
same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.models import CreditAccount, EntryKind, LedgerEntry

if TYPE_CHECKING:
    from mjweb.models import User


@dataclass(frozen=True)
class JobRef:
    """What the ledger is told of a job: whose it is, which row, and its price."""

    owner: Any
    pk: int
    code: str
    cost: int

    def key(self, kind: str) -> str:
        return f"{kind}:{self.code}"


class LedgerError(Exception):
    """A movement the ledger refuses; the message can be shown as it is."""


@dataclass
class InsufficientCredits(LedgerError):
    needed: int
    available: int
    held: int

    def __str__(self) -> str:
        values = {"needed": self.needed, "available": self.available, "held": self.held}
        if self.held:
            return (
                _(
                    "This costs %(needed)d credits and you have %(available)d available "
                    "(%(held)d more are held by jobs in progress)."
                )
                % values
            )
        return _("This costs %(needed)d credits and you have %(available)d available.") % values


def account_for(user: Any) -> CreditAccount:
    """The user's account, created empty when missing (no lock; for reading)."""
    account = CreditAccount.objects.filter(user_id=user.pk).first()
    if account is None:
        account, _created = _get_or_create(user.pk)
    return account


def lock(user: Any) -> CreditAccount:
    """The user's account row, locked until the surrounding transaction ends."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("ledger.lock() needs a transaction")
    account = CreditAccount.objects.select_for_update().filter(user_id=user.pk).first()
    if account is None:
        _get_or_create(user.pk)
        account = CreditAccount.objects.select_for_update().get(user_id=user.pk)
    return account


def _get_or_create(user_id: int) -> tuple[CreditAccount, bool]:
    try:
        with transaction.atomic():
            return CreditAccount.objects.get_or_create(user_id=user_id)
    except IntegrityError:
        # Another request created it between our read and our insert.
        return CreditAccount.objects.get(user_id=user_id), False


def grant(
    user: Any,
    amount: int,
    *,
    key: str,
    memo: str,
    actor: User | None = None,
    kind: str = EntryKind.GRANT,
) -> LedgerEntry:
    """Add credits (a welcome grant, an admin's grant, a purchase)."""
    if kind not in (EntryKind.GRANT, EntryKind.PURCHASE):
        raise ValueError(f"grant() writes grants and purchases, not {kind}")
    if amount <= 0:
        raise LedgerError("A grant must be a positive number of credits.")
    with transaction.atomic():
        account = lock(user)
        existing = _existing(key)
        if existing is not None:
            return existing
        return _write(account, kind, amount, balance_delta=amount, key=key, memo=memo, actor=actor)


def adjust(user: Any, amount: int, *, actor: User, reason: str, key: str) -> LedgerEntry:
    """An admin's correction, up or down; it cannot take away credits that are held."""
    reason = reason.strip()
    if not reason:
        raise LedgerError("Say why: a reason is required.")
    if amount == 0:
        raise LedgerError("An adjustment of 0 credits changes nothing.")
    with transaction.atomic():
        account = lock(user)
        existing = _existing(key)
        if existing is not None:
            return existing
        if account.available + amount < 0:
            raise LedgerError(
                f"Only {account.available} credits are available to take away "
                f"({account.held} are held by jobs in progress)."
            )
        return _write(
            account,
            EntryKind.ADJUSTMENT,
            amount,
            balance_delta=amount,
            key=key,
            memo=reason,
            actor=actor,
        )


def take_back(user: Any, amount: int, *, key: str, memo: str) -> tuple[LedgerEntry | None, int]:
    """Take back up to `amount` credits a payment gave (a refund, a dispute): an adjustment
    of what is available, since credits held by jobs or already spent cannot be. Returns the
    entry (None when nothing could be taken) and the shortfall."""
    if amount <= 0:
        raise LedgerError("Take back a positive number of credits.")
    with transaction.atomic():
        account = lock(user)
        existing = _existing(key)
        if existing is not None:
            return existing, amount + existing.amount
        taken = min(amount, max(0, account.available))
        if taken == 0:
            return None, amount
        memo = memo if taken == amount else f"{memo} ({amount - taken} already spent)"
        entry = _write(
            account, EntryKind.ADJUSTMENT, -taken, balance_delta=-taken, key=key, memo=memo
        )
        return entry, amount - taken


def welcome(user: Any) -> LedgerEntry | None:
    """The configured grant a new account starts with, once per user."""
    amount = settings.MJ_WELCOME_CREDITS
    if amount <= 0:
        return None
    return grant(user, amount, key=f"welcome:{user.pk}", memo="Welcome credits")


def hold(job: JobRef, *, memo: str) -> LedgerEntry | None:
    """Reserve the job's price at submit; refuses when the user cannot pay."""
    if job.cost == 0:
        return None
    with transaction.atomic():
        account = lock(job.owner)
        existing = _existing(job.key("hold"))
        if existing is not None:
            return existing
        if account.available < job.cost:
            raise InsufficientCredits(job.cost, max(account.available, 0), account.held)
        return _write(
            account,
            EntryKind.HOLD,
            job.cost,
            held_delta=job.cost,
            key=job.key("hold"),
            memo=memo,
            job_id=job.pk,
        )


def capture(job: JobRef) -> LedgerEntry | None:
    """Charge a job that succeeded, once.

    Normally from its hold. A late success whose hold was already released (the job had
    timed out) is charged from the balance if the user still has the credits; if not it is
    delivered free, and a zero charge records that decision. A job never held (free) has
    nothing to charge.
    """
    with transaction.atomic():
        account = lock(job.owner)
        existing = _existing(job.key("capture"))
        if existing is not None:
            return existing
        standing = _standing(job)
        if standing == EntryKind.HOLD:
            amount, held_delta = job.cost, -job.cost
            memo = "Charged on success"
        elif standing != EntryKind.RELEASE:
            return None
        elif account.available >= job.cost:
            amount, held_delta = job.cost, 0
            memo = "Late success after its hold was released: charged from the balance."
        else:
            amount, held_delta = 0, 0
            memo = (
                f"Late success after its hold was released: not charged, {account.available} "
                f"credits available for a price of {job.cost}."
            )
        return _write(
            account,
            EntryKind.CAPTURE,
            amount,
            balance_delta=-amount,
            held_delta=held_delta,
            key=job.key("capture"),
            memo=memo,
            job_id=job.pk,
        )


def release(job: JobRef, *, memo: str = "") -> LedgerEntry | None:
    """Give back a job's hold (failure, cancel, timeout), once; nothing if it was never held."""
    with transaction.atomic():
        account = lock(job.owner)
        existing = _existing(job.key("release"))
        if existing is not None:
            return existing
        if _standing(job) != EntryKind.HOLD:
            return None
        return _write(
            account,
            EntryKind.RELEASE,
            job.cost,
            held_delta=-job.cost,
            key=job.key("release"),
            memo=memo or "Refunded: the job did not succeed",
            job_id=job.pk,
        )


def _standing(job: JobRef) -> str | None:
    """The job's last entry kind: hold (credits held), release, capture, or None (never held).

    Read under the account lock, which every entry of the job's owner is written under."""
    kinds = set(LedgerEntry.objects.filter(job_id=job.pk).values_list("kind", flat=True))
    for kind in (EntryKind.CAPTURE, EntryKind.RELEASE, EntryKind.HOLD):
        if kind in kinds:
            return kind
    return None


def _existing(key: str) -> LedgerEntry | None:
    return LedgerEntry.objects.filter(key=key).first()


def _write(
    account: CreditAccount,
    kind: str,
    amount: int,
    *,
    key: str,
    memo: str,
    balance_delta: int = 0,
    held_delta: int = 0,
    job_id: int | None = None,
    actor: Any = None,
) -> LedgerEntry:
    account.balance += balance_delta
    account.held += held_delta
    account.updated_at = timezone.now()
    account.save(update_fields=["balance", "held", "updated_at"])
    return LedgerEntry.objects.create(
        account=account,
        kind=kind,
        amount=amount,
        balance_delta=balance_delta,
        held_delta=held_delta,
        balance_after=account.balance,
        held_after=account.held,
        job_id=job_id,
        actor=actor,
        memo=memo,
        key=key,
        created_at=account.updated_at,
    )
