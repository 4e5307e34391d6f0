"""The credit ledger under concurrency, bypassed by raw SQL, and driven by a seeded model.

The races use real threads, each with its own database connection, released together by a
barrier; they need PostgreSQL (SQLite serialises writers, and has no row locks or trigger).
The soak at the end drives 1,000 seeded operations through billing.ledger and
gallery.services and checks after every step that an in-memory model, updated by its own
rules, agrees with the database; it runs on any database.

"The books" below means: balance >= held >= 0; balance and held equal the sums of the
entries, and each entry's balance_after/held_after the running sums; held equals the costs
of the jobs whose charge is "held"; and each job's entries, charge and status agree.
"""

from __future__ import annotations

import os
import random
import re
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import Count
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ

from billing import ledger, prices
from billing.models import CreditAccount, EntryKind, LedgerEntry, Price
from gallery import lifecycle, services, sync
from gallery.models import Job
from gallery.providers.base import TaskSnapshot, TaskStatus
from tests.requirements import require_postgres

HX = {"HTTP_HX_REQUEST": "true"}
REFUSAL = re.compile(r"This costs \d+ credits and you have \d+ available")
RACE_TIMEOUT = 60.0

# A racer runs in its own thread: its setup first (load what it will act on, through its own
# connection), then it waits at the barrier, then it runs the action its setup returned.
Racer = Callable[[], Callable[[], Any]]


@pytest.fixture
def postgres_only() -> None:
    require_postgres()


races = pytest.mark.usefixtures("postgres_only")


def at_once(work: Callable[[], Any]) -> Racer:
    """A racer with nothing to prepare."""
    return lambda: work


def race(racers: Sequence[Racer]) -> list[Any]:
    """Run every racer in its own thread and connection, released together; results in the
    racers' order. Any exception in a racer, or a racer still stuck, fails the test."""
    barrier = threading.Barrier(len(racers))
    results: list[Any] = [None] * len(racers)
    errors: list[tuple[int, BaseException]] = []
    lock = threading.Lock()

    def run(index: int, racer: Racer) -> None:
        try:
            connection.ensure_connection()
            action = racer()
            barrier.wait(timeout=RACE_TIMEOUT)
            results[index] = action()
        except BaseException as exc:  # reported by the assertion below
            with lock:
                errors.append((index, exc))
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(index, racer), daemon=True)
        for index, racer in enumerate(racers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=RACE_TIMEOUT)
    stuck = [index for index, thread in enumerate(threads) if thread.is_alive()]
    assert not stuck, f"racers {stuck} still running after {RACE_TIMEOUT} s (a deadlock?)"
    assert not errors, errors
    return results


@pytest.fixture
def payer(settings: Any, django_user_model: Any) -> Any:
    """A user with no credits yet (grant exact amounts) and no job-count limits."""
    settings.MJ_WELCOME_CREDITS = 0
    settings.MJ_JOBS_AT_ONCE = 0
    settings.MJ_JOBS_PER_DAY = 0
    return django_user_model.objects.create_user("payer", "payer@example.com", "correct horse 3")


def fund(user: Any, credits: int) -> None:
    ledger.grant(user, credits, key=f"test-funds:{uuid.uuid4()}", memo="test funds")


def imagine_price() -> int:
    return prices.price_of(Job.Action.IMAGINE, Job.Mode.FAST)


def check_books(user: Any) -> CreditAccount:
    """Assert the books of `user` hold (see the module docstring); returns the account."""
    account = CreditAccount.objects.get(user=user)
    entries = list(LedgerEntry.objects.filter(account=account).order_by("id"))
    balance = held = 0
    by_job: dict[int, dict[str, LedgerEntry]] = {}
    for entry in entries:
        balance += entry.balance_delta
        held += entry.held_delta
        assert (entry.balance_after, entry.held_after) == (balance, held), (
            f"{entry} says balance/held after = {entry.balance_after}/{entry.held_after}, "
            f"the entries before it sum to {balance}/{held}"
        )
        if entry.job_id is not None:
            kinds = by_job.setdefault(entry.job_id, {})
            assert entry.kind not in kinds, f"two {entry.kind} entries for job {entry.job_id}"
            kinds[entry.kind] = entry
    assert (account.balance, account.held) == (balance, held), (
        f"account {account.balance}/{account.held} != sum of entries {balance}/{held}"
    )
    assert 0 <= account.held <= account.balance
    jobs = list(Job.objects.filter(owner=user))
    held_by_jobs = sum(job.cost for job in jobs if job.charge == Job.Charge.HELD)
    assert account.held == held_by_jobs, f"held {account.held}, jobs hold {held_by_jobs}"
    for job in jobs:
        check_job_books(job, by_job.get(job.pk, {}))
    return account


