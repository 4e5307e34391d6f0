"""Credits in the admin: balances and the ledger read-only, prices and quotas editable with
every change audited, and the grant/adjust form (ledger entry and audit entry in one
transaction)."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from backoffice.jobs import job_link
from backoffice.site import (
    AuditedAdmin,
    EstimatedCountPaginator,
    ReadOnlyAdmin,
    created,
    q_filter,
)
from billing import ledger, operations, quotas
from billing.models import MODES, CreditAccount, EntryKind, LedgerEntry, Price, Quota


@admin.register(Quota)
class QuotaAdmin(AuditedAdmin):
    list_display = ["user", "allowed_modes", "jobs_per_day", "jobs_at_once"]
    search_fields = ["user__username", "user__email"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]


@admin.register(Price)
class PriceAdmin(AuditedAdmin):
    list_display = ["action", "mode", "credits", "updated_at"]
    list_editable = ["credits"]
    list_filter = ["mode", "action"]
    ordering = ["action", "mode"]


class CreditForm(forms.Form):
    """Credits an admin gives or corrects; the reason is kept on the ledger entry."""

    KIND_CHOICES = [
        (EntryKind.GRANT, "Grant (adds credits)"),
        (EntryKind.ADJUSTMENT, "Adjustment (adds or, with a minus sign, takes away)"),
    ]
    kind = forms.ChoiceField(choices=KIND_CHOICES, initial=EntryKind.GRANT)
    amount = forms.IntegerField(help_text="Credits (1 credit = $0.001 with the default prices).")
    reason = forms.CharField(
        max_length=500, widget=forms.Textarea(attrs={"rows": 2}), help_text="Required."
    )
    # One per form shown: a double submit records one entry.
    key = forms.UUIDField(widget=forms.HiddenInput, initial=uuid.uuid4)

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why: a reason is required.")
        return reason

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        amount = data.get("amount")
        if amount == 0:
            self.add_error("amount", "An amount of 0 changes nothing.")
        if data.get("kind") == EntryKind.GRANT and amount is not None and amount < 0:
            self.add_error("amount", "A grant adds credits; use an adjustment to take some away.")
        return data


@admin.register(CreditAccount)
class CreditAccountAdmin(ReadOnlyAdmin):
    """Balances are read-only here: they move only through the ledger (the grant form)."""

    list_display = ["user", "balance", "held", "available", "updated_at"]
    search_fields = ["user__username", "user__email"]
    list_select_related = ["user"]
    fields = ["user", "balance", "held", "available", "updated_at"]
    readonly_fields = fields
    change_form_template = "admin/billing/creditaccount/change_form.html"
    # Shown on the account's page; the ledger list has the rest.
    RECENT = 50

    @admin.display(description="Available")
    def available(self, account: CreditAccount) -> int:
        return account.available

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:pk>/credit/",
                self.admin_site.admin_view(self.credit_view),
                name="billing_creditaccount_credit",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = dict(extra_context or {})
        account = self.get_object(request, unquote(object_id))
        if account is not None:
            context["recent_entries"] = account.entries.select_related("job", "actor").order_by(
                "-id"
            )[: self.RECENT]
            context["entries_url"] = (
                reverse("admin:billing_ledgerentry_changelist")
                + f"?account__id__exact={account.pk}"
            )
        return super().change_view(request, object_id, form_url, context)

    def has_credit_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.add_ledgerentry")

    def credit_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        account = get_object_or_404(CreditAccount.objects.select_related("user"), pk=pk)
        if not self.has_credit_permission(request):
            raise PermissionDenied
        form = CreditForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                operations.credit(
                    account,
                    actor=request.user,
                    kind=data["kind"],
                    amount=data["amount"],
                    reason=data["reason"],
                    key=data["key"],
                )
            except ledger.LedgerError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(
                    request, f"Recorded {data['amount']:+d} credits for {account.user}."
                )
                return redirect(reverse("admin:billing_creditaccount_change", args=[pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Grant or adjust credits: {account.user}",
            "account": account,
            "form": form,
            "opts": self.model._meta,
            "original": account,
        }
        return TemplateResponse(request, "admin/billing/creditaccount/credit.html", context)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = [
        created,
        "user_column",
        "kind",
        "amount",
        "balance_delta",
        "held_delta",
        "balance_after",
        "held_after",
        "job_column",
        "actor",
        "memo",
    ]
    list_filter = [
        "kind",
        q_filter(
            "by",
            "made by",
            {
                "admin": ("An admin", Q(actor__isnull=False)),
                "system": ("The system", Q(actor__isnull=True)),
            },
        ),
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["key", "account__user__username", "memo", "job__code"]
    list_select_related = ["account__user", "job", "actor"]
    show_full_result_count = False
    # Facet counts would run a COUNT per filter option over the whole table.
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    raw_id_fields = ["account", "job", "actor"]

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # Links from a user's, an account's and a job's page.
        allowed = ("account__id__exact", "account__user__id__exact", "job__id__exact")
        return lookup in allowed or super().lookup_allowed(lookup, value, request)

    @admin.display(description="User", ordering="account__user__username")
    def user_column(self, entry: LedgerEntry) -> str:
        user = entry.account.user
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:mjweb_user_change", args=[user.pk]), user
        )

    @admin.display(description="Job")
    def job_column(self, entry: LedgerEntry) -> str:
        return job_link(entry.job_id, entry.job.label if entry.job else "")


def quota_parts(quota: Quota | None) -> list[tuple[str, bool]]:
    """A user's effective limits as short texts, each with whether it is the site default
    (the Quota row's field is empty or there is no row); no query."""
    limits = quotas.effective(quota)
    day, once = limits.jobs_per_day, limits.jobs_at_once
    modes = "all modes" if len(limits.modes) == len(MODES) else ", ".join(limits.modes)
    return [
        (modes, "modes" in limits.inherited),
        ("no daily limit" if day == 0 else f"{day}/day", "jobs_per_day" in limits.inherited),
        (
            "no limit at once" if once == 0 else f"{once} at once",
            "jobs_at_once" in limits.inherited,
        ),
    ]


def quota_summary(quota: Quota | None) -> str:
    """Plain text: "relax · 3/day · 10 at once (default)"."""
    return " · ".join(
        f"{text} (default)" if inherited else text for text, inherited in quota_parts(quota)
    )
