"""A personal API token for a user, printed once, for scripts:

python manage.py create_api_token alice [--name "nightly batch"] [--days 90]
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mjweb import tokens
from mjweb.models import User


class Command(BaseCommand):
    help = "Make an API token for a user and print it (it is not stored in plain text)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="Made with create_api_token")
        parser.add_argument("--days", type=int, default=None, help="Expire after this many days.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user {options['username']!r}.")
        if not user.is_active:
            raise CommandError(f"{user.username} is not active.")
        days = options["days"]
        if days is not None and days <= 0:
            raise CommandError("--days must be a positive number of days.")
        _, plain = tokens.create(user, options["name"], days=days)
        self.stdout.write(plain)
