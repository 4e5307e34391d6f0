"""Jobs, their lineage, and the images we keep of them.

Invariants:
- A job's status only moves forward: queued -> submitted -> running -> succeeded | failed |
  cancelled, with `modal` where the provider waits for a remix prompt. Every change of
  status is a compare-and-set update (`Job.transition`): the poller, a webhook and a
  retried task may race, and exactly one of them wins.
- `root` is the first job of a lineage (an imagine or an import points at itself), so a
  whole tree is one query: `Job.objects.filter(root=job.root)`.
- `provider_job_id` is unique per provider once known; ids are kept as strings because
  midjourney-proxy ids are 16+ digit numbers that lose precision as JSON numbers.
- The browser never sees a provider URL: finished images are copied into our storage
  (`Image`) and served by an ownership-checked view.
"""

from __future__ import annotations

import uuid
import zlib
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone


class JobQuerySet(models.QuerySet["Job"]):
    def for_user(self, user: Any) -> JobQuerySet:
        if not user.is_authenticated:
            return self.none()
        return self.filter(owner=user)

    def visible_to(self, user: Any) -> JobQuerySet:
        """The user's jobs they have not deleted."""
        return self.for_user(user).filter(deleted_at__isnull=True)

    def lineage_heads(self, candidates: JobQuerySet | None = None) -> JobQuerySet:
        """One job per lineage among these: the newest that is not a failure (in flight or
        finished), else the newest. The gallery shows lineages by these.

        `candidates` is the same selection without the owner condition: a lineage belongs
        to one owner, and leaving it out lets the database use the `root` index alone.
        """
        failed = Q(status__in=(Job.Status.FAILED, Job.Status.CANCELLED))
        ranked = (
            (self if candidates is None else candidates)
            .filter(root_id=models.OuterRef("root_id"))
            .annotate(
                is_failure=models.Case(
                    models.When(failed, then=models.Value(1)), default=models.Value(0)
                )
            )
            .order_by("is_failure", "-created_at", "-id")
            .values("pk")[:1]
        )
        return self.filter(pk=models.Subquery(ranked))

    def matching(self, filters: dict[str, Any]) -> JobQuerySet:
        """Jobs that pass the gallery's filters (see gallery.forms.GalleryFilterForm)."""
        jobs = self
        for word in str(filters.get("q", "")).split():
            jobs = jobs.filter(prompt__icontains=word)
        for name in ("status", "action", "mode"):
            if filters.get(name):
                jobs = jobs.filter(**{name: filters[name]})
        if filters.get("since"):
            jobs = jobs.filter(created_at__date__gte=filters["since"])
        if filters.get("until"):
            jobs = jobs.filter(created_at__date__lte=filters["until"])
        if filters.get("favorites"):
            jobs = jobs.filter(favorite=True)
        return jobs

    def in_flight(self) -> JobQuerySet:
        return self.filter(status__in=Job.IN_FLIGHT)

    def pollable(self, provider: str) -> JobQuerySet:
        """Jobs the provider knows about and whose outcome we have not seen yet.

        That includes jobs we timed out a little while ago: a late success is still
        delivered (`deadline_at` is cleared once the provider reports a real end).
        """
        late = Q(
            status=Job.Status.FAILED,
            fail_kind=Job.FailKind.TIMEOUT,
            deadline_at__isnull=False,
            finished_at__gte=timezone.now() - timedelta(seconds=settings.MJ_LATE_SUCCESS_WINDOW),
        )
        waiting = Q(status__in=(Job.Status.SUBMITTED, Job.Status.RUNNING, Job.Status.MODAL))
        return self.filter(waiting | late, provider=provider, result_url="").exclude(
            provider_job_id=""
        )

    def occupying(self, provider: str) -> JobQuerySet:
        """Jobs holding one of the provider account's slots (running or in its queue).

        A task in MODAL holds none (midjourney-proxy-plus docs); a dispatch in flight does.
        """
        submitted = Q(status__in=(Job.Status.SUBMITTED, Job.Status.RUNNING), result_url="")
        dispatching = Q(status=Job.Status.QUEUED, dispatch_lease_until__gt=timezone.now())
        return self.filter(submitted | dispatching, provider=provider)

    def dispatchable(self, provider: str) -> JobQuerySet:
        return self.filter(provider=provider, status=Job.Status.QUEUED)


