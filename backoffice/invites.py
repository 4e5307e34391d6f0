"""Invitations (MJWEB_SIGNUP_MODE=invite): staff make one per person and send its link."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from backoffice.site import AuditedAdmin
from mjweb.models import Invite


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "Open"), ("used", "Used"), ("expired", "Expired")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Invite]) -> QuerySet[Invite]:
        by_state = {"open": "usable", "used": "used", "expired": "expired"}
        if (method := by_state.get(self.value() or "")) is not None:
            return getattr(queryset, method)()
        return queryset


@admin.register(Invite)
class InviteAdmin(AuditedAdmin):
    list_display = ("__str__", "email", "state", "link", "created_by", "expires_at", "used_by")
    list_filter = (StateFilter,)
    search_fields = ("email", "note", "used_by__username")
    fields = ("email", "note", "expires_at", "link", "state", "created_by", "used_by", "used_at")
    readonly_fields = ("link", "state", "created_by", "used_by", "used_at")
    list_select_related = ("created_by", "used_by")

    @admin.display(description="link to send")
    def link(self, invite: Invite) -> str:
        if invite.pk is None:
            return "Save the invitation to get its link."
        if settings.MJWEB_SIGNUP_MODE != "invite":
            note = " (sign-up is not in invite mode: MJWEB_SIGNUP_MODE=invite)"
        else:
            note = ""
        return format_html("<code>{}{}</code>{}", settings.SITE_URL, invite.path, note)

    @admin.display(description="state")
    def state(self, invite: Invite) -> str:
        if invite.pk is None:
            return "-"
        if invite.state == "used":
            return f"used {invite.used_at:%Y-%m-%d}"
        return invite.state

    def save_model(self, request: HttpRequest, obj: Invite, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)
