"""Workflows that create jobs: a submit, a press, an import, a remix answer, a delete.

`submit` and `press` check the limits, hold the price, create a job and enqueue its dispatch
in one transaction (the ORM broker writes its queue row through our connection), so either
all of it happened or none. How a job then ends is gallery.lifecycle's.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from billing import ledger, prices
from gallery import dispatch, lifecycle, limits, queue, references, regions, routing, upstream
from gallery.models import Job, ProviderAccount, Reference
from gallery.providers import ProviderError, remix_asks_first
from gallery.providers.base import TaskStatus
from mjweb import catalogue

MAX_PROMPT_LENGTH = 2000
# Midjourney takes up to five image prompts with a prompt.
MAX_IMAGE_PROMPTS = 5


class SubmitError(Exception):
    """A submit we refuse; the message is shown to the user as it is. `needs_credits`: the
    user cannot pay for it (the page offers the credit packs)."""

    def __init__(self, message: str, *, needs_credits: bool = False) -> None:
        super().__init__(message)
        self.needs_credits = needs_credits


def submit(
    *,
    owner: Any,
    prompt: str,
    mode: str = Job.Mode.FAST,
    submit_key: uuid.UUID | None = None,
    caller: dict[str, str] | None = None,
    images: list[Reference] | None = None,
) -> Job:
    """A new imagine: limits checked, price held, job created and dispatched, or a
    SubmitError that says why and leaves nothing behind. `caller`: an API caller's
    `api_state` and `notify_hook`, set with the job so no change goes unreported; `images`:
    image prompts, the user's pictures (gallery.references.take)."""
    images = images or []
    if len(images) > MAX_IMAGE_PROMPTS:
        raise SubmitError(
            _("Up to %(count)s image prompts go with one prompt.") % {"count": MAX_IMAGE_PROMPTS}
        )
    prompt = _prompt(prompt)
    if not prompt:
        raise SubmitError(_("Type a prompt first."))
    if mode not in Job.Mode.values:
        raise SubmitError(_("Choose fast, relax or turbo."))
    return _create(
        owner=owner,
        submit_key=submit_key,
        fields={"action": Job.Action.IMAGINE, "prompt": prompt, "mode": mode, **(caller or {})},
        images=images,
    )


def blend(
    *,
    owner: Any,
    images: list[Reference],
    dimensions: str = "square",
    mode: str = Job.Mode.FAST,
    submit_key: uuid.UUID | None = None,
    caller: dict[str, str] | None = None,
) -> Job:
    """A grid blending 2-5 of the user's pictures, in a shape of catalogue.BLEND_DIMENSIONS."""
    fewest, most = catalogue.action(Job.Action.BLEND).inputs
    if not fewest <= len(images) <= most:
        raise SubmitError(
            _("Blend takes %(fewest)s to %(most)s pictures; you gave %(count)s.")
            % {"fewest": fewest, "most": most, "count": len(images)}
        )
    if dimensions not in catalogue.BLEND_DIMENSIONS:
        raise SubmitError(_("Choose square, portrait or landscape."))
    _check_mode(mode)
    fields = {"action": Job.Action.BLEND, "prompt": "", "variant": dimensions, "mode": mode}
    return _create(
        owner=owner, submit_key=submit_key, fields={**fields, **(caller or {})}, images=images
    )


def describe(
    *,
    owner: Any,
    image: Reference,
    mode: str = Job.Mode.FAST,
    submit_key: uuid.UUID | None = None,
    caller: dict[str, str] | None = None,
) -> Job:
    """Four prompts the provider writes from one of the user's pictures."""
    _check_mode(mode)
    fields = {"action": Job.Action.DESCRIBE, "prompt": "", "mode": mode, **(caller or {})}
    return _create(owner=owner, submit_key=submit_key, fields=fields, images=[image])


def _check_mode(mode: str) -> None:
    if mode not in Job.Mode.values:
        raise SubmitError(_("Choose fast, relax or turbo."))


