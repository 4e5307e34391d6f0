"""mjweb's admin site and the pieces every audited admin shares.

- `MjwebAdminSite`: Django's admin plus the usage report and the CSV exports
  (backoffice.report_views), linked from the index for whoever may see them.
- `AuditedAdmin`: a ModelAdmin whose every add, change and delete (change form, list-editable
  rows, "delete selected") writes its audit entry in the same transaction.
- `ReadOnlyAdmin`: rows nobody adds, changes or deletes through the admin, superusers included.
- `ask_reason`: the confirmation page of an action that needs a reason.
- Filters that cost no query to draw, and a paginator that does not count a whole big table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django import forms
from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections, models, transaction
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path
from django.utils import timezone
from django.utils.functional import cached_property

from gallery.models import ProviderAccount
from mjweb import audit, throttle
from mjweb.models import AuditEntry


class AccountFilter(admin.SimpleListFilter):
    """Rows by provider account, listed from the accounts' own small table (a filter over
    the recorded names would scan the whole table for them)."""

    title = "provider account"
    parameter_name = "provider"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Sequence[tuple[str, str]]:
        return [(a.name, str(a)) for a in ProviderAccount.objects.only("name", "label")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(provider=value) if value else queryset


class MjwebAdminSite(admin.AdminSite):
    site_header = "mjweb admin"
    site_title = "mjweb admin"
    index_title = "Audit and operations"
    index_template = "admin/mjweb/index.html"

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        """The admin's login, counted per address like the site's (mjweb.throttle)."""
        if request.method == "POST" and (limit := throttle.limited(request, "login")):
            return throttle.refused(request, limit)
        return super().login(request, extra_context)

    def get_urls(self) -> list[URLPattern | URLResolver]:
        from backoffice import report_views

        def view(function: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            return self.admin_view(function)

        return [
            path("reports/usage/", view(report_views.usage), name="reports_usage"),
            path("reports/signups/", view(report_views.signups), name="reports_signups"),
            path("reports/usage.csv", view(report_views.usage_csv), name="reports_usage_csv"),
            path("reports/costs.csv", view(report_views.costs_csv), name="reports_costs_csv"),
            path(
                "reports/endpoints.csv",
                view(report_views.endpoints_csv),
                name="reports_endpoints_csv",
            ),
            path("reports/ledger.csv", view(report_views.ledger_csv), name="reports_ledger_csv"),
            path("reports/jobs.csv", view(report_views.jobs_csv), name="reports_jobs_csv"),
            *super().get_urls(),
        ]

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        context["can_view_reports"] = request.user.has_perm("mjweb.view_reports")
        if request.user.is_staff:
            # A small table: the accounts the operators must hear about on every page.
            context["disabled_accounts"] = list(ProviderAccount.objects.disabled())
            context["low_accounts"] = list(ProviderAccount.objects.low_on_balance())
        return context


class EstimatedCountPaginator(Paginator):
    """Exact counts, except for a whole large table on PostgreSQL.

    The changelist counts its filtered rows on every page; unfiltered, that is a full scan,
    which on PostgreSQL grows with the table. Past `exact_below` rows the planner's estimate
    (pg_class.reltuples, kept by autovacuum) is used instead. Filtered lists count exactly:
    their filters are indexed.
    """

    exact_below = 500_000

    @cached_property
    def count(self) -> int:  # type: ignore[override]
        rows = self.object_list
        if isinstance(rows, QuerySet) and not rows.query.where and not rows.query.distinct:
            connection = connections[rows.db]
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                        [rows.model._meta.db_table],
                    )
                    found = cursor.fetchone()
                estimate = int(found[0]) if found else -1
                if estimate >= self.exact_below:
                    return estimate
        return super().count


class ReadOnlyAdmin(admin.ModelAdmin):
    """Audit rows: nobody adds, changes or deletes them, superusers included."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def object_pk(object_id: str) -> int:
    """The integer primary key in an admin URL, or 404 (a URL is not an error to log)."""
    text = str(object_id)
    if not text.isdigit():
        raise Http404("No such object.")
    return int(text)


def _reason(request: HttpRequest) -> str:
    return str(request.POST.get("audit_reason", ""))


