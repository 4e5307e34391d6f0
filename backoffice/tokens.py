"""Users' API tokens: seen (never their secret, which is not stored) and revoked by staff."""

from __future__ import annotations

from django.contrib import admin
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from backoffice.site import ReadOnlyAdmin
from mjweb import audit
from mjweb.models import ApiToken, AuditEntry


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ["name", "user", "hint", "created_at", "last_used_at", "expires_at", "state"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "user__username", "hint"]
    list_select_related = ["user"]
    fields = ["user", "name", "hint", "created_at", "last_used_at", "expires_at", "revoked_at"]
    actions = ["revoke"]

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Only so that the revoke action is offered; every field stays read-only.
        return bool(request.user.has_perm("mjweb.change_apitoken")) and obj is None

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = 0
        with transaction.atomic():
            for token in queryset.filter(revoked_at__isnull=True).select_for_update():
                token.revoked_at = timezone.now()
                token.save(update_fields=["revoked_at"])
                audit.record(
                    actor=request.user,
                    verb=AuditEntry.Verb.CHANGE,
                    obj=token,
                    after={"revoked_at": token.revoked_at.isoformat()},
                    reason="Revoked in the admin.",
                )
                count += 1
        self.message_user(request, f"{count} token(s) revoked.")
