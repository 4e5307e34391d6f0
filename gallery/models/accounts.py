"""The provider accounts the operator resells: how each is reached, what it may take, what
it charges us, and what its own bill says.

- A job records its account by name (`Job.provider`): a provider's task ids belong to one
  account, so every follow-up goes to its parent's account (gallery.routing).
- The account named by MJ_PROVIDER is the environment's: its protocol, URL, key and
  capacity come from the environment variables, as before accounts existed (a migration
  made it, and `ProviderAccount.objects.environment()` makes it again if it is missing).
- Keys and console tokens are sealed at rest (mjweb.vault) and never shown again once saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from gallery.providers import PROVIDERS
from mjweb import catalogue, vault


class Protocol(models.TextChoices):
    COMETAPI = "cometapi", "CometAPI / midjourney-proxy"
    PIAPI = "piapi", "PiAPI (unified task API)"
    PIAPI_LEGACY = "piapi_legacy", "PiAPI (legacy v2)"
    SIMULATOR = "simulator", "Simulator (mjweb's own)"


# The registry's adapter for each protocol, and the PiAPI dialect it is spoken in.
ADAPTERS: dict[str, tuple[str, dict[str, Any]]] = {
    Protocol.COMETAPI: ("cometapi", {}),
    Protocol.PIAPI: ("piapi", {"api": "unified"}),
    Protocol.PIAPI_LEGACY: ("piapi", {"api": "legacy"}),
    Protocol.SIMULATOR: ("simulator", {}),
}


def default_model_id(action: str, mode: str) -> str:
    """CometAPI's naming of its Midjourney models: `mj-fast-reroll`, `mj-turbo-imagine`."""
    return f"mj-{mode}-{action.replace('_', '-')}"


def default_cost(action: str, mode: str) -> Decimal | None:
    """What the provider charges for one press in a new account's table: the catalogue's
    anchor (CometAPI's `mj-fast-reroll` at $0.056; turbo 3x, relax 3/8), in dollars."""
    credits = catalogue.default_price(action, mode)
    return None if credits is None else Decimal(credits) / 1000


def seed_costs(account: Any, model: Any) -> int:
    """Give `account` the default cost of every priced (action, mode) it has none for, in
    `model` (ProviderCost, or its historical model in a migration); returns how many."""
    made = 0
    # Only the actions `model` knows: a migration's historical model knows those of its time.
    known = {value for value, _ in model._meta.get_field("action").choices}
    for action in catalogue.PRICED_ACTIONS:
        if action not in known:
            continue
        for mode in catalogue.MODE_NAMES:
            price = default_cost(action, mode)
            if price is None:
                continue
            _, created = model.objects.get_or_create(
                account=account,
                action=action,
                mode=mode,
                defaults={"model_id": default_model_id(action, mode), "price": price},
            )
            made += created
    return made


@dataclass(frozen=True)
class Connection:
    """How one account is reached and what it holds at once."""

    protocol: str
    base_url: str
    api_key: str
    running: int
    queued: int
    private_network: bool

    @property
    def capacity(self) -> int:
        return self.running + self.queued

    @property
    def adapter(self) -> str:
        """The registry's provider (gallery.providers.PROVIDERS) that speaks its protocol."""
        return ADAPTERS[self.protocol][0]

    @property
    def options(self) -> dict[str, Any]:
        """The adapter's options this protocol sets (PiAPI's dialect)."""
        return dict(ADAPTERS[self.protocol][1])

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""


