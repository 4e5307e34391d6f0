"""The admin's lists and pages: what they show, their filters, and a number of queries that
does not grow with the rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backoffice.site import EstimatedCountPaginator
from billing import ledger
from billing.models import CreditAccount, LedgerEntry, Quota
from gallery import services
from gallery.models import Job, ProviderCall
from mjweb import audit
from mjweb.models import AuditEntry, User
from tests.admin.conftest import World
from tests.gallery.factories import make_finished_job
from tests.requirements import require_postgres

pytestmark = pytest.mark.django_db


def add_jobs(owner: User, count: int) -> None:
    now = timezone.now()
    start = Job.objects.count()
    Job.objects.bulk_create(
        Job(
            owner=owner,
            action=Job.Action.IMAGINE,
            prompt=f"prompt {n}",
            provider="simulator",
            provider_job_id=f"bulk-{owner.pk}-{start + n}",
            status=Job.Status.SUCCEEDED,
            cost=56,
            charge=Job.Charge.CAPTURED,
            created_at=now - dt.timedelta(seconds=n),
            finished_at=now,
        )
        for n in range(count)
    )


def add_entries(owner: User, count: int) -> None:
    account = ledger.account_for(owner)
    balance = account.balance
    rows = []
    start = LedgerEntry.objects.count()
    for n in range(start, start + count):
        balance += 1
        rows.append(
            LedgerEntry(
                account=account,
                kind="grant",
                amount=1,
                balance_delta=1,
                held_delta=0,
                balance_after=balance,
                held_after=0,
                memo=f"bulk {n}",
                key=f"bulk:{owner.pk}:{n}",
                actor=owner if n % 2 else None,
            )
        )
    LedgerEntry.objects.bulk_create(rows)
    CreditAccount.objects.filter(pk=account.pk).update(balance=balance)


def add_calls(owner: User, count: int) -> None:
    job = Job.objects.filter(owner=owner).first()
    ProviderCall.objects.bulk_create(
        ProviderCall(
            job=job if n % 2 else None,
            provider="simulator",
            method="GET",
            path=f"/mj/task/{n}/fetch",
            status_code=200 if n % 10 else 502,
            latency_ms=n,
        )
        for n in range(count)
    )


def add_users(owner: User, count: int) -> None:
    """Users with accounts and quotas, each with an audit entry (for the audit log's list)."""
    start = User.objects.count()
    users = User.objects.bulk_create(
        User(username=f"user{n}", email=f"user{n}@example.com") for n in range(start, start + count)
    )
    CreditAccount.objects.bulk_create(
        CreditAccount(user=user, balance=n, held=0) for n, user in enumerate(users)
    )
    Quota.objects.bulk_create(Quota(user=user, jobs_per_day=n) for n, user in enumerate(users))
    add_jobs(users[0], 2)
    with transaction.atomic():
        for user in users:
            audit.record(actor=owner, verb=AuditEntry.Verb.CHANGE, obj=user)


def queries_for(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries)


LISTS = [
    ("admin:gallery_job_changelist", add_jobs),
    ("admin:billing_ledgerentry_changelist", add_entries),
    ("admin:gallery_providercall_changelist", add_calls),
    ("admin:mjweb_user_changelist", add_users),
    ("admin:mjweb_auditentry_changelist", add_users),
]


@pytest.mark.parametrize(("name", "add"), LISTS)
def test_lists_run_the_same_queries_for_3_and_300_rows(
    name: str, add: Callable[[User, int], None], root_client: Client, alice: User
) -> None:
    add(alice, 3)
    url = reverse(name)
    few = queries_for(root_client, url)
    add(alice, 297)
    many = queries_for(root_client, url)
    assert many == few, (name, few, many)
    cl = root_client.get(url).context["cl"]
    assert len(cl.result_list) == 100  # a full first page of many rows


def test_the_job_list_shows_the_columns_and_filters(root_client: Client, world: World) -> None:
    url = reverse("admin:gallery_job_changelist")
    body = root_client.get(url).content.decode()
    for text in ("1730000000000001", "Imagine", "Charged", "Refunded", "alice", "bob"):
        assert text in body
    failed = root_client.get(url, {"status__exact": "failed"}).context["cl"].result_list
    assert list(failed) == [world.failed]
    rejected = root_client.get(url, {"fail_kind__exact": "rejected_prompt"}).context["cl"]
    assert list(rejected.result_list) == [world.failed]
    relax = root_client.get(url, {"mode__exact": "relax"}).context["cl"].result_list
    assert list(relax) == [world.relax]
    mine = root_client.get(url, {"owner__id__exact": world.bob.pk}).context["cl"].result_list
    assert set(mine) == {world.relax, world.old}
    search = root_client.get(url, {"q": "heron"}).context["cl"].result_list
    assert list(search) == [world.relax]
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    week = {"created_at__gte": str(midnight - dt.timedelta(days=7))}
    recent = root_client.get(url, week).context["cl"]
    assert world.old not in recent.result_list and world.relax in recent.result_list


def test_the_job_page_shows_lineage_calls_entries_images_and_actions(
    root_client: Client, auditor_client: Client, root: User, world: World
) -> None:
    parent = make_finished_job(world.alice)
    child = services.press(owner=world.alice, parent=parent, action="upscale", index=2)
    url = reverse("admin:gallery_job_change", args=[child.pk])
    body = root_client.get(url).content.decode()
    assert reverse("admin:gallery_job_change", args=[parent.pk]) in body  # lineage
    assert "U2</strong> (this job)" in body
    assert "Held for upscale (fast)" in body  # its ledger entry
    assert reverse("admin:gallery_job_operate", args=[child.pk, "cancel"]) in body
    assert reverse("admin:gallery_job_operate", args=[child.pk, "release"]) in body
    assert reverse("admin:gallery_job_operate", args=[child.pk, "resync"]) not in body

    page = root_client.get(reverse("admin:gallery_job_change", args=[parent.pk])).content.decode()
    image = parent.images.get()
    assert reverse("admin:gallery_job_image", args=[parent.pk, image.pk, "thumb"]) in page
    assert "64×64" in page

    body = root_client.get(
        reverse("admin:gallery_job_change", args=[world.succeeded.pk])
    ).content.decode()
    assert "GET /mj/task/1730000000000001/fetch" in body  # its provider calls
    assert "Charged on success" in body
    assert reverse("admin:gallery_job_operate", args=[world.succeeded.pk, "resync"]) not in body

    # The auditor sees it all, with no action to take.
    seen = auditor_client.get(url).content.decode()
    assert "Held for upscale (fast)" in seen
    assert reverse("admin:gallery_job_operate", args=[child.pk, "cancel"]) not in seen
    assert (
        auditor_client.get(
            reverse("admin:gallery_job_operate", args=[child.pk, "cancel"])
        ).status_code
        == 403
    )

    # An admin action shows on the page.
    root_client.post(
        reverse("admin:gallery_job_operate", args=[child.pk, "cancel"]), {"reason": "dup"}
    )
    assert "Cancelled" in root_client.get(url).content.decode()
    assert AuditEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Job), object_id=str(child.pk)
    ).exists()


