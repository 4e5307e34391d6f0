from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import reswap, retarget, trigger_client_event

from billing import quotas
from gallery import imaging, services
from gallery.forms import ImagineForm, ImportForm
from gallery.models import Image, Job
from gallery.providers import get_provider

PAGE_SIZE = 24
# Sent to the page whenever credits moved, so the header balance refreshes itself.
BALANCE_CHANGED = "balance-changed"


def _credits_moved(response: HttpResponse) -> HttpResponse:
    return trigger_client_event(response, BALANCE_CHANGED)


def _jobs(request: HttpRequest) -> Any:
    return Job.objects.for_user(request.user).prefetch_related(
        Prefetch("images", queryset=Image.objects.order_by("kind", "index"))
    )


def _imagine_form(request: HttpRequest, data: Any = None, **kwargs: Any) -> ImagineForm:
    return ImagineForm(data, modes=quotas.allowed_modes(request.user), **kwargs)


def _own_job(request: HttpRequest, code: uuid.UUID) -> Job:
    return get_object_or_404(_jobs(request).select_related("parent"), code=code)


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    page = Paginator(_jobs(request), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"form": _imagine_form(request), "import_form": ImportForm(), "page": page}
    return render(request, "gallery/home.html", context)


@require_POST
@login_required
def imagine(request: HttpRequest) -> HttpResponse:
    form = _imagine_form(request, request.POST)
    if form.is_valid():
        try:
            job = services.submit(owner=request.user, **form.cleaned_data)
        except services.SubmitError as exc:
            form.add_error(None, str(exc))
        else:
            if not request.htmx:
                return redirect("gallery:home")
            return _credits_moved(
                render(
                    request,
                    "gallery/_job_created.html",
                    {
                        "job": job,
                        "form": _imagine_form(
                            request, initial={"prompt": job.prompt, "mode": job.mode}
                        ),
                    },
                )
            )
    if not request.htmx:
        page = Paginator(_jobs(request), PAGE_SIZE).get_page(1)
        context = {"form": form, "import_form": ImportForm(), "page": page}
        return render(request, "gallery/home.html", context, status=422)
    response = render(request, "gallery/_imagine_form.html", {"form": form})
    return reswap(retarget(response, "#imagine-form"), "outerHTML")


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
            return render(
                request, "gallery/_job_created.html", {"job": job, "import_form": ImportForm()}
            )
    if not request.htmx:
        page = Paginator(_jobs(request), PAGE_SIZE).get_page(1)
        context = {"form": _imagine_form(request), "import_form": form, "page": page}
        return render(request, "gallery/home.html", context, status=422)
    response = render(request, "gallery/_import_form.html", {"import_form": form})
    return reswap(retarget(response, "#import-form"), "outerHTML")


