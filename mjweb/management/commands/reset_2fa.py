"""Remove a staff member's second factor, for one who lost both the app and the recovery
codes: their next login enrols a new authenticator.

    python manage.py reset_2fa <username>
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django_otp import devices_for_user

from mjweb.models import User


class Command(BaseCommand):
    help = "Remove a user's two-factor devices (authenticator and recovery codes)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user {options['username']!r}.")
        with transaction.atomic():
            removed = 0
            for device in devices_for_user(user, confirmed=None):
                device.delete()
                removed += 1
        self.stdout.write(f"Removed {removed} device(s) of {user.username}: they enrol anew.")