def press(
    *,
    owner: Any,
    parent: Job,
    action: str,
    index: int | None = None,
    variant: str = "",
    mode: str | None = None,
    submit_key: uuid.UUID | None = None,
    caller: dict[str, str] | None = None,
    prompt: str | None = None,
    mask: str | None = None,
    zoom: str | None = None,
    ask_later: bool = False,
) -> Job:
    """Press one of the provider's buttons on a finished job: a new job, child of `parent`
    (`caller` as for `submit`), in speed `mode` (the parent's when None): a relax grid may be
    upscaled in fast.

    Vary (Region) takes `mask` (the editor's data URL) and Custom Zoom `zoom` (its factor),
    each with an optional `prompt` (the parent's by default). With `ask_later` (the API, as
    midjourney-proxy answers these presses) the job waits in MODAL, here, for them to come
    through `answer_modal`."""
    if parent.owner_id != owner.pk:
        raise SubmitError(_("This job is not yours."))
    if parent.status != Job.Status.SUCCEEDED:
        raise SubmitError(_("Buttons work once the job has finished."))
    if parent.button(action, index, "" if action in catalogue.ASKING_ACTIONS else variant) is None:
        raise SubmitError(_("The provider did not offer this button on this job."))
    asked: dict[str, Any] = {}
    if action in catalogue.ASKING_ACTIONS and not ask_later:
        asked = _asked(parent, action, prompt=prompt, mask=mask, zoom=zoom)
    if mode is not None and mode not in Job.Mode.values:
        raise SubmitError(_("Choose fast, relax or turbo."))
    try:
        routing.account_for_follow_up(parent, mode)
    except routing.NoAccount as exc:
        raise SubmitError(str(exc)) from None
    remix = bool(getattr(owner, "remix_mode", False)) and action in catalogue.REMIX_ACTIONS
    fields: dict[str, Any] = {
        "action": action,
        "index": index,
        "variant": variant,
        "prompt": parent.final_prompt or parent.prompt,
        "mode": mode or parent.mode,
        "parent": parent,
        "root_id": parent.root_id or parent.pk,
        "provider": parent.provider,
        "remix": remix,
        **(caller or {}),
    }
    fields.update(asked)
    if (action in catalogue.ASKING_ACTIONS and ask_later) or (
        remix
        and remix_asks_first(ProviderAccount.objects.named(parent.provider).connection().adapter)
    ):
        # The provider takes the prompt with the press: ask for it first, locally; the
        # job is held and dispatched once the user answers.
        fields.update(status=Job.Status.MODAL, final_prompt=fields["prompt"])
    return _create(owner=owner, submit_key=submit_key, fields=fields)


def _asked(
    parent: Job, action: str, *, prompt: str | None, mask: str | None, zoom: str | None
) -> dict[str, Any]:
    """The job's fields from what Vary (Region) or Custom Zoom asked the user (checked by
    gallery.regions): its prompt, and its mask or its factor."""
    text = _prompt(prompt) if prompt and prompt.strip() else parent.final_prompt or parent.prompt
    try:
        if action == Job.Action.VARY_REGION:
            picture = parent.main_picture
            if picture is None:
                raise SubmitError(_("This job has no picture to mark a region on."))
            region = regions.mask(mask or "", (picture.width, picture.height))
            return {"prompt": text, "mask": ContentFile(region, name="mask.png")}
        factor = regions.zoom(zoom if zoom is not None else "")
    except regions.Refused as exc:
        raise SubmitError(str(exc)) from None
    return {"prompt": regions.zoomed_prompt(text, factor), "variant": factor}