def check_job_books(job: Job, entries: dict[str, LedgerEntry]) -> None:
    """A job's entries, its charge and its status tell the same story."""
    kinds = set(entries)
    where = f"job {job.pk} ({job.status}, charge {job.charge!r}, cost {job.cost}): {kinds}"
    if job.cost == 0:
        assert job.charge == Job.Charge.NONE and not kinds, where
        return
    if job.charge == Job.Charge.HELD:
        assert kinds == {EntryKind.HOLD} and job.status in Job.IN_FLIGHT, where
    elif job.charge == Job.Charge.RELEASED:
        assert kinds == {EntryKind.HOLD, EntryKind.RELEASE}, where
        assert job.status in (Job.Status.FAILED, Job.Status.CANCELLED), where
    elif job.charge == Job.Charge.CAPTURED:
        # From its hold, or (a late success) from the balance after the hold was released.
        assert kinds in (
            {EntryKind.HOLD, EntryKind.CAPTURE},
            {EntryKind.HOLD, EntryKind.RELEASE, EntryKind.CAPTURE},
        ), where
        assert entries[EntryKind.CAPTURE].amount == job.cost, where
        assert job.status == Job.Status.SUCCEEDED, where
    elif job.charge == Job.Charge.WAIVED:
        assert kinds == {EntryKind.HOLD, EntryKind.RELEASE, EntryKind.CAPTURE}, where
        assert entries[EntryKind.CAPTURE].amount == 0, where
        assert job.status == Job.Status.SUCCEEDED, where
    else:
        raise AssertionError(f"a priced job without a charge: {where}")
    if EntryKind.HOLD in entries:
        assert entries[EntryKind.HOLD].amount == job.cost, where


def job_kinds(job: Job) -> list[str]:
    return sorted(LedgerEntry.objects.filter(job=job).values_list("kind", flat=True))


def make_running(job: Job) -> None:
    """What a dispatch and the first poll would do: the provider has it, it is rendering."""
    now = timezone.now()
    moved = Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(
        status=Job.Status.RUNNING,
        provider_job_id=f"task-{job.code.hex}",
        submitted_at=now,
        started_at=now,
    )
    assert moved == 1


# --- 1. concurrent submits over HTTP ----------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
@races
def test_fifty_concurrent_submits_spend_exactly_the_balance(payer: Any, settings: Any) -> None:
    # The throttle stays on (its counting is part of the submit path under race) but lets
    # all fifty through: here only the balance may refuse.
    settings.MJWEB_RATES = {**settings.MJWEB_RATES, "submit": [("user", "99/m"), ("ip", "99/m")]}
    price = imagine_price()
    fund(payer, 10 * price)
    url = reverse("gallery:imagine")
    clients = []
    for _ in range(50):
        client = Client()
        client.force_login(payer)
        clients.append(client)

    def poster(index: int) -> Racer:
        data = {"prompt": f"a lighthouse {index}", "mode": "fast", "submit_key": str(uuid.uuid4())}
        extra = HX if index % 2 == 0 else {}
        return at_once(lambda: clients[index].post(url, data, **extra))

    responses = race([poster(index) for index in range(50)])

    errors = [(i, r.status_code) for i, r in enumerate(responses) if r.status_code >= 500]
    assert not errors, f"server errors: {errors}"
    made, refused, other = [], [], []
    for index, response in enumerate(responses):
        htmx = index % 2 == 0
        body = response.content.decode()
        if REFUSAL.search(body):
            # A refusal re-renders the form: in place for htmx, the whole page otherwise.
            assert response.status_code == (200 if htmx else 422), (index, response.status_code)
            refused.append(index)
        elif (htmx and response.status_code == 200) or (not htmx and response.status_code == 302):
            made.append(index)
        else:
            other.append((index, response.status_code, body[:300]))
    assert not other, f"neither a job nor the insufficient-credit refusal: {other}"
    assert (len(made), len(refused)) == (10, 40)

    assert Job.objects.filter(owner=payer).count() == 10
    assert LedgerEntry.objects.filter(account__user=payer, kind=EntryKind.HOLD).count() == 10
    # Exactly the accepted jobs were enqueued: a refused submit rolled its enqueue back.
    assert OrmQ.objects.count() == 10
    account = check_books(payer)
    assert (account.balance, account.held, account.available) == (10 * price, 10 * price, 0)