def lineage_size() -> models.Subquery:
    """For annotating jobs: how many visible jobs their lineage has."""
    return models.Subquery(
        Job.objects.filter(root_id=models.OuterRef("root_id"), deleted_at__isnull=True)
        .order_by()
        .values("root_id")
        .annotate(size=models.Count("pk"))
        .values("size")[:1]
    )


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SUBMITTED = "submitted", "Submitted"
    RUNNING = "running", "Running"
    MODAL = "modal", "Waiting for prompt"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class JobAction(models.TextChoices):
    IMAGINE = "imagine", "Imagine"
    REROLL = "reroll", "Reroll"
    UPSCALE = "upscale", "Upscale"
    VARIATION = "variation", "Variation"
    VARY_SUBTLE = "vary_subtle", "Vary (Subtle)"
    VARY_STRONG = "vary_strong", "Vary (Strong)"
    ZOOM_OUT = "zoom_out", "Zoom out"
    PAN = "pan", "Pan"
    UPSCALE_SUBTLE = "upscale_subtle", "Upscale (Subtle)"
    UPSCALE_CREATIVE = "upscale_creative", "Upscale (Creative)"
    IMPORT = "import", "Import"


class JobCharge(models.TextChoices):
    NONE = "", "Free"
    HELD = "held", "Held"
    CAPTURED = "captured", "Charged"
    RELEASED = "released", "Refunded"
    # A late success after its hold was released, delivered without a charge (no credits).
    WAIVED = "waived", "Not charged"


class JobMode(models.TextChoices):
    FAST = "fast", "Fast"
    RELAX = "relax", "Relax"
    TURBO = "turbo", "Turbo"


class JobFailKind(models.TextChoices):
    REJECTED_PROMPT = "rejected_prompt", "Prompt rejected"
    PROVIDER_ERROR = "provider_error", "Provider error"
    TIMEOUT = "timeout", "Timed out"
    CANCELLED = "cancelled", "Cancelled"
    IMAGE_UNAVAILABLE = "image_unavailable", "Image unavailable"


