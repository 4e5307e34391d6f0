"""ingest end to end: a real download from a loopback image host into the local storage."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings as django_settings
from django.core.files.storage import FileSystemStorage
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ
from PIL import Image as PILImage

from gallery import downloads, imaging, sweep, tasks
from gallery import ingest as ingesting
from gallery.models import Image, Job
from tests.gallery.factories import (
    GRID_BUTTONS,
    QUADRANT_COLOURS,
    RawServer,
    answer_through,
    bomb_png,
    grid_png,
    http_answer,
    make_job,
    png_bytes,
)
from tests.requirements import require_postgres

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def provider(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    """A CometAPI adapter (its own host is api.cometapi.com); images come from 127.0.0.1,
    the simulator host of the test settings, the only host allowed a loopback address."""
    answer_through(monkeypatch, lambda request: httpx.Response(404))
    settings.MJ_PROVIDER = "simulator"
    settings.MJ_SIMULATOR_HOST = "127.0.0.1"
    settings.MJ_IMAGE_HOSTS = ["127.0.0.1"]


@pytest.fixture
def host() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(answer: Any) -> RawServer:
        server = RawServer(answer)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def finished(owner: Any, url: str, **fields: Any) -> Job:
    """A job the provider reported finished, with its image at `url`: what ingest gets."""
    fields.setdefault("buttons", GRID_BUTTONS)
    fields.setdefault("provider_job_id", "1001")
    return make_job(owner, status=Job.Status.RUNNING, progress=100, result_url=url, **fields)


def stored_files(settings: Any) -> list[str]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def opened(field: Any) -> PILImage.Image:
    with field.open("rb") as handle:
        image = PILImage.open(io.BytesIO(handle.read()))
        image.load()
    return image


def test_a_grid_is_stored_with_four_tiles_each_with_two_webp_thumbnails_and_a_png_when_asked(
    host: Callable[..., RawServer], alice: Any, settings: Any
) -> None:
    server = host(http_answer(grid_png((1600, 1200))))
    job = finished(alice, server.url())
    tasks.ingest(job.pk)
    job.refresh_from_db()
    # The job ends once what its card shows is stored: the grid and its small thumbnail.
    assert job.status == Job.Status.SUCCEEDED
    (grid,) = Image.objects.filter(job=job)
    assert (grid.kind, grid.thumb_width, grid.thumb_large_width) == ("grid", 512, 0)
    assert grid.thumbnail_sizes == [("thumb", 512, 384)]
    assert len(stored_files(settings)) == 2
    # The rest follows in the previews queue, nobody waiting for it.
    (rest,) = [q for q in OrmQ.objects.all() if q.func() == "gallery.tasks.renditions"]
    assert rest.key == django_settings.TASK_QUEUES["previews"] and rest.task["args"] == (job.pk,)
    tasks.renditions(job.pk)
    tasks.renditions(job.pk)  # redelivered: nothing more is made
    images = list(Image.objects.filter(job=job).order_by("kind", "index"))
    assert [(i.kind, i.index, i.width, i.height) for i in images] == [
        ("grid", 0, 1600, 1200),
        ("tile", 1, 800, 600),
        ("tile", 2, 800, 600),
        ("tile", 3, 800, 600),
        ("tile", 4, 800, 600),
    ]
    thumbs = [
        (i.thumb_width, i.thumb_height, i.thumb_large_width, i.thumb_large_height) for i in images
    ]
    assert thumbs == [(512, 384, 1024, 768), *[(512, 384, 800, 600)] * 4]
    # A tile's own PNG is cut when first asked for: 1 PNG and 10 WebPs so far.
    assert [(i.file.name, i.bytes, i.sha256) for i in images[1:]] == [("", 0, "")] * 4
    assert sum(name.endswith(".png") for name in stored_files(settings)) == 1
    images = [images[0], *(ingesting.full_picture(tile) for tile in images[1:])]
    for image in images:
        assert image.sha256 == hashlib.sha256(image.file.read()).hexdigest()
        image.file.close()
        full = opened(image.file)
        assert (full.format, full.size) == ("PNG", (image.width, image.height))
        assert image.content_type == "image/png" and image.bytes == image.file.size
        small, large = opened(image.thumbnail), opened(image.thumbnail_large)
        assert (small.format, small.size) == ("WEBP", (image.thumb_width, image.thumb_height))
        assert (large.format, large.size) == (
            "WEBP",
            (image.thumb_large_width, image.thumb_large_height),
        )
        assert image.thumbnail_sizes == [
            ("thumb", image.thumb_width, image.thumb_height),
            ("thumb-large", image.thumb_large_width, image.thumb_large_height),
        ]
    for tile, colour in zip(images[1:], QUADRANT_COLOURS, strict=True):
        pixels = opened(tile.file)
        assert pixels.getpixel((0, 0)) == pixels.getpixel((799, 599)) == colour
    # Local storage, under the job's folder: 5 PNGs and 10 WebPs, nothing else.
    files = stored_files(settings)
    assert len(files) == 15
    assert all(name.startswith(f"jobs/{job.code.hex[:2]}/{job.code.hex}/") for name in files)
    assert sum(name.endswith(".png") for name in files) == 5


def stored_grid(owner: Any, size: tuple[int, int] = (64, 48)) -> tuple[Job, list[Image]]:
    """A finished grid job with its renditions made: the grid and four tiles without PNGs."""
    job = finished(owner, "http://127.0.0.1/grid.png")
    ingesting.store_picture(job, imaging.decode(grid_png(size)))
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED)
    tasks.renditions(job.pk)
    return job, list(Image.objects.filter(job=job).order_by("kind", "index"))


def test_a_tile_asked_for_by_two_requests_at_once_keeps_one_png(alice: Any, settings: Any) -> None:
    _, (_, tile, *_) = stored_grid(alice)
    stale = Image.objects.get(pk=tile.pk)  # a second request, read before the first stored
    first = ingesting.full_picture(tile)
    files = stored_files(settings)
    second = ingesting.full_picture(stale)  # cuts its own copy, loses, deletes it
    assert second.file.name == first.file.name and first.bytes == first.file.size > 0
    assert stored_files(settings) == files
    assert ingesting.full_picture(second) is second  # stored: nothing is cut again
    assert opened(second.file).getpixel((0, 0)) == QUADRANT_COLOURS[0]


def test_a_tile_cut_while_its_job_is_deleted_leaves_nothing(alice: Any, settings: Any) -> None:
    job, (_, tile, *_) = stored_grid(alice)
    Job.objects.filter(pk=job.pk).update(deleted_at=timezone.now())
    with pytest.raises(ingesting.PictureUnavailable, match="deleted"):
        ingesting.full_picture(tile)
    assert stored_files(settings) == [] and not Image.objects.filter(job=job).exists()


def test_a_tile_whose_storage_fails_is_answered_503_and_cut_on_the_next_request(
    monkeypatch: pytest.MonkeyPatch, alice: Any, settings: Any, client: Any
) -> None:
    job, (_, _, _, tile, _) = stored_grid(alice)
    files = stored_files(settings)
    real_save = FileSystemStorage._save

    def failing_save(self: FileSystemStorage, name: str, content: Any) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(FileSystemStorage, "_save", failing_save)
    client.force_login(alice)
    full = f"/jobs/{job.code}/images/tile/{tile.index}/full/"
    answer = client.get(full)
    assert answer.status_code == 503 and answer["Retry-After"] == "5"
    assert "Try again" in answer.content.decode()
    assert stored_files(settings) == files  # nothing half-written
    download = client.get(f"/jobs/{job.code}/download/tile/{tile.index}/")
    assert download.status_code == 503
    monkeypatch.setattr(FileSystemStorage, "_save", real_save)
    answer = client.get(full)
    assert answer.status_code == 200 and answer["Content-Type"] == "image/png"
    picture = PILImage.open(io.BytesIO(b"".join(answer.streaming_content)))
    assert picture.size == (32, 24) and picture.getpixel((0, 0)) == QUADRANT_COLOURS[2]
    download = client.get(f"/jobs/{job.code}/download/tile/{tile.index}/")
    assert download.status_code == 200 and b"".join(download.streaming_content).startswith(
        b"\x89PNG"
    )
    assert len(stored_files(settings)) == len(files) + 1  # one PNG, for both requests


def test_an_upscale_stays_a_single_image_without_tiles(
    host: Callable[..., RawServer], alice: Any, settings: Any
) -> None:
    server = host(http_answer(png_bytes((1024, 1024))))
    parent = finished(alice, server.url(), provider_job_id="900")
    job = finished(alice, server.url(), parent=parent, action=Job.Action.UPSCALE, index=2)
    tasks.ingest(job.pk)
    tasks.renditions(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    image = Image.objects.get(job=job)
    assert (image.kind, image.index, image.width, image.height) == ("single", 0, 1024, 1024)
    assert (image.thumb_width, image.thumb_large_width) == (512, 1024)
    assert opened(image.thumbnail_large).format == "WEBP"
    assert len(stored_files(settings)) == 3


def test_ingest_run_twice_downloads_and_stores_once(
    host: Callable[..., RawServer], alice: Any, settings: Any
) -> None:
    server = host(http_answer(grid_png((64, 48))))
    job = finished(alice, server.url())
    tasks.ingest(job.pk)
    first = sorted(Image.objects.filter(job=job).values_list("pk", flat=True))
    tasks.ingest(job.pk)
    assert sorted(Image.objects.filter(job=job).values_list("pk", flat=True)) == first
    assert len(first) == 1  # the grid; its tiles come with `renditions`
    assert server.connections == 1
    assert len(stored_files(settings)) == 2


def test_a_run_that_loses_the_race_deletes_its_own_files(
    monkeypatch: pytest.MonkeyPatch, alice: Any, settings: Any
) -> None:
    """Two runs both found no images and both stored; the second one's insert collides."""
    job = finished(alice, "http://127.0.0.1/grid.png")
    picture = imaging.decode(grid_png((64, 48)))
    winner = ingesting.store_picture(job, picture)
    files = stored_files(settings)
    monkeypatch.setattr(ingesting, "_main_image", lambda job: None)  # it looked before the commit
    saved: list[str] = []
    real_save = FileSystemStorage._save

    def recording_save(self: FileSystemStorage, name: str, content: Any) -> str:
        saved.append(name)
        return real_save(self, name, content)

    monkeypatch.setattr(FileSystemStorage, "_save", recording_save)
    loser = ingesting.store_picture(job, picture)
    assert loser.pk == winner.pk
    assert len(saved) == 2  # it did write its own copies (the grid and its thumbnail)...
    assert stored_files(settings) == files  # ...and removed every one of them
    assert Image.objects.filter(job=job).count() == 1


