"""Default prices (see billing.prices.default_prices), and the ledger made append-only in
PostgreSQL: a trigger refuses any UPDATE or DELETE of a ledger entry."""

from typing import Any

from django.db import migrations

from billing.prices import seed_defaults

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION billing_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'billing_ledgerentry is append-only: % refused', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER billing_ledgerentry_append_only
    BEFORE UPDATE OR DELETE ON billing_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION billing_ledger_append_only();
"""
DROP_APPEND_ONLY = """
DROP TRIGGER IF EXISTS billing_ledgerentry_append_only ON billing_ledgerentry;
DROP FUNCTION IF EXISTS billing_ledger_append_only();
"""


def seed_prices(apps: Any, schema_editor: Any) -> None:
    seed_defaults(apps.get_model("billing", "Price"))


def append_only(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY, params=None)


def drop_append_only(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_APPEND_ONLY, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_ledger")]

    operations = [
        migrations.RunPython(seed_prices, migrations.RunPython.noop),
        migrations.RunPython(append_only, drop_append_only),
    ]
