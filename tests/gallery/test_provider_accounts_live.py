"""Two simulators as two provider accounts, through the task functions: imagines spread over
both, follow-ups stay on their parent's account, an account answering 401 is disabled and
the other takes its jobs; a proxy on a private address is refused unless allowed; the cost
report equals its jobs summed row by row; reconciliation finds a planted orphan task and a
task billed for a job we refunded."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django_q.models import OrmQ

from backoffice.reports import Period, cost_rows, costs, costs_csv
from billing import ledger
from gallery import lifecycle, reconcile, services, sync, tasks
from gallery.models import Finding, Job, ProviderAccount, ProviderCost, ProviderTask
from gallery.providers import get_provider
from simulator.server import SimulatorServer
from tests.gallery.factories import FakeClock, point_product_at

pytestmark = [pytest.mark.django_db, pytest.mark.live]

KEY_A, KEY_B, CONSOLE_B = "key-a", "key-b", "console-b"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def servers(
    clock: FakeClock, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[SimulatorServer, SimulatorServer]]:
    with (
        SimulatorServer(port=0, duration=6.0, api_key=KEY_A, clock=clock) as a,
        SimulatorServer(
            port=0, duration=6.0, api_key=KEY_B, clock=clock, console_token=CONSOLE_B
        ) as b,
    ):
        point_product_at(a, settings, monkeypatch, api_key=KEY_A)
        settings.MJ_WEBHOOKS = False
        settings.ADMINS = [("ops", "ops@example.com")]
        yield a, b


@pytest.fixture
def account_b(servers: tuple[SimulatorServer, SimulatorServer]) -> ProviderAccount:
    account = ProviderAccount(
        name="sim-b", label="Simulator B", protocol="simulator", base_url=servers[1].base_url
    )
    account.api_key = KEY_B
    account.console_token = CONSOLE_B
    account.save()
    return account


def ids(server: SimulatorServer) -> set[str]:
    return {task.id for task in server.engine.tasks()}


def finish(jobs: list[Job], clock: FakeClock) -> list[Job]:
    """Dispatch, poll every account to the end, ingest; returns the jobs as stored."""
    for job in jobs:
        tasks.dispatch(job.pk)
    for _ in range(40):
        clock.now += 0.5
        for name in {job.provider for job in Job.objects.filter(pk__in=[j.pk for j in jobs])}:
            sync.tick(name)
        if not Job.objects.filter(pk__in=[j.pk for j in jobs], result_url="").exists():
            break
    for job in jobs:
        tasks.ingest(job.pk)
    return [Job.objects.get(pk=job.pk) for job in jobs]


def test_imagines_spread_over_both_accounts_and_follow_ups_stay(
    servers: tuple[SimulatorServer, SimulatorServer],
    account_b: ProviderAccount,
    clock: FakeClock,
    alice: Any,
) -> None:
    a, b = servers
    jobs = [services.submit(owner=alice, prompt=f"a lighthouse, take {n}") for n in range(6)]
    assert Counter(job.provider for job in jobs) == {"simulator": 3, "sim-b": 3}
    done = finish(jobs, clock)
    assert all(job.status == Job.Status.SUCCEEDED for job in done), [
        (job.status, job.fail_note) for job in done
    ]
    on_a = {job.provider_job_id for job in done if job.provider == "simulator"}
    on_b = {job.provider_job_id for job in done if job.provider == "sim-b"}
    assert on_a == ids(a) and on_b == ids(b)
    # Each job records what its account bills for it.
    assert {(job.provider_model, job.provider_cost) for job in done} == {
        ("mj-fast-imagine", Decimal("0.0560"))
    }

    parent = next(job for job in done if job.provider == "sim-b")
    children = [
        services.press(owner=alice, parent=parent, action=Job.Action.REROLL),
        services.press(owner=alice, parent=parent, action=Job.Action.UPSCALE, index=2),
    ]
    assert [child.provider for child in children] == ["sim-b", "sim-b"]
    children = finish(children, clock)
    for child in children:
        assert child.status == Job.Status.SUCCEEDED
        task = next(t for t in b.engine.tasks() if t.id == child.provider_job_id)
        assert task.parent_id == parent.provider_job_id
    assert not ids(a) & {child.provider_job_id for child in children}
    reroll = children[0]
    assert reroll.provider_model == "mj-fast-reroll" and reroll.provider_cost == Decimal("0.056")


def test_an_account_answering_401_is_disabled_and_the_other_takes_new_jobs(
    servers: tuple[SimulatorServer, SimulatorServer],
    account_b: ProviderAccount,
    clock: FakeClock,
    alice: Any,
    admin_client: Any,
) -> None:
    a, b = servers
    ProviderAccount.objects.filter(name="sim-b").update(weight=5)  # the first imagine: B's
    b.api_key = "the key was revoked"
    job = services.submit(owner=alice, prompt="a harbour at night")
    assert job.provider == "sim-b"
    tasks.dispatch(job.pk)
    account_b.refresh_from_db()
    assert not account_b.enabled
    assert "HTTP 401" in account_b.disabled_reason
    assert "Provider account sim-b disabled" in mail.outbox[-1].subject
    job.refresh_from_db()
    # Refused before anything was made: queued for the other account instead, not failed.
    assert job.provider == "simulator" and job.status == Job.Status.QUEUED
    assert OrmQ.objects.count() >= 1  # its dispatch, for the worker
    job = finish([job], clock)[0]
    assert job.status == Job.Status.SUCCEEDED
    assert job.provider_job_id in ids(a) and not ids(b)

    later = [services.submit(owner=alice, prompt=f"a harbour, take {n}") for n in range(3)]
    assert {job.provider for job in later} == {"simulator"}
    page = admin_client.get("/admin/").content.decode()
    assert "Provider account" in page and "is disabled" in page and "HTTP 401" in page

    account_b.enable()
    assert services.submit(owner=alice, prompt="a harbour at dawn").provider == "sim-b"


def test_a_follow_up_of_a_disabled_account_is_refused_with_a_reason(
    servers: tuple[SimulatorServer, SimulatorServer],
    account_b: ProviderAccount,
    clock: FakeClock,
    alice: Any,
) -> None:
    ProviderAccount.objects.filter(name="simulator").update(enabled=False)
    parent = finish([services.submit(owner=alice, prompt="a quiet bay")], clock)[0]
    assert parent.provider == "sim-b" and parent.status == Job.Status.SUCCEEDED
    account_b.disable("Switched off for the test.")
    before = ledger.account_for(alice)
    with pytest.raises(services.SubmitError, match="switched off"):
        services.press(owner=alice, parent=parent, action=Job.Action.REROLL)
    assert Job.objects.filter(parent=parent).count() == 0
    after = ledger.account_for(alice)
    assert (after.balance, after.held) == (before.balance, before.held)
    with pytest.raises(services.SubmitError, match="No provider account is available"):
        services.submit(owner=alice, prompt="another bay")


@pytest.mark.parametrize("allowed", [False, True])
def test_a_proxy_on_a_private_address_works_only_when_allowed(
    servers: tuple[SimulatorServer, SimulatorServer],
    clock: FakeClock,
    alice: Any,
    allowed: bool,
) -> None:
    _, proxy = servers  # a midjourney-proxy of our own, on 127.0.0.1 and a high port
    ProviderAccount.objects.filter(name="simulator").update(enabled=False)
    account = ProviderAccount(
        name="own-proxy", protocol="cometapi", base_url=proxy.base_url, private_network=allowed
    )
    account.api_key = KEY_B
    account.save()
    job = finish([services.submit(owner=alice, prompt="a private lighthouse")], clock)[0]
    assert job.provider == "own-proxy" and job.result_url
    if allowed:
        assert job.status == Job.Status.SUCCEEDED, job.fail_note
    else:
        assert job.status == Job.Status.FAILED
        assert job.fail_kind == Job.FailKind.IMAGE_UNAVAILABLE
        assert "127.0.0.1" in job.fail_note and "Refusing" in job.fail_note
        assert job.charge == "released"


def test_the_cost_report_equals_its_jobs_summed_row_by_row(
    servers: tuple[SimulatorServer, SimulatorServer],
    account_b: ProviderAccount,
    clock: FakeClock,
    alice: Any,
    settings: Any,
) -> None:
    settings.MJWEB_CREDIT_USD = Decimal("0.0015")
    ProviderCost.objects.filter(account=account_b, action="reroll", mode="fast").update(
        model_id="mj_fast_reroll", price=Decimal("0.0420")
    )
    parents = finish(
        [services.submit(owner=alice, prompt=f"a meadow, take {n}") for n in range(4)], clock
    )
    children = [
        services.press(owner=alice, parent=parent, action=Job.Action.REROLL) for parent in parents
    ]
    children += [services.press(owner=alice, parent=parents[0], action="upscale", index=1)]
    children = finish(children, clock)
    failed = finish(
        [services.submit(owner=alice, prompt="a meadow [sim:fail]", mode="turbo")], clock
    )
    assert failed[0].status == Job.Status.FAILED and failed[0].provider_cost == 0

    jobs = list(Job.objects.all())
    expected: dict[tuple[str, str, str], dict[str, Any]] = {}
    for job in jobs:
        row = expected.setdefault(
            (job.provider, job.action, job.mode),
            {"jobs": 0, "cost": Decimal(0), "credits": 0},
        )
        row["jobs"] += 1
        row["cost"] += job.provider_cost or 0
        row["credits"] += job.cost if job.charge == "captured" else 0
    period = Period(parents[0].created_at.date(), parents[0].created_at.date())
    got = {(r["provider"], r["action"], r["mode"]): r for r in cost_rows(period)}
    assert set(got) == set(expected)
    for key, row in expected.items():
        assert got[key]["jobs"] == row["jobs"]
        assert Decimal(got[key]["provider_cost"]) == row["cost"]
        assert got[key]["credits_charged"] == row["credits"]
    report = costs(period)
    total = report["cost_total"]
    cost = sum((row["cost"] for row in expected.values()), Decimal(0))
    credits = sum(row["credits"] for row in expected.values())
    assert total.provider_cost == cost and total.credits_charged == credits
    assert total.margin == (credits * Decimal("0.0015") - cost).quantize(Decimal("0.0001"))
    by_account = {line.extra["name"]: line for line in report["account_lines"]}
    for name in ("simulator", "sim-b"):
        mine = [row for key, row in expected.items() if key[0] == name]
        assert by_account[name].provider_cost == sum((r["cost"] for r in mine), Decimal(0))
    reroll_b = [job for job in children if job.provider == "sim-b" and job.action == "reroll"]
    assert reroll_b and all(job.provider_model == "mj_fast_reroll" for job in reroll_b)

    text = "".join(costs_csv(period))
    lines = text.strip().splitlines()
    assert lines[0].startswith("account,action,mode,jobs,billed_jobs,provider_cost_usd")
    assert len(lines) == 1 + len(expected)
    csv_margin = sum(Decimal(line.split(",")[-1]) for line in lines[1:])
    assert csv_margin == total.margin


def test_reconciliation_finds_an_orphan_and_a_billed_but_refunded_task(
    servers: tuple[SimulatorServer, SimulatorServer],
    account_b: ProviderAccount,
    clock: FakeClock,
    alice: Any,
    admin_client: Any,
) -> None:
    b = servers[1]
    ProviderAccount.objects.filter(name="simulator").update(enabled=False)
    kept = finish([services.submit(owner=alice, prompt="a kept picture")], clock)[0]
    # Billed by the provider, refunded here: the result came, but we ended the job (its
    # image could not be stored, say) and released its credits.
    lost = services.submit(owner=alice, prompt="a lost picture")
    tasks.dispatch(lost.pk)
    for _ in range(30):
        clock.now += 0.5
        sync.tick("sim-b")
    lost.refresh_from_db()
    lifecycle.fail(lost, kind=Job.FailKind.IMAGE_UNAVAILABLE, note="Storage was down.")
    lost.refresh_from_db()
    assert lost.charge == "released"
    # A task with no job: submitted to the account outside mjweb (a duplicate submit).
    with get_provider("sim-b", protocol="simulator", base_url=b.base_url, api_key=KEY_B) as direct:
        orphan = direct.imagine(prompt="made elsewhere", mode="fast", state="").provider_job_id
    clock.now += 30

    ProviderAccount.objects.filter(pk=account_b.pk).update(low_balance_below=Decimal("1000"))
    outcome = reconcile.reconcile(ProviderAccount.objects.get(pk=account_b.pk))
    assert not outcome.error, outcome.error
    found = {task.task_id: task for task in ProviderTask.objects.filter(account=account_b)}
    assert set(found) == ids(b)
    assert found[orphan].finding == Finding.ORPHAN and found[orphan].job is None
    assert found[orphan].cost == Decimal("0.056")
    assert found[lost.provider_job_id].finding == Finding.REFUNDED_HERE
    assert found[lost.provider_job_id].job_id == lost.pk
    assert found[kept.provider_job_id].finding == Finding.MATCHED
    assert found[kept.provider_job_id].model_name == "mj-fast-imagine"
    account_b.refresh_from_db()
    assert account_b.balance == Decimal("100.0000") - 3 * Decimal("0.056")
    assert account_b.is_low_on_balance and account_b.low_balance_alerted_at is not None
    assert any("low on balance" in message.subject for message in mail.outbox)

    listing = admin_client.get("/admin/gallery/providertask/?finding=discrepancies").content
    assert orphan.encode() in listing and lost.provider_job_id.encode() in listing
    assert kept.provider_job_id.encode() not in listing
    assert b"is low on balance" in admin_client.get("/admin/").content

    # Run again: the same rows, updated in place; the alert is not repeated.
    alerts = len(mail.outbox)
    reconcile.reconcile(ProviderAccount.objects.get(pk=account_b.pk))
    assert ProviderTask.objects.filter(account=account_b).count() == len(ids(b))
    assert len(mail.outbox) == alerts


def test_an_account_out_of_balance_is_disabled(
    servers: tuple[SimulatorServer, SimulatorServer],
    account_b: ProviderAccount,
) -> None:
    servers[1].console_quota = 0
    reconcile.reconcile(account_b)
    account_b.refresh_from_db()
    assert not account_b.enabled and "out of balance" in account_b.disabled_reason


def test_a_wrong_console_token_is_kept_as_the_error(
    servers: tuple[SimulatorServer, SimulatorServer], account_b: ProviderAccount
) -> None:
    account_b.console_token = "not the token"
    account_b.save()
    outcome = reconcile.reconcile(account_b)
    account_b.refresh_from_db()
    assert outcome.error and account_b.reconcile_error == outcome.error
    assert account_b.enabled  # the console token is not the API key: jobs still go there


def test_a_submit_refused_for_want_of_balance_disables_the_account_and_moves_the_job(
    servers: tuple[SimulatorServer, SimulatorServer],
    account_b: ProviderAccount,
    clock: FakeClock,
    alice: Any,
) -> None:
    a, b = servers
    b.console_quota = 10_000  # less than one fast task (28,000): new-api says quota_not_enough
    ProviderAccount.objects.filter(name="sim-b").update(weight=5)
    job = services.submit(owner=alice, prompt="a lighthouse on credit")
    assert job.provider == "sim-b"
    tasks.dispatch(job.pk)
    account_b.refresh_from_db()
    assert not account_b.enabled and "out of balance" in account_b.disabled_reason
    assert "quota_not_enough" in account_b.disabled_reason
    job = finish([Job.objects.get(pk=job.pk)], clock)[0]
    assert job.provider == "simulator" and job.status == Job.Status.SUCCEEDED
    assert job.provider_job_id in ids(a) and not ids(b)
