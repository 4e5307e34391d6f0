from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.db import connection
from django.db.models import Prefetch
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import reswap, retarget, trigger_client_event

from billing import quotas
from gallery import ingest, lifecycle, push, references, services, sync
from gallery.forms import BlendForm, DescribeForm, GalleryFilterForm, ImagineForm, ImportForm
from gallery.lineage import tree as lineage_tree
from gallery.models import Image, Job, Reference, lineage_size
from gallery.models.jobs import NotShareable
from gallery.pagination import CursorPage, paginate
from mjweb import catalogue, throttle
from mjweb.views import own_url

PAGE_SIZE = 24
# Sent to the page whenever credits moved, so the header balance refreshes itself.
BALANCE_CHANGED = "balance-changed"
# Sent after the swap of a response that brought a running card: an idle live poller asks
# the live view to switch it on; a poller already on does not listen, so a submit never
# restarts its timer nor its stream (templates/gallery/_live_poller.html).
LIVE_WAKE = "live-wake"


def _credits_moved(response: HttpResponse) -> HttpResponse:
    return trigger_client_event(response, BALANCE_CHANGED)


def _wake_live(response: HttpResponse, running: bool) -> HttpResponse:
    return trigger_client_event(response, LIVE_WAKE, after="swap") if running else response


def _count_submit(request: HttpRequest) -> None:
    """A submit counts against the account's and the address's rates (mjweb.throttle)."""
    if limit := throttle.limited(request, "submit"):
        raise services.SubmitError(limit.message)


def _jobs(request: HttpRequest) -> Any:
    return Job.objects.visible_to(request.user).prefetch_related(
        Prefetch("images", queryset=Image.objects.order_by("kind", "index"))
    )


def _imagine_form(request: HttpRequest, data: Any = None, **kwargs: Any) -> ImagineForm:
    return ImagineForm(data, modes=quotas.allowed_modes(request.user), **kwargs)


def _own_job(request: HttpRequest, code: uuid.UUID) -> Job:
    return get_object_or_404(_jobs(request).select_related("parent"), code=code)


def _gallery_page(request: HttpRequest, filters: GalleryFilterForm) -> CursorPage:
    jobs = _jobs(request).matching(filters.values())
    if filters.lineages:
        candidates = Job.objects.filter(deleted_at__isnull=True).matching(filters.values())
        jobs = jobs.lineage_heads(candidates).annotate(lineage_size=lineage_size())
    return paginate(
        jobs, after=request.GET.get("after"), before=request.GET.get("before"), size=PAGE_SIZE
    )


def _home_context(request: HttpRequest, **overrides: Any) -> dict[str, Any]:
    filters = GalleryFilterForm(request.GET or None)
    page = _gallery_page(request, filters)
    modes = quotas.allowed_modes(request.user)
    return {
        # "Use as prompt" on a job's page links here with ?prompt=: the composer starts with it.
        "form": _imagine_form(request, initial={"prompt": request.GET.get("prompt", "")}),
        "import_form": ImportForm(),
        "blend_form": BlendForm(modes=modes),
        "describe_form": DescribeForm(modes=modes),
        "filters": filters,
        "page": page,
        "live": any(job.polls for job in page.items),
        **overrides,
    }


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    context = _home_context(request)
    if request.htmx and request.GET.get("more"):
        # Infinite scroll: the next cards and the link after them, nothing else.
        response = render(request, "gallery/_gallery_more.html", context)
        return _wake_live(response, context["live"])
    return render(request, "gallery/home.html", context)


def _pictures(request: HttpRequest, uploads: list[Any]) -> list[Reference]:
    """The user's uploaded pictures, taken in (gallery.references.take), or a SubmitError
    naming the one refused."""
    taken = []
    for upload in uploads:
        if upload.size > settings.MJWEB_UPLOAD_MAX_BYTES:
            limit = settings.MJWEB_UPLOAD_MAX_BYTES // 2**20
            raise services.SubmitError(
                _("%(name)s is larger than %(limit)s MB.") % {"name": upload.name, "limit": limit}
            )
        try:
            taken.append(references.take(request.user, upload.read(), name=upload.name))
        except references.Refused as exc:
            raise services.SubmitError(str(exc)) from None
    return taken


