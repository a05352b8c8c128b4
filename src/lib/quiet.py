"""TensorFlow's start-up lines kept off the user's terminal, unless the user asks for them.

TensorFlow logs through absl from C++: a oneDNN notice, CUDA probes on a machine without a GPU,
CPU-feature advice, dataset and oneDNN-fallback notes. `TF_CPP_MIN_LOG_LEVEL` set before the
first import filters those logged after TensorFlow has started; the few written while its
libraries load, before absl is initialised, ignore it, so file descriptor 2 points at
/dev/null for the length of `import tensorflow` alone. A `TF_CPP_MIN_LOG_LEVEL` the user set
wins: then nothing here happens.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys

LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
QUIET_LEVEL = "3"  # C++ log lines below FATAL dropped; errors still reach Python as exceptions
SET_BY_US_ENV = "IMDB_LSTM_QUIET_TF"  # marks the level as ours, so the processes we start quiet TF too


@contextlib.contextmanager
def _stderr_discarded():
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` as the other finders do, and runs its module code with stderr discarded."""

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: the real finders do the finding
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            with _stderr_discarded():
                load(module)

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    """Quiet TensorFlow for this process and the processes it starts, unless the user chose a level."""
    chosen_by_user = LEVEL_ENV in os.environ and os.environ.get(SET_BY_US_ENV) != "1"
    if chosen_by_user or "tensorflow" in sys.modules:
        return
    os.environ[LEVEL_ENV] = QUIET_LEVEL
    os.environ[SET_BY_US_ENV] = "1"
    sys.meta_path.insert(0, _QuietTensorFlowImport())
