"""The ledger's rules, one call at a time: hold, capture, release, grants and adjustments."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from billing import ledger, prices
from billing.models import CreditAccount, LedgerEntry
from gallery import lifecycle, services, sync
from gallery.models import Job
from gallery.providers.base import TaskSnapshot, TaskStatus

pytestmark = pytest.mark.django_db

FAST_IMAGINE = 56


def account(user: Any) -> CreditAccount:
    return CreditAccount.objects.get(user=user)


def assert_books_balance(user: Any) -> None:
    """The account equals the sum of its entries, and held equals the jobs still held."""
    acct = account(user)
    entries = list(LedgerEntry.objects.filter(account=acct))
    assert acct.balance == sum(e.balance_delta for e in entries)
    assert acct.held == sum(e.held_delta for e in entries)
    held_jobs = Job.objects.filter(owner=user, charge=Job.Charge.HELD)
    assert acct.held == sum(job.cost for job in held_jobs)
    assert acct.balance >= acct.held >= 0


def running(job: Job) -> Job:
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING, provider_job_id=f"task-{job.pk}"
    )
    job.refresh_from_db()
    return job


def test_a_new_user_gets_the_welcome_grant_once(settings: Any) -> None:
    settings.MJ_WELCOME_CREDITS = 500
    user = get_user_model().objects.create_user("carol", "carol@example.com", "pw")
    assert account(user).balance == 500
    ledger.welcome(user)
    user.save()
    assert account(user).balance == 500
    entry = LedgerEntry.objects.get(account__user=user)
    assert (entry.kind, entry.amount, entry.key) == ("grant", 500, f"welcome:{user.pk}")


def test_no_welcome_grant_when_it_is_zero(settings: Any) -> None:
    settings.MJ_WELCOME_CREDITS = 0
    user = get_user_model().objects.create_user("dave", "dave@example.com", "pw")
    assert ledger.account_for(user).balance == 0
    assert not LedgerEntry.objects.exists()


def test_the_seeded_price_of_a_fast_reroll_is_the_seeds_56_credits() -> None:
    assert prices.price_of(Job.Action.REROLL, Job.Mode.FAST) == 56
    assert prices.price_of(Job.Action.IMAGINE, Job.Mode.TURBO) == 168
    assert prices.price_of(Job.Action.IMPORT, Job.Mode.FAST) == 0


def test_submit_holds_the_price_with_the_job(alice: Any) -> None:
    job = services.submit(owner=alice, prompt="a fox")
    assert (job.cost, job.charge) == (FAST_IMAGINE, Job.Charge.HELD)
    acct = account(alice)
    assert (acct.balance, acct.held, acct.available) == (1000, 56, 944)
    hold = LedgerEntry.objects.get(key=f"hold:{job.code}")
    assert (hold.kind, hold.amount, hold.job_id, hold.held_after) == ("hold", 56, job.pk, 56)
    assert_books_balance(alice)


def test_success_captures_the_hold_once(alice: Any) -> None:
    job = running(services.submit(owner=alice, prompt="a fox"))
    assert lifecycle.succeed(job)
    assert not lifecycle.succeed(Job.objects.get(pk=job.pk))
    lifecycle.capture(job)
    acct = account(alice)
    assert (acct.balance, acct.held) == (944, 0)
    assert LedgerEntry.objects.filter(job=job, kind="capture").count() == 1
    assert Job.objects.get(pk=job.pk).charge == Job.Charge.CAPTURED
    assert_books_balance(alice)


def test_failure_releases_the_hold_once_and_never_charges(alice: Any) -> None:
    job = running(services.submit(owner=alice, prompt="a fox"))
    assert lifecycle.fail(job, kind=Job.FailKind.PROVIDER_ERROR, reason="boom")
    lifecycle.fail(Job.objects.get(pk=job.pk), kind=Job.FailKind.PROVIDER_ERROR, reason="again")
    lifecycle.release(job)
    acct = account(alice)
    assert (acct.balance, acct.held) == (1000, 0)
    assert LedgerEntry.objects.filter(job=job, kind="release").count() == 1
    assert not LedgerEntry.objects.filter(job=job, kind="capture").exists()
    # A success reported after a real failure does not turn it into a charge.
    assert not lifecycle.succeed(Job.objects.get(pk=job.pk))
    assert account(alice).balance == 1000
    assert_books_balance(alice)


def test_a_failed_snapshot_after_success_changes_nothing(alice: Any) -> None:
    job = running(services.submit(owner=alice, prompt="a fox"))
    lifecycle.succeed(job)
    failed = TaskSnapshot(
        provider_job_id=job.provider_job_id, status=TaskStatus.FAILED, fail_reason="late"
    )
    sync.apply_snapshot(Job.objects.get(pk=job.pk), failed)
    job.refresh_from_db()
    assert (job.status, job.charge) == (Job.Status.SUCCEEDED, Job.Charge.CAPTURED)
    assert not LedgerEntry.objects.filter(job=job, kind="release").exists()


def test_a_late_success_after_a_timeout_is_charged_when_credits_remain(alice: Any) -> None:
    job = running(services.submit(owner=alice, prompt="slow"))
    lifecycle.fail(job, kind=Job.FailKind.TIMEOUT, reason="deadline")
    assert account(alice).available == 1000
    assert lifecycle.succeed(Job.objects.get(pk=job.pk))
    job.refresh_from_db()
    assert (job.status, job.charge) == (Job.Status.SUCCEEDED, Job.Charge.CAPTURED)
    charge = LedgerEntry.objects.get(job=job, kind="capture")
    assert (charge.amount, charge.balance_delta, charge.held_delta) == (56, -56, 0)
    assert "charged from the balance" in charge.memo
    assert (account(alice).balance, account(alice).held) == (944, 0)
    assert_books_balance(alice)


def test_a_late_success_without_credits_is_delivered_free_and_says_so(alice: Any, bob: Any) -> None:
    job = running(services.submit(owner=alice, prompt="slow"))
    lifecycle.fail(job, kind=Job.FailKind.TIMEOUT, reason="deadline")
    ledger.adjust(alice, -980, actor=bob, reason="test: spend it elsewhere", key="t1")
    assert lifecycle.succeed(Job.objects.get(pk=job.pk))
    job.refresh_from_db()
    assert (job.status, job.charge) == (Job.Status.SUCCEEDED, Job.Charge.WAIVED)
    decision = LedgerEntry.objects.get(job=job, kind="capture")
    assert decision.amount == 0
    assert "not charged, 20 credits available for a price of 56" in decision.memo
    assert account(alice).balance == 20
    assert_books_balance(alice)


def test_not_enough_credits_refuses_the_submit_and_writes_nothing(alice: Any, bob: Any) -> None:
    ledger.adjust(alice, -950, actor=bob, reason="test", key="t2")
    jobs_before = Job.objects.count()
    with pytest.raises(services.SubmitError, match="costs 56 credits and you have 50 available"):
        services.submit(owner=alice, prompt="a fox")
    assert Job.objects.count() == jobs_before
    assert not LedgerEntry.objects.filter(kind="hold").exists()
    assert account(alice).held == 0


def test_the_refusal_mentions_credits_held_by_running_jobs(alice: Any, bob: Any) -> None:
    ledger.adjust(alice, -900, actor=bob, reason="test", key="t3")
    services.submit(owner=alice, prompt="one")
    with pytest.raises(services.SubmitError, match=r"44 available \(56 more are held"):
        services.submit(owner=alice, prompt="two")


def test_cancel_releases_a_queued_jobs_hold(alice: Any) -> None:
    job = services.submit(owner=alice, prompt="never mind")
    assert lifecycle.cancel(job)
    job.refresh_from_db()
    assert (job.status, job.charge, job.fail_kind) == ("cancelled", "released", "cancelled")
    assert account(alice).available == 1000
    assert not lifecycle.cancel(job)
    assert LedgerEntry.objects.filter(job=job, kind="release").count() == 1


def test_a_job_already_at_the_provider_cannot_be_cancelled(alice: Any) -> None:
    job = running(services.submit(owner=alice, prompt="too late"))
    assert not lifecycle.cancel(job)
    assert Job.objects.get(pk=job.pk).charge == Job.Charge.HELD


def test_an_unpriced_press_is_refused(alice: Any) -> None:
    from billing.models import Price

    Price.objects.filter(action="imagine", mode="relax").delete()
    with pytest.raises(services.SubmitError, match="No price is set for Imagine in relax"):
        services.submit(owner=alice, prompt="x", mode="relax")
    assert not Job.objects.exists()


def test_the_same_submit_key_makes_one_job_and_one_hold(alice: Any) -> None:
    key = uuid.uuid4()
    first = services.submit(owner=alice, prompt="once", submit_key=key)
    again = services.submit(owner=alice, prompt="once", submit_key=key)
    assert first.pk == again.pk
    assert LedgerEntry.objects.filter(kind="hold").count() == 1
    with pytest.raises(services.SubmitError, match="already sent for a different request"):
        services.submit(owner=alice, prompt="something else", submit_key=key)


def test_admin_grants_and_adjustments_record_who_and_why(alice: Any, bob: Any) -> None:
    entry = ledger.grant(alice, 250, key="g1", memo="Support gesture", actor=bob)
    assert (entry.actor, entry.memo, entry.balance_after) == (bob, "Support gesture", 1250)
    assert ledger.grant(alice, 250, key="g1", memo="again", actor=bob).pk == entry.pk
    with pytest.raises(ledger.LedgerError, match="reason is required"):
        ledger.adjust(alice, -10, actor=bob, reason="  ", key="a0")
    services.submit(owner=alice, prompt="hold some")
    with pytest.raises(ledger.LedgerError, match="Only 1194 credits are available"):
        ledger.adjust(alice, -1195, actor=bob, reason="too much", key="a1")
    ledger.adjust(alice, -1194, actor=bob, reason="chargeback", key="a2")
    assert (account(alice).balance, account(alice).held) == (56, 56)
    assert_books_balance(alice)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE billing_creditaccount SET held = balance + 1",
        "UPDATE billing_creditaccount SET held = -1, balance = 0",
    ],
)
def test_the_database_refuses_an_overdrawn_account(alice: Any, sql: str) -> None:
    ledger.account_for(alice)
    with pytest.raises(IntegrityError), transaction.atomic():
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(sql)


def test_the_database_refuses_an_entry_that_disagrees_with_its_kind(alice: Any) -> None:
    acct = ledger.account_for(alice)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            account=acct,
            kind="grant",
            amount=10,
            balance_delta=1000,
            held_delta=0,
            balance_after=2000,
            held_after=0,
            key="forged",
        )


def test_the_database_refuses_a_second_capture_of_a_job(alice: Any) -> None:
    job = running(services.submit(owner=alice, prompt="x"))
    lifecycle.succeed(job)
    acct = account(alice)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            account=acct,
            kind="capture",
            amount=56,
            balance_delta=-56,
            held_delta=0,
            balance_after=acct.balance - 56,
            held_after=0,
            job=job,
            key="capture-again",
        )