class AuditedAdmin(admin.ModelAdmin):
    """Every add, change and delete made here writes an AuditEntry in the same transaction.

    Django's admin runs the change form, the list-editable rows and the delete view each in
    one transaction; "delete selected" is wrapped here. The change form asks for an optional
    reason (templates/admin/mjweb/audited_change_form.html).
    """

    change_form_template = "admin/mjweb/audited_change_form.html"

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # The instance already holds the submitted values: read the stored ones.
        stored = type(obj)._default_manager.filter(pk=obj.pk).first() if change else None
        form._audit_before = audit.snapshot(stored) if stored is not None else None
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # After the many-to-many fields are saved, so a group's permissions are in `after`.
        after = audit.snapshot(form.instance)
        before = getattr(form, "_audit_before", None)
        if before is None:
            verb, old, new = AuditEntry.Verb.ADD, None, after
        else:
            verb = AuditEntry.Verb.CHANGE
            # A timestamp the save itself moves (auto_now) is not a change anyone made.
            stamps = [
                f.name for f in form.instance._meta.concrete_fields if getattr(f, "auto_now", False)
            ]
            old, new = audit.changes(
                {k: v for k, v in before.items() if k not in stamps},
                {k: v for k, v in after.items() if k not in stamps},
            )
            if not new:
                return
        audit.record(
            actor=request.user,
            verb=verb,
            obj=form.instance,
            before=old,
            after=new,
            reason=_reason(request),
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        # Recorded first, while the object still has its primary key; the delete view's
        # transaction takes both back if the delete fails.
        self._record_delete(request, obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        with transaction.atomic(using=queryset.db):
            for obj in queryset:
                self._record_delete(request, obj)
            super().delete_queryset(request, queryset)

    def _record_delete(self, request: HttpRequest, obj: Any) -> None:
        audit.record(
            actor=request.user,
            verb=AuditEntry.Verb.DELETE,
            obj=obj,
            before=audit.snapshot(obj),
            reason=_reason(request),
        )


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=audit.MAX_REASON,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Required. Kept in the audit log with what changed.",
        error_messages={"required": "Say why: a reason is required."},
    )

    def __init__(self, *args: Any, optional: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.optional = optional
        if optional:
            self.fields["reason"].required = False
            self.fields["reason"].help_text = "Optional. Kept in the audit log."

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason and not self.optional:
            raise forms.ValidationError("Say why: a reason is required.")
        return reason


def ask_reason(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    title: str,
    explanation: str,
    objects: Sequence[models.Model],
    action: str = "",
    form: ReasonForm | None = None,
    confirm: str = "Confirm",
) -> TemplateResponse:
    """The page that asks why before an action runs. With `action` it posts back to the
    changelist as that bulk action (Django's pattern for intermediate pages); without it
    it posts to the page's own URL."""
    opts = model_admin.model._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "explanation": explanation,
        "objects": objects,
        "action": action,
        "selected": [obj.pk for obj in objects],
        "form": form or ReasonForm(),
        "confirm": confirm,
        "opts": opts,
        "app_label": opts.app_label,
    }
    return TemplateResponse(request, "admin/mjweb/reason_form.html", context)


def reason_for_action(request: HttpRequest, *, optional: bool = False) -> tuple[bool, ReasonForm]:
    """(applied, form) for a bulk action's second step: `applied` once a reason was sent."""
    if "apply" not in request.POST:
        return False, ReasonForm(optional=optional)
    form = ReasonForm(request.POST, optional=optional)
    return form.is_valid(), form


def choice_filter(
    field: str, title: str, choices: Sequence[tuple[str, str]]
) -> type[admin.SimpleListFilter]:
    """A list filter over fixed values: drawing it costs no query (a field without
    choices would get a SELECT DISTINCT over the whole table)."""

    class ChoiceFilter(admin.SimpleListFilter):
        parameter_name = field

        def lookups(self, request: HttpRequest, model_admin: Any) -> Sequence[tuple[str, str]]:
            return choices

        def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
            value = self.value()
            return queryset.filter(**{field: value}) if value else queryset

    ChoiceFilter.title = title
    return ChoiceFilter


def q_filter(
    parameter: str, title: str, options: dict[str, tuple[str, Q]]
) -> type[admin.SimpleListFilter]:
    """A list filter whose options are fixed conditions (value -> (label, Q))."""

    class ConditionFilter(admin.SimpleListFilter):
        parameter_name = parameter

        def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
            return [(value, label) for value, (label, _) in options.items()]

        def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
            chosen = options.get(self.value() or "")
            return queryset.filter(chosen[1]) if chosen else queryset

    ConditionFilter.title = title
    return ConditionFilter


@admin.display(description="When", ordering="created_at")
def created(obj: Any) -> str:
    """A list column: the creation time, short and sortable (2026-03-01 14:05:09)."""
    return timezone.localtime(obj.created_at).strftime("%Y-%m-%d %H:%M:%S")
