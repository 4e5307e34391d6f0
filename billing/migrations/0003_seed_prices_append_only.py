"""Default prices (1 credit = $0.001), and the ledger made append-only in PostgreSQL.

The anchor is CometAPI's `mj-fast-reroll` at $0.056 a request: 56 credits. Turbo is priced
at three times fast (CometAPI's turbo models cost 3x), relax at 3/8 of fast (a reseller
sheet of the same protocol: relax $0.015 against fast $0.04). A plain upscale (U1-U4, a crop
of the grid) costs a quarter of a generation; the v6 upscalers (Subtle, Creative) twice.
These are the operator's to change in the admin.
"""

from typing import Any

from django.db import migrations

GENERATIONS = ("imagine", "reroll", "variation", "vary_subtle", "vary_strong", "zoom_out", "pan")
BASE = {"relax": 21, "fast": 56, "turbo": 168}
SCALE = {"upscale": 0.25, "upscale_subtle": 2, "upscale_creative": 2}

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


def default_prices() -> dict[tuple[str, str], int]:
    prices = {}
    for mode, credits in BASE.items():
        for action in GENERATIONS:
            prices[(action, mode)] = credits
        for action, factor in SCALE.items():
            prices[(action, mode)] = round(credits * factor)
    return prices


def seed_prices(apps: Any, schema_editor: Any) -> None:
    Price = apps.get_model("billing", "Price")
    for (action, mode), credits in default_prices().items():
        Price.objects.get_or_create(action=action, mode=mode, defaults={"credits": credits})


def append_only(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY)


def drop_append_only(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_APPEND_ONLY)


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_ledger")]

    operations = [
        migrations.RunPython(seed_prices, migrations.RunPython.noop),
        migrations.RunPython(append_only, drop_append_only),
    ]