class ProviderAccountQuerySet(models.QuerySet["ProviderAccount"]):
    def enabled(self) -> ProviderAccountQuerySet:
        return self.filter(enabled=True)

    def for_new_jobs(self) -> ProviderAccountQuerySet:
        """Accounts a new imagine may go to: enabled ones, of which the only environment
        account is the one MJ_PROVIDER names now (an older one keeps its follow-ups)."""
        return self.enabled().filter(Q(from_environment=False) | Q(name=settings.MJ_PROVIDER))

    def reconcilable(self) -> ProviderAccountQuerySet:
        return self.exclude(console_token_sealed="")

    def disabled(self) -> ProviderAccountQuerySet:
        return self.filter(enabled=False)

    def low_on_balance(self) -> ProviderAccountQuerySet:
        return self.filter(
            low_balance_below__isnull=False,
            balance__isnull=False,
            balance__lt=models.F("low_balance_below"),
        )

    def environment(self) -> ProviderAccount:
        """The account MJ_PROVIDER names, made now if it is missing (a fresh database that
        was flushed, say)."""
        account, _ = self.get_or_create(
            name=settings.MJ_PROVIDER,
            defaults={
                "from_environment": True,
                "protocol": environment_protocol(settings.MJ_PROVIDER),
                "label": environment_label(settings.MJ_PROVIDER),
            },
        )
        return account

    def named(self, name: str) -> ProviderAccount:
        """The account a job names; the environment's is made if it is missing."""
        found = self.filter(name=name).first()
        if found is None and name == settings.MJ_PROVIDER:
            return self.environment()
        if found is None:
            raise ProviderAccount.DoesNotExist(f"There is no provider account named {name!r}.")
        return found


def environment_label(name: str) -> str:
    entry = PROVIDERS.get(name)
    return f"{entry.label} (environment)" if entry else name


def environment_protocol(name: str) -> str:
    if name == "piapi":
        return Protocol.PIAPI_LEGACY if settings.PIAPI_API == "legacy" else Protocol.PIAPI
    return name if name in Protocol.values else Protocol.COMETAPI


