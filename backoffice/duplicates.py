"""Jobs that may have two tasks at the provider, for the operator to check against its bill."""

from __future__ import annotations

from django.contrib import admin

from backoffice.jobs import job_link
from backoffice.site import AccountFilter, ReadOnlyAdmin, created
from gallery.models import SuspectedDuplicate


@admin.register(SuspectedDuplicate)
class SuspectedDuplicateAdmin(ReadOnlyAdmin):
    list_display = [created, "job_column", "provider", "provider_job_id", "reason"]
    list_filter = [AccountFilter]
    search_fields = ["job__code", "job__provider_job_id", "provider_job_id"]
    list_select_related = ["job"]
    fields = ["created_at", "job_column", "provider", "provider_job_id", "reason"]
    readonly_fields = ["job_column"]

    @admin.display(description="Job")
    def job_column(self, suspect: SuspectedDuplicate) -> str:
        return job_link(suspect.job_id, suspect.job)
