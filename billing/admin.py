from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from billing import ledger
from billing.models import CreditAccount, EntryKind, LedgerEntry, Price, Quota
from gallery.admin import ReadOnlyAdmin


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    list_display = ["user", "allowed_modes", "jobs_per_day", "jobs_at_once"]
    search_fields = ["user__username", "user__email"]
    raw_id_fields = ["user"]


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
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


class EntryInline(admin.TabularInline):
    model = LedgerEntry
    extra = 0
    can_delete = False
    ordering = ["-id"]
    fields = ["created_at", "kind", "amount", "balance_after", "held_after", "job", "actor", "memo"]
    readonly_fields = fields
    show_change_link = True
    max_num = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[LedgerEntry]:
        return super().get_queryset(request).select_related("job", "actor")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CreditAccount)
class CreditAccountAdmin(ReadOnlyAdmin):
    """Balances are read-only here: they move only through the ledger (the grant form)."""

    list_display = ["user", "balance", "held", "available", "updated_at"]
    search_fields = ["user__username", "user__email"]
    list_select_related = ["user"]
    fields = ["user", "balance", "held", "available", "updated_at"]
    readonly_fields = fields
    inlines = [EntryInline]
    change_form_template = "admin/billing/creditaccount/change_form.html"

    @admin.display(description="Available")
    def available(self, account: CreditAccount) -> int:
        return account.available

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:pk>/credit/",
                self.admin_site.admin_view(self.credit_view),
                name="billing_creditaccount_credit",
            ),
            *super().get_urls(),
        ]

    def has_credit_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.add_ledgerentry")

    def credit_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        account = get_object_or_404(CreditAccount.objects.select_related("user"), pk=pk)
        if not self.has_credit_permission(request):
            raise PermissionDenied
        form = CreditForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            key = f"admin:{data['key']}"
            try:
                if data["kind"] == EntryKind.GRANT:
                    ledger.grant(
                        account.user,
                        data["amount"],
                        key=key,
                        memo=data["reason"],
                        actor=request.user,  # type: ignore[arg-type]
                    )
                else:
                    ledger.adjust(
                        account.user,
                        data["amount"],
                        actor=request.user,  # type: ignore[arg-type]
                        reason=data["reason"],
                        key=key,
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
        "created_at",
        "account",
        "kind",
        "amount",
        "balance_after",
        "held_after",
        "job",
        "actor",
        "memo",
    ]
    list_filter = ["kind"]
    search_fields = ["key", "account__user__username", "memo", "job__code"]
    date_hierarchy = "created_at"
    list_select_related = ["account__user", "job", "actor"]
    show_full_result_count = False
    raw_id_fields = ["account", "job", "actor"]