@require_GET
@login_required
def job_detail(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    job = _own_job(request, code)
    children = _jobs(request).filter(parent=job).order_by("created_at")
    return render(request, "gallery/job_detail.html", {"job": job, "children": children})


@require_GET
@login_required
@never_cache
@vary_on_headers("HX-Request")
def job_card(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    job = _own_job(request, code)
    if not request.htmx:
        return redirect(job)
    shown = request.GET.get("shown", "")
    context = {"job": job, "shown": int(shown) if shown.isdigit() else None}
    response = render(request, "gallery/_job_card.html", context)
    if not job.polls:
        # The last answer this card polls for: its hold was just charged or given back.
        _credits_moved(response)
    return response


@require_POST
@login_required
def cancel(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    """Cancel a job that has not reached the provider yet; its credits come back."""
    job = _own_job(request, code)
    error = ""
    if not services.cancel(job):
        job.refresh_from_db()
        error = "Too late to cancel: the job has already been sent to the provider."
    if not request.htmx:
        if error:
            return render(
                request,
                "gallery/job_detail.html",
                {"job": job, "children": [], "error": error},
                status=409,
            )
        return redirect(job)
    response = render(request, "gallery/_job_card.html", {"job": job, "error": error})
    return response if error else _credits_moved(response)


def _press(
    request: HttpRequest, code: uuid.UUID, action: str, index: int | None = None, variant: str = ""
) -> HttpResponse:
    parent = _own_job(request, code)
    try:
        key = uuid.UUID(request.POST.get("submit_key", ""))
    except ValueError:
        key = None
    try:
        child = services.press(
            owner=request.user,
            parent=parent,
            action=action,
            index=index,
            variant=variant,
            submit_key=key,
        )
    except services.SubmitError as exc:
        if request.htmx:
            return render(
                request, "gallery/_job_card.html", {"job": parent, "error": str(exc)}, status=200
            )
        return render(
            request,
            "gallery/job_detail.html",
            {"job": parent, "children": [], "error": str(exc)},
            status=422,
        )
    if not request.htmx:
        return redirect(child)
    return _credits_moved(render(request, "gallery/_job_created.html", {"job": child}))


@require_POST
@login_required
def reroll(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    return _press(request, code, Job.Action.REROLL)


@require_POST
@login_required
def upscale(request: HttpRequest, code: uuid.UUID, index: int) -> HttpResponse:
    return _press(request, code, Job.Action.UPSCALE, index=index)


@require_POST
@login_required
def variation(request: HttpRequest, code: uuid.UUID, index: int) -> HttpResponse:
    return _press(request, code, Job.Action.VARIATION, index=index)


@require_POST
@login_required
def vary_subtle(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    return _press(request, code, Job.Action.VARY_SUBTLE)


@require_POST
@login_required
def vary_strong(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    return _press(request, code, Job.Action.VARY_STRONG)


@require_POST
@login_required
def upscale_subtle(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    return _press(request, code, Job.Action.UPSCALE_SUBTLE)


@require_POST
@login_required
def upscale_creative(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    return _press(request, code, Job.Action.UPSCALE_CREATIVE)


@require_POST
@login_required
def zoom_out(request: HttpRequest, code: uuid.UUID, factor: str) -> HttpResponse:
    return _press(request, code, Job.Action.ZOOM_OUT, variant=factor)


@require_POST
@login_required
def pan(request: HttpRequest, code: uuid.UUID, direction: str) -> HttpResponse:
    return _press(request, code, Job.Action.PAN, variant=direction)


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
            return render(
                request,
                "gallery/job_detail.html",
                {"job": job, "children": [], "error": error},
                status=422,
            )
        return redirect(job)
    return render(request, "gallery/_job_card.html", {"job": job, "error": error})


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


@require_GET
@login_required
def image_file(
    request: HttpRequest, code: uuid.UUID, kind: str, index: int, size: str
) -> FileResponse:
    image = get_object_or_404(
        Image.objects.filter(job__owner=request.user), job__code=code, kind=kind, index=index
    )
    field = image.thumbnail if size == "thumb" else image.file
    if not field:
        raise Http404("No such image size.")
    response = FileResponse(
        default_storage.open(field.name, "rb"),
        content_type="image/webp" if size == "thumb" else image.content_type,
    )
    # Private to the owner; content never changes for a given URL.
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


@require_GET
@login_required
@never_cache
def preview(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    """The provider's in-progress preview, fetched by us so the browser never sees its URL."""
    job = _own_job(request, code)
    if not job.preview_url or job.status not in (*Job.IN_FLIGHT, Job.Status.SUCCEEDED):
        raise Http404("No preview right now.")
    with get_provider(job.provider) as provider:
        hosts = provider.image_hosts()
    try:
        data = imaging.download(
            job.preview_url, allowed_hosts=hosts, max_bytes=5_000_000, timeout=10
        )
        picture = imaging.thumbnail(imaging.decode(data), width=384, quality=70)
    except imaging.ImageFetchError as exc:
        raise Http404(str(exc)) from exc
    return HttpResponse(picture.data, content_type="image/webp")