def _asked_later(job: Job, prompt: str, mask: str | None) -> dict[str, str]:
    """The fields of a Vary (Region) or Custom Zoom held for its answer, from that answer:
    the mask stored (its name), or the --zoom factor the prompt must carry."""
    try:
        if job.action == Job.Action.CUSTOM_ZOOM:
            factor = regions.zoom_in_prompt(prompt)
            if factor is None:
                raise regions.Refused(_("Give the zoom factor in the prompt as --zoom N."))
            return {"variant": factor}
        asked = _asked(job.parent, job.action, prompt=prompt, mask=mask, zoom=None)
    except regions.Refused as exc:
        raise SubmitError(str(exc)) from None
    field = job.mask.field
    name = field.storage.save(field.generate_filename(job, "mask.png"), asked["mask"])
    return {"mask": name}


def _prompt(prompt: str) -> str:
    """A prompt the user typed, with its spaces folded; refused when too long."""
    prompt = " ".join(prompt.split())
    if len(prompt) > MAX_PROMPT_LENGTH:
        raise SubmitError(
            _("Prompts are limited to %(count)d characters.") % {"count": MAX_PROMPT_LENGTH}
        )
    return prompt


_TASK_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def import_task(*, owner: Any, provider_job_id: str) -> Job:
    """Bring a task made elsewhere with this provider account into the user's gallery.

    Reroll and the other buttons need "a previously created task context": once imported,
    the task is a root job like any imagine. The provider only answers for tasks of our own
    account, which is what proves it belongs here.
    """
    task_id = provider_job_id.strip()
    if not _TASK_ID.match(task_id):
        raise SubmitError(_("Paste the task id the provider gave you (letters, digits, - or _)."))
    existing = Job.objects.filter(provider_job_id=task_id).first()
    if existing is not None:
        if existing.owner_id == owner.pk:
            raise SubmitError(_("This task is already in your gallery."))
        raise SubmitError(_("This task already belongs to another account here."))
    provider, snapshot = _find_task(task_id)
    if snapshot.status is TaskStatus.FAILED:
        raise SubmitError(_("That task failed at the provider: there is no image to import."))
    if snapshot.status is TaskStatus.MODAL:
        raise SubmitError(_("That task is waiting for a remix prompt; finish it first."))
    finished = snapshot.status is TaskStatus.SUCCEEDED and bool(snapshot.image_url)
    prompt = snapshot.final_prompt or str(snapshot.raw.get("prompt") or "") or "(imported task)"
    fields: dict[str, Any] = {
        "action": Job.Action.IMPORT,
        "prompt": prompt[:MAX_PROMPT_LENGTH],
        "final_prompt": snapshot.final_prompt,
        "provider": provider,
        "provider_job_id": task_id,
        "provider_payload": snapshot.raw,
        "status": Job.Status.RUNNING if finished else Job.Status.SUBMITTED,
        "progress": 100 if finished else snapshot.progress,
        "result_url": snapshot.image_url if finished else "",
        "buttons": [button.as_dict() for button in snapshot.buttons],
    }
    try:
        with transaction.atomic():
            job = Job.objects.create(owner=owner, **fields)
            job.make_root()
            if finished:
                queue.ingest(job)
            else:
                queue.poll(provider)
    except IntegrityError:
        raise SubmitError(_("This task was just imported.")) from None
    return job


def _find_task(task_id: str) -> tuple[str, Any]:
    """The account that knows `task_id` and its task: each account that takes new jobs is
    asked in turn (a task id belongs to one account)."""
    ProviderAccount.objects.environment()
    error: ProviderError | None = None
    for account in ProviderAccount.objects.for_new_jobs():
        try:
            with upstream.connect(account.name, account=account) as api:
                snapshot = api.fetch(task_id)
        except ProviderError as exc:
            error = exc
            continue
        if snapshot is not None:
            return account.name, snapshot
    if error is not None:
        raise SubmitError(
            _("The provider could not be asked about it: %(error)s") % {"error": error.message}
        )
    raise SubmitError(_("The provider does not know this task id in our account."))