# --- 2. one submit key, many times --------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
@races
def test_one_submit_key_sent_twenty_times_at_once_then_five_more_makes_one_job(
    payer: Any,
) -> None:
    price = imagine_price()
    fund(payer, 5 * price)
    key = uuid.uuid4()

    def send() -> Job:
        return services.submit(owner=payer, prompt="the same click", submit_key=key)

    jobs = race([at_once(send) for _ in range(20)])
    pks = {job.pk for job in jobs}
    assert len(pks) == 1, f"one key made {len(pks)} jobs"
    for _ in range(5):
        assert send().pk in pks
    with pytest.raises(services.SubmitError, match="already sent for a different request"):
        services.submit(owner=payer, prompt="another prompt", submit_key=key)

    job = Job.objects.get(owner=payer)
    assert job.pk in pks
    assert job_kinds(job) == [EntryKind.HOLD]
    assert OrmQ.objects.count() == 1
    account = check_books(payer)
    assert (account.balance, account.held) == (5 * price, price)


# --- 3. success and failure at the same moment ------------------------------------------


def succeeding(pk: int) -> Racer:
    def setup() -> Callable[[], bool]:
        job = Job.objects.get(pk=pk)
        return lambda: lifecycle.succeed(job)

    return setup


def failing(pk: int) -> Racer:
    def setup() -> Callable[[], bool]:
        job = Job.objects.get(pk=pk)
        return lambda: lifecycle.fail(
            job, kind=Job.FailKind.PROVIDER_ERROR, reason="The provider gave up."
        )

    return setup


