"""A reader of gettext .po files, and the catalogue a .po compiles to, in plain Python: the
translation tests check the committed files without GNU gettext (CI does not install it)."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Entry:
    msgid: str = ""
    msgctxt: str | None = None
    msgid_plural: str | None = None
    # msgstr, or msgstr[0], msgstr[1]... of a plural entry.
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    references: list[str] = field(default_factory=list)
    obsolete: bool = False

    @property
    def translated(self) -> bool:
        return bool(self.msgstr) and all(self.msgstr.values())

    @property
    def fuzzy(self) -> bool:
        return "fuzzy" in self.flags


def _string(text: str) -> str:
    # A .po string is a C string literal; Python's reading of it is the same for what
    # xgettext writes (\n, \t, \", \\ and plain UTF-8).
    return ast.literal_eval(text)


def read(path: Path) -> list[Entry]:
    """Every entry of the file, the header (msgid "") first, obsolete ones marked."""
    entries: list[Entry] = []
    entry = Entry()
    field_name: str | None = None
    index = 0
    started = False

    def finish() -> None:
        nonlocal entry, field_name, started
        if started:
            entries.append(entry)
        entry, field_name, started = Entry(), None, False

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        obsolete = line.startswith("#~")
        if obsolete:
            line = line[2:].strip()
        if not line:
            finish()
            continue
        if line.startswith("#,"):
            if started and field_name is not None:
                finish()
            entry.flags.update(flag.strip() for flag in line[2:].split(","))
            continue
        if line.startswith("#:"):
            if started and field_name is not None:
                finish()
            entry.references.extend(line[2:].split())
            continue
        if line.startswith("#"):
            continue
        keyword, _space, rest = line.partition(" ")
        if keyword.startswith('"'):
            text = _string(line)
            if field_name == "msgstr":
                entry.msgstr[index] += text
            elif field_name is not None:
                setattr(entry, field_name, (getattr(entry, field_name) or "") + text)
            continue
        if keyword in ("msgctxt", "msgid") and field_name == "msgstr":
            finish()
        started = True
        entry.obsolete = entry.obsolete or obsolete
        if keyword.startswith("msgstr"):
            field_name = "msgstr"
            index = int(keyword[7:-1]) if keyword.startswith("msgstr[") else 0
            entry.msgstr[index] = _string(rest)
        elif keyword in ("msgid", "msgid_plural", "msgctxt"):
            field_name = keyword
            setattr(entry, keyword, _string(rest))
        else:
            raise ValueError(f"{path}: cannot read the line {raw!r}")
    finish()
    return entries


def catalogue(entries: list[Entry]) -> dict[str, str]:
    """What msgfmt puts in the .mo, in the keys Python's gettext reads it by: translated,
    non-fuzzy, non-obsolete entries (and the header), "ctxt\\x04id" for a context, a plural
    entry under each of its forms' keys."""
    found: dict[str, str] = {}
    for entry in entries:
        if entry.obsolete or (entry.fuzzy and entry.msgid) or not entry.translated:
            continue
        key = entry.msgid if entry.msgctxt is None else f"{entry.msgctxt}\x04{entry.msgid}"
        if entry.msgid_plural is None:
            found[key] = entry.msgstr[0]
        else:
            for n, text in entry.msgstr.items():
                found[f"{key}\x00{n}"] = text
    return found
