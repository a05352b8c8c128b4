"""Writing outputs so that a killed process never leaves a file that looks complete.

Everything is written under a temporary sibling name and renamed into place at the end;
rename is atomic on one filesystem, so an output either exists whole or not at all. The
temporary name carries the writer's pid: what a SIGKILLed writer left behind is removed by the
next writer of the same output, so no manual cleanup is ever needed.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final: str | Path, directory: bool = False):
    """Yield a temporary path beside `final`; on success rename it to `final`.

    On any exception the temporary file or directory is removed and `final` is untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(final)
    prefix = f".{final.name}.tmp-{os.getpid()}-"
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=final.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=final.suffix, dir=final.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if directory and final.exists():
            # A directory cannot be replaced in one rename: move the old one aside first.
            old = final.with_name(f".{final.name}.old-{os.getpid()}-")
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def staging_dir(parent: str | Path):
    """A temporary folder in `parent` for a group of outputs that only mean something together
    (a model and its companions, a stage's reports), written there whole before publish() renames
    them into place. Removed at the end; a SIGKILLed writer's, by the next one."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(parent / "staging")
    tmp = Path(tempfile.mkdtemp(prefix=f".staging.tmp-{os.getpid()}-", dir=parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish(files: dict[Path, Path]) -> None:
    """Rename finished files into place in a row ({written: final}, same filesystem). Interrupted
    (an exception, Ctrl-C, SIGTERM), it removes those already renamed: the group appears whole or
    not at all, short of a SIGKILL in the microseconds between two renames."""
    published = []
    try:
        for written, final in files.items():
            Path(final).parent.mkdir(parents=True, exist_ok=True)
            os.replace(written, final)
            published.append(Path(final))
    except BaseException:
        for final in published:
            final.unlink(missing_ok=True)
        raise


def remove_abandoned(final: Path) -> None:
    """Delete temporary siblings of `final` whose writing process no longer exists."""
    for kind in ("tmp", "old"):
        for leftover in final.parent.glob(f".{glob.escape(final.name)}.{kind}-*-*"):
            pid = leftover.name[len(f".{final.name}.{kind}-") :].split("-", 1)[0]
            if not pid.isdigit() or process_alive(int(pid)):
                continue
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def project_root() -> Path:
    """The project a stage belongs to: the real one even inside a DVC queue copy (DVC sets
    DVC_ROOT for every stage it runs). Stores and relative archive paths are resolved here."""
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host and has not exited."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    try:  # a killed process stays a zombie until its parent (or init) reaps it: dead already
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): kill(pid, 0) is all we know
    return state not in ("Z", "X")


def atomic_write_text(final: str | Path, text: str) -> None:
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")
