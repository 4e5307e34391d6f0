"""Per-user limits. Credit accounts and the ledger join this app with the billing work.

A user's Quota row overrides the site default field by field: an empty value inherits it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

MODES = ("fast", "relax", "turbo")


class Quota(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota"
    )
    # Comma-separated speed modes this user may choose; empty = the site default.
    allowed_modes = models.CharField(
        max_length=40,
        blank=True,
        help_text="Comma-separated: fast, relax, turbo. Empty uses the site default "
        "(MJ_ALLOWED_MODES).",
    )

    def __str__(self) -> str:
        return f"Quota of {self.user}"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        modes = [m.strip() for m in self.allowed_modes.split(",") if m.strip()]
        unknown = sorted(set(modes) - set(MODES))
        if unknown:
            raise ValidationError({"allowed_modes": f"Unknown mode(s): {', '.join(unknown)}."})
        self.allowed_modes = ",".join(m for m in MODES if m in modes)
