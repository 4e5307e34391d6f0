"""The Midjourney parameters a prompt may end with, and the one reading of them.

A prompt is its words, then its parameters: `a lighthouse at dawn --ar 3:2 --chaos 20`.
A parameter is a word that starts with `--` and a letter; its value is every word after it
up to the next parameter. The parameters we know (PARAMETERS) are checked here, the others
(--sref, --iw, ...) are left as they are for the provider to judge.

Rules of this reading:
- names are read without regard to case (`--AR` is `--ar`), aliases as their parameter
  (`--s` is `--stylize`, `--aspect` is `--ar`);
- a known parameter given twice is refused ("keep one"), whatever its spelling, as are
  `--v` and `--niji` together: the prompt says one thing, never "the last one wins";
- numbers are whole, written in digits, within their range.

This table is the only place the ranges live: the composer's script reads `spec()`,
rendered into the page as JSON, and flags what the form would refuse with the same words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from math import gcd
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

RATIO = "ratio"
NUMBER = "number"
CHOICE = "choice"
WORDS = "words"
FLAG = "flag"

# Both sides of an --ar, as whole numbers.
RATIO_LOW, RATIO_HIGH = 1, 999
# The composer's shapes (anything else is "custom").
ASPECT_PRESETS = ("1:1", "3:2", "2:3", "4:3", "3:4", "16:9", "9:16", "21:9")


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: str
    label: Any
    help: Any
    aliases: tuple[str, ...] = ()
    low: int | None = None
    high: int | None = None
    choices: tuple[str, ...] = ()
    example: str = ""
    # Parameters that say the same thing another way: only one of them may be given.
    excludes: tuple[str, ...] = ()

    @property
    def allowed(self) -> str:
        """What it takes, in words (the help's range column)."""
        if self.kind == NUMBER:
            return f"{self.low}–{self.high}"
        if self.kind == CHOICE:
            return ", ".join(self.choices)
        if self.kind == RATIO:
            return _("width:height, whole numbers %(low)s–%(high)s") % {
                "low": RATIO_LOW,
                "high": RATIO_HIGH,
            }
        if self.kind == WORDS:
            return _("words, separated by commas")
        return _("no value")


PARAMETERS: tuple[Parameter, ...] = (
    Parameter(
        "ar",
        RATIO,
        gettext_lazy("Aspect ratio"),
        gettext_lazy("The picture's shape, width to height."),
        aliases=("aspect",),
        example="16:9",
    ),
    Parameter(
        "v",
        CHOICE,
        gettext_lazy("Model version"),
        gettext_lazy("Which Midjourney model draws it."),
        aliases=("version",),
        choices=("6.1", "7"),
        example="7",
        excludes=("niji",),
    ),
    Parameter(
        "niji",
        CHOICE,
        gettext_lazy("Niji"),
        gettext_lazy("The anime and illustration model, instead of --v."),
        choices=("6",),
        example="6",
        excludes=("v",),
    ),
    Parameter(
        "stylize",
        NUMBER,
        gettext_lazy("Stylize"),
        gettext_lazy("How strongly Midjourney's own taste shows (100 by default)."),
        aliases=("s",),
        low=0,
        high=1000,
        example="250",
    ),
    Parameter(
        "chaos",
        NUMBER,
        gettext_lazy("Chaos"),
        gettext_lazy("How different the four pictures of a grid are from each other."),
        aliases=("c",),
        low=0,
        high=100,
        example="20",
    ),
    Parameter(
        "weird",
        NUMBER,
        gettext_lazy("Weird"),
        gettext_lazy("Unusual, offbeat looks."),
        aliases=("w",),
        low=0,
        high=3000,
        example="250",
    ),
    Parameter(
        "no",
        WORDS,
        gettext_lazy("Leave out"),
        gettext_lazy("What should not be in the picture."),
        example="text, people",
    ),
    Parameter(
        "seed",
        NUMBER,
        gettext_lazy("Seed"),
        gettext_lazy("The same seed and prompt give similar pictures again."),
        low=0,
        high=4294967295,
        example="1234",
    ),
    Parameter(
        "tile",
        FLAG,
        gettext_lazy("Tile"),
        gettext_lazy("A pattern that repeats seamlessly, for fabrics and wallpapers."),
    ),
    Parameter(
        "style",
        CHOICE,
        gettext_lazy("Raw style"),
        gettext_lazy("--style raw: less of Midjourney's default look, closer to the words."),
        choices=("raw",),
        example="raw",
    ),
)

BY_NAME: dict[str, Parameter] = {
    spelling: parameter
    for parameter in PARAMETERS
    for spelling in (parameter.name, *parameter.aliases)
}

# A parameter's word: "--" and a letter; "--" alone or a dash in a word is not one.
_PARAMETER = re.compile(r"--([A-Za-z][A-Za-z0-9_-]*)")
_DIGITS = re.compile(r"[0-9]+")
_RATIO = re.compile(r"([0-9]+):([0-9]+)")


@dataclass(frozen=True)
class Parsed:
    """A prompt read: its words, its known parameters by name (values as written, but
    a ratio and a choice in their canonical spelling), its other parameters as written,
    and what is wrong with it (empty: nothing)."""

    text: str
    parameters: dict[str, str]
    others: list[str]
    problems: list[str]


def messages() -> dict[str, str]:
    """The problems' wording, with %(...)s placeholders: the form and the script say the
    same sentence."""
    return {
        "missing": _("--%(name)s needs a value, like --%(name)s %(example)s."),
        "number": _("--%(name)s takes a whole number from %(low)s to %(high)s, not “%(value)s”."),
        "choice": _("--%(name)s takes %(choices)s, not “%(value)s”."),
        "ratio": _(
            "--%(name)s takes a shape as width:height in whole numbers from %(low)s to "
            "%(high)s, like 16:9, not “%(value)s”."
        ),
        "flag": _(
            "--%(name)s takes no value, not “%(value)s”: the words of a prompt go before "
            "its parameters."
        ),
        "twice": _("--%(name)s is given more than once; keep one."),
        "conflict": _("--%(name)s and --%(other)s both choose the model; keep one."),
    }


def _choices_text(choices: tuple[str, ...]) -> str:
    return _(" or ").join(choices)


def _tokens(prompt: str) -> list[str]:
    return prompt.split()


def _name(token: str) -> str | None:
    match = _PARAMETER.fullmatch(token)
    return match.group(1).lower() if match else None


def _check(parameter: Parameter, value: str, words: dict[str, str]) -> tuple[str, str | None]:
    """(canonical value, problem or None)."""
    names = {"name": parameter.name, "value": value, "example": parameter.example}
    if parameter.kind == FLAG:
        return "", (words["flag"] % names if value else None)
    if not value:
        return "", words["missing"] % names
    if parameter.kind == NUMBER:
        if not _DIGITS.fullmatch(value) or not (
            parameter.low <= int(value) <= parameter.high  # type: ignore[operator]
        ):
            return value, words["number"] % {
                **names,
                "low": parameter.low,
                "high": parameter.high,
            }
        return str(int(value)), None
    if parameter.kind == CHOICE:
        if value.lower() not in parameter.choices:
            return value, words["choice"] % {
                **names,
                "choices": _choices_text(parameter.choices),
            }
        return value.lower(), None
    if parameter.kind == RATIO:
        match = _RATIO.fullmatch(value)
        if not match or not all(RATIO_LOW <= int(side) <= RATIO_HIGH for side in match.groups()):
            return value, words["ratio"] % {**names, "low": RATIO_LOW, "high": RATIO_HIGH}
        return f"{int(match.group(1))}:{int(match.group(2))}", None
    return value, None  # WORDS: any words


def parse(prompt: str) -> Parsed:
    """The prompt's words, parameters and problems (see the module's rules)."""
    tokens = _tokens(prompt)
    starts = [i for i, token in enumerate(tokens) if _name(token)]
    text = " ".join(tokens[: starts[0]] if starts else tokens)
    words = messages()
    parameters: dict[str, str] = {}
    others: list[str] = []
    problems: list[str] = []
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(tokens)
        spelling, value = _name(tokens[start]) or "", " ".join(tokens[start + 1 : end])
        parameter = BY_NAME.get(spelling)
        if parameter is None:
            others.append(" ".join(tokens[start:end]))
            continue
        canonical, problem = _check(parameter, value, words)
        if parameter.name in parameters:
            problem = words["twice"] % {"name": parameter.name}
        else:
            clash = next((other for other in parameter.excludes if other in parameters), None)
            if clash:
                problem = words["conflict"] % {"name": clash, "other": parameter.name}
            parameters[parameter.name] = canonical
        if problem and problem not in problems:
            problems.append(problem)
    return Parsed(text=text, parameters=parameters, others=others, problems=problems)


def aspect_preset(ratio: str) -> str | None:
    """The composer's shape an --ar value is (16:9 and 32:18 are both 16:9), or None."""
    match = _RATIO.fullmatch(ratio)
    if not match:
        return None
    width, height = int(match.group(1)), int(match.group(2))
    if not width or not height:
        return None
    common = gcd(width, height)
    reduced = f"{width // common}:{height // common}"
    return reduced if reduced in ASPECT_PRESETS else None


def spec() -> dict[str, Any]:
    """The table for the composer's script (rendered with json_script)."""
    return {
        "parameters": [
            {
                "name": p.name,
                "kind": p.kind,
                "aliases": list(p.aliases),
                "low": p.low,
                "high": p.high,
                "choices": list(p.choices),
                "choicesText": _choices_text(p.choices),
                "example": p.example,
                "excludes": list(p.excludes),
                "label": str(p.label),
                "help": str(p.help),
            }
            for p in PARAMETERS
        ],
        "ratio": {"low": RATIO_LOW, "high": RATIO_HIGH},
        "presets": list(ASPECT_PRESETS),
        "messages": messages(),
    }