def test_the_user_list_shows_credits_jobs_today_and_limits(
    root_client: Client, root: User, world: World
) -> None:
    Quota.objects.create(user=world.bob, jobs_per_day=3, allowed_modes="relax")
    world.bob.suspend(actor=root, reason="x")
    url = reverse("admin:mjweb_user_changelist")
    cl = root_client.get(url).context["cl"]
    admin = cl.model_admin
    rows = {user.username: user for user in cl.result_list}
    alice, bob = rows["alice"], rows["bob"]
    account = CreditAccount.objects.get(user=world.alice)
    assert (admin.balance(alice), admin.held(alice)) == (account.balance, account.held)
    assert admin.available(alice) == account.balance - account.held
    # Today: the fast imagine that succeeded and the one still running (failed and cancelled
    # ones do not count, as for the daily limit).
    assert admin.jobs_today(alice) == 2
    assert admin.jobs_today(bob) == 1  # the old one was 40 days ago
    assert admin.limits(bob) == "relax · 3/day · 10 at once (default)"
    assert admin.limits(alice) == ("all modes (default) · 200/day (default) · 10 at once (default)")
    assert admin.suspended(bob) and not admin.suspended(alice)
    column = admin.limits_column(bob)
    assert '<span class="" title="own">relax</span>' in column
    assert '<span class="quiet" title="site default">10 at once</span>' in column
    suspended = root_client.get(url, {"suspended": "yes"}).context["cl"].result_list
    assert [user.username for user in suspended] == ["bob"]
    staff = root_client.get(url, {"is_staff__exact": "1"}).context["cl"].result_list
    assert [user.username for user in staff] == ["root"]
    page = root_client.get(reverse("admin:mjweb_user_change", args=[world.alice.pk]))
    body = page.content.decode()
    assert reverse("admin:mjweb_user_credits", args=[world.alice.pk]) in body
    assert reverse("admin:mjweb_user_suspend", args=[world.alice.pk]) in body
    assert f"owner__id__exact={world.alice.pk}" in body
    credits = root_client.get(reverse("admin:mjweb_user_credits", args=[world.alice.pk]))
    assert credits["Location"] == reverse("admin:billing_creditaccount_credit", args=[account.pk])


