"""The background worker: one django-q2 cluster per task queue (settings.TASK_QUEUES), run
and stopped together.

    python manage.py worker                       # every queue (what `make run` starts)
    python manage.py worker --queue ingest        # only some, to scale one out on its own

Each cluster is `manage.py qcluster` with Q_CLUSTER_NAME naming its queue; its worker
processes are MJWEB_WORKERS (jobs), MJWEB_INGEST_WORKERS and MJWEB_PREVIEW_WORKERS. If one
cluster dies, the others are stopped and the command exits with its code. The previews'
cluster runs at a lower CPU priority (niceness +10) than the others.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from mjweb import health, processes

# Previews are the first work to give up the CPU when the machine is busy: storing finished
# jobs and sending waiting ones come before a sharper in-progress look.
NICE = {"previews": 10}


class Command(BaseCommand):
    help = "Run a django-q2 cluster for each task queue (jobs, ingest, previews)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queue",
            action="append",
            choices=sorted(settings.TASK_QUEUES),
            help="A queue to serve (repeatable); all of them when not given.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        wanted = options["queue"] or list(settings.TASK_QUEUES)  # `choices` refused the rest
        children = {
            name: processes.Child(
                processes.manage("qcluster"),
                extra_env={
                    **{k: v for k, v in processes.MALLOC_ENV.items() if k not in os.environ},
                    "Q_CLUSTER_NAME": settings.TASK_QUEUES[name],
                },
                nice=NICE.get(name, 0),
            )
            for name in wanted
        }
        # The heartbeat of each running cluster, which /readyz and the staff banner read.
        tick = processes.Tick(health.BEAT_EVERY, health.beat)
        code = processes.run_group(children, self.stdout.write, tick=tick)
        health.forget()  # stopped: /readyz need not wait a minute to say so
        sys.exit(code)
