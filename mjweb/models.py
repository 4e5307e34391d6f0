"""People and the audit log of what admins did.

Invariants:
- A suspended user (`suspended_at` set) keeps their login and their gallery, but every new
  job is refused (billing.quotas.check); jobs already in flight finish normally.
- `AuditEntry` rows are written only by `mjweb.audit.record`, inside the transaction of the
  change they describe, and never changed or deleted (PostgreSQL refuses it by trigger;
  the admin shows them read-only to everyone, superusers included).
"""

from __future__ import annotations

import secrets
import zoneinfo
from datetime import timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.db.models.functions import Lower
from django.dispatch import Signal
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

# Sent once when a user's email is verified (billing grants the welcome credits then).
email_verified = Signal()


@cache
def time_zone_names() -> frozenset[str]:
    """Every IANA time zone this system knows (zoneinfo.available_timezones() reads the
    disk on each call)."""
    # The system's tzdata also lists its own files, which are no zone a person lives in.
    return frozenset(zoneinfo.available_timezones() - {"localtime", "posixrules", "Factory"})


def validate_language(value: str) -> None:
    if value and value not in dict(settings.LANGUAGES):
        raise ValidationError(
            _("“%(value)s” is not a language of this site."), params={"value": value}
        )


def validate_time_zone(value: str) -> None:
    if value and value not in time_zone_names():
        raise ValidationError(
            _("“%(value)s” is not a time zone: use an IANA name such as Asia/Shanghai."),
            params={"value": value},
        )


class User(AbstractUser):
    """A person who signs in. Email is required at signup and unique, case-insensitively."""

    # Midjourney's Remix mode: rerolls, variations and pans ask for the prompt first.
    remix_mode = models.BooleanField(default=False)
    # Set while suspended: new jobs are refused, jobs in flight finish. Only `suspend` and
    # `reactivate` change it, each with its audit entry.
    suspended_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The address the account was signed up from (mjweb.throttle.client_ip), for the admin's
    # sign-ups per address; None for accounts made otherwise (the admin, createsuperuser).
    signup_ip = models.GenericIPAddressField(null=True, blank=True, editable=False)
    # When the owner followed the link mailed to their address (mjweb.signups).
    email_verified_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The language of every page once signed in (a code of settings.LANGUAGES); blank: the
    # one the language switch or the browser asks for (mjweb.middleware.user_preferences).
    language = models.CharField(
        gettext_lazy("language"), max_length=16, blank=True, validators=[validate_language]
    )
    # The IANA time zone dates are shown in; blank: the server's (settings.TIME_ZONE).
    time_zone = models.CharField(
        gettext_lazy("time zone"), max_length=64, blank=True, validators=[validate_time_zone]
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        permissions = [("suspend_user", "Can suspend and reactivate users")]
        indexes = [models.Index(fields=["signup_ip", "-date_joined"], name="user_signup_ip")]
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                condition=~models.Q(email=""),
                name="user_email_unique_ci",
            )
        ]

    def zone(self) -> zoneinfo.ZoneInfo | None:
        """The user's own time zone; None for the server's (or a name no longer known)."""
        if self.time_zone and self.time_zone in time_zone_names():
            return zoneinfo.ZoneInfo(self.time_zone)
        return None

    @property
    def is_suspended(self) -> bool:
        return self.suspended_at is not None

    @property
    def awaits_verification(self) -> bool:
        """Signed up where the email must be verified (MJWEB_SIGNUP_MODE=verified), and not
        verified yet: no welcome credits and no jobs until then."""
        return (
            settings.MJWEB_SIGNUP_MODE == "verified"
            and self.signup_ip is not None
            and self.email_verified_at is None
        )

    @staticmethod
    def unverified_q() -> models.Q:
        return models.Q(email_verified_at__isnull=True)

    def verify_email(self) -> bool:
        """The owner followed the link: record it once; False if it was already."""
        moved = (
            type(self)
            .objects.filter(pk=self.pk, email_verified_at__isnull=True)
            .update(email_verified_at=timezone.now())
        )
        self.refresh_from_db(fields=["email_verified_at"])
        if moved:
            email_verified.send(sender=type(self), user=self)
        return bool(moved)

    def suspend(self, *, actor: Any, reason: str) -> bool:
        """Refuse this user's new jobs from now on; False if already suspended."""
        return self._set_suspended(timezone.now(), actor=actor, reason=reason)

    def reactivate(self, *, actor: Any, reason: str) -> bool:
        """Accept this user's jobs again; False if not suspended."""
        return self._set_suspended(None, actor=actor, reason=reason)

    def _set_suspended(self, when: Any, *, actor: Any, reason: str) -> bool:
        from mjweb import audit

        with transaction.atomic():
            # Compare-and-set: two admins pressing at once record one change.
            rows = User.objects.filter(pk=self.pk, suspended_at__isnull=when is not None)
            if rows.update(suspended_at=when) != 1:
                return False
            before = self.suspended_at
            self.suspended_at = when
            audit.record(
                actor=actor,
                verb=AuditEntry.Verb.SUSPEND if when else AuditEntry.Verb.REACTIVATE,
                obj=self,
                before={"suspended_at": before},
                after={"suspended_at": when},
                reason=reason,
            )
        return True


