"""Users (with their credits, limits and suspension), groups and the audit log in the admin.

Every change made here is audited (backoffice.site.AuditedAdmin); the audit log itself is
read-only for everyone, superusers included.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db import transaction
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from backoffice.credits import quota_parts, quota_summary
from backoffice.site import (
    AuditedAdmin,
    ReadOnlyAdmin,
    ReasonForm,
    ask_reason,
    created,
    object_pk,
    q_filter,
    reason_for_action,
)
from billing import ledger, quotas
from gallery.models import Job
from mjweb import audit
from mjweb.models import AuditEntry, User

SUSPEND = "mjweb.suspend_user"


def jobs_today() -> Subquery:
    """Per user, the jobs that count against today's limit (Job.objects.counted_against_day)."""
    start, _ = quotas.day_window()
    counted = (
        Job.objects.filter(owner=OuterRef("pk"))
        .counted_against_day(start)
        .order_by()
        .values("owner")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Subquery(counted)


def _account(user: User) -> Any:
    try:
        return user.credit_account  # type: ignore[attr-defined]
    except ObjectDoesNotExist:
        return None


def _quota(user: User) -> Any:
    try:
        return user.quota  # type: ignore[attr-defined]
    except ObjectDoesNotExist:
        return None


OPERATIONS = {
    "suspend": {
        "title": "Suspend",
        "explanation": "A suspended user can still log in and see their gallery, but every "
        "new job is refused. Jobs already in flight finish normally.",
    },
    "reactivate": {
        "title": "Reactivate",
        "explanation": "The user can submit jobs again.",
    },
}


# The studio's part of a user's page: shown, never edited here (remix_mode aside).
STUDIO_READ_ONLY = [
    "signup_ip",
    "email_verified_at",
    "suspension",
    "credits",
    "limits",
    "jobs_today",
    "links",
]


@admin.register(User)
class UserAdmin(AuditedAdmin, BaseUserAdmin):
    list_display = [
        "username",
        "email",
        "is_staff",
        "suspended",
        "balance",
        "held",
        "available",
        "jobs_today",
        "limits_column",
        "signup_ip",
    ]
    search_fields = ["username", "first_name", "last_name", "email", "=signup_ip"]
    list_filter = [
        "is_staff",
        q_filter(
            "suspended",
            "suspended",
            {
                "yes": ("Suspended", Q(suspended_at__isnull=False)),
                "no": ("Not suspended", Q(suspended_at__isnull=True)),
            },
        ),
        "is_superuser",
        "is_active",
        "groups",
    ]
    list_select_related = ["credit_account", "quota"]
    show_facets = admin.ShowFacets.NEVER
    change_form_template = "admin/mjweb/user/change_form.html"
    actions = ["suspend_users", "reactivate_users"]
    fieldsets = [
        *BaseUserAdmin.fieldsets,
        ("Studio", {"fields": ["remix_mode", *STUDIO_READ_ONLY]}),
    ]
    readonly_fields = STUDIO_READ_ONLY

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return super().get_queryset(request).annotate(counted_today=Coalesce(jobs_today(), 0))

    # --- columns ---

    @admin.display(description="Suspended", boolean=True, ordering="suspended_at")
    def suspended(self, user: User) -> bool:
        return user.suspended_at is not None

    @admin.display(description="Balance", ordering="credit_account__balance")
    def balance(self, user: User) -> int:
        account = _account(user)
        return account.balance if account else 0

    @admin.display(description="Held", ordering="credit_account__held")
    def held(self, user: User) -> int:
        account = _account(user)
        return account.held if account else 0

    @admin.display(description="Available")
    def available(self, user: User) -> int:
        account = _account(user)
        return account.available if account else 0

    @admin.display(description="Jobs today", ordering="counted_today")
    def jobs_today(self, user: User) -> int:
        return int(getattr(user, "counted_today", 0))

    @admin.display(description="Limits")
    def limits(self, user: User) -> str:
        return quota_summary(_quota(user))

    @admin.display(description="Limits")
    def limits_column(self, user: User) -> str:
        # Site defaults greyed out; the user's own limits (their Quota) in plain text.
        return format_html_join(
            " · ",
            '<span class="{}" title="{}">{}</span>',
            (
                ("quiet" if inherited else "", "site default" if inherited else "own", text)
                for text, inherited in quota_parts(_quota(user))
            ),
        )

    @admin.display(description="Suspension")
    def suspension(self, user: User) -> str:
        if user.suspended_at is None:
            return "Not suspended"
        return f"Suspended since {user.suspended_at:%Y-%m-%d %H:%M} (see the audit log for why)"

    @admin.display(description="Credits")
    def credits(self, user: User) -> str:
        account = _account(user)
        if account is None:
            return "No account yet"
        return format_html(
            '{} balance, {} held, {} available · <a href="{}">account and ledger</a>',
            account.balance,
            account.held,
            account.available,
            reverse("admin:billing_creditaccount_change", args=[account.pk]),
        )

    @admin.display(description="See also")
    def links(self, user: User) -> str:
        if user.pk is None:
            return "—"
        user_type = ContentType.objects.get_for_model(User)
        targets = [
            ("Jobs", "admin:gallery_job_changelist", f"owner__id__exact={user.pk}"),
            (
                "Ledger entries",
                "admin:billing_ledgerentry_changelist",
                f"account__user__id__exact={user.pk}",
            ),
            (
                "Audit entries about this user",
                "admin:mjweb_auditentry_changelist",
                f"content_type__id__exact={user_type.pk}&object_id={user.pk}",
            ),
            ("Usage report", "admin:reports_usage", f"user={user.username}"),
        ]
        return format_html_join(
            " · ", '<a href="{}?{}">{}</a>', ((reverse(n), q, label) for label, n, q in targets)
        )

    # --- suspend and reactivate: from the list (bulk) or the user's page ---

    def has_suspend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(SUSPEND)

    def get_urls(self) -> list[URLPattern]:
        def view(function: Any) -> Any:
            return self.admin_site.admin_view(function)

        return [
            path("<path:object_id>/suspend/", view(self.suspend_view), name="mjweb_user_suspend"),
            path(
                "<path:object_id>/reactivate/",
                view(self.reactivate_view),
                name="mjweb_user_reactivate",
            ),
            path("<path:object_id>/credits/", view(self.credits_view), name="mjweb_user_credits"),
            *super().get_urls(),
        ]

    def suspend_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._operate_one(request, object_id, "suspend")

    def reactivate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._operate_one(request, object_id, "reactivate")

    def _operate_one(self, request: HttpRequest, object_id: str, operation: str) -> HttpResponse:
        if not self.has_suspend_permission(request):
            raise PermissionDenied
        user = get_object_or_404(User, pk=object_pk(object_id))
        spec = OPERATIONS[operation]
        form = ReasonForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            self._apply([user], operation, request, form.cleaned_data["reason"])
            return redirect(reverse("admin:mjweb_user_change", args=[user.pk]))
        return ask_reason(
            self,
            request,
            title=f"{spec['title']}: {user}",
            explanation=spec["explanation"],
            objects=[user],
            form=form,
            confirm=spec["title"],
        )

    def _bulk(self, request: HttpRequest, queryset: QuerySet[User], operation: str) -> Any:
        users = list(queryset[:500])
        applied, form = reason_for_action(request)
        spec = OPERATIONS[operation]
        if not applied:
            return ask_reason(
                self,
                request,
                title=f"{spec['title']} users",
                explanation=spec["explanation"],
                objects=users,
                action=f"{operation}_users",
                form=form,
                confirm=spec["title"],
            )
        self._apply(users, operation, request, form.cleaned_data["reason"])
        return None

    def _apply(self, users: list[User], operation: str, request: HttpRequest, reason: str) -> None:
        done = 0
        for user in users:
            method = user.suspend if operation == "suspend" else user.reactivate
            done += method(actor=request.user, reason=reason)
        past = "suspended" if operation == "suspend" else "reactivated"
        unchanged = len(users) - done
        note = f" ({unchanged} already were)" if unchanged else ""
        self.message_user(request, f"{done} user(s) {past}{note}.", messages.SUCCESS)

    @admin.action(description="Suspend (new jobs refused)", permissions=["suspend"])
    def suspend_users(self, request: HttpRequest, queryset: QuerySet[User]) -> Any:
        return self._bulk(request, queryset, "suspend")

    @admin.action(description="Reactivate", permissions=["suspend"])
    def reactivate_users(self, request: HttpRequest, queryset: QuerySet[User]) -> Any:
        return self._bulk(request, queryset, "reactivate")

    def credits_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The grant form of the user's account (opened empty if they have none yet)."""
        if not request.user.has_perm("billing.add_ledgerentry"):
            raise PermissionDenied
        user = get_object_or_404(User, pk=object_pk(object_id))
        account = ledger.account_for(user)
        return redirect(reverse("admin:billing_creditaccount_credit", args=[account.pk]))

    # --- the password form: audited too, in one transaction with the change ---

    def user_change_password(
        self, request: HttpRequest, id: str, form_url: str = ""
    ) -> HttpResponse:
        with transaction.atomic():
            request._audit_password = True  # type: ignore[attr-defined]
            return super().user_change_password(request, id, form_url)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        if getattr(request, "_audit_password", False):
            audit.record(
                actor=request.user,
                verb=AuditEntry.Verb.PASSWORD,
                obj=obj,
                after={"usable_password": obj.has_usable_password()},
            )
        return super().log_change(request, obj, message)


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(AuditedAdmin, BaseGroupAdmin):
    """Groups carry permissions: who gave whom which rights is audited too."""


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = [created, "actor", "verb", "object_column", "short_reason"]
    list_filter = [
        "verb",
        ("content_type", admin.RelatedOnlyFieldListFilter),
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["object_repr", "object_id", "reason", "actor__username"]
    list_select_related = ["actor", "content_type"]
    show_full_result_count = False
    # Facet counts would run a COUNT per filter option over the whole table.
    show_facets = admin.ShowFacets.NEVER
    fields = [
        "created_at",
        "actor",
        "verb",
        "object_column",
        "reason",
        "changes_table",
    ]
    readonly_fields = ["object_column", "changes_table"]

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        return lookup in ("object_id", "content_type__id__exact") or super().lookup_allowed(
            lookup, value, request
        )

    @admin.display(description="Object")
    def object_column(self, entry: AuditEntry) -> str:
        label = entry.object_repr or "—"
        if entry.content_type_id is None:
            return label
        kind = entry.content_type.name if entry.content_type else ""
        try:
            url = reverse(
                f"admin:{entry.content_type.app_label}_{entry.content_type.model}_change",
                args=[entry.object_id],
            )
        except NoReverseMatch:
            return format_html("{} ({})", label, kind)
        return format_html('<a href="{}">{}</a> ({})', url, label, kind)

    @admin.display(description="Reason")
    def short_reason(self, entry: AuditEntry) -> str:
        return entry.reason if len(entry.reason) <= 80 else entry.reason[:79] + "…"

    @admin.display(description="What changed")
    def changes_table(self, entry: AuditEntry) -> str:
        before, after = entry.before or {}, entry.after or {}
        keys = list(dict.fromkeys([*before, *after]))
        if not keys:
            return "—"

        def show(side: dict[str, Any], key: str) -> str:
            if key not in side:
                return ""
            return json.dumps(side[key], ensure_ascii=False, indent=1)

        rows = format_html_join(
            "",
            "<tr><th>{}</th><td><pre>{}</pre></td><td><pre>{}</pre></td></tr>",
            ((key, show(before, key), show(after, key)) for key in keys),
        )
        return format_html(
            '<table class="audit-changes"><thead><tr><th>Field</th><th>Before</th>'
            "<th>After</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )


def audit_registered(site: admin.AdminSite, models: list[Any]) -> None:
    """Re-register other apps' model admins (axes' login records, django-q2's tasks and
    schedules) so that what an admin changes or deletes there is audited too."""
    for model in models:
        current = site._registry.get(model)
        if current is None or isinstance(current, AuditedAdmin):
            continue
        site.unregister(model)
        audited = type(f"Audited{type(current).__name__}", (AuditedAdmin, type(current)), {})
        site.register(model, audited)
