from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from gallery.models import Image, Job, ProviderCall


class ReadOnlyAdmin(admin.ModelAdmin):
    """Audit rows: nobody adds, changes or deletes them, superusers included."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ProviderCall)
class ProviderCallAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "provider", "method", "path", "status_code", "latency_ms", "job"]
    list_filter = ["provider", "method", "status_code"]
    search_fields = ["path", "job__code", "job__provider_job_id"]
    date_hierarchy = "created_at"
    list_select_related = ["job"]
    show_full_result_count = False
    raw_id_fields = ["job"]


class ImageInline(admin.TabularInline):
    model = Image
    extra = 0
    can_delete = False
    fields = ["kind", "index", "width", "height", "bytes", "sha256", "file"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "owner",
        "action",
        "mode",
        "status",
        "provider",
        "provider_job_id",
        "cost",
    ]
    list_filter = ["status", "action", "mode", "provider", "fail_kind"]
    search_fields = ["prompt", "provider_job_id", "owner__username", "code"]
    date_hierarchy = "created_at"
    list_select_related = ["owner"]
    raw_id_fields = ["owner", "parent", "root"]
    show_full_result_count = False
    inlines = [ImageInline]
