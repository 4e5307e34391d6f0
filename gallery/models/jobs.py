"""Jobs and their lineage.

Invariants:
- A job's status only moves forward: queued -> submitted -> running -> succeeded | failed |
  cancelled, with `modal` where the provider waits for a remix prompt. Every change of
  status is a compare-and-set update (`Job.transition`): the poller, a webhook and a
  retried task may race, and exactly one of them wins. Out of `failed` a job moves only as a
  late success after a timeout (`Job.LATE_SUCCESS`).
- `root` is the first job of a lineage (an imagine or an import points at itself), so a
  whole tree is one query: `Job.objects.filter(root=job.root)`.
- `provider_job_id` is unique per provider once known; ids are kept as strings because
  midjourney-proxy ids are 16+ digit numbers that lose precision as JSON numbers.
- The browser never sees a provider URL: finished images are copied into our storage
  (gallery.models.images) and served by an ownership-checked view.
- `charge` mirrors the job's ledger entries; only gallery.lifecycle writes it, in the
  transaction of the entry.
"""

from __future__ import annotations

import uuid
import zlib
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.dispatch import Signal
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from gallery.models.queries import JobQuerySet
from mjweb import catalogue


class JobStatus(models.TextChoices):
    QUEUED = "queued", gettext_lazy("Queued")
    SUBMITTED = "submitted", gettext_lazy("Submitted")
    RUNNING = "running", gettext_lazy("Running")
    MODAL = "modal", gettext_lazy("Waiting for prompt")
    SUCCEEDED = "succeeded", gettext_lazy("Succeeded")
    FAILED = "failed", gettext_lazy("Failed")
    CANCELLED = "cancelled", gettext_lazy("Cancelled")


# The catalogue's actions and modes as model choices: Job.Action.REROLL == "reroll".
JobAction = models.TextChoices(  # type: ignore[misc]
    "JobAction",
    [(name.upper(), (name, label)) for name, label in catalogue.choices(catalogue.ACTION_NAMES)],
)


class JobCharge(models.TextChoices):
    NONE = "", gettext_lazy("Free")
    HELD = "held", gettext_lazy("Held")
    CAPTURED = "captured", gettext_lazy("Charged")
    RELEASED = "released", gettext_lazy("Refunded")
    # A late success after its hold was released, delivered without a charge (no credits).
    WAIVED = "waived", gettext_lazy("Not charged")


JobMode = models.TextChoices(  # type: ignore[misc]
    "JobMode",
    [(name.upper(), (name, label)) for name, label in catalogue.choices(catalogue.MODE_NAMES)],
)


class NotShareable(ValueError):
    """Only a finished job whose picture we keep can have a public link (`Job.share`). The
    message says why, in words for the owner."""


class JobFailKind(models.TextChoices):
    REJECTED_PROMPT = "rejected_prompt", gettext_lazy("Prompt rejected")
    PROVIDER_ERROR = "provider_error", gettext_lazy("Provider error")
    TIMEOUT = "timeout", gettext_lazy("Timed out")
    CANCELLED = "cancelled", gettext_lazy("Cancelled")
    IMAGE_UNAVAILABLE = "image_unavailable", gettext_lazy("Image unavailable")


def mask_path(instance: Job, filename: str) -> str:
    code = instance.code.hex
    return f"jobs/{code[:2]}/{code}/mask.png"


def preview_path(instance: Job, filename: str) -> str:
    code = instance.code.hex
    return f"previews/{code[:2]}/{code}/{filename}"


# Sent by Job.transition after each change of status it made (gallery.notify listens).
status_changed = Signal()


