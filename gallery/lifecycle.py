"""How a job's credits move with its status: held at submit, charged on success, given back
on failure or cancel, each together with the status change and exactly once.

Every function here is one transaction: the status moves with a compare-and-set
(`Job.transition`) and the ledger entry is written under the owner's account lock, so the
poller, a webhook, the deadline sweep, a cancel and an admin can race and only one outcome
stands. `Job.charge` mirrors the job's ledger entries; it is written only here, in the
transaction of the entry it mirrors.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from billing import ledger
from billing.models import LedgerEntry
from gallery.models import Job


def reference(job: Job) -> ledger.JobRef:
    return ledger.JobRef(owner=job.owner, pk=job.pk, code=str(job.code), cost=job.cost)


def _mirror(job: Job, entry: LedgerEntry | None) -> None:
    """Record on the job where its credits stand after `entry` (None: nothing moved)."""
    if entry is None:
        return
    charge = {
        LedgerEntry.Kind.HOLD: Job.Charge.HELD,
        LedgerEntry.Kind.RELEASE: Job.Charge.RELEASED,
        LedgerEntry.Kind.CAPTURE: Job.Charge.WAIVED if entry.amount == 0 else Job.Charge.CAPTURED,
    }[entry.kind]
    Job.objects.filter(pk=job.pk).update(charge=charge)
    job.charge = charge


def hold(job: Job) -> None:
    """Hold a new job's price; raises ledger.InsufficientCredits when the user cannot pay."""
    with transaction.atomic():
        memo = f"Held for {job.action_name.lower()} ({job.mode})"
        _mirror(job, ledger.hold(reference(job), memo=memo))


def capture(job: Job) -> None:
    with transaction.atomic():
        _mirror(job, ledger.capture(reference(job)))


def release(job: Job, *, memo: str = "") -> None:
    with transaction.atomic():
        _mirror(job, ledger.release(reference(job), memo=memo))


def provider_refund(job: Job) -> dict[str, Any]:
    """The fields of a job whose task the provider failed: it refunds a failed task (new-api
    does for Midjourney), so the job costs us nothing."""
    return {"provider_cost": 0} if job.provider_cost is not None else {}


def fail(
    job: Job,
    *,
    kind: str,
    reason: str = "",
    note: str = "",
    memo: str = "",
    provider_refunds: bool = False,
) -> bool:
    """End a job as failed and release its hold, together and once.

    `reason` is the provider's own words, verbatim (the card quotes them); `note` is ours,
    for the operator; `provider_refunds` when the provider itself failed the task (it does
    not bill it). Returns False if another actor ended it first (its outcome stands).
    """
    if job.status == Job.Status.FAILED:
        return False
    with transaction.atomic():
        moved = job.transition(
            Job.Status.FAILED,
            fail_kind=kind,
            fail_reason=reason[:4000],
            fail_note=note[:4000],
            dispatch_lease_until=None,
            next_attempt_at=None,
            slot_position=None,
            **(provider_refund(job) if provider_refunds else {}),
        )
        if moved:
            release(job, memo=memo)
    return moved


def succeed(job: Job) -> bool:
    """End a job as succeeded and charge it, together and once.

    A late success (`Job.accepts_late_success`) clears the failure and is delivered; the
    ledger decides whether it can still be charged. A job that failed any other way stays
    failed: `Job.transition` refuses it.
    """
    if job.status == Job.Status.SUCCEEDED:
        return False
    with transaction.atomic():
        moved = job.transition(
            Job.Status.SUCCEEDED, progress=100, fail_kind="", fail_reason="", fail_note=""
        )
        if moved:
            capture(job)
    return moved


def cancel(job: Job, *, note: str = "Cancelled while it waited here.") -> bool:
    """Cancel a job that waits here (`Job.can_cancel`: queued locally, or waiting for the
    user's remix prompt) and that no dispatch holds; its hold is released in the same
    transaction."""
    if not job.can_cancel:
        return False
    expect = {"remix_prompt": ""}
    if job.status == Job.Status.QUEUED:
        expect["provider_job_id"] = ""  # still not at the provider
    with transaction.atomic():
        moved = job.transition(
            Job.Status.CANCELLED,
            expect=expect,
            lease_free=True,
            fail_kind=Job.FailKind.CANCELLED,
            fail_note=note,
            next_attempt_at=None,
            slot_position=None,
        )
        if moved:
            release(job, memo="Refunded: cancelled")
    return moved
