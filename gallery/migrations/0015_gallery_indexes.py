"""The gallery's indexes (issue 12): every page and filter of the gallery read through one.

Jobs newest first per owner with the full (created_at, id) key, so a cursor page starts
where the cursor is; one per filter (favorites, status, action, speed); a lineage's jobs
that may head it, newest first. On PostgreSQL also a trigram index for the search (`prompt__icontains`, which
Django writes `UPPER(prompt::text) LIKE UPPER(%s)`): pg_trgm ships with PostgreSQL's
contrib and is a trusted extension, so a database owner may create it. SQLite has no such
index; its search reads the owner's jobs newest first until a page is full.
"""

from typing import Any

from django.conf import settings
from django.db import migrations, models

TRIGRAM_INDEX = "job_prompt_trigram"


def create_trigram_index(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm", params=None)
    schema_editor.execute(
        f'CREATE INDEX IF NOT EXISTS "{TRIGRAM_INDEX}" ON "gallery_job" '
        'USING gin ((UPPER("prompt"::text)) gin_trgm_ops)',
        params=None,
    )


def drop_trigram_index(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'DROP INDEX IF EXISTS "{TRIGRAM_INDEX}"', params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("gallery", "0014_previews_and_dispatch_queue"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # (owner, created_at) gives way to the one with the whole key; (root) was the same
        # index as the `root` foreign key's own.
        migrations.RemoveIndex(model_name="job", name="job_owner_recent"),
        migrations.RemoveIndex(model_name="job", name="job_root"),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(fields=["owner", "-created_at", "-id"], name="job_owner_newest"),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(("deleted_at__isnull", True), ("favorite", True)),
                fields=["owner", "-created_at", "-id"],
                name="job_owner_favorites",
            ),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(("deleted_at__isnull", True)),
                fields=["owner", "status", "-created_at", "-id"],
                name="job_owner_status",
            ),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(("deleted_at__isnull", True)),
                fields=["owner", "action", "-created_at", "-id"],
                name="job_owner_action",
            ),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(("deleted_at__isnull", True)),
                fields=["owner", "mode", "-created_at", "-id"],
                name="job_owner_mode",
            ),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(
                    ("deleted_at__isnull", True),
                    models.Q(("status__in", ("failed", "cancelled")), _negated=True),
                ),
                fields=["root", "-created_at", "-id"],
                name="job_root_live",
            ),
        ),
        migrations.RunPython(create_trigram_index, drop_trigram_index),
    ]