@require_POST
@login_required
def imagine(request: HttpRequest) -> HttpResponse:
    form = _imagine_form(request, request.POST, files=request.FILES)
    if form.is_valid():
        try:
            _count_submit(request)
            data = dict(form.cleaned_data)
            images = _pictures(request, data.pop("images", None) or [])
            job = services.submit(owner=request.user, images=images, **data)
        except services.SubmitError as exc:
            form.add_error(None, str(exc))
            form.needs_credits = exc.needs_credits
        else:
            if not request.htmx:
                return redirect("gallery:home")
            response = render(request, "gallery/_job_created.html", {"job": job, "form": form})
            return _wake_live(_credits_moved(response), job.polls)
    if not request.htmx:
        return render(request, "gallery/home.html", _home_context(request, form=form), status=422)
    response = render(request, "gallery/_imagine_form.html", {"form": form})
    return reswap(retarget(response, "#imagine-form"), "outerHTML")


@require_POST
@login_required
def blend(request: HttpRequest) -> HttpResponse:
    """A grid blending 2-5 of the user's pictures."""
    return _from_pictures(request, BlendForm, "gallery/_blend_form.html", "blend_form")


@require_POST
@login_required
def describe(request: HttpRequest) -> HttpResponse:
    """Four prompts written from one of the user's pictures."""
    return _from_pictures(request, DescribeForm, "gallery/_describe_form.html", "describe_form")


def _from_pictures(
    request: HttpRequest, form_class: type[Any], template: str, name: str
) -> HttpResponse:
    """A job made from the user's pictures (Blend, Describe): made, or the form again with
    why not, the pictures to choose again (a browser never re-sends a file)."""
    form = form_class(request.POST, request.FILES, modes=quotas.allowed_modes(request.user))
    if form.is_valid():
        try:
            _count_submit(request)
            pictures = _pictures(request, form.cleaned_data["images"])
            common = {
                "owner": request.user,
                "mode": form.cleaned_data["mode"],
                "submit_key": form.cleaned_data["submit_key"],
            }
            if form_class is BlendForm:
                job = services.blend(
                    images=pictures, dimensions=form.cleaned_data["dimensions"], **common
                )
            else:
                job = services.describe(image=pictures[0], **common)
        except services.SubmitError as exc:
            form.add_error(None, str(exc))
            form.needs_credits = exc.needs_credits
        else:
            if not request.htmx:
                return redirect("gallery:home")
            fresh = form_class(modes=quotas.allowed_modes(request.user))
            response = render(request, "gallery/_job_created.html", {"job": job, name: fresh})
            return _wake_live(_credits_moved(response), job.polls)
    if not request.htmx:
        return render(
            request, "gallery/home.html", _home_context(request, **{name: form}), status=422
        )
    response = render(request, template, {name: form})
    return reswap(retarget(response, f"#{name.replace('_', '-')}"), "outerHTML")


@require_POST
@login_required
def import_task(request: HttpRequest) -> HttpResponse:
    """Bring an existing provider task (made elsewhere with this account) into the gallery."""
    form = ImportForm(request.POST)
    if form.is_valid():
        try:
            job = services.import_task(
                owner=request.user, provider_job_id=form.cleaned_data["task_id"]
            )
        except services.SubmitError as exc:
            form.add_error("task_id", str(exc))
        else:
            if not request.htmx:
                return redirect(job)
            response = render(
                request, "gallery/_job_created.html", {"job": job, "import_form": ImportForm()}
            )
            return _wake_live(response, job.polls)
    if not request.htmx:
        context = _home_context(request, import_form=form)
        return render(request, "gallery/home.html", context, status=422)
    response = render(request, "gallery/_import_form.html", {"import_form": form})
    return reswap(retarget(response, "#import-form"), "outerHTML")


