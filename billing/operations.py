"""An operator's grant or adjustment of a user's credits, with its audit entry."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from billing import ledger
from billing.models import CreditAccount, EntryKind, LedgerEntry
from mjweb import audit
from mjweb.models import AuditEntry


def credit(
    account: CreditAccount, *, actor: Any, kind: str, amount: int, reason: str, key: str
) -> LedgerEntry:
    """Grant or adjust, and audit it, in one transaction: both are written or neither.

    A double submit (the form's key seen before) returns the first entry and records nothing
    more: the account lock taken first makes that check race-free.
    """
    key = f"admin:{key}"
    with transaction.atomic():
        locked = ledger.lock(account.user)
        existing = LedgerEntry.objects.filter(key=key).first()
        if existing is not None:
            return existing
        before = {"balance": locked.balance, "held": locked.held}
        if kind == EntryKind.GRANT:
            entry = ledger.grant(account.user, amount, key=key, memo=reason, actor=actor)
            verb = AuditEntry.Verb.GRANT
        else:
            entry = ledger.adjust(account.user, amount, actor=actor, reason=reason, key=key)
            verb = AuditEntry.Verb.ADJUST
        audit.record(
            actor=actor,
            verb=verb,
            obj=account,
            before=before,
            after={
                "balance": entry.balance_after,
                "held": entry.held_after,
                "amount": entry.amount,
                "ledger_entry": entry.pk,
            },
            reason=reason,
        )
    return entry