def _lease_free(field: str, now: datetime) -> Q:
    """A job's lease `field` is free: never taken, or it ran out before `now`."""
    return Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__lt": now})


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
        # A late success after a timeout is still delivered (its images are not lost); only
        # after a timeout (`accepts_late_success`), which `transition` checks in its update.
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

    # The provider account (gallery.models.accounts.ProviderAccount.name) it was sent to.
    provider = models.CharField(max_length=20)
    provider_job_id = models.CharField(max_length=64, blank=True)
    # What that account's provider bills for it, set when it took the submit: its model id
    # (`mj-fast-reroll`) and price in dollars; 0 once the provider reports it failed (the
    # provider refunds a failed task); None where nothing was billed (an import).
    provider_model = models.CharField(max_length=64, blank=True)
    # Made through our API (gallery.api): the caller's `state`, echoed, and its notifyHook,
    # called on every change of status (gallery.notify).
    api_state = models.CharField(max_length=500, blank=True)
    notify_hook = models.URLField(max_length=1000, blank=True)
    provider_cost = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    # What the provider offers next: normalized buttons (see providers.base.Button.as_dict).
    buttons = models.JSONField(default=list, blank=True)
    # The provider's last task object, verbatim, for audit and debugging.
    provider_payload = models.JSONField(default=dict, blank=True)

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    # Provider URLs: never sent to the browser; previews are proxied, results copied.
    preview_url = models.URLField(max_length=1000, blank=True)
    # The latest preview as we keep it (a small WebP in our storage, made by the worker once
    # per step), and the provider URL it was made from. The studio serves only this copy.
    preview_image = models.FileField(upload_to=preview_path, max_length=300, blank=True)
    preview_source = models.URLField(max_length=1000, blank=True)
    result_url = models.URLField(max_length=1000, blank=True)
    fail_kind = models.CharField(max_length=20, choices=FailKind.choices, blank=True)
    # The provider's own text, verbatim (it is often Chinese); the card explains it.
    fail_reason = models.TextField(blank=True)
    # Our own account of what went wrong or why it waits (a deadline, an operator's end, an
    # image we could not fetch, a retry), for the operator. The card quotes only the
    # provider's words (`fail_reason`) as "Provider said".
    fail_note = models.TextField(blank=True)

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    # Waiting locally for a free slot at the provider: how many jobs are ahead (None: not waiting).
    slot_position = models.PositiveIntegerField(null=True, blank=True)
    # A slot freed up and this job's dispatch was queued for it then (`dispatch.fill_slots`):
    # it is not queued again for another slot while that dispatch may still run.
    dispatch_queued_at = models.DateTimeField(null=True, blank=True)
    # Dispatch attempts so far; bounded by MJ_DISPATCH_MAX_ATTEMPTS (a busy provider: by
    # the mode's deadline from when the job was made).
    attempts = models.PositiveSmallIntegerField(default=0)
    # A dispatch in progress holds this lease so that a redelivered task does not submit twice.
    dispatch_lease_until = models.DateTimeField(null=True, blank=True)
    # A submit was sent then and its answer never recorded (a crash, a lost answer): the
    # provider may have made the task. Until the task is found (its `state` is our code) or
    # MJ_SUBMIT_GRACE passes, the job is not sent again.
    submit_sent_at = models.DateTimeField(null=True, blank=True)
    ingest_attempts = models.PositiveSmallIntegerField(default=0)
    # A recorded result whose images are not stored by then is handed to ingest again (the
    # ingest that had it was killed); set when the result is recorded and by each ingest.
    ingest_due_at = models.DateTimeField(null=True, blank=True)
    # An ingest in progress holds this lease: the poll's ingest and a webhook's read that
    # both saw the result store it once, not twice side by side (`Job.ingest_free_q`).
    ingest_lease_until = models.DateTimeField(null=True, blank=True)
    # Last webhook hint acted on: hints closer together than half a second cost one fetch.
    hinted_at = models.DateTimeField(null=True, blank=True)
    # Last read of this job on its own, when a batched read left it out.
    read_at = models.DateTimeField(null=True, blank=True)

    # Pressed with Remix mode on: the provider parks the new task in MODAL for a prompt.
    remix = models.BooleanField(default=False)
    # The prompt the user gave a job waiting in MODAL, until it is sent to the provider.
    remix_prompt = models.TextField(blank=True)
    # When we sent the remix prompt: a gateway may go on reporting MODAL for a cycle after it.
    modal_answered_at = models.DateTimeField(null=True, blank=True)

    # Vary (Region): the region to repaint, as the user drew it on the parent's picture (a
    # PNG of its size, white = repaint, black = keep), sent with the prompt.
    mask = models.FileField(upload_to=mask_path, max_length=300, blank=True)
    # Describe: the four prompts the provider wrote from the picture.
    described = models.JSONField(default=list, blank=True)

    # Credits held at submit (the price then) and charged on success; see billing.ledger.
    cost = models.PositiveIntegerField(default=0)
    # Where this job's credits stand; written by billing.ledger with its ledger entries.
    charge = models.CharField(max_length=10, choices=JobCharge.choices, default=JobCharge.NONE)
    # One per form render: a double click or a resent POST finds the job it already made.
    submit_key = models.UUIDField(null=True, blank=True)

    # The user's own marks: a heart, and a soft delete (hidden at once; files removed later).
    favorite = models.BooleanField(default=False)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # A public link to this job's picture and prompt (`share`), off until the owner makes
    # one; a new link replaces the old, and stopping sharing ends it.
    share_code = models.UUIDField(null=True, blank=True, unique=True, default=None)
    shared_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The gallery reads one owner's jobs newest first, a page at a time after a
            # cursor `(created_at, id) < (t, n)` (gallery.pagination): with the key in the
            # index, the cursor is where the scan starts, so a page far down reads as few
            # rows as the first. Also the daily quota's count (deleted jobs count too).
            models.Index(fields=["owner", "-created_at", "-id"], name="job_owner_newest"),
            # Each of the gallery's filters on its own column, in the same order: favorites
            # (a few jobs in a hundred), a status, an action, a speed. Without them a rare
            # value is found by reading the owner's jobs until 24 match, or until the end.
            models.Index(
                fields=["owner", "-created_at", "-id"],
                condition=Q(favorite=True, deleted_at__isnull=True),
                name="job_owner_favorites",
            ),
            models.Index(
                fields=["owner", "status", "-created_at", "-id"],
                condition=Q(deleted_at__isnull=True),
                name="job_owner_status",
            ),
            models.Index(
                fields=["owner", "action", "-created_at", "-id"],
                condition=Q(deleted_at__isnull=True),
                name="job_owner_action",
            ),
            models.Index(
                fields=["owner", "mode", "-created_at", "-id"],
                condition=Q(deleted_at__isnull=True),
                name="job_owner_mode",
            ),
            # The jobs that may head a lineage in the gallery's lineage view (visible, not
            # failed), newest first: whether a job has a newer one is one probe from its own
            # key (JobQuerySet.lineage_heads). A whole lineage (the job page's tree, a
            # lineage's size) reads the index of the `root` foreign key.
            models.Index(
                fields=["root", "-created_at", "-id"],
                condition=Q(deleted_at__isnull=True)
                & ~Q(status__in=(JobStatus.FAILED, JobStatus.CANCELLED)),
                name="job_root_live",
            ),
            models.Index(fields=["provider", "status"], name="job_provider_status"),
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
        """An upscale (one picture) rather than a 2x2 grid; Describe keeps the one picture it
        was given."""
        if self.action == JobAction.IMPORT:
            # An imported task: the buttons it offers say what it is.
            return any(button.get("action") in catalogue.AFTER_UPSCALE for button in self.buttons)
        return catalogue.action(self.action).result != catalogue.GRID

    @property
    def writes_prompts(self) -> bool:
        """Describe: its result is prompts written from the user's picture, not a picture."""
        return catalogue.action(self.action).result == catalogue.PROMPTS

    @property
    def caption(self) -> str:
        """What the job is, in words: its prompt, or what it was made from where it has none
        (a blend, a describe)."""
        if self.prompt:
            return self.prompt
        return catalogue.action(self.action).title

    # The fields `live_version` is made of. On PostgreSQL a change of any of them notifies
    # the owner's push streams (gallery.push; the trigger of migration 0016 names the same
    # columns, and a test holds the two lists together: a field added here needs a migration).
    LIVE_FIELDS = (
        "status",
        "progress",
        "charge",
        "slot_position",
        "remix_prompt",
        "result_url",
        "preview_image",
    )

    @property
    def live_version(self) -> str:
        """Changes whenever the job's card would look different (see views.live); made of
        `LIVE_FIELDS` only."""
        preview = zlib.crc32(self.preview_image.name.encode()) if self.preview_image else 0
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

    @staticmethod
    def charge_in_version(version: str) -> str:
        """The `charge` a `live_version` was taken with ("" when unreadable)."""
        parts = version.split("-")
        charge = parts[2] if len(parts) > 2 else ""
        return "" if charge == "none" else charge

    # A job failed with these may still succeed: we stopped waiting, the provider may not have.
    # Anything else that failed (the provider said so, or an admin ended it) is over.
    LATE_SUCCESS = {"status": JobStatus.FAILED, "fail_kind": JobFailKind.TIMEOUT}

    @classmethod
    def late_success_q(cls) -> Q:
        return Q(**cls.LATE_SUCCESS)

    @property
    def accepts_late_success(self) -> bool:
        return all(getattr(self, name) == value for name, value in self.LATE_SUCCESS.items())

    @staticmethod
    def lease_free_q(now: datetime | None = None) -> Q:
        """No dispatch holds the job: never leased, or the lease ran out (a crashed run)."""
        return _lease_free("dispatch_lease_until", now or timezone.now())

    @staticmethod
    def ingest_free_q(now: datetime) -> Q:
        """No ingest holds the job: none began, or the one that did was killed (its lease,
        one ingest's run time, ran out; the sweeper queues the next at that same time)."""
        return _lease_free("ingest_lease_until", now)

    @property
    def can_resync(self) -> bool:
        """Asking the provider could still change this job: the provider knows it, and it is
        in flight or may yet succeed late. The studio, the admin and the refresh task all ask
        this one question."""
        return bool(self.provider_job_id) and (self.is_in_flight or self.accepts_late_success)

    @property
    def can_cancel(self) -> bool:
        """Waiting here: queued locally for a slot (not at the provider, nor perhaps on its way
        there), or waiting for the user's remix prompt (a task parked in MODAL renders nothing
        until it gets one)."""
        queued_here = self.status == self.Status.QUEUED and not self.provider_job_id
        return (queued_here and self.submit_sent_at is None) or self.awaiting_user

    @property
    def asked_at(self) -> datetime:
        """When the remix question was put to the user (about when it reached the provider)."""
        return self.submitted_at or self.created_at

    @property
    def remix_expires_at(self) -> datetime:
        """An unanswered remix question is cancelled, and its credits released, at this time."""
        return self.asked_at + timedelta(seconds=settings.MJ_REMIX_EXPIRY)

    @property
    def awaits_ingest(self) -> bool:
        """Its result is recorded and its images are not stored yet (ingest ends it)."""
        return bool(self.result_url) and (
            self.status == self.Status.RUNNING or self.accepts_late_success
        )

    @property
    def can_release(self) -> bool:
        """An operator may end it and give its hold back: it has not ended yet."""
        return self.is_in_flight

    @property
    def awaiting_user(self) -> bool:
        """In MODAL and nothing typed yet: the card waits for the user and does not poll."""
        return self.status == self.Status.MODAL and not self.remix_prompt

    @property
    def polls(self) -> bool:
        return self.is_in_flight and not self.awaiting_user

    @property
    def mode_name(self) -> str:
        """The speed mode's English name, for the notes and memos operators read, whatever
        language the request that wrote them was in."""
        with translation.override(None):
            return str(self.get_mode_display())

    @property
    def action_name(self) -> str:
        """The action's English name (as `mode_name`)."""
        with translation.override(None):
            return str(self.get_action_display())

    def own_modal_answer(self) -> dict[str, str]:
        """Vary (Region) and Custom Zoom: the provider always asks (MODAL) for what the user
        gave with the press (the mask, the --zoom prompt); the fields that answer it at once,
        for dispatch.submit_modal to send. {} for a Remix question, which the user answers,
        and once we answered: asking again is then the provider's own question."""
        if catalogue.action(self.action).asks and self.modal_answered_at is None:
            return {"remix_prompt": self.prompt}
        return {}

    # A gateway refreshes its copy of a task about every 15 s (new-api): for this long after
    # we answered a remix question, a report that the task still asks it is that stale copy.
    MODAL_ECHO = timedelta(seconds=45)
    # A queued job no worker has taken for this long says a worker may be missing.
    UNSENT_LATE = timedelta(seconds=60)

    def echoes_our_modal(self, now: datetime) -> bool:
        """A MODAL report now would be an echo of the question we already answered."""
        answered = self.modal_answered_at
        return answered is not None and now - answered < self.MODAL_ECHO

    def is_overdue(self, now: datetime) -> bool:
        """Past its mode's deadline with no result. A job waiting for the user's remix prompt
        is not late: the clock restarts when the prompt is sent."""
        return (
            self.deadline_at is not None
            and self.deadline_at < now
            and self.is_in_flight
            and not self.result_url
            and not self.awaiting_user
        )

    def deadline_from(self, now: datetime) -> datetime:
        """When a job submitted now stops being waited for (MJ_DEADLINES, by mode)."""
        seconds = settings.MJ_DEADLINES.get(self.mode, settings.MJ_DEADLINES["fast"])
        return now + timedelta(seconds=seconds)

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @property
    def label(self) -> str:
        """Short human name of the action, as on the Midjourney buttons ("U2", "Pan left")."""
        return catalogue.label(self.action, self.index, self.variant)

    @property
    def duration(self) -> timedelta | None:
        """From the submit here to the end; None while the job has not ended."""
        if self.finished_at is None:
            return None
        return max(self.finished_at - self.created_at, timedelta(0))

    FAILURE_MESSAGES: dict[str, Any] = {
        FailKind.REJECTED_PROMPT: gettext_lazy(
            "The provider refused this prompt (banned words or content filters). Try rewording it."
        ),
        FailKind.PROVIDER_ERROR: gettext_lazy("The provider could not make this job."),
        FailKind.TIMEOUT: gettext_lazy(
            "This job took too long and was stopped. Try again, or a faster mode."
        ),
        FailKind.CANCELLED: gettext_lazy("This job was cancelled."),
        FailKind.IMAGE_UNAVAILABLE: gettext_lazy(
            "The result could not be downloaded from the provider."
        ),
    }

    @property
    def failure_message(self) -> str:
        return str(self.FAILURE_MESSAGES.get(self.fail_kind, _("This job failed.")))

    @property
    def stage(self) -> str:
        """What the card says about where the job is."""
        if self.status == self.Status.QUEUED:
            lease = self.dispatch_lease_until
            if self.submit_sent_at is not None and (lease is None or lease < timezone.now()):
                return _(
                    "Sent to the provider, but its answer was lost: finding out whether it "
                    "made the job before sending it again…"
                )
            if self.slot_position is not None:
                ahead = self.slot_position
                if not ahead:
                    return _("Waiting for a free slot at the provider: next in line.")
                return ngettext(
                    "Waiting for a free slot at the provider: %(count)d job is ahead of this one.",
                    "Waiting for a free slot at the provider: %(count)d jobs are ahead of this "
                    "one.",
                    ahead,
                ) % {"count": ahead}
            if self.attempts and self.fail_note:
                return _("Waiting to retry: the provider was busy.")
            if lease is None and timezone.now() - self.created_at > self.UNSENT_LATE:
                return _(
                    "Not sent yet after a minute: no worker seems to be running. It goes "
                    "out as soon as one is; the studio's staff are told."
                )
            return _("Queued, sending to the provider…")
        if self.status == self.Status.SUBMITTED:
            return _("Waiting for the provider to start…")
        if self.status == self.Status.MODAL:
            if self.remix_prompt:
                return _("Sending your prompt…")
            expires = timezone.localtime(self.remix_expires_at)
            return _(
                "Remix: edit the prompt and send it. Until %(until)s; after that it is "
                "cancelled and its credits come back."
            ) % {"until": f"{expires:%Y-%m-%d %H:%M}"}
        if self.status == self.Status.RUNNING:
            if self.result_url:
                return _("Saving the images…")
            return _("Rendering, %(progress)s%%") % {"progress": self.progress}
        return str(self.get_status_display())

    def transition(
        self,
        to: str,
        *,
        expect: dict[str, Any] | None = None,
        lease_free: bool = False,
        **changes: Any,
    ) -> bool:
        """Compare-and-set the status from the one this instance holds to `to`.

        Every change of a job's status goes through here. `expect` names other fields that
        must still hold the values this decision relied on; `lease_free` asks that no
        dispatch holds the job (`lease_free_q`).
        Returns True when this call made the change; the instance is then updated.
        False means another actor changed the job first: reload and decide again.
        """
        if to != self.status and to not in self.FORWARD[self.status]:
            return False
        expect = dict(expect or {})
        if self.status == self.Status.FAILED:
            # Out of a failure only as a late success, and only while it still is one.
            if not self.accepts_late_success:
                return False
            expect.update(self.LATE_SUCCESS)
        now = timezone.now()
        if to in self.TERMINAL and "finished_at" not in changes:
            changes["finished_at"] = now
        rows = Job.objects.filter(pk=self.pk, **{"status": self.status, **expect})
        if lease_free:
            rows = rows.filter(Job.lease_free_q(now))
        updated = rows.update(status=to, **changes)
        if updated != 1:
            return False
        self.status = to
        for field, value in changes.items():
            setattr(self, field, value)
        status_changed.send(sender=Job, job=self)
        return True

    def update_if_status(self, **changes: Any) -> bool:
        """Change fields (progress, preview...) only while the status is still the one seen."""
        updated = Job.objects.filter(pk=self.pk, status=self.status).update(**changes)
        if updated == 1:
            for field, value in changes.items():
                setattr(self, field, value)
        return updated == 1

    def make_root(self) -> None:
        """Start a lineage: a just-created imagine or import is its own root."""
        Job.objects.filter(pk=self.pk).update(root=self)
        self.root_id = self.pk

    def mark_favorite(self, on: bool) -> None:
        Job.objects.filter(pk=self.pk).update(favorite=on)
        self.favorite = on

    # Sharing: a public link (/s/<share_code>/) to one finished job's picture and prompt.
    # `shared_q` is the one rule of which links work; `JobQuerySet.shared` and `is_shared`
    # are built from it. A deleted job's link is dead at once (its code stays in the row).

    @staticmethod
    def shared_q() -> Q:
        return Q(share_code__isnull=False, deleted_at__isnull=True, status=JobStatus.SUCCEEDED)

    @property
    def is_shared(self) -> bool:
        """Its public link works now."""
        return (
            self.share_code is not None
            and self.deleted_at is None
            and self.status == self.Status.SUCCEEDED
        )

    @property
    def main_picture(self) -> Any:
        """Its whole picture (the grid, or the single image of an upscale), from the
        prefetched images where they are; None while none is stored."""
        from gallery.models.images import Image

        for image in self.images.all():
            if image.kind in Image.WHOLE_KINDS:
                return image
        return None

    @property
    def can_share(self) -> bool:
        """A public link may be made to it: it succeeded, is kept, and has its picture."""
        return (
            self.status == self.Status.SUCCEEDED
            and self.deleted_at is None
            and self.main_picture is not None
        )

    def share(self) -> uuid.UUID:
        """Make the public link, or keep the one it has; returns its code. Raises
        `NotShareable` for a job that is not finished, deleted, or has no picture.

        Compare-and-set, like `transition`: two presses at once make one code."""
        if self.is_shared:
            return self.share_code  # type: ignore[return-value]
        if not self.can_share:
            raise NotShareable(self._not_shareable_reason())
        code, now = uuid.uuid4(), timezone.now()
        rows = Job.objects.filter(
            pk=self.pk, share_code__isnull=True, deleted_at__isnull=True
        ).filter(status=self.Status.SUCCEEDED)
        if rows.update(share_code=code, shared_at=now) == 1:
            self.share_code, self.shared_at = code, now
            return code
        # Someone else shared it first, or it was deleted meanwhile.
        self.refresh_from_db(fields=["share_code", "shared_at", "deleted_at", "status"])
        if not self.is_shared:
            raise NotShareable(self._not_shareable_reason())
        return self.share_code  # type: ignore[return-value]

    def unshare(self) -> None:
        """End the public link. A later `share` makes a new code: the old link stays dead."""
        Job.objects.filter(pk=self.pk).update(share_code=None, shared_at=None)
        self.share_code = None
        self.shared_at = None

    def _not_shareable_reason(self) -> str:
        if self.deleted_at is not None:
            return _("A deleted job cannot be shared.")
        if self.status != self.Status.SUCCEEDED:
            return _("Only a finished job can be shared: wait until it succeeds.")
        return _("This job has no picture to share.")

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

    def parent_button(self) -> dict | None:
        """The button of the parent this job was made by pressing, as the parent offers it.
        A Custom Zoom keeps its factor in `variant`; its button has none."""
        if self.parent is None:
            return None
        takes_variant = catalogue.action(self.action).takes == "variant"
        return self.parent.button(self.action, self.index, self.variant if takes_variant else "")

    def lineage(self) -> JobQuerySet:
        return Job.objects.filter(root_id=self.root_id or self.pk)