def test_an_image_that_stays_unavailable_fails_the_job(
    host: Callable[..., RawServer], alice: Any, settings: Any
) -> None:
    server = host(http_answer(b"gone", status="404 Not Found", content_type="text/plain"))
    job = finished(alice, server.url())
    tasks.ingest(job.pk)
    job.refresh_from_db()
    assert (job.status, job.fail_kind) == (Job.Status.FAILED, Job.FailKind.IMAGE_UNAVAILABLE)
    assert "HTTP 404" in job.fail_note
    assert len(server.requests) == ingesting.INGEST_ATTEMPTS
    assert job.ingest_attempts == 1
    assert not Image.objects.filter(job=job).exists()
    assert stored_files(settings) == []


def test_a_refused_image_fails_at_once_without_retrying(
    host: Callable[..., RawServer], alice: Any
) -> None:
    server = host(http_answer(b"<html>login</html>", content_type="text/html"))
    job = finished(alice, server.url())
    tasks.ingest(job.pk)
    job.refresh_from_db()
    assert (job.status, job.fail_kind) == (Job.Status.FAILED, Job.FailKind.IMAGE_UNAVAILABLE)
    assert "not a PNG, JPEG or WebP" in job.fail_note
    assert len(server.requests) == 1


def test_a_pixel_bomb_fails_the_job(host: Callable[..., RawServer], alice: Any) -> None:
    server = host(http_answer(bomb_png(30000, 30000)))
    job = finished(alice, server.url())
    tasks.ingest(job.pk)
    job.refresh_from_db()
    assert (job.status, job.fail_kind) == (Job.Status.FAILED, Job.FailKind.IMAGE_UNAVAILABLE)
    assert "too large" in job.fail_note
    assert len(server.requests) == 1


