"""On PostgreSQL, a job whose card would look different notifies its owner's push streams:
pg_notify('gallery_job', owner id) after an INSERT, and after an UPDATE that changed one of
the card's fields (Job.LIVE_FIELDS, frozen here as LIVE_COLUMNS; see gallery.push).
Other databases skip it: their streams look for changes themselves."""

from typing import Any

from django.db import migrations

# Job.LIVE_FIELDS when this was written; tests/gallery/test_push.py keeps the two equal.
LIVE_COLUMNS = (
    "status",
    "progress",
    "charge",
    "slot_position",
    "remix_prompt",
    "result_url",
    "preview_image",
)

CHANGED = " OR ".join(f"OLD.{column} IS DISTINCT FROM NEW.{column}" for column in LIVE_COLUMNS)

CREATE = f"""
CREATE OR REPLACE FUNCTION gallery_job_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('gallery_job', NEW.owner_id::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER gallery_job_notify_insert
    AFTER INSERT ON gallery_job
    FOR EACH ROW EXECUTE FUNCTION gallery_job_notify();
CREATE TRIGGER gallery_job_notify_update
    AFTER UPDATE ON gallery_job
    FOR EACH ROW WHEN ({CHANGED})
    EXECUTE FUNCTION gallery_job_notify();
"""

DROP = """
DROP TRIGGER IF EXISTS gallery_job_notify_update ON gallery_job;
DROP TRIGGER IF EXISTS gallery_job_notify_insert ON gallery_job;
DROP FUNCTION IF EXISTS gallery_job_notify();
"""


class PostgresOnlySQL(migrations.RunSQL):
    """RunSQL on PostgreSQL; nothing elsewhere."""

    def database_forwards(self, app_label: str, schema_editor: Any, *args: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, *args)

    def database_backwards(self, app_label: str, schema_editor: Any, *args: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, *args)


class Migration(migrations.Migration):
    dependencies = [
        ("gallery", "0015_gallery_indexes"),
    ]

    operations = [PostgresOnlySQL(CREATE, DROP)]
