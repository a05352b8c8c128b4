"""What software a run was made with: the installed packages, and whether they are a lock's.

The lock (requirements/*.txt, made by requirements/lock.sh) pins every package the README
installs; `bash requirements/install.sh <lock>` installs exactly it. A training run logs the
installed versions as an artifact and names the lock they match, if any (src.lib.tracked).
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
from pathlib import Path

LOCKS = Path(__file__).resolve().parents[2] / "requirements"
PROJECT = "imdb-lstm"  # installed from the checkout itself (-e .), not from a lock
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, str]:
    """Every installed distribution but the project itself: normalised name -> version."""
    found = {_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions() if d.metadata["Name"]}
    found.pop(PROJECT, None)
    return dict(sorted(found.items()))


def pinned(lock: Path) -> dict[str, str]:
    """A lock's pins that apply to this interpreter and platform (their markers evaluated)."""
    from packaging.markers import Marker

    pins = {}
    for line in lock.read_text().splitlines():
        match = _PIN.match(line)
        if match and (match[3] is None or Marker(match[3]).evaluate()):
            pins[_name(match[1])] = match[2]
    return pins


def mismatches(lock: Path) -> list[str]:
    """How the installed packages differ from a lock's pins ([]: they are exactly the lock).
    pip, which the venv brings, is the one package a lock may leave out."""
    have, want = installed(), pinned(lock)
    if "pip" not in want:
        have.pop("pip", None)
    return (
        [
            f"{name} {have[name]} installed, {want[name]} locked"
            for name in want
            if name in have and have[name] != want[name]
        ]
        + [f"{name} {want[name]} locked, not installed" for name in want if name not in have]
        + [f"{name} {have[name]} installed, not locked" for name in have if name not in want]
    )


@functools.cache  # the packages do not change while a process runs; a sweep fits many times
def matching_lock() -> str:
    """The lock the installed packages are exactly ('base', 'test', 'gpu'), or 'none'."""
    return next((lock.stem for lock in sorted(LOCKS.glob("*.txt")) if not mismatches(lock)), "none")


@functools.cache
def installed_text() -> str:
    """The installed versions, one `name==version` a line, as `pip freeze` writes them."""
    return "".join(f"{name}=={version}\n" for name, version in installed().items())
