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
            }
        ),
        error_messages={"required": "Type a prompt first."},
    )
    mode = forms.ChoiceField(
        choices=Job.Mode.choices, initial=Job.Mode.FAST, widget=forms.RadioSelect
    )
    # A new key for every form shown: a double click or a resent POST makes one job.
    submit_key = forms.UUIDField(widget=forms.HiddenInput, initial=uuid.uuid4)

    def __init__(self, *args: Any, modes: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if modes is not None:
            # Only the modes this user may choose are offered (and accepted).
            field = self.fields["mode"]
            field.choices = [(v, label) for v, label in Job.Mode.choices if v in modes]
            if field.initial not in modes and modes:
                field.initial = modes[0]