class ProviderAccount(models.Model):
    name = models.SlugField(
        max_length=20, unique=True, help_text="What jobs record; cannot change once used."
    )
    label = models.CharField(max_length=80, blank=True)
    protocol = models.CharField(max_length=20, choices=Protocol.choices)
    base_url = models.URLField(
        max_length=300, blank=True, help_text="The service's base URL, without /mj."
    )
    api_key_sealed = models.TextField(blank=True, editable=False)
    # new-api's console access token (not the API key): the balance and the task log.
    console_token_sealed = models.TextField(blank=True, editable=False)
    # Its protocol, URL, key and capacity come from the environment variables.
    from_environment = models.BooleanField(default=False, editable=False)
    # Speed modes it is sent; empty: every mode.
    modes = models.JSONField(default=list, blank=True)
    running = models.PositiveSmallIntegerField(
        default=3, help_text="Tasks the account runs at once."
    )
    queued = models.PositiveSmallIntegerField(default=10, help_text="Tasks it queues beyond those.")
    weight = models.PositiveSmallIntegerField(
        default=1, help_text="Between equally loaded accounts, the heavier takes the job."
    )
    enabled = models.BooleanField(default=True)
    private_network = models.BooleanField(
        default=False,
        help_text="A self-hosted proxy: its host (and MJ_IMAGE_HOSTS) may be a private "
        "address, on any port, for its images.",
    )
    disabled_reason = models.TextField(blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    # The provider's balance in dollars, as its console last said.
    balance = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    balance_checked_at = models.DateTimeField(null=True, blank=True)
    low_balance_below = models.DecimalField(
        max_digits=14,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Alert the operators when the balance falls below this many dollars.",
    )
    low_balance_alerted_at = models.DateTimeField(null=True, blank=True)
    reconciled_at = models.DateTimeField(null=True, blank=True)
    reconcile_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ProviderAccountQuerySet.as_manager()

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.label or self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        creating = self._state.adding
        super().save(*args, **kwargs)
        if creating:
            self.seed_costs()

    # --- how it is reached ---------------------------------------------------------------

    @property
    def api_key(self) -> str:
        return vault.unseal(self.api_key_sealed)

    @api_key.setter
    def api_key(self, value: str) -> None:
        self.api_key_sealed = vault.seal(value)

    @property
    def console_token(self) -> str:
        return vault.unseal(self.console_token_sealed)

    @console_token.setter
    def console_token(self, value: str) -> None:
        self.console_token_sealed = vault.seal(value)

    def connection(self) -> Connection:
        if self.from_environment:
            entry = PROVIDERS.get(self.name) or PROVIDERS["cometapi"]
            return Connection(
                protocol=environment_protocol(self.name),
                base_url=entry.base_url(),
                api_key=entry.api_key(),
                running=settings.MJ_PROVIDER_RUNNING,
                queued=settings.MJ_PROVIDER_QUEUED,
                private_network=self.name == "simulator" or settings.MJ_PROVIDER_PRIVATE_NETWORK,
            )
        return Connection(
            protocol=self.protocol,
            base_url=self.base_url or PROVIDERS[ADAPTERS[self.protocol][0]].base_url(),
            api_key=self.api_key,
            running=self.running,
            queued=self.queued,
            private_network=self.private_network,
        )

    def offers(self, mode: str) -> bool:
        return not self.modes or mode in self.modes

    # --- what it charges ------------------------------------------------------------------

    def seed_costs(self) -> int:
        """The default provider cost of every priced (action, mode) it has none for."""
        return seed_costs(self, ProviderCost)

    def charge_for(self, action: str, mode: str) -> dict[str, Any]:
        """The Job fields a submit this account took sets: the provider's model id and what
        the provider bills for it (None where the table has no row, or a free import)."""
        row = self.costs.filter(action=action, mode=mode).first()
        if row is None:
            return {"provider_model": "", "provider_cost": None}
        return {"provider_model": row.model_id, "provider_cost": row.price}

    # --- its state -------------------------------------------------------------------------

    def disable(self, reason: str) -> bool:
        """Stop sending it new jobs, with why; True when this call disabled it."""
        now = timezone.now()
        changed = ProviderAccount.objects.filter(pk=self.pk, enabled=True).update(
            enabled=False, disabled_reason=reason[:2000], disabled_at=now
        )
        if changed:
            self.enabled, self.disabled_reason, self.disabled_at = False, reason[:2000], now
        return bool(changed)

    def enable(self) -> None:
        ProviderAccount.objects.filter(pk=self.pk).update(
            enabled=True, disabled_reason="", disabled_at=None
        )
        self.enabled, self.disabled_reason, self.disabled_at = True, "", None

    @property
    def is_low_on_balance(self) -> bool:
        return (
            self.balance is not None
            and self.low_balance_below is not None
            and self.balance < self.low_balance_below
        )


class ProviderCost(models.Model):
    """What one account's provider bills for one press: its model id and price in dollars."""

    account = models.ForeignKey(ProviderAccount, on_delete=models.CASCADE, related_name="costs")
    action = models.CharField(max_length=20, choices=catalogue.choices(catalogue.PRICED_ACTIONS))
    mode = models.CharField(max_length=10, choices=catalogue.choices(catalogue.MODE_NAMES))
    model_id = models.CharField(
        max_length=64, help_text="The provider's name, e.g. mj-fast-reroll."
    )
    price = models.DecimalField(max_digits=10, decimal_places=4, help_text="Dollars a request.")

    class Meta:
        ordering = ("account", "action", "mode")
        constraints = [
            models.UniqueConstraint(
                fields=["account", "action", "mode"], name="provider_cost_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model_id} ${self.price}"


class Finding(models.TextChoices):
    MATCHED = "matched", "Matched to a job"
    ORPHAN = "orphan", "No job here"
    REFUNDED_HERE = "refunded_here", "Billed, but refunded here"


class ProviderTaskQuerySet(models.QuerySet["ProviderTask"]):
    def discrepancies(self) -> ProviderTaskQuerySet:
        return self.filter(finding__in=(Finding.ORPHAN, Finding.REFUNDED_HERE))


class ProviderTask(models.Model):
    """One row of a provider's own task log (its console), matched to our job by task id."""

    account = models.ForeignKey(ProviderAccount, on_delete=models.CASCADE, related_name="tasks")
    task_id = models.CharField(max_length=64)
    action = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=20, blank=True)
    model_name = models.CharField(max_length=64, blank=True)
    # What the provider billed for it, in dollars (new-api's quota / 500,000).
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    job = models.ForeignKey(
        "gallery.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    finding = models.CharField(max_length=20, choices=Finding.choices)
    imported_at = models.DateTimeField(default=timezone.now)

    objects = ProviderTaskQuerySet.as_manager()

    class Meta:
        ordering = ("-submitted_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=["account", "task_id"], name="provider_task_unique")
        ]
        indexes = [models.Index(fields=["finding"], name="provider_task_finding")]

    def __str__(self) -> str:
        return f"{self.account.name} {self.task_id}"
