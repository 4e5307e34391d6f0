"""Provider accounts in the admin: how each is reached, its costs, its state; and the
provider's own task log, with what reconciliation found."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet, Sum
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from backoffice.jobs import job_link
from backoffice.site import AuditedAdmin, ReadOnlyAdmin
from gallery import reconcile, routing
from gallery.models import Finding, Protocol, ProviderAccount, ProviderCost, ProviderTask
from mjweb import catalogue, vault

KEEP = "Leave empty to keep the stored one; it is never shown again once saved."


class ProviderAccountForm(forms.ModelForm):
    base_url = forms.URLField(
        required=False,
        assume_scheme="https",
        max_length=300,
        help_text="The service's base URL, without /mj (the simulator's own when empty).",
    )
    api_key = forms.CharField(
        required=False, strip=True, widget=forms.PasswordInput(render_value=False), help_text=KEEP
    )
    console_token = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        label="Console access token",
        help_text="new-api's console token (CometAPI: the account's access token, not the "
        "API key), for the balance and the task log. " + KEEP,
    )
    clear_console_token = forms.BooleanField(required=False, label="Remove the console token")
    modes = forms.MultipleChoiceField(
        choices=catalogue.choices(catalogue.MODE_NAMES),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The speed modes it is sent; none ticked: every mode.",
    )

    class Meta:
        model = ProviderAccount
        fields = [
            "name",
            "label",
            "protocol",
            "base_url",
            "modes",
            "running",
            "queued",
            "weight",
            "enabled",
            "private_network",
            "low_balance_below",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        account = self.instance
        if account.from_environment:
            return data
        adding = account.pk is None
        protocol = data.get("protocol")
        if adding and not data.get("api_key") and protocol != Protocol.SIMULATOR:
            self.add_error("api_key", "The provider's API key is required.")
        if protocol and protocol != Protocol.SIMULATOR and not data.get("base_url"):
            self.add_error("base_url", "The service's base URL is required.")
        if data.get("running") == 0:
            self.add_error("running", "An account runs at least one task at once.")
        return data

    def save(self, commit: bool = True) -> ProviderAccount:
        account: ProviderAccount = super().save(commit=False)
        if self.cleaned_data.get("api_key"):
            account.api_key = self.cleaned_data["api_key"]
        if self.cleaned_data.get("clear_console_token"):
            account.console_token = ""
        elif self.cleaned_data.get("console_token"):
            account.console_token = self.cleaned_data["console_token"]
        if commit:
            account.save()
        return account


class ProviderCostInline(admin.TabularInline):
    model = ProviderCost
    extra = 0
    fields = ["action", "mode", "model_id", "price"]
    verbose_name = "provider cost"
    verbose_name_plural = "What the provider charges (dollars a request), per action and mode"


# Fields the environment variables set for the environment's account.
ENVIRONMENT_FIELDS = ["protocol", "base_url", "running", "queued", "private_network"]


@admin.register(ProviderAccount)
class ProviderAccountAdmin(AuditedAdmin):
    form = ProviderAccountForm
    inlines = [ProviderCostInline]
    list_display = [
        "name",
        "label",
        "protocol",
        "state",
        "load",
        "weight",
        "balance_column",
        "reconciled_at",
    ]
    list_filter = ["enabled", "protocol"]
    search_fields = ["name", "label", "base_url"]
    actions = ["enable_accounts", "disable_accounts", "reconcile_now"]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        if obj is None:  # a new account: nothing stored yet to show
            connection = ["protocol", "base_url", "api_key"]
            state = ["enabled"]
            bill = ["console_token", "low_balance_below"]
        else:
            connection = ["protocol", "base_url", "api_key", "key_hint"]
            if obj.from_environment:
                connection = ["environment_note", "protocol", "base_url", "key_hint"]
            state = ["enabled", "disabled_reason", "disabled_at"]
            bill = ["console_token", "clear_console_token", "console_hint", "balance"]
            bill += ["balance_checked_at", "low_balance_below", "reconciled_at", "reconcile_error"]
        return [
            (None, {"fields": ["name", "label"]}),
            ("How it is reached", {"fields": connection}),
            (
                "What it takes",
                {"fields": ["modes", "running", "queued", "weight", "private_network"]},
            ),
            ("State", {"fields": state}),
            ("Bill and balance", {"fields": bill}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = ["key_hint", "console_hint", "disabled_reason", "disabled_at", "environment_note"]
        fields += ["balance", "balance_checked_at", "reconciled_at", "reconcile_error"]
        if obj is not None:
            fields.append("name")  # jobs record it
            if obj.from_environment:
                fields += ENVIRONMENT_FIELDS
        return fields

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, **kwargs)
        if obj is not None and obj.from_environment:
            form.base_fields.pop("api_key", None)
        return form

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Jobs and the provider's tasks refer to it: switch it off instead.
        return False

    @admin.display(description="From the environment")
    def environment_note(self, account: ProviderAccount) -> str:
        return (
            "This account is the environment's (MJ_PROVIDER): its protocol, URL, key and "
            "capacity come from the environment variables; change them there."
        )

    @admin.display(description="Stored key")
    def key_hint(self, account: ProviderAccount) -> str:
        return self._hint(lambda: account.connection().api_key)

    @admin.display(description="Stored console token")
    def console_hint(self, account: ProviderAccount) -> str:
        return self._hint(lambda: account.console_token)

    @staticmethod
    def _hint(read: Any) -> str:
        try:
            return vault.hint(read())
        except vault.Unreadable as exc:
            return str(exc)

    @admin.display(description="State")
    def state(self, account: ProviderAccount) -> str:
        if account.enabled:
            return "Enabled"
        return format_html("<strong>Disabled</strong>: {}", account.disabled_reason or "—")

    @admin.display(description="Load")
    def load(self, account: ProviderAccount) -> str:
        connection = account.connection()
        return f"{routing.load(account):.0%} of {connection.capacity}"

    @admin.display(description="Balance", ordering="balance")
    def balance_column(self, account: ProviderAccount) -> str:
        if account.balance is None:
            return "—"
        if account.is_low_on_balance:
            return format_html("<strong>${}</strong> (low)", account.balance)
        return f"${account.balance}"

    @admin.action(description="Enable the selected accounts")
    def enable_accounts(self, request: HttpRequest, queryset: QuerySet[ProviderAccount]) -> None:
        for account in queryset:
            account.enable()
        self.message_user(request, f"{queryset.count()} account(s) take new jobs again.")

    @admin.action(description="Disable the selected accounts")
    def disable_accounts(self, request: HttpRequest, queryset: QuerySet[ProviderAccount]) -> None:
        who = request.user.get_username()
        for account in queryset:
            account.disable(f"Disabled by {who} on {timezone.now():%Y-%m-%d %H:%M}.")
        self.message_user(request, f"{queryset.count()} account(s) take no new jobs.")

    @admin.action(description="Import the provider's bill now")
    def reconcile_now(self, request: HttpRequest, queryset: QuerySet[ProviderAccount]) -> None:
        for account in queryset:
            if not account.console_token_sealed:
                self.message_user(
                    request, f"{account.name} has no console access token.", messages.WARNING
                )
                continue
            outcome = reconcile.reconcile(account)
            level = messages.ERROR if outcome.error else messages.SUCCESS
            self.message_user(request, str(outcome), level)


class FindingFilter(admin.SimpleListFilter):
    title = "finding"
    parameter_name = "finding"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("discrepancies", "To look at"), *Finding.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ProviderTask]) -> Any:
        value = self.value()
        if value == "discrepancies":
            return queryset.discrepancies()
        return queryset.filter(finding=value) if value else queryset


@admin.register(ProviderTask)
class ProviderTaskAdmin(ReadOnlyAdmin):
    """The provider's own task log as last imported; orphans and billed-but-refunded tasks
    first to look at (the "To look at" filter)."""

    list_display = [
        "task_id",
        "account",
        "finding",
        "action",
        "status",
        "model_name",
        "cost_column",
        "job_column",
        "submitted_at",
    ]
    list_filter = [FindingFilter, "account", "status"]
    search_fields = ["task_id", "model_name", "job__code"]
    list_select_related = ["account", "job"]
    fields = [
        "account",
        "task_id",
        "finding",
        "action",
        "status",
        "model_name",
        "cost",
        "job_column",
        "submitted_at",
        "finished_at",
        "imported_at",
    ]
    readonly_fields = ["job_column"]

    @admin.display(description="Cost", ordering="cost")
    def cost_column(self, task: ProviderTask) -> str:
        return f"${task.cost.normalize():f}" if task.cost else "$0"

    @admin.display(description="Job")
    def job_column(self, task: ProviderTask) -> str:
        return job_link(task.job_id, task.job) if task.job_id else "—"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> Any:
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            total = changelist.queryset.aggregate(total=Sum("cost"))["total"] or Decimal(0)
            response.context_data["title"] = (
                f"Provider tasks ({changelist.result_count}, ${total.normalize():f} billed)"
            )
        return response