def test_a_transient_error_is_retried(host: Callable[..., RawServer], alice: Any) -> None:
    answers = iter(
        [
            http_answer(b"busy", status="503 Service Unavailable", content_type="text/plain"),
            http_answer(grid_png((64, 48))),
        ]
    )
    server = host(lambda server, conn, head: next(answers)(server, conn, head))
    job = finished(alice, server.url())
    tasks.ingest(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert len(server.requests) == 2
    assert Image.objects.filter(job=job).count() == 1


def test_a_redelivered_ingest_after_the_images_were_stored_only_ends_the_job(
    monkeypatch: pytest.MonkeyPatch, alice: Any
) -> None:
    job = finished(alice, "http://127.0.0.1/grid.png")
    ingesting.store_picture(job, imaging.decode(grid_png((64, 48))))  # then the worker died

    def download(url: str, **kwargs: Any) -> bytes:
        raise AssertionError("the image is already stored: no second download")

    monkeypatch.setattr(downloads, "download", download)
    tasks.ingest(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert Image.objects.filter(job=job).count() == 1
    tasks.renditions(job.pk)  # the rest is made from our stored copy, not downloaded
    assert Image.objects.filter(job=job).count() == 5


def test_a_storage_hiccup_is_retried_and_leaves_no_orphans(
    monkeypatch: pytest.MonkeyPatch, host: Callable[..., RawServer], alice: Any, settings: Any
) -> None:
    server = host(http_answer(grid_png((64, 48))))
    job = finished(alice, server.url())
    real_save = FileSystemStorage._save
    calls: list[str] = []

    def flaky_save(self: FileSystemStorage, name: str, content: Any) -> str:
        calls.append(name)
        if len(calls) == 2:  # one file of the first try is written, then the disk fails
            raise OSError("No space left on device")
        return real_save(self, name, content)

    monkeypatch.setattr(FileSystemStorage, "_save", flaky_save)
    tasks.ingest(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert len(calls) == 2 + 2
    assert len(stored_files(settings)) == 2
    names = {
        name
        for image in Image.objects.filter(job=job)
        for name in (image.file.name, image.thumbnail.name)
    }
    assert names == set(stored_files(settings))


def test_storage_that_keeps_failing_fails_the_job(
    monkeypatch: pytest.MonkeyPatch, host: Callable[..., RawServer], alice: Any, settings: Any
) -> None:
    server = host(http_answer(grid_png((64, 48))))
    job = finished(alice, server.url())
    real_save = FileSystemStorage._save
    calls: list[str] = []

    def failing_save(self: FileSystemStorage, name: str, content: Any) -> str:
        calls.append(name)
        if len(calls) % 2 == 0:
            raise OSError("No space left on device")
        return real_save(self, name, content)

    monkeypatch.setattr(FileSystemStorage, "_save", failing_save)
    tasks.ingest(job.pk)
    job.refresh_from_db()
    assert (job.status, job.fail_kind) == (Job.Status.FAILED, Job.FailKind.IMAGE_UNAVAILABLE)
    assert "could not be stored" in job.fail_note
    assert len(calls) == 2 * ingesting.STORE_ATTEMPTS
    assert stored_files(settings) == []  # what each try wrote was removed
    assert not Image.objects.filter(job=job).exists()


def test_downloads_fit_inside_the_task_timeout(
    monkeypatch: pytest.MonkeyPatch, alice: Any, settings: Any
) -> None:
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 30}
    settings.MJ_INGEST_TIMEOUT = 60
    timeouts: list[float] = []

    def download(url: str, **kwargs: Any) -> bytes:
        timeouts.append(kwargs["timeout"])
        return grid_png((64, 48))

    monkeypatch.setattr(downloads, "download", download)
    tasks.ingest(finished(alice, "http://127.0.0.1/grid.png").pk)
    assert len(timeouts) == 1
    assert 5 < timeouts[0] <= 30 - ingesting.INGEST_STORE_RESERVE


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_concurrent_ingests_store_one_set_of_images(
    monkeypatch: pytest.MonkeyPatch, alice: Any, settings: Any
) -> None:
    """The poll's ingest and a webhook's read both see the result: one run takes the lease
    and downloads; the other, arriving while it downloads, returns without a download."""
    require_postgres()
    job = finished(alice, "http://127.0.0.1/grid.png")
    downloading, release = threading.Event(), threading.Event()
    downloads_made: list[str] = []

    def download(url: str, **kwargs: Any) -> bytes:
        downloads_made.append(url)
        downloading.set()
        release.wait(timeout=10)  # held until the other run has come and gone
        return grid_png((64, 48))

    monkeypatch.setattr(downloads, "download", download)
    errors: list[BaseException] = []

    def threads_of(task: Callable[[int], None]) -> list[threading.Thread]:
        def run() -> None:
            try:
                task(job.pk)
            except BaseException as exc:  # reported by the assertions below
                errors.append(exc)
            finally:
                connection.close()

        return [threading.Thread(target=run) for _ in range(2)]

    first, second = threads_of(tasks.ingest)
    first.start()
    assert downloading.wait(timeout=10)
    second.start()
    second.join(timeout=30)
    assert not second.is_alive()  # it returned while the first still held the download
    release.set()
    first.join(timeout=30)
    assert not errors, errors
    assert len(downloads_made) == 1
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert Image.objects.filter(job=job).count() == 1
    assert len(stored_files(settings)) == 2
    racing = threads_of(tasks.renditions)  # the tiles and the large thumbnail, raced
    for thread in racing:
        thread.start()
    for thread in racing:
        thread.join(timeout=60)
    assert not errors, errors
    assert Image.objects.filter(job=job).count() == 5
    assert len(stored_files(settings)) == 11  # a PNG and 10 WebPs; the tiles' PNGs when asked


def test_an_ingest_killed_mid_way_is_restarted_once_its_lease_runs_out(
    host: Callable[..., RawServer], alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that died holding the lease keeps others out until its due time, when the
    sweeper's run takes the job and stores it."""
    server = host(http_answer(grid_png((64, 48))))
    job = finished(alice, server.url())

    def killed(*args: Any, **kwargs: Any) -> None:
        raise SystemExit("worker killed")

    with monkeypatch.context() as patched:
        patched.setattr(ingesting, "_store_with_retries", killed)
        with pytest.raises(SystemExit):
            tasks.ingest(job.pk)
    tasks.ingest(job.pk)  # a redelivery while the lease holds: nothing happens
    job.refresh_from_db()
    assert (job.status, job.ingest_attempts, server.connections) == (Job.Status.RUNNING, 1, 1)
    # Its due time comes (the lease was taken for the same span): the clock is moved by
    # moving both back.
    span = job.ingest_due_at - timezone.now() + timedelta(seconds=1)
    Job.objects.filter(pk=job.pk).update(
        ingest_due_at=job.ingest_due_at - span, ingest_lease_until=job.ingest_lease_until - span
    )
    assert sweep.restart_ingests(timezone.now()) == 1
    tasks.ingest(job.pk)
    job.refresh_from_db()
    assert (job.status, job.ingest_attempts) == (Job.Status.SUCCEEDED, 2)


def test_a_losing_run_cannot_clobber_the_winners_files_on_an_overwriting_storage(
    monkeypatch: pytest.MonkeyPatch, alice: Any, settings: Any
) -> None:
    # Like S3Storage with its default AWS_S3_FILE_OVERWRITE=True: a name is reused as is.
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"allow_overwrite": True},
        },
    }
    job = finished(alice, "http://127.0.0.1/grid.png")
    winner = ingesting.store_picture(
        job,
        imaging.decode(
            grid_png(
                (64, 48),
            )
        ),
    )
    monkeypatch.setattr(ingesting, "_main_image", lambda job: None)
    ingesting.store_picture(job, imaging.decode(png_bytes((64, 48), color="#ff00ff")))
    for image in Image.objects.filter(job=job):
        assert image.file.storage.exists(image.file.name), image.file.name
        assert image.thumbnail.storage.exists(image.thumbnail.name)
    assert opened(Image.objects.get(pk=winner.pk).file).getpixel((0, 0)) == QUADRANT_COLOURS[0]
    assert len(stored_files(settings)) == 2