class AuditVerb(models.TextChoices):
    ADD = "add", "Added"
    CHANGE = "change", "Changed"
    DELETE = "delete", "Deleted"
    PASSWORD = "password", "Set the password"
    GRANT = "grant", "Granted credits"
    ADJUST = "adjust", "Adjusted credits"
    SUSPEND = "suspend", "Suspended"
    REACTIVATE = "reactivate", "Reactivated"
    RESYNC = "resync", "Re-synced from the provider"
    CANCEL = "cancel", "Cancelled"
    RELEASE = "release", "Ended and released the hold"


class AuditEntry(models.Model):
    """One thing an admin did: who, what, to which object, before and after, why, when.

    `before` and `after` hold only the fields that changed (the whole object for an add
    or a delete); values are JSON (dates as ISO text, related objects by primary key).
    """

    Verb = AuditVerb

    # None: the system itself, on a provider's or a payment service's word (a Stripe refund).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="audit_entries",
        null=True,
        blank=True,
    )
    verb = models.CharField(max_length=20, choices=AuditVerb.choices)
    content_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    object_id = models.CharField(max_length=64, blank=True)
    # The object as it was named at the time (it may since be renamed or deleted).
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"
        permissions = [("view_reports", "Can see the usage report and export CSV")]
        indexes = [
            models.Index(fields=["content_type", "object_id", "-id"], name="audit_object"),
            models.Index(fields=["actor", "-id"], name="audit_actor_recent"),
            models.Index(fields=["verb", "-id"], name="audit_verb_recent"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(verb__in=AuditVerb.values), name="audit_verb_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_verb_display()}: {self.object_repr}"


class WorkerBeat(models.Model):
    """A worker's last sign of life, per task queue: `manage.py worker` writes one for each of
    its running clusters every few seconds (mjweb.health.beat). Read by /readyz and the staff
    banner; rows of workers gone for a day are deleted by the next beat."""

    queue = models.CharField(max_length=40)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    seen_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["queue", "host", "pid"], name="worker_beat_unique")
        ]

    def __str__(self) -> str:
        return f"{self.queue} on {self.host} ({self.pid})"


def _invite_code() -> str:
    return secrets.token_urlsafe(18)


def _invite_expiry() -> Any:
    return timezone.now() + timedelta(days=Invite.DAYS)


class InviteQuerySet(models.QuerySet["Invite"]):
    """The invites in each `Invite.state`, as queries."""

    def usable(self) -> InviteQuerySet:
        return self.filter(used_at__isnull=True, expires_at__gt=timezone.now())

    def used(self) -> InviteQuerySet:
        return self.filter(used_at__isnull=False)

    def expired(self) -> InviteQuerySet:
        return self.filter(used_at__isnull=True, expires_at__lte=timezone.now())


class Invite(models.Model):
    """One sign-up, when MJWEB_SIGNUP_MODE=invite: staff make it in the admin and send its
    link; it is good once, until it expires, and (when it names one) for one address."""

    DAYS = 14
    USED = gettext_lazy("This invitation has been used already: ask for a new one.")

    code = models.CharField(max_length=32, unique=True, default=_invite_code, editable=False)
    email = models.EmailField(
        blank=True, help_text="Only this address may sign up with it; empty for anyone."
    )
    note = models.CharField(max_length=200, blank=True, help_text="Whom it is for, for staff.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(default=_invite_expiry)
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = InviteQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"invite for {self.email or self.note or 'anyone'}"

    @property
    def path(self) -> str:
        from django.urls import reverse

        return f"{reverse('signup')}?invite={self.code}"

    @property
    def state(self) -> str:
        """One of used, expired or open (what InviteQuerySet.usable finds); used first."""
        if self.used_at is not None:
            return "used"
        return "expired" if self.expires_at <= timezone.now() else "open"

    def refusal(self, email: str) -> Any:
        """Why this invite cannot make an account for `email`, if it cannot."""
        if self.state == "used":
            return self.USED
        if self.state == "expired":
            return _("This invitation has expired: ask for a new one.")
        if self.email and self.email.lower() != email.strip().lower():
            return _("This invitation is for %(email)s: sign up with that address.") % {
                "email": self.email
            }
        return None

    def claim(self, user: User) -> bool:
        """Spend the invite on `user` (compare-and-set: two sign-ups at once, one wins)."""
        now = timezone.now()
        rows = Invite.objects.usable().filter(pk=self.pk)
        if rows.update(used_by=user, used_at=now) != 1:
            return False
        self.used_by, self.used_at = user, now
        return True


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def usable(self) -> ApiTokenQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A personal token for the JSON API (`Authorization: Bearer <token>`): shown once when
    made, kept only as its SHA-256, revocable, optionally expiring (mjweb.tokens)."""

    PREFIX = "mjw_"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=80)
    # The first characters after the prefix, to tell tokens apart in lists.
    hint = models.CharField(max_length=12)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.PREFIX}{self.hint}…)"

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        return "active"

    @property
    def state_label(self) -> str:
        """`state` in the reader's language."""
        labels = {"revoked": _("revoked"), "expired": _("expired"), "active": _("active")}
        return labels[self.state]
