from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.conf import settings
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from gallery import prompts
from gallery.models import Job
from gallery.services import MAX_IMAGE_PROMPTS, MAX_PROMPT_LENGTH
from mjweb import catalogue


class ImportForm(forms.Form):
    task_id = forms.CharField(
        label=_("Provider task id"),
        max_length=64,
        widget=forms.TextInput(attrs={"placeholder": "1773314942177684", "autocomplete": "off"}),
        error_messages={"required": _("Paste a task id first.")},
    )


class PicturesInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class PicturesField(forms.FileField):
    """Up to `most` of the user's pictures (PNG, JPEG or WebP), as a list of uploads; what
    they hold is checked when they are taken in (gallery.references.take)."""

    widget = PicturesInput

    def __init__(self, *, most: int, fewest: int = 0, **kwargs: Any) -> None:
        self.most, self.fewest = most, fewest
        kwargs.setdefault("required", fewest > 0)
        super().__init__(**kwargs)
        self.widget.attrs.update(
            {"accept": "image/png,image/jpeg,image/webp", "multiple": most > 1}
        )

    @property
    def limit_mb(self) -> int:
        """The largest picture taken, in MB (MJWEB_UPLOAD_MAX_BYTES)."""
        return max(1, settings.MJWEB_UPLOAD_MAX_BYTES // 2**20)

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        uploads = [item for item in (data if isinstance(data, list | tuple) else [data]) if item]
        if len(uploads) < self.fewest:
            raise forms.ValidationError(
                ngettext(
                    "Choose at least %(count)d picture.",
                    "Choose at least %(count)d pictures.",
                    self.fewest,
                )
                % {"count": self.fewest}
            )
        if len(uploads) > self.most:
            raise forms.ValidationError(
                ngettext(
                    "Choose at most %(count)d picture.",
                    "Choose at most %(count)d pictures.",
                    self.most,
                )
                % {"count": self.most}
            )
        return [super(PicturesField, self).clean(item, initial) for item in uploads]


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
                "aria-describedby": "prompt-count prompt-problems",
            }
        ),
        error_messages={
            "required": _("Type a prompt first."),
            "max_length": _(
                "The prompt is %(show_value)d characters long; the limit is "
                "%(limit_value)d. Shorten it and press Imagine again: nothing was sent."
            ),
        },
    )
    mode = forms.ChoiceField(
        choices=Job.Mode.choices, initial=Job.Mode.FAST, widget=forms.RadioSelect
    )
    # Image prompts: pictures Midjourney takes as references beside the words.
    images = PicturesField(label=_("Image prompts"), most=MAX_IMAGE_PROMPTS, required=False)
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

    def clean_prompt(self) -> str:
        prompt: str = self.cleaned_data["prompt"]
        if problems := prompts.parse(prompt).problems:
            raise forms.ValidationError(problems)
        return prompt

    @property
    def prompt_parameters(self) -> dict[str, Any]:
        """The parameters' table, for the composer's chips and help (gallery.prompts)."""
        return prompts.spec()

    @property
    def parameter_help(self) -> tuple[prompts.Parameter, ...]:
        return prompts.PARAMETERS


class _ModesForm(forms.Form):
    """A form that makes a job: a speed among the user's modes, and a fresh submit key."""

    mode = forms.ChoiceField(
        label=_("Speed"), choices=Job.Mode.choices, initial=Job.Mode.FAST, widget=forms.RadioSelect
    )
    submit_key = forms.UUIDField(widget=forms.HiddenInput, initial=uuid.uuid4)

    # Ids of its fields ("blend_mode_0"): the studio shows it beside the composer, whose
    # fields have the same names.
    id_prefix = ""

    def __init__(self, *args: Any, modes: list[str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"{self.id_prefix}_%s")
        super().__init__(*args, **kwargs)
        if modes is not None:
            field = self.fields["mode"]
            field.choices = [(v, label) for v, label in Job.Mode.choices if v in modes]
            if field.initial not in modes and modes:
                field.initial = modes[0]


class BlendForm(_ModesForm):
    id_prefix = "blend"
    images = PicturesField(label=_("Pictures to blend"), fewest=2, most=5)
    dimensions = forms.ChoiceField(
        label=_("Shape"),
        choices=[
            (name, format_lazy("{} ({})", _(label), shape))
            for name, (label, shape) in catalogue.BLEND_DIMENSIONS.items()
        ],
        initial="square",
        widget=forms.RadioSelect,
    )


class DescribeForm(_ModesForm):
    id_prefix = "describe"
    images = PicturesField(label=_("Picture to describe"), fewest=1, most=1)


class GalleryFilterForm(forms.Form):
    """The gallery's filters and search, read from (and kept in) the URL's query string."""

    VIEW_LINEAGES = "lineages"
    VIEW_ALL = "all"

    q = forms.CharField(
        label=_("Search your jobs"),
        required=False,
        max_length=200,
        widget=forms.SearchInput(attrs={"placeholder": _("Search by words of the prompt")}),
    )
    view = forms.ChoiceField(
        label=_("Show"),
        required=False,
        choices=[(VIEW_LINEAGES, _("One card per lineage")), (VIEW_ALL, _("All jobs"))],
    )
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("Any status")), *Job.Status.choices]
    )
    action = forms.ChoiceField(
        label=_("Action"), required=False, choices=[("", _("Any action")), *Job.Action.choices]
    )
    mode = forms.ChoiceField(
        label=_("Speed"), required=False, choices=[("", _("Any speed")), *Job.Mode.choices]
    )
    since = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    favorites = forms.BooleanField(label=_("Favorites only"), required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", _("The end date is before the start date."))
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
