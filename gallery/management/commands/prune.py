"""`manage.py prune`: apply the retention settings now (gallery.retention); the jobs queue
also does it once a day."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from gallery import retention


class Command(BaseCommand):
    help = "Empty old provider-call bodies, delete old webhook keys and failed tasks."

    def handle(self, *args: Any, **options: Any) -> None:
        done = retention.prune()
        self.stdout.write(
            f"provider-call bodies emptied: {done.call_bodies}; webhook keys deleted: "
            f"{done.webhook_events}; failed tasks deleted: {done.failed_tasks}; unused "
            f"pictures deleted: {done.unused_pictures}"
        )
