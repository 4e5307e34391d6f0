"""User suspension and the audit log of admin actions, made append-only in PostgreSQL
(a trigger refuses any UPDATE or DELETE of an audit entry, as for the ledger)."""

import django.core.serializers.json
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

from mjweb.db import append_only


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("mjweb", "0002_remix"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="user",
            options={
                "permissions": [("suspend_user", "Can suspend and reactivate users")],
                "verbose_name": "user",
                "verbose_name_plural": "users",
            },
        ),
        migrations.AddField(
            model_name="user",
            name="suspended_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.CreateModel(
            name="AuditEntry",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "verb",
                    models.CharField(
                        choices=[
                            ("add", "Added"),
                            ("change", "Changed"),
                            ("delete", "Deleted"),
                            ("password", "Set the password"),
                            ("grant", "Granted credits"),
                            ("adjust", "Adjusted credits"),
                            ("suspend", "Suspended"),
                            ("reactivate", "Reactivated"),
                            ("resync", "Re-synced from the provider"),
                            ("cancel", "Cancelled"),
                            ("release", "Ended and released the hold"),
                        ],
                        max_length=20,
                    ),
                ),
                ("object_id", models.CharField(blank=True, max_length=64)),
                ("object_repr", models.CharField(blank=True, max_length=200)),
                (
                    "before",
                    models.JSONField(
                        blank=True,
                        encoder=django.core.serializers.json.DjangoJSONEncoder,
                        null=True,
                    ),
                ),
                (
                    "after",
                    models.JSONField(
                        blank=True,
                        encoder=django.core.serializers.json.DjangoJSONEncoder,
                        null=True,
                    ),
                ),
                ("reason", models.TextField(blank=True)),
                (
                    "created_at",
                    models.DateTimeField(db_index=True, default=django.utils.timezone.now),
                ),
                (
                    "actor",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="audit_entries",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "content_type",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="contenttypes.contenttype",
                    ),
                ),
            ],
            options={
                "verbose_name": "audit entry",
                "verbose_name_plural": "audit log",
                "ordering": ["-id"],
                "permissions": [("view_reports", "Can see the usage report and export CSV")],
                "indexes": [
                    models.Index(fields=["content_type", "object_id", "-id"], name="audit_object"),
                    models.Index(fields=["actor", "-id"], name="audit_actor_recent"),
                    models.Index(fields=["verb", "-id"], name="audit_verb_recent"),
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            (
                                "verb__in",
                                [
                                    "add",
                                    "change",
                                    "delete",
                                    "password",
                                    "grant",
                                    "adjust",
                                    "suspend",
                                    "reactivate",
                                    "resync",
                                    "cancel",
                                    "release",
                                ],
                            )
                        ),
                        name="audit_verb_valid",
                    )
                ],
            },
        ),
        append_only("mjweb_auditentry"),
    ]
