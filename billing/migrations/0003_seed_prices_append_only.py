"""Default prices (see billing.prices.default_prices), and the ledger made append-only in
PostgreSQL: a trigger refuses any UPDATE or DELETE of a ledger entry."""

from typing import Any

from django.db import migrations

from billing.prices import seed_defaults
from mjweb.db import append_only


def seed_prices(apps: Any, schema_editor: Any) -> None:
    seed_defaults(apps.get_model("billing", "Price"))


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_ledger")]

    operations = [
        migrations.RunPython(seed_prices, migrations.RunPython.noop),
        append_only("billing_ledgerentry"),
    ]
