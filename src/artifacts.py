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


def remove_abandoned(final: Path) -> None:
    """Delete temporary siblings of `final` whose writing process no longer exists."""
    for kind in ("tmp", "old"):
        for leftover in final.parent.glob(f".{glob.escape(final.name)}.{kind}-*-*"):
            pid = leftover.name[len(f".{final.name}.{kind}-"):].split("-", 1)[0]
            if not pid.isdigit() or process_alive(int(pid)):
                continue
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def atomic_write_text(final: str | Path, text: str) -> None:
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")
