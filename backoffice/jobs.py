"""Jobs and provider calls in the admin: read-only rows, and three audited job operations.

Re-sync enqueues a fetch from the provider; cancel goes through `services.cancel` (jobs not
at the provider yet); "end and release" fails a stuck job through `services.fail`, which
releases its hold. Each writes its audit entry in the transaction of its change, and needs
the `gallery.change_job` permission (the admin never edits a job's fields directly).
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from backoffice.site import (
    AccountFilter,
    EstimatedCountPaginator,
    ReadOnlyAdmin,
    ReasonForm,
    ask_reason,
    choice_filter,
    created,
    object_pk,
    q_filter,
    reason_for_action,
)
from gallery import operations
from gallery.lineage import tree as lineage_tree
from gallery.models import Image, Job, ProviderCall
from gallery.models.records import call_failed_q
from gallery.views import image_response
from mjweb.models import AuditEntry

__all__ = ["JobAdmin", "ProviderCallAdmin", "ReadOnlyAdmin"]

OPERATE = "gallery.change_job"
# A bulk action acts on at most this many jobs at once (each is its own transaction).
MAX_BULK = 500


def job_link(job_id: int | None, label: Any) -> str:
    if job_id is None:
        return "—"
    return format_html(
        '<a href="{}">{}</a>', reverse("admin:gallery_job_change", args=[job_id]), label
    )


OPERATIONS = {
    "resync": {
        "run": operations.resync,
        "allowed": lambda job: job.can_resync,
        "title": "Re-sync from the provider",
        "explanation": "The worker fetches each job from the provider now and applies what it "
        "says. Only jobs the provider knows that are in flight, or that timed out and may "
        "still succeed late, are fetched.",
        "optional": True,
    },
    "cancel": {
        "run": operations.cancel,
        "allowed": lambda job: job.can_cancel,
        "title": "Cancel",
        "explanation": "Only jobs still waiting here (not yet at the provider) can be "
        "cancelled; their held credits go back to their owner.",
        "optional": False,
    },
    "release": {
        "run": operations.release,
        "allowed": lambda job: job.can_release,
        "title": "End and release the hold",
        "explanation": "Each job in flight is ended as failed (provider error) and its held "
        "credits go back to its owner. A result the provider sends later is not delivered "
        "or charged. Use it for jobs stuck at the provider.",
        "optional": False,
    },
}


class JobAdmin(ReadOnlyAdmin):
    list_display = [
        created,
        "owner",
        "label",
        "mode",
        "status",
        "provider_job_id",
        "cost",
        "charge",
        "duration",
    ]
    list_filter = [
        "status",
        "action",
        "mode",
        AccountFilter,
        "fail_kind",
        "charge",
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["prompt", "provider_job_id", "owner__username", "owner__email", "code"]
    list_select_related = ["owner"]
    show_full_result_count = False
    # Facet counts would run a COUNT per filter option over the whole table.
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    actions = ["resync_jobs", "cancel_jobs", "release_jobs"]
    change_form_template = "admin/gallery/job/change_form.html"
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "code",
                    "owner_link",
                    "label",
                    "mode",
                    "status",
                    "progress",
                    "prompt",
                    "final_prompt",
                    "remix",
                ]
            },
        ),
        (
            "Provider",
            {
                "fields": [
                    "provider",
                    "provider_job_id",
                    "provider_model",
                    "provider_cost",
                    "fail_kind",
                    "fail_reason",
                    "fail_note",
                    "attempts",
                ]
            },
        ),
        ("Credits", {"fields": ["cost", "charge"]}),
        ("Made from", {"fields": ["inputs_list", "described_list"], "classes": ["collapse"]}),
        (
            "Timing",
            {
                "fields": [
                    "created_at",
                    "submitted_at",
                    "started_at",
                    "finished_at",
                    "duration",
                    "deadline_at",
                    "deleted_at",
                ]
            },
        ),
        ("Raw", {"fields": ["buttons_json", "payload_json"], "classes": ["collapse"]}),
    ]
    readonly_fields = [
        "owner_link",
        "label",
        "duration",
        "buttons_json",
        "payload_json",
        "inputs_list",
        "described_list",
    ]

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # Links from a user's page: their jobs.
        return lookup in ("owner__id__exact", "root__id__exact") or super().lookup_allowed(
            lookup, value, request
        )

    # --- columns and fields ---

    @admin.display(description="Action", ordering="action")
    def label(self, job: Job) -> str:
        return job.label

    @admin.display(description="Duration")
    def duration(self, job: Job) -> str:
        if job.duration is None:
            return "—"
        minutes, seconds = divmod(int(job.duration.total_seconds()), 60)
        return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"

    @admin.display(description="Owner")
    def owner_link(self, job: Job) -> str:
        url = reverse("admin:mjweb_user_change", args=[job.owner_id])
        return format_html('<a href="{}">{}</a>', url, job.owner)

    @admin.display(description="Buttons offered")
    def buttons_json(self, job: Job) -> str:
        return format_html("<pre>{}</pre>", json.dumps(job.buttons, indent=2, ensure_ascii=False))

    @admin.display(description="The user's pictures")
    def inputs_list(self, job: Job) -> str:
        rows = job.inputs.select_related("reference")
        if not rows:
            return "—"
        return format_html_join(
            "",
            "<p>{}. {}x{} px, {} bytes, sha256 {}</p>",
            (
                (row.position + 1, r.width, r.height, r.bytes, r.sha256[:16])
                for row in rows
                for r in [row.reference]
            ),
        )

    @admin.display(description="Prompts written (Describe)")
    def described_list(self, job: Job) -> str:
        if not job.described:
            return "—"
        return format_html_join("", "<p>{}. {}</p>", enumerate(job.described, 1))

    @admin.display(description="Provider's last answer")
    def payload_json(self, job: Job) -> str:
        text = json.dumps(job.provider_payload, indent=2, ensure_ascii=False)
        return format_html("<pre>{}</pre>", text)

    # --- the job page: lineage, provider calls, ledger entries, images, audit ---

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        job = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if job is not None:
            context.update(self._sections(request, job))
        return super().change_view(request, object_id, form_url, context)

    def _sections(self, request: HttpRequest, job: Job) -> dict[str, Any]:
        lineage = list(
            Job.objects.filter(root_id=job.root_id or job.pk)
            .order_by("created_at", "id")
            .only(
                "pk",
                "code",
                "action",
                "index",
                "variant",
                "mode",
                "status",
                "parent_id",
                "created_at",
                "cost",
                "charge",
            )[:200]
        )
        nodes, _ = lineage_tree(lineage)
        for node in nodes:
            node.job.depth = node.depth
        lineage = [node.job for node in nodes]
        calls = list(job.provider_calls.order_by("created_at", "id")[:200])
        for call in calls:
            call.request_pretty = _pretty(call.request_body)  # type: ignore[attr-defined]
            call.response_pretty = _pretty(call.response_body)  # type: ignore[attr-defined]
        can_operate = request.user.has_perm(OPERATE)
        return {
            "job": job,
            "lineage": lineage,
            "calls": calls,
            "entries": job.ledger_entries.select_related("actor").order_by("id"),
            "images": job.images.order_by("kind", "index"),
            "can_see_images": request.user.has_perm("gallery.view_image"),
            "audit_entries": AuditEntry.objects.filter(
                content_type=ContentType.objects.get_for_model(Job), object_id=str(job.pk)
            ).select_related("actor"),
            "operations": [
                (name, spec["title"])
                for name, spec in OPERATIONS.items()
                if can_operate and spec["allowed"](job)
            ],
        }

    # --- operations: one job at a time (from its page) or in bulk (list actions) ---

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(OPERATE)

    def get_urls(self) -> list[URLPattern]:
        def view(function: Any) -> Any:
            return self.admin_site.admin_view(function)

        return [
            path(
                "<path:object_id>/operate/<str:operation>/",
                view(self.operate_view),
                name="gallery_job_operate",
            ),
            path(
                "<path:object_id>/images/<int:image_id>/<str:size>/",
                view(self.image_view),
                name="gallery_job_image",
            ),
            *super().get_urls(),
        ]

    def operate_view(self, request: HttpRequest, object_id: str, operation: str) -> HttpResponse:
        spec = OPERATIONS.get(operation)
        if spec is None:
            raise Http404("No such operation.")
        if not self.has_operate_permission(request):
            raise PermissionDenied
        job = get_object_or_404(Job.objects.select_related("owner"), pk=object_pk(object_id))
        back = reverse("admin:gallery_job_change", args=[job.pk])
        form = ReasonForm(request.POST or None, optional=spec["optional"])
        if request.method == "POST" and form.is_valid():
            done = spec["run"](job, actor=request.user, reason=form.cleaned_data["reason"])
            if done:
                self.message_user(request, f"{spec['title']}: done for {job}.")
            else:
                self.message_user(
                    request, f"{spec['title']}: not possible for {job} now.", messages.WARNING
                )
            return redirect(back)
        return ask_reason(
            self,
            request,
            title=f"{spec['title']}: {job}",
            explanation=str(spec["explanation"]),
            objects=[job],
            form=form,
            confirm=str(spec["title"]),
        )

    def _bulk(self, request: HttpRequest, queryset: QuerySet[Job], operation: str) -> Any:
        spec = OPERATIONS[operation]
        jobs = list(queryset.select_related("owner")[:MAX_BULK])
        applied, form = reason_for_action(request, optional=spec["optional"])
        if not applied:
            return ask_reason(
                self,
                request,
                title=str(spec["title"]),
                explanation=str(spec["explanation"]),
                objects=jobs,
                action=f"{operation}_jobs",
                form=form,
                confirm=str(spec["title"]),
            )
        reason = form.cleaned_data["reason"]
        done = [job for job in jobs if spec["run"](job, actor=request.user, reason=reason)]
        skipped = len(jobs) - len(done)
        self.message_user(
            request,
            f"{spec['title']}: {len(done)} job(s) done"
            + (f", {skipped} skipped (not possible for them now)." if skipped else "."),
            messages.SUCCESS if not skipped else messages.WARNING,
        )
        return None

    @admin.action(description="Re-sync from the provider", permissions=["operate"])
    def resync_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> Any:
        return self._bulk(request, queryset, "resync")

    @admin.action(description="Cancel (jobs not yet at the provider)", permissions=["operate"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> Any:
        return self._bulk(request, queryset, "cancel")

    @admin.action(description="End stuck jobs and release their holds", permissions=["operate"])
    def release_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> Any:
        return self._bulk(request, queryset, "release")

    def image_view(
        self, request: HttpRequest, object_id: str, image_id: int, size: str
    ) -> HttpResponse:
        """A job's stored picture for staff with `gallery.view_image` (the site's own image
        view serves owners only)."""
        if not request.user.has_perm("gallery.view_image"):
            raise PermissionDenied
        image = get_object_or_404(Image, pk=image_id, job_id=object_pk(object_id))
        return image_response(image, size, cache_control="private, max-age=3600")


def _pretty(body: str) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except (ValueError, TypeError):
        return body


class ProviderCallAdmin(ReadOnlyAdmin):
    list_display = [
        created,
        "provider",
        "method",
        "path",
        "status_code",
        "latency_ms",
        "short_error",
        "job_column",
    ]
    list_filter = [
        AccountFilter,
        choice_filter("method", "method", [("GET", "GET"), ("POST", "POST")]),
        q_filter(
            "outcome",
            "outcome",
            {
                "failed": ("Any failure", call_failed_q()),
                "ok": ("Answered below 400", ~call_failed_q()),
                "4xx": ("HTTP 4xx", Q(status_code__gte=400, status_code__lt=500)),
                "5xx": ("HTTP 5xx", Q(status_code__gte=500)),
                "none": ("No answer", Q(status_code__isnull=True)),
            },
        ),
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["path", "job__code", "job__provider_job_id"]
    list_select_related = ["job"]
    show_full_result_count = False
    # Facet counts would run a COUNT per filter option over the whole table.
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    fields = [
        "created_at",
        "provider",
        "method",
        "path",
        "status_code",
        "latency_ms",
        "error",
        "job_column",
        "request_pretty",
        "response_pretty",
    ]
    readonly_fields = ["job_column", "request_pretty", "response_pretty"]

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        return lookup == "job__id__exact" or super().lookup_allowed(lookup, value, request)

    @admin.display(description="Job")
    def job_column(self, call: ProviderCall) -> str:
        return job_link(call.job_id, call.job) if call.job_id else "—"

    @admin.display(description="Error")
    def short_error(self, call: ProviderCall) -> str:
        return call.error[:60]

    @admin.display(description="Request body")
    def request_pretty(self, call: ProviderCall) -> str:
        return format_html("<pre>{}</pre>", _pretty(call.request_body))

    @admin.display(description="Response body")
    def response_pretty(self, call: ProviderCall) -> str:
        return format_html("<pre>{}</pre>", _pretty(call.response_body))


admin.site.register(Job, JobAdmin)
admin.site.register(ProviderCall, ProviderCallAdmin)