def failing_by_poll(pk: int) -> Racer:
    def setup() -> Callable[[], None]:
        job = Job.objects.get(pk=pk)
        snapshot = TaskSnapshot(
            provider_job_id=job.provider_job_id,
            status=TaskStatus.FAILED,
            fail_reason="The provider gave up.",
            raw={"status": "FAILURE"},
        )
        return lambda: sync.apply_snapshot(job, snapshot)

    return setup


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
@races
@pytest.mark.parametrize("failure", ["services.fail", "poll snapshot"])
def test_success_and_failure_at_the_same_moment_end_each_job_once(payer: Any, failure: str) -> None:
    rounds = 100
    price = imagine_price()
    funds = rounds * price
    fund(payer, funds)
    fail_racer = failing if failure == "services.fail" else failing_by_poll
    outcomes: dict[str, int] = {}
    for round_ in range(rounds):
        job = services.submit(owner=payer, prompt=f"race {round_}", submit_key=uuid.uuid4())
        make_running(job)
        racers = [succeeding(job.pk), fail_racer(job.pk)]
        if round_ % 2:
            racers.reverse()  # vary which thread starts first
        results = race(racers)
        succeeded, failed = results if round_ % 2 == 0 else results[::-1]

        job.refresh_from_db()
        kinds = job_kinds(job)
        where = f"{failure}, round {round_}: job {job.pk} {job.status}/{job.charge}, {kinds}"
        assert kinds in (
            [EntryKind.CAPTURE, EntryKind.HOLD],
            [EntryKind.HOLD, EntryKind.RELEASE],
        ), where
        if EntryKind.CAPTURE in kinds:
            assert (job.status, job.charge) == (Job.Status.SUCCEEDED, Job.Charge.CAPTURED), where
            assert succeeded is True, where
        else:
            assert (job.status, job.charge) == (Job.Status.FAILED, Job.Charge.RELEASED), where
            assert job.fail_kind == Job.FailKind.PROVIDER_ERROR, where
            assert succeeded is False, where
        if failure == "services.fail":
            assert failed is (not succeeded), f"{where}: fail() returned {failed}"
        outcomes[job.status] = outcomes.get(job.status, 0) + 1

    print(f"{failure}: {outcomes}")
    account = check_books(payer)
    captured = outcomes.get(Job.Status.SUCCEEDED, 0)
    assert sum(outcomes.values()) == rounds
    assert (account.balance, account.held) == (funds - captured * price, 0), outcomes


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
@races
def test_a_late_success_and_a_new_submit_race_for_the_last_credits(
    settings: Any, django_user_model: Any
) -> None:
    """A job that timed out succeeds late while the user submits another job that needs the
    same credits: one of them gets them (late charge, or a new hold and the late success
    waived), never both and never neither."""
    settings.MJ_WELCOME_CREDITS = 0
    settings.MJ_JOBS_AT_ONCE = 0
    settings.MJ_JOBS_PER_DAY = 0
    price = imagine_price()
    outcomes: dict[str, int] = {}
    for round_ in range(20):
        user = django_user_model.objects.create_user(f"late{round_}", "", "pw")
        fund(user, price)
        late = services.submit(owner=user, prompt="slow", submit_key=uuid.uuid4())
        make_running(late)
        assert lifecycle.fail(Job.objects.get(pk=late.pk), kind=Job.FailKind.TIMEOUT, reason="t")

        def submitting(owner: Any = user) -> Job | None:
            try:
                return services.submit(owner=owner, prompt="new", submit_key=uuid.uuid4())
            except services.SubmitError as exc:
                assert REFUSAL.search(str(exc)), exc
                return None

        racers = [succeeding(late.pk), at_once(submitting)]
        if round_ % 2:
            racers.reverse()
        results = race(racers)
        succeeded, new = results if round_ % 2 == 0 else results[::-1]

        late.refresh_from_db()
        where = f"round {round_}: late job {late.charge}, new job {new}"
        assert succeeded is True and late.status == Job.Status.SUCCEEDED, where
        if new is None:
            assert late.charge == Job.Charge.CAPTURED, where
        else:
            assert late.charge == Job.Charge.WAIVED, where
            assert Job.objects.get(pk=new.pk).charge == Job.Charge.HELD, where
        account = check_books(user)
        assert account.available == 0, where
        outcomes[late.charge] = outcomes.get(late.charge, 0) + 1
    print(f"late success against a new submit: {outcomes}")
    assert sum(outcomes.values()) == 20, outcomes


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
@races
def test_three_concurrent_failures_release_once(payer: Any) -> None:
    price = imagine_price()
    fund(payer, price)
    job = services.submit(owner=payer, prompt="fails thrice", submit_key=uuid.uuid4())
    make_running(job)
    results = race([failing(job.pk) for _ in range(3)])
    assert results.count(True) == 1, results
    job.refresh_from_db()
    assert (job.status, job.charge) == (Job.Status.FAILED, Job.Charge.RELEASED)
    assert job_kinds(job) == [EntryKind.HOLD, EntryKind.RELEASE]
    account = check_books(payer)
    assert (account.balance, account.held) == (price, 0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
@races
def test_three_concurrent_successes_capture_once(payer: Any) -> None:
    price = imagine_price()
    fund(payer, price)
    job = services.submit(owner=payer, prompt="succeeds thrice", submit_key=uuid.uuid4())
    make_running(job)
    results = race([succeeding(job.pk) for _ in range(3)])
    assert results.count(True) == 1, results
    job.refresh_from_db()
    assert (job.status, job.charge) == (Job.Status.SUCCEEDED, Job.Charge.CAPTURED)
    assert job_kinds(job) == [EntryKind.CAPTURE, EntryKind.HOLD]
    account = check_books(payer)
    assert (account.balance, account.held) == (0, 0)


# --- 4. the database refuses what the ORM would never write -----------------------------


def refused_sql(sql: str, params: Sequence[Any], constraint: str) -> None:
    """The statement fails with an IntegrityError that names `constraint`."""
    with (
        pytest.raises(IntegrityError, match=constraint),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, params)


INSERT_ENTRY = """
    INSERT INTO billing_ledgerentry (account_id, kind, amount, balance_delta, held_delta,
        balance_after, held_after, job_id, actor_id, memo, key, created_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, NULL, '', %s, now())
"""


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
@races
def test_raw_sql_cannot_break_the_books(payer: Any) -> None:
    price = imagine_price()
    fund(payer, 3 * price)
    charged = services.submit(owner=payer, prompt="charged", submit_key=uuid.uuid4())
    make_running(charged)
    assert lifecycle.succeed(Job.objects.get(pk=charged.pk))
    services.submit(owner=payer, prompt="still held", submit_key=uuid.uuid4())
    account = check_books(payer)
    assert (account.balance, account.held) == (2 * price, price)
    entries_before = list(LedgerEntry.objects.order_by("id").values())

    # The account: never more held than owned, never a negative hold.
    refused_sql(
        "UPDATE billing_creditaccount SET held = balance + 1 WHERE id = %s",
        [account.pk],
        "account_balance_covers_held",
    )
    refused_sql(
        "UPDATE billing_creditaccount SET held = -1 WHERE id = %s",
        [account.pk],
        "account_held_not_negative",
    )
    # A second charge for a job already charged, under another key.
    after = (account.balance, account.held)
    refused_sql(
        INSERT_ENTRY,
        [account.pk, "capture", 0, 0, 0, *after, charged.pk, f"capture-again:{charged.code}"],
        "entry_one_per_job_and_kind",
    )
    # Entries whose effect disagrees with their kind.
    for kind, amount, balance_delta, held_delta in [
        ("grant", 10, 20, 0),  # a grant of 10 that adds 20
        ("hold", price, -price, price),  # a hold that also spends
        ("release", price, 0, price),  # a refund that holds more
        ("capture", price, price, -price),  # a charge that adds credits
    ]:
        job_id = None if kind == "grant" else charged.pk
        refused_sql(
            INSERT_ENTRY,
            [account.pk, kind, amount, balance_delta, held_delta, *after, job_id, f"bad:{kind}"],
            "entry_effect_matches_kind",
        )
    # Entries are never changed or deleted (trigger).
    entry = LedgerEntry.objects.filter(account=account).order_by("id").first()
    assert entry is not None
    refused_sql(
        "UPDATE billing_ledgerentry SET amount = amount + 1 WHERE id = %s",
        [entry.pk],
        "append-only: UPDATE refused",
    )
    refused_sql(
        "UPDATE billing_ledgerentry SET memo = 'edited' WHERE id = %s",
        [entry.pk],
        "append-only: UPDATE refused",
    )
    refused_sql(
        "DELETE FROM billing_ledgerentry WHERE id = %s", [entry.pk], "append-only: DELETE refused"
    )

    assert list(LedgerEntry.objects.order_by("id").values()) == entries_before
    account = check_books(payer)
    assert (account.balance, account.held) == (2 * price, price)


# --- 5. seeded model-based soak ---------------------------------------------------------

# MJWEB_LEDGER_SEEDS="1,2,3" runs other seeds; a failure names its seed and step to replay.
SEEDS = [int(seed) for seed in os.environ.get("MJWEB_LEDGER_SEEDS", "20250611").split(",")]
STEPS = 1000
MODES = (Job.Mode.FAST, Job.Mode.RELAX, Job.Mode.TURBO)
START_PRICES = {Job.Mode.FAST: 56, Job.Mode.RELAX: 21, Job.Mode.TURBO: 168}
FAIL_KINDS = (
    Job.FailKind.PROVIDER_ERROR,
    Job.FailKind.REJECTED_PROMPT,
    Job.FailKind.IMAGE_UNAVAILABLE,
)


@dataclass
class ModelJob:
    pk: int
    key: uuid.UUID
    prompt: str
    mode: str
    cost: int
    status: str = Job.Status.QUEUED
    charge: str = Job.Charge.HELD
    fail_kind: str = ""
    fail_reason: str = ""

    def row(self) -> tuple[str, str, str, int]:
        return (self.status, self.charge, self.fail_kind, self.cost)


@dataclass
class Model:
    """What the books should be, computed from the operations alone."""

    balance: int
    held: int = 0
    entries: int = 0
    prices: dict[str, int] = field(default_factory=dict)
    jobs: dict[int, ModelJob] = field(default_factory=dict)
    grants: dict[str, int] = field(default_factory=dict)
    # Submit keys refused for lack of credits: nothing was kept, so they may be sent again.
    refused: list[tuple[uuid.UUID, str, str]] = field(default_factory=list)

    @property
    def available(self) -> int:
        return self.balance - self.held

    def hold(self, job: ModelJob) -> None:
        if job.cost:
            self.held += job.cost
            self.entries += 1
        else:
            job.charge = Job.Charge.NONE

    def release(self, job: ModelJob) -> None:
        if job.charge == Job.Charge.HELD:
            self.held -= job.cost
            self.entries += 1
            job.charge = Job.Charge.RELEASED

    def capture(self, job: ModelJob) -> None:
        if job.charge == Job.Charge.HELD:
            self.balance -= job.cost
            self.held -= job.cost
            self.entries += 1
            job.charge = Job.Charge.CAPTURED
        elif job.charge == Job.Charge.RELEASED:
            # A late success: charged from the balance if it can be, else delivered free.
            self.entries += 1
            if self.available >= job.cost:
                self.balance -= job.cost
                job.charge = Job.Charge.CAPTURED
            else:
                job.charge = Job.Charge.WAIVED


class Soak:
    """Seeded random operations on one user's credits, each checked against the model."""

    def __init__(self, seed: int, user: Any, admin: Any, welcome: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.user = user
        self.admin = admin
        self.model = Model(balance=welcome, entries=1)
        for mode, credits in START_PRICES.items():
            Price.objects.update_or_create(
                action=Job.Action.IMAGINE, mode=mode, defaults={"credits": credits}
            )
            self.model.prices[mode] = credits
        self.late = {Job.Charge.CAPTURED: 0, Job.Charge.WAIVED: 0, Job.Charge.NONE: 0}
        self.stale: dict[int, Job] = {}  # instances loaded while their job was in flight
        self.history: list[str] = []
        self.counts: dict[str, int] = {}
        self.step = 0

    # -- plumbing ----------------------------------------------------------------------

    def where(self) -> str:
        recent = "; ".join(self.history[-8:])
        return (
            f"seed {self.seed}, step {self.step} (replay: MJWEB_LEDGER_SEEDS={self.seed}); "
            f"last steps: {recent}"
        )

    def note(self, text: str) -> None:
        self.history.append(f"{self.step}: {text}")
        self.counts[text.split(" ", 1)[0]] = self.counts.get(text.split(" ", 1)[0], 0) + 1

    def key(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def fresh(self, pk: int) -> Job:
        return Job.objects.get(pk=pk)

    def pick(self, *statuses: str, fail_kind: str | None = None) -> ModelJob | None:
        jobs = [
            job
            for job in self.model.jobs.values()
            if job.status in statuses and (fail_kind is None or job.fail_kind == fail_kind)
        ]
        return self.rng.choice(jobs) if jobs else None

    def compare(self) -> None:
        """The database agrees with the model: account, entry count, every job."""
        model = self.model
        where = self.where()
        assert 0 <= model.held <= model.balance, f"the model itself broke: {where}"
        held_jobs = sum(j.cost for j in model.jobs.values() if j.charge == Job.Charge.HELD)
        assert model.held == held_jobs, f"the model itself broke: {where}"
        account = CreditAccount.objects.annotate(count=Count("entries")).get(user=self.user)
        assert (account.balance, account.held) == (model.balance, model.held), (
            f"account balance/held {account.balance}/{account.held}, model "
            f"{model.balance}/{model.held}: {where}"
        )
        assert account.count == model.entries, (
            f"{account.count} entries, model {model.entries}: {where}"
        )
        jobs = Job.objects.filter(owner=self.user).order_by()
        rows = {
            pk: (status, charge, fail_kind, cost)
            for pk, status, charge, fail_kind, cost in jobs.values_list(
                "pk", "status", "charge", "fail_kind", "cost"
            )
        }
        expected = {pk: job.row() for pk, job in model.jobs.items()}
        if rows != expected:
            wrong = {
                pk: {"db": rows.get(pk), "model": expected.get(pk)}
                for pk in sorted(set(rows) | set(expected))
                if rows.get(pk) != expected.get(pk)
            }
            raise AssertionError(f"jobs disagree with the model {wrong}: {where}")

    # -- operations --------------------------------------------------------------------

    def grant(self) -> None:
        amount = self.rng.randint(1, 400)
        key = f"soak-grant:{self.step}"
        entry = ledger.grant(self.user, amount, key=key, memo="soak")
        assert entry.amount == amount, self.where()
        self.model.grants[key] = amount
        self.model.balance += amount
        self.model.entries += 1
        self.note(f"grant {amount}")

    def grant_again(self) -> None:
        if not self.model.grants:
            return self.grant()
        key = self.rng.choice(sorted(self.model.grants))
        entry = ledger.grant(self.user, self.rng.randint(1, 400), key=key, memo="soak again")
        assert entry.amount == self.model.grants[key], self.where()
        self.note(f"grant_again {key}")
        return None

    def submit(self) -> None:
        if self.model.refused and self.rng.random() < 0.25:
            key, prompt, mode = self.model.refused.pop(self.rng.randrange(len(self.model.refused)))
        else:
            key, prompt, mode = self.key(), f"soak {self.step}", self.rng.choice(MODES)
        cost = self.model.prices[mode]
        try:
            job = services.submit(owner=self.user, prompt=prompt, mode=mode, submit_key=key)
        except services.SubmitError as exc:
            assert self.model.available < cost, (
                f"refused ({exc}) with {self.model.available} available for {cost}: {self.where()}"
            )
            assert REFUSAL.search(str(exc)), f"{exc}: {self.where()}"
            self.model.refused.append((key, prompt, mode))
            self.note(f"submit refused {mode} {cost} (available {self.model.available})")
            return
        assert self.model.available >= cost, (
            f"accepted a {cost} job with {self.model.available} available: {self.where()}"
        )
        assert job.pk not in self.model.jobs and job.cost == cost, self.where()
        made = ModelJob(pk=job.pk, key=key, prompt=prompt, mode=mode, cost=cost)
        self.model.jobs[job.pk] = made
        self.model.hold(made)
        self.note(f"submit job {job.pk} {mode} {cost}")

    def submit_again(self) -> None:
        if not self.model.jobs:
            return self.submit()
        job = self.model.jobs[self.rng.choice(sorted(self.model.jobs))]
        if self.rng.random() < 0.2:
            with pytest.raises(services.SubmitError, match="already sent"):
                services.submit(
                    owner=self.user,
                    prompt=job.prompt + " edited",
                    mode=job.mode,
                    submit_key=job.key,
                )
            self.note(f"submit_again job {job.pk} with another prompt: refused")
            return None
        again = services.submit(
            owner=self.user, prompt=job.prompt, mode=job.mode, submit_key=job.key
        )
        assert again.pk == job.pk, f"a resent key made job {again.pk}, not {job.pk}: {self.where()}"
        self.note(f"submit_again job {job.pk} ({job.status})")
        return None

    def start(self, job: ModelJob) -> None:
        if job.status == Job.Status.QUEUED:
            make_running(self.fresh(job.pk))
            job.status = Job.Status.RUNNING
        self.stale.setdefault(job.pk, self.fresh(job.pk))

    def succeed(self) -> None:
        job = self.pick(*Job.IN_FLIGHT)
        if job is None:
            return self.submit()
        self.start(job)
        assert lifecycle.succeed(self.fresh(job.pk)) is True, self.where()
        job.status, job.fail_kind, job.fail_reason = Job.Status.SUCCEEDED, "", ""
        self.model.capture(job)
        self.note(f"succeed job {job.pk}")
        return None

    def fail(self, kind: str | None = None) -> None:
        job = self.pick(*Job.IN_FLIGHT)
        if job is None:
            return self.submit()
        if self.rng.random() < 0.5:
            self.start(job)
        else:
            self.stale.setdefault(job.pk, self.fresh(job.pk))
        kind = kind or self.rng.choice(FAIL_KINDS)
        reason = f"{kind} at step {self.step}"
        assert lifecycle.fail(self.fresh(job.pk), kind=kind, reason=reason) is True, self.where()
        job.status, job.fail_kind, job.fail_reason = Job.Status.FAILED, kind, reason
        self.model.release(job)
        self.note(f"fail job {job.pk} {kind}")
        return None

    def timeout(self) -> None:
        self.fail(Job.FailKind.TIMEOUT)

    def late_success(self) -> None:
        job = self.pick(Job.Status.FAILED, fail_kind=Job.FailKind.TIMEOUT)
        if job is None:
            return self.timeout()
        available = self.model.available
        assert lifecycle.succeed(self.fresh(job.pk)) is True, self.where()
        job.status, job.fail_kind, job.fail_reason = Job.Status.SUCCEEDED, "", ""
        self.model.capture(job)
        self.late[job.charge] += 1
        self.note(f"late_success job {job.pk} cost {job.cost} available {available}")
        return None

    def redeliver(self) -> None:
        """A duplicate or out-of-order webhook or poll result for a finished job."""
        job = self.pick(Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED)
        if job is None:
            return self.succeed()
        stale = self.stale.get(job.pk)
        if stale is not None and self.rng.random() < 0.4:
            # Read while the job was in flight, delivered after it ended: it loses the race.
            # (A losing call leaves the instance as it was, so it stays stale.)
            if self.rng.random() < 0.5:
                assert lifecycle.succeed(stale) is False, self.where()
                self.note(f"redeliver stale success for job {job.pk} ({job.status})")
            else:
                assert lifecycle.fail(stale, kind=Job.FailKind.PROVIDER_ERROR, reason="x") is False
                self.note(f"redeliver stale failure for job {job.pk} ({job.status})")
            return None
        current = self.fresh(job.pk)
        if job.status == Job.Status.FAILED:
            if job.fail_kind == Job.FailKind.TIMEOUT or self.rng.random() < 0.5:
                # The same failure again (its own kind and text): nothing moves.
                lifecycle.fail(current, kind=job.fail_kind, reason=job.fail_reason)
                self.note(f"redeliver same failure for job {job.pk} ({job.fail_kind})")
            else:
                # A success after a real failure: the failure stands.
                assert lifecycle.succeed(current) is False, self.where()
                self.note(f"redeliver success after failure for job {job.pk}")
        elif job.status == Job.Status.SUCCEEDED:
            if self.rng.random() < 0.5:
                assert lifecycle.succeed(current) is False, self.where()
                self.note(f"redeliver success for succeeded job {job.pk}")
            else:
                kind = self.rng.choice((*FAIL_KINDS, Job.FailKind.TIMEOUT))
                assert lifecycle.fail(current, kind=kind, reason="late") is False, self.where()
                self.note(f"redeliver {kind} for succeeded job {job.pk}")
        else:
            assert lifecycle.succeed(current) is False, self.where()
            assert lifecycle.fail(current, kind=Job.FailKind.PROVIDER_ERROR, reason="x") is False
            assert lifecycle.cancel(current) is False, self.where()
            self.note(f"redeliver success, failure and cancel for cancelled job {job.pk}")
        return None

    def adjust(self) -> None:
        amount = self.rng.choice((-1, 1)) * self.rng.randint(1, 500)
        if self.rng.random() < 0.05:
            amount = 0
        key = f"soak-adjust:{self.step}"
        if amount == 0 or self.model.available + amount < 0:
            with pytest.raises(ledger.LedgerError):
                ledger.adjust(self.user, amount, actor=self.admin, reason="soak", key=key)
            self.note(f"adjust {amount} refused (available {self.model.available})")
            return
        entry = ledger.adjust(self.user, amount, actor=self.admin, reason="soak", key=key)
        assert (entry.amount, entry.actor_id) == (amount, self.admin.pk), self.where()
        self.model.balance += amount
        self.model.entries += 1
        self.note(f"adjust {amount}")

    def cancel(self) -> None:
        job = self.pick(*Job.IN_FLIGHT)
        if job is None:
            return self.submit()
        self.stale.setdefault(job.pk, self.fresh(job.pk))
        cancelled = lifecycle.cancel(self.fresh(job.pk))
        if job.status != Job.Status.QUEUED:
            # At the provider already: it cannot be called back.
            assert cancelled is False, self.where()
            self.note(f"cancel refused for running job {job.pk}")
            return None
        assert cancelled is True, self.where()
        job.status, job.fail_kind = Job.Status.CANCELLED, Job.FailKind.CANCELLED
        job.fail_reason = "Cancelled before it reached the provider."
        self.model.release(job)
        self.note(f"cancel job {job.pk}")
        return None

    def reprice(self) -> None:
        """The operator changes a price: jobs already held keep theirs."""
        mode = self.rng.choice(MODES)
        credits = 0 if self.rng.random() < 0.1 else self.rng.randint(1, 300)
        Price.objects.filter(action=Job.Action.IMAGINE, mode=mode).update(credits=credits)
        self.model.prices[mode] = credits
        self.note(f"reprice {mode} {credits}")

    OPERATIONS: tuple[tuple[str, int], ...] = (
        ("grant", 7),
        ("grant_again", 2),
        ("submit", 22),
        ("submit_again", 6),
        ("succeed", 14),
        ("fail", 7),
        ("timeout", 8),
        ("late_success", 7),
        ("redeliver", 12),
        ("adjust", 6),
        ("cancel", 6),
        ("reprice", 3),
    )

    def run(self, steps: int) -> None:
        names = [name for name, _ in self.OPERATIONS]
        weights = [weight for _, weight in self.OPERATIONS]
        self.compare()
        for self.step in range(1, steps + 1):
            name = self.rng.choices(names, weights)[0]
            try:
                getattr(self, name)()
            except AssertionError:
                raise
            except Exception as exc:
                raise AssertionError(f"{name} raised {exc!r}: {self.where()}") from exc
            self.compare()


@pytest.mark.django_db
@pytest.mark.parametrize("seed", SEEDS)
def test_seeded_operations_keep_the_books_and_the_model_in_step(
    seed: int, settings: Any, django_user_model: Any
) -> None:
    prices.seed_defaults()  # a transactional test before this one may have flushed them
    settings.MJ_JOBS_AT_ONCE = 0
    settings.MJ_JOBS_PER_DAY = 0
    settings.MJ_ALLOWED_MODES = list(MODES)
    settings.MJ_WELCOME_CREDITS = 0
    admin = django_user_model.objects.create_user("admin", "admin@example.com", "pw", is_staff=True)
    settings.MJ_WELCOME_CREDITS = 300
    user = django_user_model.objects.create_user("soaker", "soaker@example.com", "pw")

    soak = Soak(seed, user, admin, welcome=300)
    soak.run(STEPS)

    check_books(user)
    # The run went through every path it is meant to check (else change the weights).
    counts = soak.counts
    print(f"seed {seed}: {dict(sorted(counts.items()))}")
    charges = {job.charge for job in soak.model.jobs.values()}
    assert {Job.Charge.CAPTURED, Job.Charge.RELEASED, Job.Charge.WAIVED} <= charges, (
        f"seed {seed}: charges seen {charges}"
    )
    # Late successes both charged (credits available) and waived (not enough).
    assert soak.late[Job.Charge.CAPTURED] and soak.late[Job.Charge.WAIVED], soak.late
    for name in ("grant", "submit", "succeed", "fail", "late_success", "redeliver", "adjust"):
        assert counts.get(name), f"seed {seed}: no {name} in {counts}"
    refusals = [line for line in soak.history if "refused" in line]
    assert any("submit refused" in line for line in refusals), f"seed {seed}: {counts}"
    assert any("adjust" in line for line in refusals), f"seed {seed}: {counts}"
