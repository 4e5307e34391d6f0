"""What an operator may do to a job: re-sync, cancel, end and release. Each is one
transaction with its audit entry (mjweb.audit): both are written or neither. The back office
calls these; the rules they rest on are the job's own (`Job.can_resync`, `Job.can_cancel`,
`Job.can_release`) and the lifecycle's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction

from billing.models import LedgerEntry
from gallery import lifecycle, sync
from gallery.models import Job
from mjweb import audit
from mjweb.models import AuditEntry


def _state(job: Job) -> dict[str, Any]:
    return {"status": job.status, "charge": job.charge, "fail_kind": job.fail_kind}


def _name(actor: Any) -> str:
    return getattr(actor, "username", "") or "an admin"


def _release_entry(job: Job) -> int | None:
    return (
        LedgerEntry.objects.filter(job_id=job.pk, kind=LedgerEntry.Kind.RELEASE)
        .values_list("pk", flat=True)
        .first()
    )


def resync(job: Job, *, actor: Any, reason: str = "") -> bool:
    """Ask the provider about the job now (the worker runs gallery.tasks.refresh)."""
    with transaction.atomic():
        # The ORM broker writes the queue row in this transaction: both or neither.
        if not sync.request_refresh(job):
            return False
        audit.record(
            actor=actor,
            verb=AuditEntry.Verb.RESYNC,
            obj=job,
            before=_state(job),
            after={"enqueued": "gallery.tasks.refresh"},
            reason=reason,
        )
    return True


def cancel(job: Job, *, actor: Any, reason: str) -> bool:
    """Cancel a job that has not reached the provider; its hold is released."""
    return _audited(
        job,
        actor=actor,
        verb=AuditEntry.Verb.CANCEL,
        reason=reason,
        change=lambda: lifecycle.cancel(job, note=f"Cancelled by {_name(actor)}: {reason}"),
    )


def release(job: Job, *, actor: Any, reason: str) -> bool:
    """End a stuck job as failed and give its hold back. It fails as a provider error, which
    takes no late success: a result the provider sends later is neither delivered nor
    charged."""
    if not job.can_release:
        return False
    return _audited(
        job,
        actor=actor,
        verb=AuditEntry.Verb.RELEASE,
        reason=reason,
        change=lambda: lifecycle.fail(
            job, kind=Job.FailKind.PROVIDER_ERROR, note=f"Released by {_name(actor)}: {reason}"
        ),
    )


def _audited(job: Job, *, actor: Any, verb: str, reason: str, change: Callable[[], bool]) -> bool:
    """Make a change that may give credits back, and audit it with the refund's entry."""
    with transaction.atomic():
        before = _state(job)
        if not change():
            return False
        job.refresh_from_db()
        audit.record(
            actor=actor,
            verb=verb,
            obj=job,
            before=before,
            after={**_state(job), "ledger_entry": _release_entry(job)},
            reason=reason,
        )
    return True