def test_the_rest_of_the_pictures_of_a_deleted_job_are_not_kept(alice: Any, settings: Any) -> None:
    job = finished(alice, "http://127.0.0.1/grid.png")
    ingesting.store_picture(job, imaging.decode(grid_png((64, 48))))
    tasks.ingest(job.pk)  # ends it
    Job.objects.filter(pk=job.pk).update(deleted_at=timezone.now())
    tasks.renditions(job.pk)  # deleted before it ran: it makes nothing
    assert len(stored_files(settings)) == 2 and Image.objects.filter(job=job).count() == 1


def test_a_lost_renditions_step_is_queued_again_by_the_sweeper(alice: Any, settings: Any) -> None:
    job = finished(alice, "http://127.0.0.1/grid.png")
    ingesting.store_picture(job, imaging.decode(grid_png((64, 48))))
    tasks.ingest(job.pk)
    OrmQ.objects.all().delete()  # its renditions task was lost
    sweep.restart_renditions(timezone.now())
    assert not OrmQ.objects.exists()  # not yet: the step may still be on its way
    later = timezone.now() + ingesting.COMPLETE_DUE_AFTER + timedelta(seconds=1)
    assert sweep.restart_renditions(later) == 1
    (task,) = OrmQ.objects.all()
    assert task.func() == "gallery.tasks.renditions" and task.task["args"] == (job.pk,)
    tasks.renditions(job.pk)
    assert Image.objects.filter(job=job).count() == 5
    OrmQ.objects.all().delete()
    assert sweep.restart_renditions(later) == 0  # complete: nothing more to do
