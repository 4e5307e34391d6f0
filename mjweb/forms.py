from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm

from mjweb import signups
from mjweb.models import User


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=True, help_text="For password resets. Never shown to anyone.")

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip()
        if domain := signups.blocked_domain(email):
            raise forms.ValidationError(
                f"Addresses at {domain} cannot be used here: use an email address of your own."
            )
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email already exists.")
        return email
