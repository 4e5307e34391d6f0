"""The gallery: lineages, filters, cursor pages, favorites, deletion, the lineage tree,
downloads and the one live poll, with their query counts fixed whatever the size."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from gallery import lifecycle, tasks
from gallery.lineage import tree
from gallery.models import Image, Job
from gallery.pagination import decode, encode
from tests.gallery.factories import make_finished_job, make_job

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def child_of(parent: Job, action: str = Job.Action.REROLL, **fields: Any) -> Job:
    return make_finished_job(
        parent.owner, parent=parent, root_id=parent.root_id, action=action, **fields
    )


def lineage(owner: Any, size: int) -> list[Job]:
    root = make_finished_job(owner, prompt="a lighthouse")
    jobs = [root]
    for n in range(size - 1):
        jobs.append(child_of(jobs[n // 2], prompt=f"a lighthouse {n}"))
    return jobs


def count_queries(client: Client, url: str, **extra: Any) -> tuple[int, Any]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, **extra)
    assert response.status_code == 200, response.content[:500]
    return len(queries), response


# --- query counts -------------------------------------------------------------------------


@pytest.mark.parametrize("view", ["lineages", "all"])
def test_the_gallery_costs_the_same_queries_for_3_and_300_jobs(
    alice: Any, alice_client: Client, view: str
) -> None:
    url = reverse("gallery:home") + f"?view={view}"
    lineage(alice, 3)
    small, _ = count_queries(alice_client, url)
    for _ in range(99):
        lineage(alice, 3)
    large, response = count_queries(alice_client, url)
    assert small == large
    assert response.content.decode().count('<article id="job-') == 24


def test_a_job_page_and_its_lineage_cost_the_same_queries_for_3_and_300(
    alice: Any, alice_client: Client
) -> None:
    small_jobs = lineage(alice, 3)
    small, response = count_queries(alice_client, small_jobs[0].get_absolute_url())
    assert response.content.decode().count('class="node ') == 3
    big_jobs = lineage(alice, 300)
    large, response = count_queries(alice_client, big_jobs[0].get_absolute_url())
    assert response.content.decode().count('class="node ') == 300
    assert small == large


def test_the_live_poll_costs_the_same_queries_for_3_and_300_running_cards(
    alice: Any, alice_client: Client
) -> None:
    def poll(jobs: list[Job]) -> int:
        seen = {"live": [f"{job.code}~old~" for job in jobs]}
        queries, _ = count_queries(alice_client, reverse("gallery:live"), data=seen, **HX)
        return queries

    few = [make_job(alice, status=Job.Status.RUNNING) for _ in range(3)]
    many = [make_job(alice, status=Job.Status.RUNNING) for _ in range(197)]
    assert poll(few) == poll(few + many)


# --- lineages and filters -----------------------------------------------------------------


def test_lineage_view_shows_one_card_per_lineage_with_its_size(
    alice: Any, alice_client: Client
) -> None:
    first = lineage(alice, 4)
    second = make_finished_job(alice, prompt="a harbour")
    body = alice_client.get(reverse("gallery:home")).content.decode()
    assert body.count('<article id="job-') == 2
    newest = first[-1]
    assert f'id="job-{newest.code}"' in body and f'id="job-{second.code}"' in body
    assert '>4<span class="visually-hidden"> jobs in this lineage' in body
    body = alice_client.get(reverse("gallery:home") + "?view=all").content.decode()
    assert body.count('<article id="job-') == 5


def test_a_failed_newest_job_does_not_hide_the_lineages_result(
    alice: Any, alice_client: Client
) -> None:
    root = make_finished_job(alice)
    failed = make_job(
        alice, parent=root, root_id=root.pk, action="reroll", status=Job.Status.FAILED
    )
    body = alice_client.get(reverse("gallery:home")).content.decode()
    assert f'id="job-{root.code}"' in body and f'id="job-{failed.code}"' not in body


def test_filters_combine_and_stay_in_the_url(alice: Any, bob: Any, alice_client: Client) -> None:
    fox = make_finished_job(alice, prompt="a red fox in snow", mode="relax", favorite=True)
    make_finished_job(alice, prompt="a red fox at night", mode="fast")
    make_job(alice, prompt="a fox running", status=Job.Status.FAILED, mode="relax")
    make_finished_job(bob, prompt="a red fox of bob's", mode="relax", favorite=True)
    url = reverse("gallery:home") + "?view=all&q=red+fox&mode=relax&status=succeeded"
    body = alice_client.get(url).content.decode()
    assert body.count('<article id="job-') == 1 and f'id="job-{fox.code}"' in body
    assert 'value="red fox"' in body  # the search box keeps what was typed
    assert '<option value="relax" selected>' in body
    body = alice_client.get(reverse("gallery:home") + "?view=all&favorites=on").content.decode()
    assert body.count('<article id="job-') == 1
    today = timezone.localdate()
    url = reverse("gallery:home") + f"?view=all&since={today}&until={today}"
    assert alice_client.get(url).content.decode().count('<article id="job-') == 3
    url = reverse("gallery:home") + f"?view=all&since={today + timedelta(days=1)}"
    assert "No job matches these filters" in alice_client.get(url).content.decode()


def test_bad_filters_are_reported_not_guessed(alice: Any, alice_client: Client) -> None:
    make_finished_job(alice)
    url = reverse("gallery:home") + "?status=exploded&since=2026-13-45&q=harbour"
    response = alice_client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Select a valid choice" in body and "Enter a valid date" in body
    assert body.count('<article id="job-') == 1  # the valid part still applies
    url = reverse("gallery:home") + "?since=2026-02-01&until=2026-01-01"
    assert "The end date is before the start date." in alice_client.get(url).content.decode()


# --- cursor pages -------------------------------------------------------------------------


def test_cursor_pages_walk_every_job_once_both_ways(alice: Any, alice_client: Client) -> None:
    jobs = [make_finished_job(alice, prompt=f"job {n}") for n in range(60)]
    same_time = timezone.now()
    Job.objects.filter(pk__in=[j.pk for j in jobs[10:20]]).update(created_at=same_time)
    seen: list[str] = []
    url = reverse("gallery:home") + "?view=all"
    pages = []
    while url:
        response = alice_client.get(url)
        page = response.context["page"]
        pages.append(page)
        seen += [str(job.code) for job in page.items]
        url = (
            reverse("gallery:home") + f"?view=all&after={page.next_cursor}"
            if page.next_cursor
            else ""
        )
    assert len(seen) == 60 and len(set(seen)) == 60
    assert [len(p.items) for p in pages] == [24, 24, 12]
    back = alice_client.get(
        reverse("gallery:home") + f"?view=all&before={pages[2].previous_cursor}"
    ).context["page"]
    assert [j.pk for j in back.items] == [j.pk for j in pages[1].items]


def test_infinite_scroll_returns_only_the_next_cards(alice: Any, alice_client: Client) -> None:
    for n in range(30):
        make_finished_job(alice, prompt=f"job {n}")
    first = alice_client.get(reverse("gallery:home") + "?view=all&q=job")
    cursor = first.context["page"].next_cursor
    body = first.content.decode()
    assert f'hx-get="?view=all&amp;q=job&amp;after={cursor}&amp;more=1"' in body
    assert f'href="?view=all&amp;q=job&amp;after={cursor}" rel="next"' in body
    more = alice_client.get(
        reverse("gallery:home") + f"?view=all&q=job&after={cursor}&more=1", **HX
    )
    text = more.content.decode()
    assert "<html" not in text and text.count('<article id="job-') == 6
    assert 'rel="prev"' in text and 'rel="next"' not in text


def test_a_tampered_cursor_starts_from_the_newest(alice: Any, alice_client: Client) -> None:
    make_finished_job(alice)
    for cursor in ("garbage", "x" * 300, encode(make_finished_job(alice))[:-3] + "%%%"):
        response = alice_client.get(reverse("gallery:home") + f"?view=all&after={cursor}")
        assert response.status_code == 200
    assert decode("bm90LWEtY3Vyc29y") is None


# --- favorites and deletion ---------------------------------------------------------------


def test_favorite_in_place_and_idempotent(alice: Any, alice_client: Client) -> None:
    job = make_finished_job(alice)
    url = reverse("gallery:favorite", args=[job.code])
    for _ in range(2):
        body = alice_client.post(url, {"favorite": "1"}, **HX).content.decode()
        assert 'aria-pressed="true"' in body
    assert Job.objects.get(pk=job.pk).favorite
    alice_client.post(url, {"favorite": "0"}, **HX)
    assert not Job.objects.get(pk=job.pk).favorite


@pytest.mark.parametrize("who", ["bob", "anonymous"])
def test_others_cannot_favorite_or_delete_my_jobs(alice: Any, bob_client: Client, who: str) -> None:
    job = make_finished_job(alice)
    client = bob_client if who == "bob" else Client()
    expected = 404 if who == "bob" else 302
    fav = client.post(reverse("gallery:favorite", args=[job.code]), {"favorite": "1"})
    gone = client.post(reverse("gallery:delete", args=[job.code]), {"confirm": "1"})
    assert fav.status_code == expected and gone.status_code == expected
    job.refresh_from_db()
    assert not job.favorite and job.deleted_at is None


def test_favorite_and_delete_need_post(alice: Any, alice_client: Client) -> None:
    job = make_finished_job(alice)
    assert alice_client.get(reverse("gallery:favorite", args=[job.code])).status_code == 405
    assert alice_client.get(reverse("gallery:delete", args=[job.code])).status_code == 405


def test_delete_hides_at_once_and_a_task_removes_the_files(
    alice: Any, alice_client: Client
) -> None:
    job = make_finished_job(alice)
    image = job.images.get()
    path = image.file.path
    response = alice_client.post(reverse("gallery:delete", args=[job.code]), **HX)
    assert response.status_code == 200 and response.content == b""
    assert alice_client.get(job.get_absolute_url()).status_code == 404
    thumb = reverse("gallery:image", args=[job.code, "grid", 0, "thumb"])
    assert alice_client.get(thumb).status_code == 404
    assert f"job-{job.code}" not in alice_client.get(reverse("gallery:home")).content.decode()
    tasks.purge_images(job.pk)
    assert not Image.objects.filter(job=job).exists()
    import os

    assert not os.path.exists(path)


def test_deleting_a_job_with_children_asks_first_and_keeps_them(
    alice: Any, alice_client: Client
) -> None:
    root = make_finished_job(alice)
    kid = child_of(root)
    url = reverse("gallery:delete", args=[root.code])
    body = alice_client.post(url, **HX).content.decode()
    assert "1 job was made from this one" in body and 'name="confirm" value="1"' in body
    assert Job.objects.get(pk=root.pk).deleted_at is None
    alice_client.post(url, {"confirm": "1"}, **HX)
    assert Job.objects.get(pk=root.pk).deleted_at is not None
    page = alice_client.get(kid.get_absolute_url()).content.decode()
    assert "a deleted job" in page  # the child stays, and its lineage says what went
    assert 'class="node status-succeeded deleted"' in page


def test_a_job_in_progress_cannot_be_deleted(alice: Any, alice_client: Client) -> None:
    job = make_job(alice, status=Job.Status.RUNNING)
    response = alice_client.post(reverse("gallery:delete", args=[job.code]))
    assert response.status_code == 409
    assert Job.objects.get(pk=job.pk).deleted_at is None


# --- the lineage tree ---------------------------------------------------------------------


def test_the_tree_nests_every_kind_of_press_and_marks_the_current_job(
    alice: Any, alice_client: Client
) -> None:
    root = make_finished_job(alice)
    reroll = child_of(root)
    upscale = child_of(root, action=Job.Action.UPSCALE, index=2)
    zoom = child_of(upscale, action=Job.Action.ZOOM_OUT, variant="2x")
    pan = child_of(zoom, action=Job.Action.PAN, variant="left")
    body = alice_client.get(upscale.get_absolute_url()).content.decode()
    tree_html = body.split('class="tree"')[1].split("</div>")[0]
    order = [tree_html.index(f"/jobs/{j.code}/") for j in (root, reroll, upscale, zoom, pan)]
    assert order == sorted(order)
    assert tree_html.count("<ul") == tree_html.count("</ul>") == 4
    assert 'class="node status-succeeded current"' in tree_html
    assert f'href="/jobs/{upscale.code}/" aria-current="page"' in tree_html
    assert "Zoom out 2x" in tree_html and "Pan left" in tree_html and "U2" in tree_html


def test_tree_building_is_flat_even_300_deep(alice: Any) -> None:
    jobs = [make_finished_job(alice)]
    for _ in range(299):
        jobs.append(child_of(jobs[-1]))
    nodes, closing = tree(list(Job.objects.filter(root_id=jobs[0].pk)))
    assert [n.depth for n in nodes] == list(range(300))
    assert len(closing) == 299 and not nodes[-1].indented


def test_another_users_lineage_is_never_shown(alice: Any, bob: Any, bob_client: Client) -> None:
    root = make_finished_job(alice, prompt="alice only")
    assert bob_client.get(root.get_absolute_url()).status_code == 404


# --- downloads ----------------------------------------------------------------------------


def test_downloads_are_named_after_the_prompt(alice: Any, alice_client: Client) -> None:
    job = make_finished_job(alice, prompt="A Lighthouse, at dawn! --ar 3:2")
    response = alice_client.get(reverse("gallery:download", args=[job.code, "grid", 0]))
    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert f'filename="a-lighthouse-at-dawn-ar-32-imagine-{job.code.hex[:8]}.png"' in disposition
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")


def test_downloads_are_the_owners_only(alice: Any, bob_client: Client) -> None:
    job = make_finished_job(alice)
    url = reverse("gallery:download", args=[job.code, "grid", 0])
    assert bob_client.get(url).status_code == 404
    assert Client().get(url).status_code == 302


# --- the live poll ------------------------------------------------------------------------


def test_the_live_poll_returns_only_cards_that_changed(alice: Any, alice_client: Client) -> None:
    a, b, c = (make_job(alice, status=Job.Status.RUNNING, progress=10) for _ in range(3))
    seen = {"live": [f"{j.code}~{j.live_version}~" for j in (a, b, c)]}
    response = alice_client.get(reverse("gallery:live"), seen, **HX)
    assert response.status_code == 204 and response.content == b""
    Job.objects.filter(pk=b.pk).update(progress=50)
    body = alice_client.get(reverse("gallery:live"), seen, **HX).content.decode()
    assert body.count("<article") == 1
    assert f'id="job-{b.code}"' in body and 'hx-swap-oob="true"' in body
    assert 'value="50"' in body
    assert "live-poller" not in body  # others still run: the poller stays as it is


def test_the_live_poll_stops_when_nothing_runs(alice: Any, alice_client: Client) -> None:
    job = make_job(alice, status=Job.Status.RUNNING)
    seen = {"live": f"{job.code}~{job.live_version}~"}
    lifecycle.fail(job, kind=Job.FailKind.PROVIDER_ERROR, reason="boom")
    body = alice_client.get(reverse("gallery:live"), seen, **HX).content.decode()
    assert f'id="job-{job.code}"' in body
    assert IDLE_POLLER_OOB in body and "every 2s" not in body
    body = alice_client.get(reverse("gallery:live"), **HX).content.decode()
    assert IDLE_POLLER_OOB in body and "every 2s" not in body


IDLE_POLLER = (
    '<div id="live-poller" hx-get="/jobs/live/" hx-vals=\'{"wake": "1"}\' '
    'hx-trigger="live-wake from:body"'
)
IDLE_POLLER_OOB = IDLE_POLLER.replace('id="live-poller"', 'id="live-poller" hx-swap-oob="true"')


def test_the_live_poll_ignores_other_users_and_junk(
    alice: Any, bob: Any, bob_client: Client
) -> None:
    job = make_job(alice, status=Job.Status.RUNNING)
    seen = {"live": [f"{job.code}~old~", "not-a-uuid~x~", f"{uuid.uuid4()}~x~"]}
    body = bob_client.get(reverse("gallery:live"), seen, **HX).content.decode()
    assert f"job-{job.code}" not in body
    assert Client().get(reverse("gallery:live")).status_code == 302


def test_pages_poll_only_while_something_runs(alice: Any, alice_client: Client) -> None:
    done = make_finished_job(alice)
    body = alice_client.get(reverse("gallery:home")).content.decode()
    assert IDLE_POLLER in body and "every 2s" not in body  # it waits to be woken
    running = make_job(alice, status=Job.Status.RUNNING)
    body = alice_client.get(reverse("gallery:home")).content.decode()
    assert 'id="live-poller" hx-get="/jobs/live/" hx-trigger="every 2s"' in body
    assert body.count('hx-trigger="every 2s"') == 1  # one poller, whatever the cards
    assert f'name="live" value="{running.code}' in body and f'value="{done.code}' not in body


def test_resync_asks_the_provider_now(alice: Any, alice_client: Client) -> None:
    from django_q.models import OrmQ

    job = make_job(alice, status=Job.Status.RUNNING, provider_job_id="task-9")
    before = OrmQ.objects.count()
    response = alice_client.post(reverse("gallery:resync", args=[job.code]), **HX)
    assert "Asking the provider now" in response.content.decode()
    assert OrmQ.objects.count() == before + 1
    queued = make_job(alice)
    response = alice_client.post(reverse("gallery:resync", args=[queued.code]), **HX)
    assert "nothing to ask the provider" in response.content.decode()
    assert OrmQ.objects.count() == before + 1


@pytest.mark.parametrize(
    "elsewhere",
    ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)"],
)
def test_the_favorite_forms_next_goes_only_to_our_own_site(
    alice: Any, alice_client: Client, elsewhere: str
) -> None:
    job = make_finished_job(alice)
    url = reverse("gallery:favorite", args=[job.code])
    answer = alice_client.post(url, {"favorite": "1", "next": elsewhere})
    assert answer.status_code == 302 and answer["Location"] == job.get_absolute_url()
    answer = alice_client.post(url, {"favorite": "0", "next": "/?favorites=1"})
    assert answer["Location"] == "/?favorites=1"  # our own page: followed
