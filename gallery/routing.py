"""Which provider account a job goes to, and what happens to an account the provider refuses.

The rule, in one place:
- A new imagine goes to an account that may take new jobs (enabled; of the environment's,
  only the one MJ_PROVIDER names) and offers its speed mode: the one with the smallest share
  of its capacity taken (jobs it runs or queues, plus jobs waiting here to be sent to it);
  between equal shares the higher weight, then the older account. An account with room
  always comes before a full one; when every one is full the job waits in the least loaded
  one's line.
- Every follow-up goes to its parent's account: the parent's task id means nothing to any
  other account.
- An account answering 401/403 (its key refused) or saying it is out of balance is disabled
  with the reason, shown to the operators in the admin; new jobs go elsewhere. A new imagine
  that account refused before the provider made anything is sent to another account.
"""

from __future__ import annotations

import logging

from django.core.mail import mail_admins
from django.utils.translation import gettext as _

from gallery.models import Job, ProviderAccount
from gallery.providers import ProviderError

logger = logging.getLogger(__name__)


class NoAccount(Exception):
    """No provider account can take this job now."""


def load(account: ProviderAccount) -> float:
    """The share of the account's capacity taken, jobs waiting here to be sent included."""
    taken = (Job.objects.occupying(account.name) | Job.objects.dispatchable(account.name)).count()
    capacity = max(1, account.connection().capacity)
    return taken / capacity


def account_for_new_job(mode: str, *, besides: str = "") -> ProviderAccount:
    """The account a new imagine in `mode` goes to (the rule above); `besides` is left out."""
    ProviderAccount.objects.environment()
    candidates = [
        account
        for account in ProviderAccount.objects.for_new_jobs().exclude(name=besides)
        if account.offers(mode)
    ]
    if not candidates:
        raise NoAccount(
            f"No provider account takes {mode} jobs right now; try another speed mode later."
            if ProviderAccount.objects.for_new_jobs().exists()
            else "No provider account is available right now; the operators have been told."
        )
    loads = {account.pk: load(account) for account in candidates}
    return min(
        candidates,
        key=lambda account: (
            loads[account.pk] >= 1,
            loads[account.pk],
            -account.weight,
            account.pk,
        ),
    )


def account_for_follow_up(parent: Job, mode: str | None = None) -> ProviderAccount:
    """The parent's account, which alone knows the parent's task; refused if it is disabled
    or does not take `mode` (the parent's own mode when None)."""
    account = ProviderAccount.objects.named(parent.provider)
    if not account.enabled:
        raise NoAccount(
            _(
                "The provider account that made this picture is switched off, so its buttons "
                "cannot be pressed until the operators switch it on again."
            )
        )
    if mode is not None and mode != parent.mode and not account.offers(mode):
        raise NoAccount(
            _("The provider account that made this picture does not take %(mode)s jobs.")
            % {"mode": mode}
        )
    return account


def refused(name: str, exc: ProviderError) -> bool:
    """Disable account `name` if `exc` says the provider refuses the account itself (its key,
    or its balance). Returns whether it did."""
    if exc.out_of_balance:
        reason = f"The provider says the account is out of balance: {exc.message}"
    elif exc.refused_account:
        reason = exc.message
    else:
        return False
    account = ProviderAccount.objects.filter(name=name).first()
    if account is None:
        return False
    disable(account, reason)
    return True


def disable(account: ProviderAccount, reason: str) -> None:
    """Take the account out of routing, and tell the operators (the log, mail to ADMINS,
    and the admin's notice) the first time."""
    if not account.disable(reason):
        return
    logger.error("provider account %s disabled: %s", account.name, reason)
    mail_admins(
        f"Provider account {account.name} disabled",
        f"{reason}\n\nNew jobs go to the other accounts. Switch it on again in the admin "
        "(Provider accounts) once it is fixed.",
        fail_silently=True,
    )


def reroute(job: Job) -> ProviderAccount | None:
    """Another account for a new imagine whose account refused it before the provider made
    anything; None when it cannot move (a follow-up, or no other account)."""
    if job.parent_id is not None or job.action != Job.Action.IMAGINE or job.provider_job_id:
        return None
    try:
        account = account_for_new_job(job.mode, besides=job.provider)
    except NoAccount:
        return None
    moved = Job.objects.filter(
        pk=job.pk, provider=job.provider, status=Job.Status.QUEUED, provider_job_id=""
    ).update(provider=account.name)
    if not moved:
        return None
    job.provider = account.name
    return account
