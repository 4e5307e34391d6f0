"""Matching a provider's own bill to our jobs: its task log and balance, per account.

For each account with a console token (a scheduled task, MJ_RECONCILE_MINUTES; or
`manage.py provider_account reconcile`), the provider's task list is imported into
ProviderTask, each task matched to the one job with its task id on that account:
- a task with no job here is an orphan (a duplicate submit, a task made outside mjweb);
- a task the provider billed for a job whose credits we refunded is a loss to look at;
both are listed in the admin with their cost. The balance is stored; below the account's
threshold the operators are told once (until it rises again), and at zero the account is
disabled, as when a submit is refused for want of balance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.core.mail import mail_admins
from django.utils import timezone

from gallery import audit, routing
from gallery.models import Finding, Job, JobCharge, ProviderAccount, ProviderTask
from gallery.providers import ProviderError
from gallery.providers.console import Console, ConsoleTask

logger = logging.getLogger(__name__)

CHUNK = 500
REFUNDED = (JobCharge.RELEASED, JobCharge.WAIVED)


@dataclass
class Outcome:
    account: str
    balance: Decimal | None = None
    imported: int = 0
    findings: dict[str, int] = field(default_factory=dict)
    error: str = ""

    def __str__(self) -> str:
        if self.error:
            return f"{self.account}: {self.error}"
        found = ", ".join(f"{count} {name}" for name, count in sorted(self.findings.items()))
        return f"{self.account}: ${self.balance} left, {self.imported} tasks ({found or 'none'})"


def console(account: ProviderAccount) -> Console:
    return Console(
        name=account.name,
        base_url=account.connection().base_url,
        token=account.console_token,
        timeout=settings.MJ_HTTP_TIMEOUT,
        recorder=audit.recorder(account.name),
    )


def finding(task: ConsoleTask, job: Job | None) -> str:
    if job is None:
        return Finding.ORPHAN
    if task.cost > 0 and job.charge in REFUNDED:
        return Finding.REFUNDED_HERE
    return Finding.MATCHED


def reconcile(account: ProviderAccount) -> Outcome:
    """Import the account's task log and balance now; a failure is kept on the account."""
    outcome = Outcome(account.name)
    try:
        with console(account) as client:
            balance = client.balance()
            tasks = list(client.tasks())
    except ProviderError as exc:
        outcome.error = exc.message
        ProviderAccount.objects.filter(pk=account.pk).update(reconcile_error=exc.message[:2000])
        logger.warning("reconciling %s failed: %s", account.name, exc.message)
        return outcome
    now = timezone.now()
    for start in range(0, len(tasks), CHUNK):
        chunk = tasks[start : start + CHUNK]
        jobs = {
            job.provider_job_id: job
            for job in Job.objects.filter(
                provider=account.name, provider_job_id__in=[task.task_id for task in chunk]
            ).only("pk", "provider_job_id", "charge")
        }
        for task in chunk:
            job = jobs.get(task.task_id)
            found = finding(task, job)
            ProviderTask.objects.update_or_create(
                account=account,
                task_id=task.task_id,
                defaults={
                    "action": task.action,
                    "status": task.status,
                    "model_name": task.model_name,
                    "cost": task.cost,
                    "submitted_at": task.submitted_at,
                    "finished_at": task.finished_at,
                    "job": job,
                    "finding": found,
                    "imported_at": now,
                },
            )
            outcome.findings[found] = outcome.findings.get(found, 0) + 1
    outcome.imported, outcome.balance = len(tasks), balance
    ProviderAccount.objects.filter(pk=account.pk).update(
        balance=balance, balance_checked_at=now, reconciled_at=now, reconcile_error=""
    )
    account.refresh_from_db()
    watch_balance(account)
    return outcome


def watch_balance(account: ProviderAccount) -> None:
    """Tell the operators once when the balance falls below the threshold (again after it
    rose above it); disable the account when nothing is left."""
    if account.balance is None:
        return
    if account.balance <= 0:
        routing.disable(
            account,
            f"The provider's console shows a balance of ${account.balance}: the account is "
            "out of balance.",
        )
    if account.is_low_on_balance and account.low_balance_alerted_at is None:
        logger.warning(
            "provider account %s is low on balance: $%s (alert below $%s)",
            account.name,
            account.balance,
            account.low_balance_below,
        )
        mail_admins(
            f"Provider account {account.name} is low on balance",
            f"Its balance is ${account.balance}, below the ${account.low_balance_below} set "
            "as its alert threshold. Top it up with the provider.",
            fail_silently=True,
        )
        ProviderAccount.objects.filter(pk=account.pk).update(low_balance_alerted_at=timezone.now())
    elif not account.is_low_on_balance and account.low_balance_alerted_at is not None:
        ProviderAccount.objects.filter(pk=account.pk).update(low_balance_alerted_at=None)


def reconcile_all() -> list[Outcome]:
    return [reconcile(account) for account in ProviderAccount.objects.reconcilable()]