@require_GET
@login_required
def job_detail(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    return _job_page(request, _own_job(request, code))


def _job_page(request: HttpRequest, job: Job, *, status: int = 200, **extra: Any) -> HttpResponse:
    """A job with its pictures and the whole lineage it belongs to (one query for the tree)."""
    lineage = list(
        Job.objects.for_user(request.user)
        .filter(root_id=job.root_id)
        .prefetch_related(
            Prefetch("images", queryset=Image.objects.filter(kind__in=Image.WHOLE_KINDS))
        )
    )
    nodes, closing = lineage_tree(lineage)
    tiles = [image for image in job.images.all() if image.kind == Image.Kind.TILE]
    main = next((image for image in job.images.all() if image.kind != Image.Kind.TILE), None)
    context = {
        "job": job,
        "main": main,
        "tiles": tiles,
        "nodes": nodes,
        "closing": closing,
        "lineage_count": sum(1 for node in lineage if node.deleted_at is None),
        "inputs": references.of(job),
        "zoom_range": [f"{bound:g}" for bound in catalogue.ZOOM_RANGE],
        "live": job.polls,
        **extra,
    }
    return render(request, "gallery/job_detail.html", context, status=status)


@require_GET
@login_required
@never_cache
@vary_on_headers("HX-Request")
def job_card(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    job = _own_job(request, code)
    if not request.htmx:
        return redirect(job)
    return _card(request, job)


def _card(request: HttpRequest, job: Job, **context: Any) -> HttpResponse:
    """A card swapped in place; if it is (again) in flight, the page's poller wakes up."""
    response = render(request, "gallery/_job_card.html", {"job": job, **context})
    return _wake_live(response, job.polls)


LIVE_MAX_JOBS = 200


@require_GET
@login_required
@never_cache
def live(request: HttpRequest) -> HttpResponse:
    """The one poll of a page: it names its running cards with the version it shows, and
    gets back (out of band) only the cards that changed. Nothing changed: an empty answer.
    Nothing left running: the poller itself is replaced by one that does not poll. Asked by
    an idle poller that a new running card woke (`wake`): it is replaced by one that polls."""
    seen = _cards_seen(request)
    jobs = list(_jobs(request).filter(code__in=seen)) if seen else []
    changed = [job for job in jobs if job.live_version != seen[job.code][0]]
    still_running = any(job.polls for job in jobs)
    wake = request.GET.get("wake") == "1"
    if not changed and still_running and not wake:
        return HttpResponse(status=204)
    parts = [
        render_to_string(
            "gallery/_job_card.html",
            {"job": job, "oob": True, "shown": seen[job.code][1]},
            request=request,
        )
        for job in changed
    ]
    if not still_running or wake:
        poller = {"oob": True, "active": still_running}
        parts.append(render_to_string("gallery/_live_poller.html", poller, request=request))
    response = HttpResponse("".join(parts))
    if any(job.charge != Job.charge_in_version(seen[job.code][0]) for job in changed):
        _credits_moved(response)
    return response


@require_GET
@login_required
@never_cache
async def stream(request: HttpRequest) -> HttpResponse:
    """Server-sent events for the signed-in user: `changed` whenever one of their jobs
    changes, which makes the page's live poll ask at once (gallery.push). No stream under
    WSGI, nor beyond the user's streams per process: 204, and the page keeps to its poll."""
    user = await request.auser()
    if not push.enabled(request) or not push.hub().has_room(user.pk):
        return HttpResponse(status=204)
    if push.listens():
        await sync_to_async(_let_go_of_the_database)()
    response = StreamingHttpResponse(push.stream(user.pk), content_type="text/event-stream")
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


def _let_go_of_the_database() -> None:
    """A stream that listens needs no database: give back the connection the session lookup
    took (in this request's thread) instead of holding it, or a pool slot, for minutes."""
    if not connection.in_atomic_block:
        connection.close()


def _cards_seen(request: HttpRequest) -> dict[uuid.UUID, tuple[str, int | None]]:
    """The page's running cards: code -> (the version it shows, the picture index shown);
    values that do not parse are left out."""
    seen: dict[uuid.UUID, tuple[str, int | None]] = {}
    for value in request.GET.getlist("live")[:LIVE_MAX_JOBS]:
        code, _, rest = value.partition("~")
        version, _, shown = rest.partition("~")
        try:
            seen[uuid.UUID(code)] = (version, int(shown) if shown.isdigit() else None)
        except ValueError:
            continue
    return seen


@require_POST
@login_required
def cancel(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    """Cancel a job that has not reached the provider yet; its credits come back."""
    job = _own_job(request, code)
    error = ""
    if not lifecycle.cancel(job):
        job.refresh_from_db()
        error = _("Too late to cancel: the job has already been sent to the provider.")
    if not request.htmx:
        if error:
            return _job_page(request, job, error=error, status=409)
        return redirect(job)
    response = _card(request, job, error=error)
    return response if error else _credits_moved(response)


@require_POST
@login_required
def resync(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    """Ask the provider about this job now instead of waiting for the next poll."""
    job = _own_job(request, code)
    if sync.request_refresh(job):
        message = _("Asking the provider now…")
    else:
        message = _("There is nothing to ask the provider about this job.")
    if not request.htmx:
        messages.info(request, message)
        return redirect(job)
    return _card(request, job, notice=message)


@require_POST
@login_required
def favorite(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    """Set or clear the heart; the form says which, so a repeated POST changes nothing."""
    job = _own_job(request, code)
    job.mark_favorite(request.POST.get("favorite") == "1")
    if not request.htmx:
        return redirect(own_url(request, request.POST.get("next")) or job.get_absolute_url())
    return _card(request, job)


@require_POST
@login_required
def share(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    """Make the job's public link (or keep the one it has): the share controls again, with
    the link; without htmx, back to the job's page."""
    job = _own_job(request, code)
    try:
        job.share()
    except NotShareable as refused:
        if not request.htmx:
            return _job_page(request, job, error=str(refused), status=409)
        return _share_controls(request, job, share_error=str(refused))
    if not request.htmx:
        messages.success(request, _("This job is shared: anyone with its link can see it."))
        return redirect(job)
    return _share_controls(request, job)


@require_POST
@login_required
def unshare(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    """End the job's public link; sharing again makes a new one."""
    job = _own_job(request, code)
    job.unshare()
    if not request.htmx:
        messages.success(request, _("Sharing stopped: the link no longer works."))
        return redirect(job)
    return _share_controls(request, job)


def _share_controls(request: HttpRequest, job: Job, **context: Any) -> HttpResponse:
    return render(request, "gallery/_share_controls.html", {"job": job, **context})


def _shared_job(share_code: uuid.UUID) -> Job | None:
    """The job a public link names while it works (`JobQuerySet.shared`), with its picture."""
    job = (
        Job.objects.shared()
        .filter(share_code=share_code)
        .prefetch_related(
            Prefetch("images", queryset=Image.objects.filter(kind__in=Image.WHOLE_KINDS))
        )
        .first()
    )
    return job if job is not None and job.main_picture is not None else None


# Sent with a public page and its picture: a link is for the people it is given to, not for
# search engines (link previews read the Open Graph tags all the same).
NOINDEX = "noindex"


@require_GET
@never_cache
def shared(request: HttpRequest, share_code: uuid.UUID) -> HttpResponse:
    """A job's public page: its picture and prompt, to anyone with the link; no login.

    Never cached, so that stopping sharing (or deleting the job) ends the page at once. An
    unknown, ended or deleted link is a 404 page that says so."""
    job = _shared_job(share_code)
    if job is None:
        response = render(request, "gallery/shared.html", {"job": None}, status=404)
    else:
        response = render(request, "gallery/shared.html", {"job": job, "main": job.main_picture})
    response["X-Robots-Tag"] = NOINDEX
    return response


# A shared picture may be kept by the browser and shared caches for this long: after the
# owner stops sharing, a copy seen before may live on this many seconds, then 404s.
SHARED_IMAGE_MAX_AGE = 300


@require_GET
def shared_image(request: HttpRequest, share_code: uuid.UUID, size: str) -> HttpResponse:
    """The whole picture of a shared job, in one of its stored sizes; only ever that job's."""
    job = _shared_job(share_code)
    if job is None:
        raise Http404("This link is unknown or no longer shared.")
    response = image_response(
        job.main_picture, size, cache_control=f"public, max-age={SHARED_IMAGE_MAX_AGE}"
    )
    response["X-Robots-Tag"] = NOINDEX
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_POST
@login_required
def delete(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    """Hide a finished job at once and remove its files in the background. A job that others
    were made from asks first; those stay, reachable through the lineage."""
    job = _own_job(request, code)
    if not job.is_terminal:
        error = "A job in progress cannot be deleted; cancel it or wait until it finishes."
        if not request.htmx:
            return _job_page(request, job, error=error, status=409)
        return _card(request, job, error=error)
    children = Job.objects.visible_to(request.user).filter(parent=job).count()
    if children and request.POST.get("confirm") != "1":
        if not request.htmx:
            return _job_page(request, job, confirm_delete=children)
        return _card(request, job, confirm_delete=children)
    services.delete(job)
    if not request.htmx:
        messages.success(request, _("Job deleted."))
        return redirect("gallery:home")
    return HttpResponse("")


@require_POST
@login_required
def press(
    request: HttpRequest, code: uuid.UUID, action: str, index: int | None = None, variant: str = ""
) -> HttpResponse:
    """A button on a finished job (one URL per action, see gallery.urls): a new child job."""
    parent = _own_job(request, code)
    # Vary (Region) and Custom Zoom come from their forms on the job page with what they ask.
    asked = (
        {name: request.POST.get(name) for name in ("prompt", "mask", "zoom")}
        if action in catalogue.ASKING_ACTIONS
        else {}
    )
    try:
        _count_submit(request)
        child = services.press(
            owner=request.user,
            parent=parent,
            action=action,
            index=index,
            variant=variant,
            mode=request.POST.get("mode") or None,
            submit_key=_submit_key(request),
            **asked,
        )
    except services.SubmitError as exc:
        if asked:
            # Shown in the form that asked, with what was typed kept.
            return _job_page(
                request,
                parent,
                asked_error=str(exc),
                asked_action=action,
                asked=asked,
                needs_credits=exc.needs_credits,
                status=422,
            )
        if request.htmx:
            # The refusal shows on the card whose button was pressed.
            response = _card(request, parent, error=str(exc), needs_credits=exc.needs_credits)
            return reswap(retarget(response, f"#job-{parent.code}"), "outerHTML")
        return _job_page(
            request, parent, error=str(exc), needs_credits=exc.needs_credits, status=422
        )
    if not request.htmx:
        return redirect(child)
    response = render(request, "gallery/_job_created.html", {"job": child})
    return _wake_live(_credits_moved(response), child.polls)


def _submit_key(request: HttpRequest) -> uuid.UUID | None:
    try:
        return uuid.UUID(request.POST.get("submit_key", ""))
    except ValueError:
        return None


@require_POST
@login_required
def remix(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    """The prompt for a job the provider parked in MODAL (Remix)."""
    job = _own_job(request, code)
    error = ""
    try:
        job = services.answer_modal(job=job, prompt=request.POST.get("prompt", ""))
    except services.SubmitError as exc:
        error = str(exc)
    if not request.htmx:
        if error:
            return _job_page(request, job, error=error, status=422)
        return redirect(job)
    return _card(request, job, error=error)


@require_POST
@login_required
def remix_mode(request: HttpRequest) -> HttpResponse:
    """Switch Remix mode on or off for the signed-in user."""
    user = request.user
    user.remix_mode = request.POST.get("remix_mode") == "on"  # type: ignore[union-attr]
    user.save(update_fields=["remix_mode"])  # type: ignore[union-attr]
    if not request.htmx:
        return redirect("gallery:home")
    return render(request, "gallery/_remix_toggle.html")


def _own_image(request: HttpRequest, code: uuid.UUID, kind: str, index: int) -> Image:
    return get_object_or_404(
        Image.objects.filter(job__owner=request.user, job__deleted_at__isnull=True).select_related(
            "job"
        ),
        job__code=code,
        kind=kind,
        index=index,
    )


@require_GET
@login_required
def image_file(
    request: HttpRequest, code: uuid.UUID, kind: str, index: int, size: str
) -> HttpResponse:
    image = _own_image(request, code, kind, index)
    # Private to the owner; content never changes for a given URL.
    return image_response(image, size, cache_control="private, max-age=31536000, immutable")


def image_response(
    image: Image, size: str, *, cache_control: str | None, **options: Any
) -> HttpResponse:
    """One stored size of a picture (`Image.SIZE_*`), streamed from storage; 404 if absent.
    A tile's PNG is cut from its grid on the first request (`ingest.full_picture`). Callers
    check who may see it; `options` go to the FileResponse (a download's name)."""
    if size == Image.SIZE_FULL:
        try:
            image = ingest.full_picture(image)
        except ingest.PictureUnavailable:
            return _picture_unavailable()
    field = image.file_for(size)
    if field is None:
        raise Http404("No such image size.")
    response = stored_file_response(
        default_storage.open(field.name, "rb"),
        content_type=image.content_type_for(size),
        **options,
    )
    if cache_control is not None:
        response["Cache-Control"] = cache_control
    return response


def _picture_unavailable() -> HttpResponse:
    """A tile whose PNG could not be cut just now (its storage failed): try again."""
    response = HttpResponse(
        _("This picture cannot be read just now. Try again in a moment."),
        status=503,
        content_type="text/plain; charset=utf-8",
    )
    response["Retry-After"] = "5"
    return response


def stored_file_response(stored: Any, **kwargs: Any) -> FileResponse:
    """A FileResponse for an open stored file. Under ASGI its chunks are read in a thread as
    the client takes them: handed a file's plain iterator there, Django would read the whole
    file into memory first (and warn that it did)."""
    response = FileResponse(stored, **kwargs)
    if settings.SERVED_BY_ASGI:
        response.streaming_content = _chunks(stored, response.block_size)
    return response


async def _chunks(stored: Any, size: int) -> AsyncIterator[bytes]:
    read = sync_to_async(stored.read, thread_sensitive=False)
    while chunk := await read(size):
        yield chunk


@require_GET
@login_required
def download(request: HttpRequest, code: uuid.UUID, kind: str, index: int) -> HttpResponse:
    """The original picture as a file named after the prompt."""
    image = _own_image(request, code, kind, index)
    return image_response(
        image,
        Image.SIZE_FULL,
        cache_control=None,
        as_attachment=True,
        filename=download_name(image),
    )


def download_name(image: Image) -> str:
    words = slugify(image.job.final_prompt or image.job.prompt)[:60].strip("-") or "image"
    part = f"{image.job.label}" if image.kind != Image.Kind.TILE else f"{image.index}"
    suffix = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(
        image.content_type, "png"
    )
    return f"{words}-{slugify(part)}-{image.job.code.hex[:8]}.{suffix}"


@require_GET
@login_required
def reference_image(request: HttpRequest, code: uuid.UUID) -> FileResponse:
    """One of the user's own pictures (an image prompt, a blend's input), to its owner."""
    reference = get_object_or_404(Reference, owner=request.user, code=code)
    response = stored_file_response(reference.file.open("rb"), content_type="image/png")
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


@require_GET
def reference_link(request: HttpRequest, token: str) -> FileResponse:
    """A picture of the user's behind an expiring signed link, for a provider that fetches
    the pictures it is sent (PiAPI); no login, the signature is the permission."""
    reference = references.from_link(token)
    if reference is None:
        raise Http404("This link is unknown or has expired.")
    response = stored_file_response(reference.file.open("rb"), content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_GET
@login_required
@never_cache
def preview(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    """The job's latest in-progress preview, as the worker stored it (gallery.previews): the
    browser never sees the provider's URL, and this request never waits on the provider."""
    job = _own_job(request, code)
    for _attempt in range(2):
        if not job.preview_image or job.status not in (*Job.IN_FLIGHT, Job.Status.SUCCEEDED):
            break
        try:
            stored = job.preview_image.open("rb")
        except OSError:
            # The worker replaced the preview between our read of the row and the open
            # (previews.keep deletes the one before): the row now names the new file.
            job.refresh_from_db(fields=["preview_image", "status"])
            continue
        return stored_file_response(stored, content_type="image/webp")
    raise Http404("No preview right now.")
