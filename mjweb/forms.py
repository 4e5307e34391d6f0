from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.forms import UserCreationForm
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from mjweb import signups
from mjweb.models import Invite, User, time_zone_names


class InviteTaken(Exception):
    """Another sign-up spent the invite between this one's check and its save."""


class SignupForm(UserCreationForm):
    email = forms.EmailField(
        required=True, help_text=_("For password resets. Never shown to anyone.")
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")

    def __init__(self, *args: Any, invite: Invite | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invite = invite
        if invite is not None and invite.email:
            self.fields["email"].initial = invite.email

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        email = cleaned.get("email")
        if self.invite is not None and email and (refusal := self.invite.refusal(email)):
            raise forms.ValidationError(refusal)
        return cleaned

    def save(self, commit: bool = True) -> User:
        """The account, and the invite spent on it in the same transaction."""
        user = super().save(commit=False)
        if commit:
            with transaction.atomic():
                user.save()
                if self.invite is not None and not self.invite.claim(user):
                    raise InviteTaken
        return user

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip()
        if domain := signups.blocked_domain(email):
            raise forms.ValidationError(
                _("Addresses at %(domain)s cannot be used here: use an email address of your own.")
                % {"domain": domain}
            )
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(_("An account with this email already exists."))
        return email


class ApiTokenForm(forms.Form):
    EXPIRY = [
        ("", _("Never")),
        ("30", _("In 30 days")),
        ("90", _("In 90 days")),
        ("365", _("In a year")),
    ]

    name = forms.CharField(
        max_length=80,
        label=_("Name"),
        help_text=_("What it is for, e.g. “my script” or “the Discord bot”."),
    )
    expires = forms.TypedChoiceField(
        choices=EXPIRY, required=False, coerce=int, empty_value=None, label=_("Expires")
    )


class PreferencesForm(forms.ModelForm):
    """The language pages are shown in and the time zone dates are shown in."""

    class Meta:
        model = User
        fields = ("language", "time_zone")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["language"] = forms.ChoiceField(
            label=_("Language"),
            required=False,
            choices=[("", _("As my browser asks")), *settings.LANGUAGES],
        )
        # A text field with the names offered as suggestions (a <datalist>): ~600 zones
        # make a poor <select>; the model's validator refuses a name that is not one.
        self.fields["time_zone"] = forms.CharField(
            label=_("Time zone"),
            required=False,
            max_length=64,
            help_text=_("An IANA name such as Asia/Shanghai; empty: the server's (%(zone)s).")
            % {"zone": settings.TIME_ZONE},
            widget=forms.TextInput(attrs={"list": "time-zones", "autocomplete": "off"}),
        )
        self.time_zones = sorted(time_zone_names())

    def clean_time_zone(self) -> str:
        return self.cleaned_data["time_zone"].strip()
