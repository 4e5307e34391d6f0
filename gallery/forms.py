from __future__ import annotations

import uuid
from typing import Any

from django import forms

from gallery.models import Job
from gallery.services import MAX_PROMPT_LENGTH


class ImportForm(forms.Form):
    task_id = forms.CharField(
        label="Provider task id",
        max_length=64,
        widget=forms.TextInput(attrs={"placeholder": "1773314942177684", "autocomplete": "off"}),
        error_messages={"required": "Paste a task id first."},
    )


class ImagineForm(forms.Form):
    prompt = forms.CharField(
        max_length=MAX_PROMPT_LENGTH,
        widget=forms.Textarea(
            attrs={
                "rows": 2,
                "placeholder": "A lighthouse on a cliff at dawn, watercolor --ar 3:2",
                "autocomplete": "off",
                "data-limit": str(MAX_PROMPT_LENGTH),
                "data-counter": "prompt-count",
                "aria-describedby": "prompt-count",
            }
        ),
        error_messages={
            "required": "Type a prompt first.",
            "max_length": "The prompt is %(show_value)d characters long; the limit is "
            "%(limit_value)d. Shorten it and press Imagine again: nothing was sent.",
        },
    )
    mode = forms.ChoiceField(
        choices=Job.Mode.choices, initial=Job.Mode.FAST, widget=forms.RadioSelect
    )
    # A new key for every form shown: a double click or a resent POST makes one job.
    submit_key = forms.UUIDField(widget=forms.HiddenInput, initial=uuid.uuid4)

    def __init__(self, *args: Any, modes: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # No maxlength on the textarea: a browser cuts a longer paste silently. The counter
        # (static/js/composer.js) and the max_length message above say it instead.
        self.fields["prompt"].widget.attrs.pop("maxlength", None)
        if modes is not None:
            # Only the modes this user may choose are offered (and accepted).
            field = self.fields["mode"]
            field.choices = [(v, label) for v, label in Job.Mode.choices if v in modes]
            if field.initial not in modes and modes:
                field.initial = modes[0]


class GalleryFilterForm(forms.Form):
    """The gallery's filters and search, read from (and kept in) the URL's query string."""

    VIEW_LINEAGES = "lineages"
    VIEW_ALL = "all"

    q = forms.CharField(
        label="Search your jobs",
        required=False,
        max_length=200,
        widget=forms.SearchInput(attrs={"placeholder": "Search by words of the prompt"}),
    )
    view = forms.ChoiceField(
        label="Show",
        required=False,
        choices=[(VIEW_LINEAGES, "One card per lineage"), (VIEW_ALL, "All jobs")],
    )
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Job.Status.choices])
    action = forms.ChoiceField(required=False, choices=[("", "Any action"), *Job.Action.choices])
    mode = forms.ChoiceField(
        label="Speed", required=False, choices=[("", "Any speed"), *Job.Mode.choices]
    )
    since = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    favorites = forms.BooleanField(label="Favorites only", required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return data

    def values(self) -> dict[str, Any]:
        """The valid filters (an invalid field is reported and left out, not guessed)."""
        if not self.is_bound:
            return {}
        self.is_valid()
        return {
            name: value
            for name, value in getattr(self, "cleaned_data", {}).items()
            if value not in ("", None, False) and name not in self.errors
        }

    @property
    def active(self) -> bool:
        return any(name != "view" for name in self.values())

    @property
    def lineages(self) -> bool:
        return self.values().get("view", self.VIEW_LINEAGES) == self.VIEW_LINEAGES