def answer_modal(*, job: Job, prompt: str, mask: str | None = None) -> Job:
    """The user's prompt for a job waiting in MODAL: kept, and sent by a task. A Vary
    (Region) held here (`press(ask_later=True)`) takes its `mask` too, and a Custom Zoom
    its factor as the prompt's --zoom."""
    prompt = _prompt(prompt)
    if not prompt:
        raise SubmitError(_("Type a prompt first."))
    gone = SubmitError(_("This job is no longer waiting for a prompt."))
    if not job.awaiting_user:
        raise gone
    asked: dict[str, Any] = {}
    if job.action in catalogue.ASKING_ACTIONS and not job.provider_job_id:
        asked = _asked_later(job, prompt, mask)
    with transaction.atomic():
        if not job.provider_job_id:
            # Asked before the press: the edited prompt goes with the submit itself.
            expect = {"provider_job_id": "", "remix_prompt": ""}
            if not job.transition(
                Job.Status.QUEUED, expect=expect, prompt=prompt, final_prompt=prompt, **asked
            ):
                if "mask" in asked:
                    job.mask.storage.delete(asked["mask"])
                raise gone
            dispatch.place(job)
        else:
            # Not a change of status: the job waits in MODAL until the task sends the prompt.
            waiting = Job.objects.filter(pk=job.pk, status=Job.Status.MODAL, remix_prompt="")
            if waiting.update(remix_prompt=prompt) != 1:
                raise gone
            queue.submit_modal(job)
    job.refresh_from_db()
    return job


def _create(
    *,
    owner: Any,
    submit_key: uuid.UUID | None,
    fields: dict[str, Any],
    images: list[Reference] | None = None,
) -> Job:
    """Check the limits, price the job, create it with the pictures it is made from, hold
    its price and enqueue its dispatch: all in one transaction, under the user's account
    lock, or nothing at all."""
    if any(reference.owner_id != owner.pk for reference in images or ()):
        raise SubmitError(_("These pictures are not yours."))
    if "provider" not in fields:
        try:
            fields["provider"] = routing.account_for_new_job(fields["mode"]).name
        except routing.NoAccount as exc:
            raise SubmitError(str(exc)) from None
    with transaction.atomic():
        # Concurrent submits of one user queue here, so the counts and the balance they
        # check cannot change under them.
        ledger.lock(owner)
        if submit_key is not None:
            existing = Job.objects.filter(owner=owner, submit_key=submit_key).first()
            if existing is not None:
                return _same_request(existing, fields)
        try:
            limits.check(owner, fields["mode"])
            cost = prices.price_of(fields["action"], fields["mode"])
        except (limits.QuotaExceeded, prices.Unpriced) as exc:
            raise SubmitError(str(exc)) from None
        job = Job.objects.create(owner=owner, submit_key=submit_key, cost=cost, **fields)
        if job.root_id is None:
            job.make_root()
        if images:
            references.attach(job, images)
        try:
            lifecycle.hold(job)
        except ledger.InsufficientCredits as exc:
            raise SubmitError(str(exc), needs_credits=True) from None
        if job.status == Job.Status.QUEUED:
            dispatch.place(job)
    return job


def _same_request(job: Job, fields: dict[str, Any]) -> Job:
    """A submit key seen before: the same request again gets its job; a different one is
    refused, as it would otherwise be silently dropped."""
    same = all(
        getattr(job, name) == value
        for name, value in fields.items()
        if name in ("action", "index", "variant", "mode", "parent", "prompt")
    )
    if not same:
        raise SubmitError(_("This form was already sent for a different request; reload the page."))
    return job


def delete(job: Job) -> None:
    """Hide a finished job from its owner now; a task removes its stored files afterwards.

    The row stays (the ledger and the admin's audit refer to it, and jobs made from it keep
    their lineage); only the pictures go.
    """
    with transaction.atomic():
        updated = Job.objects.filter(pk=job.pk, deleted_at__isnull=True).update(
            deleted_at=timezone.now(), favorite=False
        )
        if updated:
            queue.purge_images(job)
