"""Errors a user can cause, and how a command ends: one line and a non-zero exit."""

from __future__ import annotations

import functools
import gc
import signal
import sys


class UserError(Exception):
    """A problem the user can fix (bad config, bad archive, missing data). Its message is
    the whole report, so it says what is wrong and, where useful, what to do."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message: third-party errors can run to pages."""
    return (str(exc).splitlines() or [""])[0]


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so cleanup (temporary outputs, MLflow run
    status) runs on the way out instead of the process vanishing mid-write."""


def _raise_terminated(signum, frame):
    raise Terminated()


def command(main):
    """Wrap a command's main(): a UserError ends as `error: <message>` with exit status 2,
    Ctrl-C with 130 and SIGTERM with 143, after the `finally` blocks on the way have run."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            return main(*args, **kwargs)
        except UserError as exc:
            message, status = f"error: {exc}", 2
        except KeyboardInterrupt:
            message, status = "interrupted", 130
        except Terminated:
            message, status = "terminated", 143
        # Out of the except block the traceback is gone, and with it the frames holding models
        # and tf.data iterators: collected now, TensorFlow finalizes them quietly instead of
        # logging errors after our one line at interpreter shutdown.
        gc.collect()
        print(message, file=sys.stderr)
        raise SystemExit(status)

    return wrapper