def test_the_ledger_and_call_filters(root_client: Client, root: User, world: World) -> None:
    ledger.grant(world.alice, 5, key="by-admin", memo="from root", actor=root)
    url = reverse("admin:billing_ledgerentry_changelist")
    by_admin = root_client.get(url, {"by": "admin"}).context["cl"].result_list
    assert [entry.key for entry in by_admin] == ["by-admin"]
    captures = root_client.get(url, {"kind__exact": "capture"}).context["cl"].result_list
    assert {entry.job_id for entry in captures} == {
        world.succeeded.pk,
        world.relax.pk,
        world.old.pk,
    }
    mine = root_client.get(url, {"account__user__id__exact": world.bob.pk}).context["cl"]
    assert all(entry.account.user_id == world.bob.pk for entry in mine.result_list)
    calls = reverse("admin:gallery_providercall_changelist")
    failed = root_client.get(calls, {"outcome": "failed"}).context["cl"].result_list
    assert sorted(call.status_code or 0 for call in failed) == [0, 502]
    body = root_client.get(calls).content.decode()
    assert reverse("admin:gallery_job_change", args=[world.succeeded.pk]) in body
    call = ProviderCall.objects.filter(job=world.succeeded).first()
    assert call is not None
    detail = root_client.get(reverse("admin:gallery_providercall_change", args=[call.pk]))
    assert "&quot;prompt&quot;: &quot;x&quot;" in detail.content.decode()


def test_the_estimated_count_on_a_big_postgresql_table(alice: User) -> None:
    require_postgres()
    add_entries(alice, 50)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE billing_ledgerentry")
    paginator = EstimatedCountPaginator(LedgerEntry.objects.all(), 10)
    paginator.exact_below = 10
    assert paginator.count == LedgerEntry.objects.count()  # the estimate, right after ANALYZE
    filtered = EstimatedCountPaginator(LedgerEntry.objects.filter(memo="bulk 1"), 10)
    filtered.exact_below = 10
    assert filtered.count == 1


def test_the_job_page_shows_the_pictures_a_job_was_made_from(
    root_client: Client, world: World
) -> None:
    from gallery import references
    from tests.gallery.factories import png_bytes

    picture = references.take(world.alice, png_bytes((90, 60)))
    job = services.describe(owner=world.alice, image=picture)
    Job.objects.filter(pk=job.pk).update(described=["a fox <script>", "two"])
    body = root_client.get(reverse("admin:gallery_job_change", args=[job.pk])).content.decode()
    assert f"1. 90x60 px, {picture.bytes} bytes, sha256 {picture.sha256[:16]}" in body
    assert "1. a fox &lt;script&gt;" in body and "2. two" in body
