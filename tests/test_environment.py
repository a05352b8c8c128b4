"""Same versions, same digits: the venv is exactly the lock, the lock is current with
pyproject.toml, and a training run says which packages made it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from src.lib import environment
from tests.conftest import PROJECT

LOCKS = PROJECT / "requirements"


def test_the_installed_packages_are_exactly_the_test_lock():
    """What `bash requirements/install.sh test` (the README's test command, CI) installs; a venv
    made another way fails here, naming each difference."""
    assert environment.mismatches(LOCKS / "test.txt") == []
    assert environment.matching_lock() == "test"


def test_a_difference_from_the_lock_is_named(tmp_path):
    lock = tmp_path / "test.txt"
    text = (LOCKS / "test.txt").read_text()
    numpy = environment.installed()["numpy"]
    lock.write_text(text.replace(f"\nnumpy=={numpy} ", "\nnumpy==0.0.1 ") + "not-a-real-package==1.0 \\\n")
    found = set(environment.mismatches(lock)) - set(environment.mismatches(LOCKS / "test.txt"))
    assert found == {f"numpy {numpy} installed, 0.0.1 locked", "not-a-real-package 1.0 locked, not installed"}


@pytest.mark.parametrize("lock", ["base", "test", "gpu"])
def test_each_lock_is_current_with_pyproject(lock, tmp_path):
    """uv, asked again with the lock as its preference, changes nothing: no range in
    pyproject.toml was edited without re-locking (bash requirements/lock.sh)."""
    uv = Path(sys.executable).with_name("uv")  # the venv's: `.[test]` installs it
    again = tmp_path / f"{lock}.txt"
    shutil.copy(LOCKS / f"{lock}.txt", again)
    extra = [] if lock == "base" else ["--extra", lock]
    subprocess.run(
        [
            uv,
            "pip",
            "compile",
            "pyproject.toml",
            "--universal",
            "--python-version",
            "3.11",
            "--generate-hashes",
            "--quiet",
            *extra,
            "-o",
            str(again),
        ],
        cwd=PROJECT,
        check=True,
    )

    def pins(path: Path) -> list[str]:
        return [line for line in path.read_text().splitlines() if not line.startswith("#")]

    assert pins(again) == pins(LOCKS / f"{lock}.txt")
