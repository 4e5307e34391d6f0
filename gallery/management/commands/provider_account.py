"""Provider accounts from the command line, for scripted set-up (the admin does the same).

    python manage.py provider_account list
    python manage.py provider_account add comet2 --protocol cometapi \\
        --base-url https://api.cometapi.com --api-key-env COMET2_KEY \\
        [--console-token-env COMET2_CONSOLE] [--modes fast,turbo] [--running 3] [--queued 10]
        [--weight 1] [--private-network] [--low-balance 5] [--label "CometAPI 2"]
    python manage.py provider_account disable comet2 [--reason "..."]
    python manage.py provider_account enable comet2
    python manage.py provider_account reconcile [comet2]
    python manage.py provider_account newkey      # a key for MJWEB_ENCRYPTION_KEYS
    python manage.py provider_account reseal      # after putting a new key first

Keys and tokens are read from an environment variable (or standard input with `-`), never
from the command line, where `ps` and the shell's history would keep them.
"""

from __future__ import annotations

import os
import sys
from decimal import Decimal, InvalidOperation
from typing import Any

from cryptography.fernet import Fernet
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from gallery import reconcile, routing
from gallery.models import Protocol, ProviderAccount
from mjweb import catalogue, vault


def _secret(variable: str | None) -> str:
    if not variable:
        return ""
    if variable == "-":
        return sys.stdin.readline().strip()
    value = os.environ.get(variable)
    if value is None:
        raise CommandError(f"The environment variable {variable} is not set.")
    return value.strip()


def _modes(text: str) -> list[str]:
    modes = [mode.strip() for mode in text.split(",") if mode.strip()]
    unknown = sorted(set(modes) - set(catalogue.MODE_NAMES))
    if unknown:
        raise CommandError(f"Unknown modes {', '.join(unknown)}; choose from fast, relax, turbo.")
    return modes


class Command(BaseCommand):
    help = "List, add, disable, enable and reconcile provider accounts."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="command", required=True)
        commands.add_parser("list", help="Every account, its state and load.")
        add = commands.add_parser("add", help="Add an account.")
        add.add_argument("name")
        add.add_argument("--protocol", required=True, choices=Protocol.values)
        add.add_argument("--base-url", default="")
        add.add_argument("--api-key-env", help="The environment variable holding the key, or -.")
        add.add_argument("--console-token-env", help="The same for the console access token.")
        add.add_argument("--label", default="")
        add.add_argument("--modes", default="", help="Comma-separated; every mode if empty.")
        add.add_argument("--running", type=int, default=3)
        add.add_argument("--queued", type=int, default=10)
        add.add_argument("--weight", type=int, default=1)
        add.add_argument("--private-network", action="store_true")
        add.add_argument("--low-balance", default="", help="Alert below this many dollars.")
        add.add_argument("--disabled", action="store_true")
        disable = commands.add_parser("disable", help="Send an account no new jobs.")
        disable.add_argument("name")
        disable.add_argument("--reason", default="Disabled by an operator.")
        enable = commands.add_parser("enable", help="Route new jobs to an account again.")
        enable.add_argument("name")
        again = commands.add_parser("reconcile", help="Import the provider's bill now.")
        again.add_argument("name", nargs="?")
        commands.add_parser("newkey", help="Print a new key for MJWEB_ENCRYPTION_KEYS.")
        commands.add_parser("reseal", help="Seal every stored secret with the first key.")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"do_{options['command']}")(options)

    def _account(self, name: str) -> ProviderAccount:
        account = ProviderAccount.objects.filter(name=name).first()
        if account is None:
            raise CommandError(f"There is no provider account named {name!r}.")
        return account

    def do_list(self, options: dict[str, Any]) -> None:
        ProviderAccount.objects.environment()
        for account in ProviderAccount.objects.all():
            connection = account.connection()
            state = "enabled" if account.enabled else f"disabled ({account.disabled_reason})"
            balance = "?" if account.balance is None else f"${account.balance}"
            self.stdout.write(
                f"{account.name}\t{account.get_protocol_display()}\t{connection.base_url}\t"
                f"{state}\tload {routing.load(account):.0%} of {connection.capacity}\t"
                f"weight {account.weight}\tbalance {balance}"
                + ("\tfrom the environment" if account.from_environment else "")
            )

    def do_add(self, options: dict[str, Any]) -> None:
        if ProviderAccount.objects.filter(name=options["name"]).exists():
            raise CommandError(f"A provider account named {options['name']!r} exists already.")
        try:
            low = Decimal(options["low_balance"]) if options["low_balance"] else None
        except InvalidOperation:
            raise CommandError("--low-balance takes dollars, like 5 or 12.50.") from None
        account = ProviderAccount(
            name=options["name"],
            label=options["label"],
            protocol=options["protocol"],
            base_url=options["base_url"],
            modes=_modes(options["modes"]),
            running=options["running"],
            queued=options["queued"],
            weight=options["weight"],
            private_network=options["private_network"],
            low_balance_below=low,
            enabled=not options["disabled"],
        )
        account.api_key = _secret(options["api_key_env"])
        account.console_token = _secret(options["console_token_env"])
        try:
            account.full_clean()
        except ValidationError as exc:
            problems = "; ".join(
                f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items()
            )
            raise CommandError(problems) from None
        with transaction.atomic():
            account.save()
        self.stdout.write(
            f"Added provider account {account.name} ({account.get_protocol_display()})."
        )

    def do_disable(self, options: dict[str, Any]) -> None:
        account = self._account(options["name"])
        account.disable(options["reason"])
        self.stdout.write(f"{account.name} takes no new jobs; its follow-ups are refused.")

    def do_enable(self, options: dict[str, Any]) -> None:
        account = self._account(options["name"])
        account.enable()
        self.stdout.write(f"{account.name} takes new jobs again.")

    def do_reconcile(self, options: dict[str, Any]) -> None:
        if options["name"]:
            account = self._account(options["name"])
            if not account.console_token_sealed:
                raise CommandError(f"{account.name} has no console access token to read with.")
            outcomes = [reconcile.reconcile(account)]
        else:
            outcomes = reconcile.reconcile_all()
        for outcome in outcomes:
            self.stdout.write(str(outcome))
        if any(outcome.error for outcome in outcomes):
            raise CommandError("Some accounts could not be reconciled (above).")

    def do_newkey(self, options: dict[str, Any]) -> None:
        self.stdout.write(Fernet.generate_key().decode())

    def do_reseal(self, options: dict[str, Any]) -> None:
        count = 0
        with transaction.atomic():
            for account in ProviderAccount.objects.select_for_update():
                try:
                    account.api_key_sealed = vault.reseal(account.api_key_sealed)
                    account.console_token_sealed = vault.reseal(account.console_token_sealed)
                except vault.Unreadable as exc:
                    raise CommandError(f"{account.name}: {exc}") from None
                account.save(update_fields=["api_key_sealed", "console_token_sealed"])
                count += 1
        self.stdout.write(f"Resealed the secrets of {count} account(s) with the first key.")
