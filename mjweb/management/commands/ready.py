"""`manage.py ready`: what /readyz says, for a container's health check or a script.

Prints the JSON /readyz answers and exits 0 when the site is ready, 1 otherwise.
`--queue` limits the worker check to some queues (a worker container checks its own).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from mjweb import health


class Command(BaseCommand):
    help = "Exit 0 when the database, the migrations and the workers are all there (/readyz)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queue", action="append", choices=sorted(settings.TASK_QUEUES))

    def handle(self, *args: Any, **options: Any) -> None:
        found = health.missing(options["queue"])
        answer = {"status": "not ready", "missing": found} if found else {"status": "ready"}
        self.stdout.write(json.dumps(answer))
        sys.exit(1 if found else 0)
