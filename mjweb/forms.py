from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.db import transaction

from mjweb import signups
from mjweb.models import Invite, User


class InviteTaken(Exception):
    """Another sign-up spent the invite between this one's check and its save."""


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=True, help_text="For password resets. Never shown to anyone.")

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
                f"Addresses at {domain} cannot be used here: use an email address of your own."
            )
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email already exists.")
        return email


class ApiTokenForm(forms.Form):
    EXPIRY = [("", "Never"), ("30", "In 30 days"), ("90", "In 90 days"), ("365", "In a year")]

    name = forms.CharField(
        max_length=80, help_text="What it is for, e.g. “my script” or “the Discord bot”."
    )
    expires = forms.TypedChoiceField(
        choices=EXPIRY, required=False, coerce=int, empty_value=None, label="Expires"
    )
