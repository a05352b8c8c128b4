"""Errors a user can cause, and how a command ends: one line and a non-zero exit.

Signals, in three sentences: SIGTERM raises Terminated and Ctrl-C KeyboardInterrupt, so the
`finally` blocks on the way out take back temporary outputs and mark the MLflow run KILLED.
When the signal arrives while the process is inside MLflow's or Optuna's database code, the
handler does not raise there but sends the same signal again 20 ms later. So the exception
always surfaces between store calls, never inside one, where it would leave SQLite's write
lock held and the KILLED status waiting on "database is locked".
"""

from __future__ import annotations

import functools
import gc
import os
import signal
import sys
import threading


class UserError(Exception):
    """A problem the user can fix (bad config, bad archive, missing data). Its message is
    the whole report, so it says what is wrong and, where useful, what to do."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message: third-party errors can run to pages."""
    return (str(exc).splitlines() or [""])[0]


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so cleanup (temporary outputs, MLflow run
    status) runs on the way out instead of the process vanishing mid-write."""


# Modules whose code must not be cut short by a signal's exception: raised inside a
# SQLAlchemy session (MLflow's and Optuna's SQLite stores), it can leave the connection
# holding the database's write lock, and writing the run's KILLED status or the trial's FAIL
# then waits 20 s and fails with "database is locked".
_UNINTERRUPTIBLE = ("sqlalchemy.", "mlflow.store.", "optuna.storages.")
_REDELIVER_SECONDS = 0.02


def _inside_a_store_call(frame) -> bool:
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(_UNINTERRUPTIBLE):
            return True
        frame = frame.f_back
    return False


def _raising(exc_type):
    """A signal handler raising exc_type, except inside a store call: there the signal is
    sent again a moment later, until it lands outside (store calls take milliseconds)."""

    def handler(signum, frame):
        if _inside_a_store_call(frame):
            threading.Timer(_REDELIVER_SECONDS, _resend, (signum, handler)).start()
            return
        raise exc_type()

    return handler


def _resend(signum, handler) -> None:
    if signal.getsignal(signum) is handler:  # not once another handler (or the default) took over
        os.kill(os.getpid(), signum)


def install_signal_handlers() -> None:
    """SIGTERM raises Terminated and Ctrl-C KeyboardInterrupt, never inside a store call."""
    signal.signal(signal.SIGTERM, _raising(Terminated))
    signal.signal(signal.SIGINT, _raising(KeyboardInterrupt))


def command(main):
    """Wrap a command's main(): a UserError ends as `error: <message>` with exit status 2,
    Ctrl-C with 130 and SIGTERM with 143, after the `finally` blocks on the way have run."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        install_signal_handlers()
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
