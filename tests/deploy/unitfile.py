"""A systemd unit file read into sections of (key, value) pairs, as systemd reads it.

Contract: :func:`parse` keeps every assignment in order (keys such as DeviceAllow= repeat),
joins backslash-continued lines, drops comments (``#``, ``;``) and blank lines; values keep their
quotes (:meth:`Unit.environment` unquotes Environment= as systemd does). :meth:`Unit.get`
gives the last value of a key (what systemd uses for single-valued settings);
:meth:`Unit.all` gives all of them. Pure: no I/O beyond reading the file.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Unit:
    path: Path
    sections: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def all(self, section: str, key: str) -> list[str]:
        return [v for k, v in self.sections.get(section, []) if k == key]

    def get(self, section: str, key: str) -> str | None:
        values = self.all(section, key)
        return values[-1] if values else None

    def environment(self) -> dict[str, str]:
        """The [Service] Environment= assignments (later ones win), quotes removed."""
        env: dict[str, str] = {}
        for value in self.all("Service", "Environment"):
            for word in shlex.split(value):
                name, _, val = word.partition("=")
                env[name] = val
        return env


def parse(path: Path) -> Unit:
    unit = Unit(path)
    section = None
    pending = ""
    for raw in path.read_text("utf-8").splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            unit.sections.setdefault(section, [])
            continue
        if section is None or "=" not in line:
            raise ValueError(f"{path}: not a unit file line: {line!r}")
        key, _, value = line.partition("=")
        unit.sections[section].append((key.strip(), value.strip()))
    return unit


def expand(command: str, env: dict[str, str]) -> list[str]:
    """An Exec*= command line split into argv, ``$NAME`` words replaced as systemd does
    (an unbraced ``$NAME`` standing alone becomes the variable's whitespace-split words)."""
    argv: list[str] = []
    for word in shlex.split(command):
        if word.startswith("$") and word[1:].isidentifier():
            argv += env.get(word[1:], "").split()
        else:
            argv.append(word)
    return argv