class Job(models.Model):
    Status = JobStatus
    Action = JobAction
    Mode = JobMode
    Charge = JobCharge
    FailKind = JobFailKind

    IN_FLIGHT = (Status.QUEUED, Status.SUBMITTED, Status.RUNNING, Status.MODAL)
    TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)
    # Which statuses each status may move to; anything else is refused.
    FORWARD: dict[str, tuple[str, ...]] = {
        Status.QUEUED: (
            Status.SUBMITTED,
            Status.RUNNING,
            Status.MODAL,
            Status.SUCCEEDED,
            Status.FAILED,
            Status.CANCELLED,
        ),
        Status.SUBMITTED: (
            Status.RUNNING,
            Status.MODAL,
            Status.SUCCEEDED,
            Status.FAILED,
            Status.CANCELLED,
        ),
        Status.MODAL: (
            # A remix asked before the press (PiAPI) goes on to be dispatched.
            Status.QUEUED,
            Status.SUBMITTED,
            Status.RUNNING,
            Status.SUCCEEDED,
            Status.FAILED,
            Status.CANCELLED,
        ),
        Status.RUNNING: (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED),
        # A late success after a timeout is still delivered (its images are not lost).
        Status.FAILED: (Status.SUCCEEDED,),
        Status.SUCCEEDED: (),
        Status.CANCELLED: (),
    }

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs"
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    # The lineage root; a root points at itself (set right after insert).
    root = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    # 1-4 for U/V buttons; None where the action has no index.
    index = models.PositiveSmallIntegerField(null=True, blank=True)
    # Extra qualifier of the action: a pan direction ("left"), a zoom factor ("2x").
    variant = models.CharField(max_length=20, blank=True)
    prompt = models.TextField()
    final_prompt = models.TextField(blank=True)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.FAST)

    provider = models.CharField(max_length=20)
    provider_job_id = models.CharField(max_length=64, blank=True)
    # What the provider offers next: normalized buttons (see providers.base.Button.as_dict).
    buttons = models.JSONField(default=list, blank=True)
    # The provider's last task object, verbatim, for audit and debugging.
    provider_payload = models.JSONField(default=dict, blank=True)

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    # Provider URLs: never sent to the browser; previews are proxied, results copied.
    preview_url = models.URLField(max_length=1000, blank=True)
    result_url = models.URLField(max_length=1000, blank=True)
    fail_kind = models.CharField(max_length=20, choices=FailKind.choices, blank=True)
    # The provider's own text, verbatim (it is often Chinese); the card explains it.
    fail_reason = models.TextField(blank=True)

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    # Waiting locally for a free slot at the provider: how many jobs are ahead (None: not waiting).
    slot_position = models.PositiveIntegerField(null=True, blank=True)
    # Dispatch attempts so far; bounded by MJ_DISPATCH_MAX_ATTEMPTS.
    attempts = models.PositiveSmallIntegerField(default=0)
    # A dispatch in progress holds this lease so that a redelivered task does not submit twice.
    dispatch_lease_until = models.DateTimeField(null=True, blank=True)
    ingest_attempts = models.PositiveSmallIntegerField(default=0)
    # Last webhook hint acted on: hints closer together than half a second cost one fetch.
    hinted_at = models.DateTimeField(null=True, blank=True)

    # Pressed with Remix mode on: the provider parks the new task in MODAL for a prompt.
    remix = models.BooleanField(default=False)
    # The prompt the user gave a job waiting in MODAL, until it is sent to the provider.
    remix_prompt = models.TextField(blank=True)

    # Credits held at submit (the price then) and charged on success; see billing.ledger.
    cost = models.PositiveIntegerField(default=0)
    # Where this job's credits stand; written by billing.ledger with its ledger entries.
    charge = models.CharField(max_length=10, choices=JobCharge.choices, default=JobCharge.NONE)
    # One per form render: a double click or a resent POST finds the job it already made.
    submit_key = models.UUIDField(null=True, blank=True)

    # The user's own marks: a heart, and a soft delete (hidden at once; files removed later).
    favorite = models.BooleanField(default=False)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="job_owner_recent"),
            models.Index(fields=["provider", "status"], name="job_provider_status"),
            models.Index(fields=["root"], name="job_root"),
            # The admin's filters on 100,000 jobs: by status, and by why they failed.
            models.Index(fields=["status", "-created_at"], name="job_status_recent"),
            models.Index(
                fields=["fail_kind", "-created_at"],
                condition=~Q(fail_kind=""),
                name="job_fail_kind_recent",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=JobStatus.values), name="job_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(action__in=JobAction.values), name="job_action_valid"
            ),
            models.CheckConstraint(condition=Q(mode__in=JobMode.values), name="job_mode_valid"),
            models.CheckConstraint(
                condition=Q(fail_kind="") | Q(fail_kind__in=JobFailKind.values),
                name="job_fail_kind_valid",
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="job_progress_percent"),
            models.CheckConstraint(
                condition=Q(charge__in=JobCharge.values), name="job_charge_valid"
            ),
            models.UniqueConstraint(
                fields=["provider", "provider_job_id"],
                condition=~Q(provider_job_id=""),
                name="job_provider_id_unique",
            ),
            models.UniqueConstraint(
                fields=["owner", "submit_key"],
                condition=Q(submit_key__isnull=False),
                name="job_owner_submit_key_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.code}"

    def get_absolute_url(self) -> str:
        return reverse("gallery:job", args=[self.code])

    @property
    def is_in_flight(self) -> bool:
        return self.status in self.IN_FLIGHT

    @property
    def is_single_image(self) -> bool:
        """An upscale (one picture) rather than a 2x2 grid."""
        if self.action in (
            JobAction.UPSCALE,
            JobAction.UPSCALE_SUBTLE,
            JobAction.UPSCALE_CREATIVE,
        ):
            return True
        # An imported task: the buttons it offers say what it is.
        after_upscale = {"vary_subtle", "vary_strong", "zoom_out", "pan", "upscale_subtle"}
        return self.action == JobAction.IMPORT and any(
            button.get("action") in after_upscale for button in self.buttons
        )

    @property
    def live_version(self) -> str:
        """Changes whenever the job's card would look different (see views.live)."""
        preview = zlib.crc32(self.preview_url.encode()) if self.preview_url else 0
        return "-".join(
            str(part)
            for part in (
                self.status,
                self.progress,
                self.charge or "none",
                self.slot_position if self.slot_position is not None else "",
                int(bool(self.remix_prompt)),
                int(bool(self.result_url)),
                preview,
            )
        )

    @property
    def can_resync(self) -> bool:
        """The provider knows it and we are still waiting for (or missed) its outcome."""
        return bool(self.provider_job_id) and (
            self.polls
            or (self.status == self.Status.FAILED and self.fail_kind == JobFailKind.TIMEOUT)
        )

    @property
    def can_cancel(self) -> bool:
        """Not yet at the provider: waiting locally for a slot, or for a remix prompt."""
        return not self.provider_job_id and (
            self.status == self.Status.QUEUED
            or (self.status == self.Status.MODAL and not self.remix_prompt)
        )

    @property
    def awaiting_user(self) -> bool:
        """In MODAL and nothing typed yet: the card waits for the user and does not poll."""
        return self.status == self.Status.MODAL and not self.remix_prompt

    @property
    def polls(self) -> bool:
        return self.is_in_flight and not self.awaiting_user

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @property
    def label(self) -> str:
        """Short human name of the action, as on the Midjourney buttons."""
        if self.action == self.Action.UPSCALE and self.index:
            return f"U{self.index}"
        if self.action == self.Action.VARIATION and self.index:
            return f"V{self.index}"
        if self.action == self.Action.PAN and self.variant:
            return f"Pan {self.variant}"
        if self.action == self.Action.ZOOM_OUT and self.variant:
            return f"Zoom out {self.variant}"
        return self.get_action_display()

    FAILURE_MESSAGES: dict[str, str] = {
        FailKind.REJECTED_PROMPT: "The provider refused this prompt (banned words or content "
        "filters). Try rewording it.",
        FailKind.PROVIDER_ERROR: "The provider could not make this job.",
        FailKind.TIMEOUT: "This job took too long and was stopped. Try again, or a faster mode.",
        FailKind.CANCELLED: "This job was cancelled.",
        FailKind.IMAGE_UNAVAILABLE: "The result could not be downloaded from the provider.",
    }

    @property
    def failure_message(self) -> str:
        return self.FAILURE_MESSAGES.get(self.fail_kind, "This job failed.")

    @property
    def stage(self) -> str:
        """What the card says about where the job is."""
        if self.status == self.Status.QUEUED:
            if self.slot_position is not None:
                ahead = self.slot_position
                jobs = "job is" if ahead == 1 else "jobs are"
                return (
                    f"Waiting for a free slot at the provider: {ahead} {jobs} ahead of this one."
                    if ahead
                    else "Waiting for a free slot at the provider: next in line."
                )
            if self.attempts and self.fail_reason:
                return "Waiting to retry: the provider was busy."
            return "Queued, sending to the provider…"
        if self.status == self.Status.SUBMITTED:
            return "Waiting for the provider to start…"
        if self.status == self.Status.MODAL:
            if self.remix_prompt:
                return "Sending your prompt…"
            return "Remix: edit the prompt and send it."
        if self.status == self.Status.RUNNING:
            return "Saving the images…" if self.result_url else f"Rendering, {self.progress}%"
        return self.get_status_display()

    def transition(self, to: str, *, expect: dict[str, Any] | None = None, **changes: Any) -> bool:
        """Compare-and-set the status from the one this instance holds to `to`.

        `expect` names other fields that must still hold the values this decision relied on.
        Returns True when this call made the change; the instance is then updated.
        False means another actor changed the job first: reload and decide again.
        """
        if to != self.status and to not in self.FORWARD[self.status]:
            return False
        now = timezone.now()
        if to in self.TERMINAL and "finished_at" not in changes:
            changes["finished_at"] = now
        updated = Job.objects.filter(pk=self.pk, status=self.status, **(expect or {})).update(
            status=to, **changes
        )
        if updated != 1:
            return False
        self.status = to
        for field, value in changes.items():
            setattr(self, field, value)
        return True

    def update_if_status(self, **changes: Any) -> bool:
        """Change fields (progress, preview...) only while the status is still the one seen."""
        updated = Job.objects.filter(pk=self.pk, status=self.status).update(**changes)
        if updated == 1:
            for field, value in changes.items():
                setattr(self, field, value)
        return updated == 1

    def button(self, action: str, index: int | None = None, variant: str = "") -> dict | None:
        """The provider's button for an action, as offered on this finished job."""
        for button in self.buttons:
            if (
                button.get("action") == action
                and button.get("index") == index
                and button.get("variant", "") == variant
            ):
                return button
        return None

    def lineage(self) -> JobQuerySet:
        return Job.objects.filter(root_id=self.root_id or self.pk)


def image_path(instance: Image, filename: str) -> str:
    code = instance.job.code.hex
    return f"jobs/{code[:2]}/{code}/{filename}"


class Image(models.Model):
    """A stored picture of a job and its WebP thumbnails.

    A grid job has its grid (index 0) and its four tiles (index 1-4); an upscale has one
    single image. Every row has the picture as a metadata-free PNG (`file`) and two WebP
    thumbnails for a srcset: `thumbnail` (imaging.THUMB_WIDTH wide, the small one, as before)
    and `thumbnail_large` (imaging.THUMB_LARGE_WIDTH). Neither is wider than the picture;
    rows stored before the large size existed have no `thumbnail_large` (width 0).
    """

    # Names of the stored sizes, as the image view's URL spells them.
    SIZE_FULL = "full"
    SIZE_THUMB = "thumb"
    SIZE_THUMB_LARGE = "thumb-large"

    class Kind(models.TextChoices):
        GRID = "grid", "Grid"
        SINGLE = "single", "Single image"
        TILE = "tile", "Tile"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="images")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # Tile position 1-4 (left to right, top to bottom) for tiles; 0 for a whole image.
    index = models.PositiveSmallIntegerField(default=0)
    file = models.FileField(upload_to=image_path, max_length=300)
    thumbnail = models.FileField(upload_to=image_path, max_length=300, blank=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    thumb_width = models.PositiveIntegerField(default=0)
    thumb_height = models.PositiveIntegerField(default=0)
    thumbnail_large = models.FileField(upload_to=image_path, max_length=300, blank=True)
    thumb_large_width = models.PositiveIntegerField(default=0)
    thumb_large_height = models.PositiveIntegerField(default=0)
    bytes = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    content_type = models.CharField(max_length=40, default="image/png")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["kind", "index"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["grid", "single", "tile"]), name="image_kind_valid"
            ),
            models.UniqueConstraint(
                fields=["job", "kind", "index"], name="image_job_kind_index_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of {self.job_id}"

    def file_for(self, size: str) -> models.fields.files.FieldFile | None:
        """The stored file of a size (`SIZE_*`), or None when this row has none of it."""
        field = {
            self.SIZE_FULL: self.file,
            self.SIZE_THUMB: self.thumbnail,
            self.SIZE_THUMB_LARGE: self.thumbnail_large,
        }.get(size)
        return field if field else None

    def content_type_for(self, size: str) -> str:
        return self.content_type if size == self.SIZE_FULL else "image/webp"

    @property
    def thumbnail_sizes(self) -> list[tuple[str, int, int]]:
        """(size, width, height) of each stored thumbnail, smallest first, for a srcset."""
        sizes = [
            (self.SIZE_THUMB, self.thumbnail, self.thumb_width, self.thumb_height),
            (
                self.SIZE_THUMB_LARGE,
                self.thumbnail_large,
                self.thumb_large_width,
                self.thumb_large_height,
            ),
        ]
        return [(size, width, height) for size, field, width, height in sizes if field]


class PollLease(models.Model):
    """One row per provider: whoever holds the lease runs that provider's poll chain.

    Keeps one batched poll per provider per tick however many workers run; a lease that
    is not renewed expires, so a crashed chain is restarted by the next kick.
    """

    provider = models.CharField(max_length=20, unique=True)
    token = models.CharField(max_length=32, blank=True)
    expires_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.provider} until {self.expires_at:%H:%M:%S}"


class WebhookEvent(models.Model):
    """A delivery we acted on, keyed so that a retried or replayed one is recognised."""

    provider = models.CharField(max_length=20)
    # PiAPI: "<task id>:<status>:<timestamp>" (its documented way to spot duplicates).
    key = models.CharField(max_length=200)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "key"], name="webhook_event_unique")
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.key}"


class ProviderCall(models.Model):
    """One HTTP exchange with a provider, for the audit trail: append-only.

    Bodies are truncated and secrets redacted before they get here (gallery.audit); API keys
    travel in headers, which are never recorded.
    """

    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="provider_calls"
    )
    provider = models.CharField(max_length=20)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    # None when no answer came (timeout, connection refused).
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField()
    request_body = models.TextField(blank=True)
    response_body = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["provider", "-created_at"], name="call_provider_recent"),
            # The admin's "failed calls" filter: few rows among many, newest first.
            models.Index(
                fields=["-created_at"],
                condition=Q(status_code__isnull=True) | Q(status_code__gte=400) | ~Q(error=""),
                name="call_errors_recent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} → {self.status_code or self.error[:30]}"
