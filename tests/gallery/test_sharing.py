"""Public share links: an owner makes one to a finished job and ends it; anyone with the link
sees the picture and prompt, nothing else, and an ended or deleted link is a 404."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse

from gallery import services
from gallery.models import Job
from gallery.models.jobs import NotShareable
from tests.gallery.factories import make_finished_job, make_job, png_bytes

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def _share(client: Client, job: Job, **extra: Any) -> Any:
    return client.post(reverse("gallery:share", args=[job.code]), **extra)


def _unshare(client: Client, job: Job, **extra: Any) -> Any:
    return client.post(reverse("gallery:unshare", args=[job.code]), **extra)


def _page(code: uuid.UUID) -> str:
    return reverse("gallery:shared", args=[code])


def _image(code: uuid.UUID, size: str = "full") -> str:
    return reverse("gallery:shared_image", args=[code, size])


def test_an_owner_shares_and_anyone_sees_the_picture_and_prompt(
    alice_client: Client, client: Client, alice: Any
) -> None:
    job = make_finished_job(alice, prompt="a quiet harbour at dawn, boats asleep")
    response = _share(alice_client, job)
    assert response.status_code == 302 and response["Location"] == job.get_absolute_url()
    job.refresh_from_db()
    assert job.is_shared and job.shared_at is not None

    page = client.get(_page(job.share_code))
    assert page.status_code == 200
    body = page.content.decode()
    assert "a quiet harbour at dawn, boats asleep" in body
    og_image = f"http://testserver{_image(job.share_code)}"
    assert f'<meta property="og:image" content="{og_image}">' in body
    assert '<meta name="twitter:card" content="summary_large_image">' in body
    assert '<meta property="og:title" content="a quiet harbour at dawn, boats asleep">' in body
    assert 'property="og:type"' in body and 'property="og:description"' in body
    assert f'src="{_image(job.share_code, "thumb")}"' in body
    assert reverse("signup") in body  # "Make your own"
    # Revocation must take effect: the page is never kept by a cache.
    assert "no-cache" in page["Cache-Control"] and "max-age=0" in page["Cache-Control"]
    assert page["Referrer-Policy"] == "same-origin"
    assert "script-src 'self'" in page["Content-Security-Policy"]

    picture = client.get(og_image)
    assert picture.status_code == 200
    assert picture["Content-Type"] == "image/png"
    assert b"".join(picture.streaming_content).startswith(b"\x89PNG")
    assert picture["Cache-Control"] == "public, max-age=300"
    thumb = client.get(_image(job.share_code, "thumb"))
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/webp"


def test_the_public_page_shows_nothing_of_the_owner_nor_the_provider(
    alice_client: Client, client: Client, alice: Any
) -> None:
    job = make_finished_job(alice, provider_job_id="1773314942177123", cost=7, charge="captured")
    _share(alice_client, job)
    job.refresh_from_db()
    body = client.get(_page(job.share_code)).content.decode()
    assert "alice" not in body.lower()  # neither the username nor alice@example.com
    assert job.provider_job_id not in body
    assert "simulator" not in body  # the provider account
    assert str(job.code) not in body  # the private job URL and its image routes
    assert reverse("gallery:job", args=[job.code]) not in body
    assert "credit" not in body.lower()
    assert "<form" not in body.split("</header>")[1].split("</main>")[0]  # no buttons


def test_another_user_cannot_share_or_unshare_my_job(
    alice_client: Client, bob_client: Client, alice: Any
) -> None:
    job = make_finished_job(alice)
    assert _share(bob_client, job).status_code == 404
    job.refresh_from_db()
    assert job.share_code is None
    code = job.share()
    assert _unshare(bob_client, job).status_code == 404
    job.refresh_from_db()
    assert job.share_code == code


def test_share_needs_login_and_post(client: Client, alice_client: Client, alice: Any) -> None:
    job = make_finished_job(alice)
    response = _share(client, job)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert alice_client.get(reverse("gallery:share", args=[job.code])).status_code == 405
    job.refresh_from_db()
    assert job.share_code is None


def test_csrf_is_enforced_on_share(alice: Any) -> None:
    job = make_finished_job(alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert _share(client, job).status_code == 403
    job.refresh_from_db()
    assert job.share_code is None


def test_unsharing_ends_the_page_and_the_picture(
    alice_client: Client, client: Client, alice: Any
) -> None:
    job = make_finished_job(alice)
    code = job.share()
    assert client.get(_page(code)).status_code == 200
    response = _unshare(alice_client, job)
    assert response.status_code == 302 and response["Location"] == job.get_absolute_url()
    job.refresh_from_db()
    assert job.share_code is None and job.shared_at is None and not job.is_shared
    gone = client.get(_page(code))
    assert gone.status_code == 404
    assert "This link does not work" in gone.content.decode()
    assert client.get(_image(code)).status_code == 404


def test_sharing_again_makes_a_new_link_and_the_old_stays_dead(
    alice_client: Client, client: Client, alice: Any
) -> None:
    job = make_finished_job(alice)
    first = job.share()
    assert job.share() == first  # sharing a shared job keeps its link
    job.unshare()
    second = job.share()
    assert second != first
    assert client.get(_page(first)).status_code == 404
    assert client.get(_image(first)).status_code == 404
    assert client.get(_page(second)).status_code == 200


def test_a_deleted_job_s_link_is_dead(alice_client: Client, client: Client, alice: Any) -> None:
    job = make_finished_job(alice)
    code = job.share()
    services.delete(job)
    assert not Job.objects.shared().exists()
    assert client.get(_page(code)).status_code == 404
    assert client.get(_image(code)).status_code == 404


@pytest.mark.parametrize(
    "status", [Job.Status.RUNNING, Job.Status.QUEUED, Job.Status.FAILED, Job.Status.CANCELLED]
)
def test_a_job_that_has_not_succeeded_cannot_be_shared(
    alice_client: Client, alice: Any, status: str
) -> None:
    job = make_job(alice, status=status)
    with pytest.raises(NotShareable):
        job.share()
    response = _share(alice_client, job)
    assert response.status_code == 409
    assert "Only a finished job can be shared" in response.content.decode()
    htmx = _share(alice_client, job, **HX)
    assert htmx.status_code == 200
    assert "Only a finished job can be shared" in htmx.content.decode()
    job.refresh_from_db()
    assert job.share_code is None
    # Nor does its page offer to.
    assert "Share publicly" not in alice_client.get(job.get_absolute_url()).content.decode()


def test_a_succeeded_job_without_its_picture_cannot_be_shared(alice: Any) -> None:
    job = make_job(alice, status=Job.Status.SUCCEEDED)
    assert not job.can_share
    with pytest.raises(NotShareable, match="no picture"):
        job.share()


def test_a_link_to_a_job_whose_status_is_not_succeeded_is_dead(client: Client, alice: Any) -> None:
    """`shared()` asks for success too, not only a code (one rule for the page and image)."""
    job = make_finished_job(alice)
    code = job.share()
    Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED)
    assert client.get(_page(code)).status_code == 404
    assert client.get(_image(code)).status_code == 404


def test_unknown_and_garbage_links_are_404(client: Client, alice: Any) -> None:
    make_finished_job(alice).share()
    assert client.get(_page(uuid.uuid4())).status_code == 404
    assert client.get(_image(uuid.uuid4())).status_code == 404
    assert client.get("/s/not-a-uuid/").status_code == 404
    assert client.get("/s/").status_code == 404
    job = Job.objects.get()
    assert client.get(f"/s/{job.share_code}/image/huge/").status_code == 404


def test_the_image_route_serves_only_that_job_s_picture(client: Client, alice: Any) -> None:
    """A shared job's link reaches its own picture and no other: not another job's, not a
    tile, whatever else is in the URL."""
    shared = make_finished_job(alice)
    code = shared.share()
    private = make_finished_job(alice)
    other = private.images.get()
    other.file.save("other.png", ContentFile(png_bytes(color="#aa0000")))
    own = shared.images.get().file.read()
    assert own != other.file.read()

    def served(url: str) -> bytes:
        response = client.get(url)
        assert response.status_code == 200
        return b"".join(response.streaming_content)

    assert served(_image(code)) == own
    assert served(f"{_image(code)}?job={private.code}&code={private.code}") == own
    assert client.get(_image(private.code)).status_code == 404  # a job code is no share code


def test_the_job_page_offers_sharing_and_then_the_link(alice_client: Client, alice: Any) -> None:
    job = make_finished_job(alice)
    body = alice_client.get(job.get_absolute_url()).content.decode()
    assert "Share publicly" in body and "Anyone with the link" in body
    assert reverse("gallery:share", args=[job.code]) in body
    code = job.share()
    body = alice_client.get(job.get_absolute_url()).content.decode()
    assert f'value="http://testserver{_page(code)}"' in body
    assert "Copy link" in body and "Stop sharing" in body
    assert f'href="{_page(code)}"' in body  # Open


def test_htmx_share_and_unshare_return_the_controls(alice_client: Client, alice: Any) -> None:
    job = make_finished_job(alice)
    response = _share(alice_client, job, **HX)
    assert response.status_code == 200
    body = response.content.decode()
    job.refresh_from_db()
    assert body.lstrip().startswith('<section id="share"')
    assert "<html" not in body
    assert f'value="http://testserver{_page(job.share_code)}"' in body
    assert "Stop sharing" in body

    response = _unshare(alice_client, job, **HX)
    body = response.content.decode()
    assert response.status_code == 200 and "Share publicly" in body and "<html" not in body
    assert re.search(r'hx-post="[^"]*/share/"', body)


def test_the_public_page_works_for_a_signed_in_stranger(bob_client: Client, alice: Any) -> None:
    job = make_finished_job(alice, prompt="a lantern in fog")
    response = bob_client.get(_page(job.share()))
    assert response.status_code == 200
    assert "a lantern in fog" in response.content.decode()


def test_shared_jobs_query(alice: Any) -> None:
    shared = make_finished_job(alice)
    shared.share()
    make_finished_job(alice)  # never shared
    deleted = make_finished_job(alice)
    deleted.share()
    services.delete(deleted)
    assert list(Job.objects.shared()) == [shared]


def test_link_previews_take_the_large_thumbnail_where_it_is_stored(
    client: Client, alice: Any
) -> None:
    job = make_finished_job(alice)
    image = job.images.get()
    image.thumbnail_large.save("grid-1024.webp", ContentFile(png_bytes((128, 128))), save=False)
    image.thumb_large_width = image.thumb_large_height = 128
    image.save()
    code = job.share()
    body = client.get(_page(code)).content.decode()
    og_image = f"http://testserver{_image(code, 'thumb-large')}"
    assert f'<meta property="og:image" content="{og_image}">' in body
    assert f'<meta name="twitter:image" content="{og_image}">' in body
    assert f"{_image(code, 'thumb-large')} 128w" in body  # in the srcset
    response = client.get(og_image)
    assert response.status_code == 200 and response["Content-Type"] == "image/webp"


def test_a_picture_without_its_small_thumbnail_is_shown_whole(client: Client, alice: Any) -> None:
    job = make_finished_job(alice)
    image = job.images.get()
    image.thumbnail = ""
    image.save()
    code = job.share()
    body = client.get(_page(code)).content.decode()
    assert f'src="{_image(code, "full")}"' in body
    assert _image(code, "thumb") not in body
    assert client.get(_image(code, "thumb")).status_code == 404


@pytest.mark.django_db
def test_a_path_no_view_answers_gets_the_sites_own_not_found_page(client: Client) -> None:
    answer = client.get("/s/not-a-uuid/")
    assert answer.status_code == 404
    page = answer.content.decode()
    assert "This page does not exist" in page and 'href="/"' in page
    assert "<html" in page and "topbar" in page  # the site's page, not Django's bare one


def test_the_server_error_page_renders_without_a_request() -> None:
    from django.template.loader import render_to_string

    page = render_to_string("500.html")
    assert "Something went wrong on our side" in page and "app.css" in page
